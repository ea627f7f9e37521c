"""Latent and condition-state caches: VAE latents (posterior mode, normalised) and Qwen3-VL states per
sample and bucket size, in sharded safetensors files, so that training skips both frozen encoders.

A sample is cached under `id@WxH` (its bucket size) with its conditional encoding and, for edits, the
text states of an empty instruction (caption dropout keeps the images, so those depend on the sample). Shards are written to a temporary
name and renamed, then the index is rewritten; a rerun skips every key the index already has.
"""

import json
import os
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from qwen_image2.diffusion.loss import SampleEncoding

INDEX = "index.json"


def cache_key(sample_id: str, width: int, height: int) -> str:
    return f"{sample_id}@{width}x{height}"


class CacheError(Exception):
    """A shard that cannot be read: the trainer skips the cached copy and counts the reason."""


def _tensors(prefix: str, encoding: SampleEncoding) -> dict[str, torch.Tensor]:
    tensors = {
        f"{prefix}.target": encoding.target,
        f"{prefix}.embeds": encoding.embeds,
        f"{prefix}.slots": encoding.slots.to(torch.uint8),
    }
    if encoding.condition_latents is not None:
        tensors[f"{prefix}.condition_latents"] = encoding.condition_latents
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


class CacheWriter:
    """Buffers encodings and writes a shard every `shard_size` samples (and on `close`)."""

    def __init__(self, folder: str | Path, shard_size: int = 256):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        index_path = self.folder / INDEX
        self.index: dict[str, dict] = json.loads(index_path.read_text()) if index_path.exists() else {}
        self.pending: dict[str, tuple[SampleEncoding, SampleEncoding | None]] = {}

    def __contains__(self, key: str) -> bool:
        return key in self.index or key in self.pending

    def add(self, key: str, encoding: SampleEncoding, unconditional: SampleEncoding | None = None) -> None:
        self.pending[key] = (encoding, unconditional)
        if len(self.pending) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        shard = f"shard-{len({entry['shard'] for entry in self.index.values()}):06d}.safetensors"
        tensors, entries = {}, {}
        for key, (encoding, unconditional) in self.pending.items():
            tensors.update(_tensors(f"{key}/cond", encoding))
            if unconditional is not None:  # latents are the same; only the text states differ
                tensors[f"{key}/uncond.embeds"] = unconditional.embeds.detach().cpu().contiguous()
                tensors[f"{key}/uncond.slots"] = unconditional.slots.to(torch.uint8).cpu().contiguous()
            entries[key] = {
                "shard": shard,
                "target_grid": list(encoding.target_grid),
                "condition_grids": [list(g) for g in encoding.condition_grids],
                "unconditional": unconditional is not None,
            }
        partial = self.folder / f"{shard}.tmp"
        save_file(tensors, str(partial))
        os.replace(partial, self.folder / shard)
        self.index.update(entries)
        index_tmp = self.folder / f"{INDEX}.tmp"
        index_tmp.write_text(json.dumps(self.index))
        os.replace(index_tmp, self.folder / INDEX)
        self.pending.clear()

    def close(self) -> None:
        self.flush()


class CacheReader:
    """Reads cached encodings by key; a missing or damaged shard raises `CacheError`."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        index_path = self.folder / INDEX
        self.index: dict[str, dict] = json.loads(index_path.read_text()) if index_path.exists() else {}

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def get(self, key: str) -> tuple[SampleEncoding, SampleEncoding | None]:
        """The conditional encoding and, for an edit, the empty-instruction one (None for T2I samples, whose
        empty prompt does not depend on the sample), read with one opening of the shard."""
        entry = self.index[key]
        try:
            with safe_open(self.folder / entry["shard"], framework="pt") as shard:
                names = set(shard.keys())
                parts = {
                    kind: {
                        name: shard.get_tensor(f"{key}/{kind}.{name}")
                        for name in ("target", "embeds", "slots", "condition_latents")
                        if f"{key}/{kind}.{name}" in names
                    }
                    for kind in ("cond", "uncond")
                }
        except (OSError, SafetensorError) as err:
            raise CacheError(f"cache shard {entry['shard']} unreadable ({err.__class__.__name__})") from None
        cond, uncond = parts["cond"], parts["uncond"]
        if not {"target", "embeds", "slots"} <= set(cond):
            raise CacheError(f"cache shard {entry['shard']} lacks {key}")
        encoding = SampleEncoding(
            target=cond["target"],
            target_grid=tuple(entry["target_grid"]),
            embeds=cond["embeds"],
            slots=cond["slots"].bool(),
            condition_latents=cond.get("condition_latents"),
            condition_grids=[tuple(g) for g in entry["condition_grids"]],
        )
        if not entry["unconditional"]:
            return encoding, None
        if not {"embeds", "slots"} <= set(uncond):
            raise CacheError(f"cache shard {entry['shard']} lacks {key}/uncond")
        return encoding, replace(encoding, embeds=uncond["embeds"], slots=uncond["slots"].bool())
