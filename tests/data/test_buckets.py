from collections import Counter

import pytest
import torch

from qwen_image2.data.buckets import Bucket, MixtureSampler, bucket_size, nearest_bucket
from qwen_image2.training.dit.config import Stage
from qwen_image2.training.schedule import learning_rate, stage_at


@pytest.fixture
def sampler():
    buckets = [Bucket(256, 256, 8, 0.5), Bucket(320, 192, 8, 0.3), Bucket(192, 320, 4, 0.2)]
    pools = {(task, b): list(range(b * 100, b * 100 + 50)) for task in ("t2i", "edit") for b in range(3)}
    return MixtureSampler(pools, buckets, t2i_ratio=0.7, seed=11)


def test_realized_task_ratio_and_bucket_frequencies_are_within_one_percent(sampler):
    draws = [sampler.draw(step) for step in range(10_000)]
    tasks = Counter(task for task, _, _ in draws)
    buckets = Counter(bucket for _, bucket, _ in draws)
    assert abs(tasks["t2i"] / 10_000 - 0.7) < 0.01
    for index, expected in enumerate([0.5, 0.3, 0.2]):
        assert abs(buckets[index] / 10_000 - expected) < 0.01
    assert all(len(indices) == sampler.buckets[b].batch_size for _, b, indices in draws[:100])


def test_sampler_resumes_exactly_from_its_state(sampler):
    uninterrupted = [next(sampler) for _ in range(20)]
    resumed = MixtureSampler(sampler.pools, sampler.buckets, 0.7, seed=0)
    resumed.load_state_dict({"seed": 11, "step": 10})
    for expected in uninterrupted[10:]:
        task, bucket, indices = next(resumed)
        assert (task, bucket) == expected[:2] and (indices == expected[2]).all()


def test_buckets_are_multiples_of_32_near_the_area():
    for aspect in [(1, 1), (16, 9), (1, 3)]:
        width, height = bucket_size(512, aspect)
        assert width % 32 == 0 and height % 32 == 0 and abs(width * height / 512**2 - 1) < 0.1
    buckets = [Bucket(256, 256, 1, 1), Bucket(384, 192, 1, 1)]
    assert nearest_bucket(1000, 480, buckets) == 1 and nearest_bucket(500, 520, buckets) == 0


def test_missing_task_renormalises_to_what_exists():
    buckets = [Bucket(64, 64, 2, 1.0)]
    sampler = MixtureSampler({("t2i", 0): [0, 1, 2]}, buckets, t2i_ratio=0.3, seed=0)
    assert {sampler.draw(s)[0] for s in range(50)} == {"t2i"}


def test_stages_and_learning_rate_schedule():
    stages = [
        Stage(name="a", steps=10, lr=1.0, warmup_steps=5),
        Stage(name="b", steps=10, lr=0.5, schedule="cosine"),
    ]
    assert stage_at(stages, 0) == (0, 0) and stage_at(stages, 9) == (0, 0) and stage_at(stages, 10) == (1, 10)
    assert learning_rate(stages[0], 0) == pytest.approx(0.2) and learning_rate(stages[0], 7) == 1.0
    assert learning_rate(stages[1], 0) == pytest.approx(0.5) and learning_rate(
        stages[1], 10
    ) == pytest.approx(0)


def test_per_step_draws_come_from_seed_step_and_stream_alone():
    from qwen_image2.seeding import Stream, stage_seed, step_generator, step_rng

    assert step_rng(0, 5, Stream.BATCH).random() == step_rng(0, 5, Stream.BATCH).random()
    draws = {step_rng(0, 5, stream).random() for stream in Stream}
    assert len(draws) == len(Stream)  # streams of one step never share numbers
    assert step_rng(0, 5, Stream.NOISE).random() != step_rng(0, 6, Stream.NOISE).random()
    assert step_rng(0, 5, Stream.NOISE).random() != step_rng(1, 5, Stream.NOISE).random()
    a, b = step_generator(3, 7, Stream.NOISE), step_generator(3, 7, Stream.NOISE)
    assert torch.equal(torch.randn(4, generator=a), torch.randn(4, generator=b))
    assert len({stage_seed(0, index) for index in range(8)}) == 8
