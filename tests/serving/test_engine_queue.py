"""How the engine's worker picks a batch from its queue, with a stand-in sampler (no model): requests of
another encoded length never take a batch's places, and those put back keep their place of arrival."""

from types import SimpleNamespace

from qwen_image2.pipelines.requests import ImageRequest
from qwen_image2.serving.engine import Engine, Job


class LengthSampler:
    """Encodes a prompt as its length in characters (the engine only compares `Prepared.key`)."""

    def prepare(self, request):
        return SimpleNamespace(key=len(request.prompt), grid=None)


def queued(engine: Engine, prompts: list[str], prepared: set[str] = frozenset()) -> dict[str, Job]:
    jobs = {}
    for prompt in prompts:
        job = Job(
            model="m", request=ImageRequest(prompt=prompt), emit=lambda event: None, deadline=float("inf")
        )
        if prompt in prepared:  # encoded by an earlier take and put back
            job.prepared, job.prepared_by = LengthSampler().prepare(job.request), 0
        engine.submit(job)
        jobs[prompt] = job
    return jobs


def take_batch(engine: Engine) -> list[Job]:
    return engine._prepare(0, {"m": LengthSampler()}, engine._take())


def test_a_request_known_to_differ_does_not_take_the_place_of_one_that_matches():
    engine = Engine([{"m": LengthSampler()}], max_queue=16, max_batch=2)
    jobs = queued(engine, ["a", "bb", "cc", "d"], prepared={"a", "bb", "cc", "d"})
    assert take_batch(engine) == [jobs["a"], jobs["d"]]
    assert take_batch(engine) == [jobs["bb"], jobs["cc"]]


def test_requests_put_back_keep_their_place_of_arrival():
    engine = Engine([{"m": LengthSampler()}], max_queue=16, max_batch=2)
    jobs = queued(engine, ["a", "xx", "yy", "e"], prepared={"a", "xx"})
    # "xx" is known not to match "a"; "yy" is claimed, encoded, found not to match, and put back after "xx"
    assert take_batch(engine) == [jobs["a"]]
    assert list(engine._queue) == [jobs["xx"], jobs["yy"], jobs["e"]]
    assert take_batch(engine) == [jobs["xx"], jobs["yy"]]
    assert take_batch(engine) == [jobs["e"]]
