"""Prometheus metrics of one server (its own registry, so two apps in one process do not share counts)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge("qwen_image2_queue_depth", "Requests waiting for a worker.", registry=r)
        self.running = Gauge("qwen_image2_running_requests", "Requests being denoised.", registry=r)
        self.batch_images = Histogram(
            "qwen_image2_batch_images",
            "Images per denoising batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.latency = Histogram(
            "qwen_image2_request_seconds",
            "Arrival to answer.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.images = Counter("qwen_image2_images", "Images served.", ["model"], registry=r)
        self.errors = Counter("qwen_image2_errors", "Error answers by status code.", ["code"], registry=r)
        self.steps = Counter(
            "qwen_image2_denoising_steps", "Denoising steps run (one per batch step).", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
