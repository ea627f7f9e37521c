"""What `qwen-image2 serve` is told: its models, devices, store, keys and limits."""

from dataclasses import dataclass, field

DEFAULT_DB_URL = "sqlite:///serve.db"


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; beyond it the answer is a 4xx, before any work is queued."""

    max_body_bytes: int = 64 * 2**20
    max_pixels: int = 2048 * 2048  # of one output image
    max_input_pixels: int = 4096 * 4096  # of one uploaded image, checked from its header before decoding
    max_images: int = 10  # condition images of one edit
    max_n: int = 10
    max_steps: int = 200
    max_partial_images: int = 3


@dataclass
class ServeSettings:
    """`models`: name -> model folder or preset. `steps`: the step count of quality "high" (and "auto")."""

    models: dict[str, str]
    devices: list[str] = field(default_factory=lambda: ["auto"])
    dtype: str = "auto"
    db_url: str = DEFAULT_DB_URL
    api_keys: frozenset[str] = frozenset()
    max_queue: int = 64
    max_batch: int = 8
    timeout: float = 600.0  # seconds from arrival to the last image
    steps: int = 40
    text_bucket: int = 1  # >1: pad prompts to multiples of it, so more requests batch (pipelines/requests.py)
    cors_origins: list[str] = field(default_factory=list)
    safety: bool = False
    enhancer: str | None = None  # a prompt enhancer: a causal-LM folder or a chat endpoint's URL
    enhancer_model: str | None = None  # the model an enhancer endpoint serves
    limits: Limits = field(default_factory=Limits)
