"""The engine: one worker thread per device, one bounded queue, and batches of requests denoised together.

A worker takes the oldest request, then every waiting request with the same model, size, step count,
guidance on/off and condition-image sizes, up to `max_batch` images; those whose encoded prompt falls in
the same encoded prompt length (or text bucket) are denoised with it in one batch (`pipelines.requests`), each with its own prompt,
seed and guidance, bit-equal to being alone. Between denoising steps the worker drops requests that were
cancelled (the client went away) or ran out of time, and stops the batch when none is left.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from qwen_image2.errors import UserError
from qwen_image2.pipelines.requests import ImageRequest, Prepared, RequestSampler
from qwen_image2.serving.errors import ApiError
from qwen_image2.serving.metrics import Metrics


@dataclass
class Partial:
    """Previews decoded from x̂₀ after step `step`; `index` counts this request's partials from 0."""

    index: int
    images: list[Image.Image]


@dataclass
class Done:
    images: list[Image.Image]


@dataclass
class Failed:
    error: ApiError


Event = Partial | Done | Failed


def preview_steps(steps: int, partial_images: int) -> frozenset[int]:
    """Step indices whose x̂₀ is sent as a partial image: `partial_images` of them, evenly spread and
    before the last step (fewer when there are too few steps, as OpenAI allows)."""
    return frozenset(
        round((k + 1) * steps / (partial_images + 1)) - 1
        for k in range(partial_images)
        if round((k + 1) * steps / (partial_images + 1)) - 1 < steps - 1
    )


@dataclass(eq=False)
class Job:
    """One request in the engine; `emit` is called from the worker thread with each `Event`."""

    model: str
    request: ImageRequest
    emit: Callable[[Event], None]
    deadline: float
    partial_steps: frozenset[int] = frozenset()
    cancelled: threading.Event = field(default_factory=threading.Event)
    prepared: Prepared | None = None
    prepared_by: int | None = None
    cancel_step: int | None = None  # the engine's step count when the cancel came
    partials_sent: int = 0
    order: int = 0  # of arrival: the queue is kept in this order

    @property
    def key(self) -> tuple:
        """What a request must share with others to be considered for one batch (before encoding)."""
        r = self.request
        return (
            self.model,
            r.width,
            r.height,
            r.steps,
            r.uses_cfg,
            tuple(i.size for i in r.images),
            r.resolution,
        )


class QueueFull(Exception):
    pass


class _Abandoned(Exception):
    """Every request of a batch was cancelled or timed out."""


