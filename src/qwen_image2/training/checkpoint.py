"""Checkpoints: a set of named stateful parts saved with DCP into `step-NNNNNNN/`, atomically, keeping k.

Written to `step-NNNNNNN.tmp/` and renamed when complete, so a run killed mid-save leaves the previous
checkpoint as the latest. Works in one process and under torchrun (FSDP2 shards save in parallel).
"""

import re
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.checkpoint.stateful import Stateful

from qwen_image2.training.distributed import barrier, is_main

STEP_DIR = re.compile(r"^step-(\d{7})$")


class ModelAndOptimizer(Stateful):
    """Model and optimizer state in DCP's sharding-aware form (plain modules and FSDP2 alike).
    Only trainable parameters are saved: the frozen base of a LoRA run comes from the base model."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
        self.model, self.optimizer = model, optimizer
        self.options = StateDictOptions(ignore_frozen_params=True)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": get_model_state_dict(self.model, options=self.options),
            "optim": get_optimizer_state_dict(self.model, self.optimizer, options=self.options),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        options = StateDictOptions(strict=False)
        set_model_state_dict(self.model, state["model"], options=options)
        set_optimizer_state_dict(self.model, self.optimizer, state["optim"], options=options)


def checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and STEP_DIR.match(p.name))


def latest_checkpoint(folder: Path) -> Path | None:
    found = checkpoints(folder)
    return found[-1] if found else None


def save_checkpoint(folder: Path, step: int, state: dict[str, Any], keep: int, config_text: str = "") -> Path:
    """Save `state` (Stateful parts and tensors) as `folder/step-NNNNNNN`, with the resolved config beside
    it as `config.yaml`, then prune to the newest `keep`."""
    final = folder / f"step-{step:07d}"
    partial = folder / f"step-{step:07d}.tmp"
    if is_main():
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    barrier()
    dcp.save(state, checkpoint_id=str(partial))
    barrier()
    if is_main():
        (partial / "config.yaml").write_text(config_text)
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        for old in checkpoints(folder)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def load_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Load into `state` in place (Stateful parts get `load_state_dict`)."""
    dcp.load(state, checkpoint_id=str(path))
