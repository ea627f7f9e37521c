"""Classifier-free guidance with a negative prompt ("true CFG")."""

import torch


def true_cfg(
    positive: torch.Tensor, negative: torch.Tensor, scale: float, rescale: bool = False
) -> torch.Tensor:
    """neg + s·(pos − neg). 2.1 uses it plain; `rescale` restores each token's norm to the positive
    prediction's, as Qwen-Image v1 did (norm over the last, channel, dim). Shapes: (B, N, C).
    """
    combined = negative + scale * (positive - negative)
    if rescale:
        combined = combined * (positive.norm(dim=-1, keepdim=True) / combined.norm(dim=-1, keepdim=True))
    return combined
