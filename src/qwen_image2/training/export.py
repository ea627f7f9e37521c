"""The final export: a diffusers folder (plus LoRA weights) that stock diffusers loads."""

from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from qwen_image2.models.components import Components
from qwen_image2.models.loading import save_components
from qwen_image2.training.distributed import barrier, is_main
from qwen_image2.training.ema import EMA
from qwen_image2.training.lora import Lora, apply_lora


def full_state_dict(transformer: torch.nn.Module, ema: EMA | None) -> dict[str, torch.Tensor]:
    """Unsharded weights on the CPU (a collective under FSDP2), with EMA values in place of trained ones."""
    state = get_model_state_dict(
        transformer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    if ema is not None:
        for name, value in ema.shadow.items():
            value = (
                value.full_tensor() if hasattr(value, "full_tensor") else value
            )  # a collective: every rank
            if name in state:  # with cpu_offload only rank 0 receives the full state
                state[name] = value.detach().cpu().to(state[name].dtype)
    return state


def export_model(
    components: Components, transformer: torch.nn.Module, ema: EMA | None, lora: Lora, folder: Path
) -> Path:
    """Write `folder` (a full diffusers model, LoRA merged) and, for LoRA runs, `folder/lora`."""
    state = full_state_dict(transformer, ema)
    if is_main():
        fresh = type(transformer).from_config(transformer.config)
        if lora.enabled:
            apply_lora(fresh, lora)
        fresh.load_state_dict(state)
        if lora.enabled:
            from diffusers import QwenImage21Pipeline
            from peft.utils import get_peft_model_state_dict

            # The adapter metadata carries lora_alpha; without it a loader assumes alpha = rank (scale 1).
            QwenImage21Pipeline.save_lora_weights(
                folder / "lora",
                transformer_lora_layers=get_peft_model_state_dict(fresh),
                transformer_lora_adapter_metadata=fresh.peft_config["default"].to_dict(),
            )
            fresh.fuse_lora()
            fresh.unload_lora()
        save_components(replace(components, transformer=fresh.eval()), folder)
    barrier()
    if dist.is_initialized():
        dist.destroy_process_group()
    return folder
