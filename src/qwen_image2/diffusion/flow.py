"""Flow-matching math shared by the trainer and the sampler, as pure functions.

Convention (rectified flow, as Qwen-Image): x_σ = (1 − σ)·x0 + σ·ε, σ ∈ [0, 1], σ = 1 is pure noise;
the model predicts the velocity v = ε − x0 and the Euler step is x ← x + (σ_next − σ)·v.
"""

import math

import torch

from qwen_image2.models.presets import PUBLISHED_SCHEDULER

# The published scheduler's dynamic-shift constants, read from its one config.
BASE_SEQ_LEN = PUBLISHED_SCHEDULER["base_image_seq_len"]
MAX_SEQ_LEN = PUBLISHED_SCHEDULER["max_image_seq_len"]
BASE_SHIFT, MAX_SHIFT = PUBLISHED_SCHEDULER["base_shift"], PUBLISHED_SCHEDULER["max_shift"]


def dynamic_shift_mu(
    num_tokens: int,
    base_seq_len: int = BASE_SEQ_LEN,
    max_seq_len: int = MAX_SEQ_LEN,
    base_shift: float = BASE_SHIFT,
    max_shift: float = MAX_SHIFT,
) -> float:
    """μ linear in the number of target tokens, not clamped (2048² extrapolates to μ ≈ 1.313).

    >>> round(dynamic_shift_mu(4096), 3)
    0.694
    """
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return base_shift + slope * (num_tokens - base_seq_len)


def shift_sigmas(sigmas: torch.Tensor, mu: float) -> torch.Tensor:
    """Exponential time shift σ' = e^μ / (e^μ + 1/σ − 1): more steps at high noise for larger images.

    Shapes: any; σ = 0 maps to 0 and σ = 1 to 1.
    """
    shift = math.exp(mu)
    return shift * sigmas / (shift * sigmas + (1 - sigmas))


def sample_training_sigmas(
    batch_size: int,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """σ ~ logit-normal(mean, std): sigmoid of a normal draw. Shape (batch_size,)."""
    normal = torch.randn(batch_size, generator=generator, device=generator.device if generator else device)
    return torch.sigmoid(mean + std * normal).to(device)


def noisy_latents(x0: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """x_σ = (1 − σ)·x0 + σ·ε with σ of shape (B,) broadcast over the other dims of x0 (B, ...)."""
    sigmas = sigmas.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - sigmas) * x0 + sigmas * noise


def flow_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The velocity the model learns: ε − x0 (same shape as x0)."""
    return noise - x0