class Engine:
    def __init__(
        self,
        workers: list[dict[str, RequestSampler]],
        *,
        max_queue: int,
        max_batch: int,
        metrics: Metrics | None = None,
    ):
        self.workers = workers
        self.max_queue, self.max_batch = max_queue, max_batch
        self.metrics = metrics or Metrics()
        self._queue: deque[Job] = deque()
        self._lock = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._step_count = itertools.count(1)
        self._arrivals = itertools.count()
        self.steps = 0  # denoising steps run, all workers
        self.running = 0  # requests being denoised
        # Denoising steps that finished after a batch's last cancel before the worker let it go (1: the one
        # in flight when the cancel came).
        self.last_cancel_lag: int | None = None

    # --- the HTTP side -------------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        with self._lock:
            if self._stopping:
                raise ApiError(503, "The server is shutting down.", code="unavailable", retry_after=5)
            if len(self._queue) >= self.max_queue:
                raise QueueFull
            job.order = next(self._arrivals)
            self._queue.append(job)
            self.metrics.queue_depth.set(len(self._queue))
            self._lock.notify()

    def cancel(self, job: Job) -> None:
        if not job.cancelled.is_set():
            job.cancel_step = self.steps
            job.cancelled.set()
        with self._lock:  # a request still waiting leaves the queue at once
            if job in self._queue:
                self._queue.remove(job)
                self.metrics.queue_depth.set(len(self._queue))

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        for index, samplers in enumerate(self.workers):
            thread = threading.Thread(
                target=self._work, args=(index, samplers), daemon=True, name=f"worker-{index}"
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            waiting = list(self._queue)
            self._queue.clear()
            self._lock.notify_all()
        for job in waiting:
            job.emit(Failed(ApiError(503, "The server is shutting down.", code="unavailable", retry_after=5)))
        for thread in self._threads:
            thread.join(timeout=30)

    def alive(self) -> bool:
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

    # --- the worker side -----------------------------------------------------------------------------
    def _work(self, index: int, samplers: dict[str, RequestSampler]) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            batch = self._prepare(index, samplers, jobs)
            if not batch:
                continue
            with self._lock:
                self.running += len(batch)
                self.metrics.running.set(self.running)
            try:
                self._run(samplers[batch[0].model], batch)
            except Exception as err:  # a bug must cost its batch, never the worker
                for job in batch:
                    job.emit(
                        Failed(
                            ApiError(
                                500, f"internal error: {type(err).__name__}: {err}", code="internal_error"
                            )
                        )
                    )
            finally:
                with self._lock:
                    self.running -= len(batch)
                    self.metrics.running.set(self.running)

    def _take(self) -> list[Job] | None:
        """The oldest request and the waiting ones it may batch with (claimed: out of the queue)."""
        with self._lock:
            while not self._queue and not self._stopping:
                self._lock.wait()
            if self._stopping:
                return None
            head = self._queue.popleft()
            jobs, images = [head], head.request.num_images
            for job in list(self._queue):
                if self._may_join(head, job, images):
                    self._queue.remove(job)
                    jobs.append(job)
                    images += job.request.num_images
            self.metrics.queue_depth.set(len(self._queue))
            return jobs

    def _may_join(self, head: Job, job: Job, images: int) -> bool:
        if job.key != head.key or images + job.request.num_images > self.max_batch:
            return False
        # Both encoded already (put back by an earlier batch): one of another encoded length cannot join
        # this batch, and must not take the place of one that can.
        return head.prepared is None or job.prepared is None or job.prepared.key == head.prepared.key

    def _prepare(self, index: int, samplers: dict[str, RequestSampler], jobs: list[Job]) -> list[Job]:
        """Encode each claimed request on this worker's device; those of another encoded length (or text
        bucket) than the oldest go back to the queue, in their place of arrival (their encoding is kept)."""
        live = []
        for job in jobs:
            if self._drop_if_dead(job):
                continue
            if job.prepared is None or job.prepared_by != index:
                try:
                    job.prepared, job.prepared_by = samplers[job.model].prepare(job.request), index
                except UserError as err:
                    job.emit(Failed(ApiError(400, str(err), code="invalid_value")))
                    continue
            live.append(job)
        if not live:
            return []
        batch = [job for job in live if job.prepared.key == live[0].prepared.key]
        later = [job for job in live if job.prepared.key != live[0].prepared.key]
        if later:
            with self._lock:
                self._queue = deque(heapq.merge(self._queue, later, key=lambda job: job.order))
                self.metrics.queue_depth.set(len(self._queue))
                self._lock.notify()
        return batch

    def _drop_if_dead(self, job: Job) -> bool:
        if job.cancelled.is_set():
            return True
        if time.monotonic() > job.deadline:
            job.emit(Failed(ApiError(503, "The request timed out.", code="timeout", retry_after=5)))
            return True
        return False

    def _run(self, sampler: RequestSampler, batch: list[Job]) -> None:
        rows, start = [], 0
        for job in batch:
            rows.append(slice(start, start + job.request.num_images))
            start += job.request.num_images
        grid = batch[0].prepared.grid
        self.metrics.batch_images.observe(start)
        live = set(range(len(batch)))

        def on_step(step: int, clean) -> None:
            self.steps = next(self._step_count)
            self.metrics.steps.inc()
            for i in list(live):
                if self._drop_if_dead(batch[i]):
                    live.discard(i)
            if not live:
                cancels = [job.cancel_step for job in batch if job.cancel_step is not None]
                self.last_cancel_lag = self.steps - max(cancels) if cancels else None
                raise _Abandoned
            previews = None
            for i in sorted(live):
                job = batch[i]
                if step in job.partial_steps:
                    previews = clean() if previews is None else previews
                    images = sampler.decode(previews[rows[i]], grid)
                    job.emit(Partial(job.partials_sent, images))
                    job.partials_sent += 1

        try:
            latents = sampler.sample([job.prepared for job in batch], on_step)
        except _Abandoned:
            return
        for i in sorted(live):
            if not batch[i].cancelled.is_set():
                batch[i].emit(Done(sampler.decode(latents[rows[i]], grid)))


def load_workers(
    models: dict[str, str], devices: list[str], dtype: str, text_bucket: int = 1
) -> list[dict[str, RequestSampler]]:
    """Each device's copy of every model, as request samplers (devices resolved: 'auto' -> cuda or cpu).

    The loading runs in a thread of its own that ends when it is done. A thread that ran parallel torch
    ops keeps an OpenMP (libgomp) thread pool for its life; the main thread's, idle beside a worker's, makes
    more OpenMP threads than CPUs, and libgomp then stops spin-waiting: every parallel region of the worker
    sleeps and wakes its threads (on 2 cores the demo model denoised 2.5-3x slower, ~500 context switches
    a step; benchmarks/serving_throughput.py)."""
    loaded: list[list[dict[str, RequestSampler]]] = []
    failed: list[BaseException] = []

    def load() -> None:
        try:
            loaded.append(_load_workers(models, devices, dtype, text_bucket))
        except BaseException as err:  # raised again in the caller's thread
            failed.append(err)

    thread = threading.Thread(target=load, daemon=True, name="load-workers")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return loaded[0]


def _load_workers(models, devices, dtype, text_bucket) -> list[dict[str, RequestSampler]]:
    from qwen_image2.models.device import resolve_device, resolve_dtype
    from qwen_image2.pipelines.qwen_image2 import QwenImage2Pipeline

    workers = []
    for device in devices:
        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
        workers.append(
            {
                name: RequestSampler(
                    QwenImage2Pipeline.from_model(path, dtype=torch_dtype, device=device), text_bucket
                )
                for name, path in models.items()
            }
        )
    return workers
