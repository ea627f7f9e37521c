"""The flow-matching training loss of a layout group of samples, and the training σ distribution."""

import torch
import torch.nn.functional as F
from pydantic import Field

from qwen_image2.config import Section
from qwen_image2.diffusion.flow import (
    dynamic_shift_mu,
    flow_target,
    noisy_latents,
    sample_training_sigmas,
    shift_sigmas,
)
from qwen_image2.diffusion.sampling import target_velocity
from qwen_image2.models.encoding import LatentBatch, img_shapes


class Sigma(Section):
    """Training σ distribution: logit-normal(mean, std), optionally shifted by the resolution's μ."""

    mean: float = Field(0.0, description="Logit-normal mean of the training σ.")
    std: float = Field(1.0, gt=0, description="Logit-normal std.")
    resolution_shift: bool = Field(True, description="Shift σ by the target's μ, as inference does.")


def draw_sigmas_and_noise(
    batch_size: int, num_tokens: int, channels: int, sigma: Sigma, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """σ (B,) from the logit-normal (shifted by the target's μ if asked) and ε (B, N, C), on the CPU."""
    sigmas = sample_training_sigmas(batch_size, sigma.mean, sigma.std, generator)
    if sigma.resolution_shift:
        sigmas = shift_sigmas(sigmas, dynamic_shift_mu(num_tokens))
    return sigmas, torch.randn((batch_size, num_tokens, channels), generator=generator)


def flow_matching_loss(
    transformer: torch.nn.Module, batch: LatentBatch, sigmas: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """MSE between the DiT's velocity and ε − x0 at σ, over the target tokens only.
    Shapes: `sigmas` (B,), `noise` (B, N, C) (a distributed trainer draws them for the global batch)."""
    target = batch.target
    sigmas, noise = sigmas.to(target.device), noise.to(target.device, target.dtype)
    hidden = noisy_latents(target, noise, sigmas)
    if batch.condition_latents is not None:
        hidden = torch.cat([batch.condition_latents, hidden], dim=1)
    shapes = img_shapes(batch.target_grid, batch.condition_grids, target.shape[0])
    prediction = target_velocity(transformer, hidden, sigmas.to(target.dtype), batch.conditions, shapes)
    return F.mse_loss(prediction.float(), flow_target(target, noise).float())
