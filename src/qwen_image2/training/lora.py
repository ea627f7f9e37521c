"""LoRA: the adapter's settings in a recipe, and adding it to a transformer through diffusers' PEFT hooks."""

import torch
from pydantic import Field

from qwen_image2.config import Section


class Lora(Section):
    enabled: bool = Field(False, description="Train a LoRA adapter instead of all transformer weights.")
    rank: int = Field(16, ge=1)
    alpha: int = Field(16, ge=1)
    targets: list[str] = Field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])


def apply_lora(transformer: torch.nn.Module, config: Lora) -> None:
    """Add a LoRA adapter through diffusers' PEFT integration; only its weights stay trainable."""
    from peft import LoraConfig

    transformer.requires_grad_(False)
    transformer.add_adapter(
        LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            target_modules=config.targets,
            init_lora_weights="gaussian",
        )
    )
