"""VAE training losses: reconstruction, perceptual, VA-VAE semantic alignment, KL, and the adaptive weight.

Qwen-Image-2.0 (§3.1) trains its f16c64 VAE with reconstruction + perceptual + alignment losses following
VA-VAE, and drops the adversarial loss; the Qwen-Image-VAE-2.0 report also drops KL and aligns to a single
middle layer of DINOv2 (reference/vae_eval_perf.md §0, §2). The alignment terms follow VA-VAE
(hustvl/LightningDiT `vavae/ldm/modules/losses/contperceptual.py`): a bias-free 1x1 projection of the
latent is compared position by position with the frozen features (margin cosine) and by its pattern of
self-similarity (margin distance matrix); its weight adapts to the reconstruction gradient.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from qwen_image2.errors import UserError

# ImageNet statistics DINOv2 was trained with (facebookresearch/dinov2 transforms). VA-VAE feeds [-1, 1]
# pixels without them (reference §2.1, a quirk); we normalise deliberately.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# A random DINOv2 at toy size for tests and CPU recipes (no hub here): patch 14 like the real one.
TINY_DINOV2 = dict(
    hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, patch_size=14
)


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor, l1: float = 1.0, l2: float = 0.0):
    """l1·mean|x̂ − x| + l2·mean(x̂ − x)² over (B, C, H, W)."""
    loss = l1 * (prediction - target).abs().mean()
    return loss + l2 * (prediction - target).pow(2).mean() if l2 else loss


def kl_loss(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) summed over channels, averaged over batch and positions."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1).mean()


def lpips_loss(model: nn.Module, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean LPIPS of the RGB channels of (B, C, H, W) pixels in [-1, 1] (alpha, if any, is left to L1)."""
    return model(prediction[:, :3], target[:, :3]).mean()


def margin_cosine_loss(projected: torch.Tensor, features: torch.Tensor, margin: float) -> torch.Tensor:
    """mean over positions of ReLU(1 − margin − cos(z'_p, f_p)); (B, D, h, w) each. Zero once cos ≥ 1 − margin."""
    cosine = F.cosine_similarity(projected, features, dim=1)
    return F.relu(1 - margin - cosine).mean()


def margin_distance_matrix_loss(
    projected: torch.Tensor, features: torch.Tensor, margin: float
) -> torch.Tensor:
    """mean over position pairs of ReLU(|S_z − S_f| − margin), S = cosine-similarity matrix of one image's
    positions; (B, D, h, w) each. It matches the latent's internal structure to the features', not values."""
    z = F.normalize(projected.flatten(2), dim=1)
    f = F.normalize(features.flatten(2), dim=1)
    similarity_z = z.transpose(1, 2) @ z
    similarity_f = f.transpose(1, 2) @ f
    return F.relu((similarity_z - similarity_f).abs() - margin).mean()


def adaptive_weight(reference: torch.Tensor, other: torch.Tensor, layer: torch.Tensor) -> torch.Tensor:
    """‖∇_layer reference‖ / (‖∇_layer other‖ + 1e-4), clamped to [0, 1e8], detached (VA-VAE, taming's GAN).

    It makes the alignment pull on the encoder's last layer as hard as reconstruction does, times the phase
    weight, whatever the two losses' raw scales.
    """
    grad_reference = torch.autograd.grad(reference, layer, retain_graph=True)[0]
    grad_other = torch.autograd.grad(other, layer, retain_graph=True)[0]
    return (grad_reference.norm() / (grad_other.norm() + 1e-4)).clamp(0.0, 1e8).detach()


def build_dinov2(source: str, seed: int = 0) -> nn.Module:
    """Frozen DINOv2 from a transformers folder (e.g. a local facebook/dinov2-large), or `random-tiny`."""
    from transformers import Dinov2Config, Dinov2Model

    if source == "random-tiny":
        torch.manual_seed(seed)
        model = Dinov2Model(Dinov2Config(**TINY_DINOV2))
    elif (Path(source) / "config.json").is_file():
        model = Dinov2Model.from_pretrained(source)
    else:
        raise UserError(
            f"align.model {source!r} is not a transformers folder: download facebook/dinov2-large "
            "(the report's DINOv2-L) to a folder and give its path, or use random-tiny for a smoke run"
        )
    return model.eval().requires_grad_(False)


class Alignment(nn.Module):
    """The learned projection z' = W z (1x1 conv, no bias) and the frozen foundation model it aligns to."""

    def __init__(self, foundation: nn.Module, z_dim: int, layer: int | None = None):
        super().__init__()
        config = foundation.config
        self.projection = nn.Conv2d(z_dim, config.hidden_size, kernel_size=1, bias=False)
        self.foundation = foundation  # frozen: requires_grad_(False) in build_dinov2, eval always
        self.layer = config.num_hidden_layers // 2 if layer is None else layer
        if not 0 <= self.layer <= config.num_hidden_layers:
            raise UserError(
                f"align.layer {layer}: the foundation model has layers 0..{config.num_hidden_layers}"
            )
        self.patch_size = config.patch_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "Alignment":
        super().train(mode)
        self.foundation.eval()
        return self

    @torch.no_grad()
    def features(self, pixels: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Pixels (B, ≥3, H, W) in [-1, 1] -> middle-layer patch features (B, D, h, w) on the latent grid.

        The image is resized to (14h, 14w) so that the patch grid equals the latent grid, as VA-VAE resizes
        256 px to 224 for a 16x16 grid at f16.
        """
        rgb = (pixels[:, :3].float() + 1) / 2
        size = (grid[0] * self.patch_size, grid[1] * self.patch_size)
        rgb = F.interpolate(rgb, size=size, mode="bilinear", align_corners=False, antialias=True)
        hidden = self.foundation((rgb - self.mean) / self.std, output_hidden_states=True).hidden_states
        tokens = hidden[self.layer][:, -grid[0] * grid[1] :]  # drop CLS (and register tokens, if any)
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *grid)

    def forward(self, latents: torch.Tensor, pixels: torch.Tensor, margin_cos: float, margin_dist: float):
        """(margin cosine loss, margin distance-matrix loss) of latents (B, z, h, w) against pixels' features."""
        features = self.features(pixels, tuple(latents.shape[-2:]))
        projected = self.projection(latents.float())
        return (
            margin_cosine_loss(projected, features, margin_cos),
            margin_distance_matrix_loss(projected, features, margin_dist),
        )
