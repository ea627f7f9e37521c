"""Exponential moving average of the trainable weights, kept in fp32 beside the model."""

import torch
from pydantic import Field
from torch.distributed.checkpoint.stateful import Stateful

from qwen_image2.config import Section


class EmaConfig(Section):
    """EMA settings in a recipe (the `EMA` below holds the averaged weights)."""

    enabled: bool = True
    decay: float = Field(0.999, ge=0, lt=1)


class EMA(Stateful):
    """shadow ← decay·shadow + (1 − decay)·param, for every trainable parameter (sharded ones stay sharded)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {
            name: param.detach().float().clone()
            for name, param in model.named_parameters()
            if param.requires_grad
        }

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for name, param in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(param.detach().float(), 1 - self.decay)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        for name, param in model.named_parameters():
            if name in self.shadow:
                param.copy_(self.shadow[name].to(param.dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, value in state.items():
            self.shadow[name].copy_(value)
