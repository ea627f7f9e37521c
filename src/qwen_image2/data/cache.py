"""Latent and condition-state caches: VAE latents (posterior mode, normalised) and Qwen3-VL states per
sample and bucket size, in sharded safetensors files, so that training skips both frozen encoders.

A sample is cached under `id@WxH` (its bucket size) with its conditional encoding and, for edits, the
text states of an empty instruction (caption dropout keeps the images, so those depend on the sample). Shards are written to a temporary
name and renamed, then the index is rewritten; a rerun skips every key the index already has.
"""

import json
import os
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from qwen_image2.models.encoding import SampleEncoding

INDEX = "index.json"
# Caches written before the image-slot mask had one name store it as `slots`.
OLD_NAMES = {"slots": "image_pad_mask"}


def cache_key(sample_id: str, width: int, height: int) -> str:
    return f"{sample_id}@{width}x{height}"


class CacheError(Exception):
    """A shard that cannot be read: the trainer skips the cached copy and counts the reason."""


def _tensors(prefix: str, encoding: SampleEncoding) -> dict[str, torch.Tensor]:
    tensors = {
        f"{prefix}.target": encoding.target,
        f"{prefix}.embeds": encoding.embeds,
        f"{prefix}.image_pad_mask": encoding.image_pad_mask.to(torch.uint8),
    }
    if encoding.condition_latents is not None:
        tensors[f"{prefix}.condition_latents"] = encoding.condition_latents
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def _read_index(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text()) if path.exists() else {}


def _write_index(path: Path, index: dict[str, dict]) -> None:
    partial = path.with_name(f"{path.name}.tmp")
    partial.write_text(json.dumps(index))
    os.replace(partial, path)


def merge_part_indexes(folder: str | Path) -> None:
    """Fold the indexes that parallel writers left (`index-<part>.json`) into `index.json`. Done before
    parallel writers start (a crashed run's parts) and after they end."""
    folder = Path(folder)
    parts = sorted(folder.glob("index-*.json"))
    if not parts:
        return
    index = _read_index(folder / INDEX)
    for part in parts:
        index.update(_read_index(part))
    _write_index(folder / INDEX, index)
    for part in parts:
        part.unlink()


class CacheWriter:
    """Buffers encodings and writes a shard every `shard_size` samples (and on `close`).

    One of several writers filling the same folder at once names its `part`: its shards are then
    `shard-<part>-N` and its index `index-<part>.json`, which `merge_part_indexes` folds into `index.json`.
    """

    def __init__(self, folder: str | Path, shard_size: int = 256, part: str | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.prefix = f"shard-{part}-" if part else "shard-"
        self.index_path = self.folder / (f"index-{part}.json" if part else INDEX)
        self.known = _read_index(self.folder / INDEX) if part else {}  # the merged index, read-only here
        self.index: dict[str, dict] = _read_index(self.index_path)
        shards = {e["shard"] for e in [*self.index.values(), *self.known.values()]}
        self.shard_count = sum(name.startswith(self.prefix) for name in shards)  # the next shard's number
        self.pending: dict[str, tuple[SampleEncoding, SampleEncoding | None]] = {}

    def __contains__(self, key: str) -> bool:
        return key in self.index or key in self.pending or key in self.known

    def add(self, key: str, encoding: SampleEncoding, unconditional: SampleEncoding | None = None) -> None:
        self.pending[key] = (encoding, unconditional)
        if len(self.pending) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        shard = f"{self.prefix}{self.shard_count:06d}.safetensors"
        tensors, entries = {}, {}
        for key, (encoding, unconditional) in self.pending.items():
            tensors.update(_tensors(f"{key}/cond", encoding))
            if unconditional is not None:  # latents are the same; only the text states differ
                tensors[f"{key}/uncond.embeds"] = unconditional.embeds.detach().cpu().contiguous()
                tensors[f"{key}/uncond.image_pad_mask"] = (
                    unconditional.image_pad_mask.to(torch.uint8).cpu().contiguous()
                )
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
        _write_index(self.index_path, self.index)
        self.shard_count += 1
        self.pending.clear()

    def close(self) -> None:
        self.flush()


class CacheReader:
    """Reads cached encodings by key; a missing or damaged shard raises `CacheError`.

    Opening a shard parses its header (about a thousand tensor names), which costs more than reading one
    sample's tensors, so the last `open_shards` shards stay open (memory-mapped) between reads.
    """

    def __init__(self, folder: str | Path, open_shards: int = 256):
        self.folder = Path(folder)
        self.index: dict[str, dict] = _read_index(self.folder / INDEX)
        self.open_shards = open_shards
        self._shards: OrderedDict[str, tuple[object, set[str]]] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def _shard(self, name: str) -> tuple[object, set[str]]:
        if name in self._shards:
            self._shards.move_to_end(name)
            return self._shards[name]
        handle = safe_open(self.folder / name, framework="pt")
        self._shards[name] = handle, set(handle.keys())
        if len(self._shards) > self.open_shards:
            self._shards.popitem(last=False)
        return self._shards[name]

    def get(self, key: str) -> tuple[SampleEncoding, SampleEncoding | None]:
        """The conditional encoding and, for an edit, the empty-instruction one (None for T2I samples, whose
        empty prompt does not depend on the sample)."""
        entry = self.index[key]
        try:
            shard, names = self._shard(entry["shard"])
            parts = {
                kind: {
                    OLD_NAMES.get(name, name): shard.get_tensor(f"{key}/{kind}.{name}")
                    for name in ("target", "embeds", "image_pad_mask", "slots", "condition_latents")
                    if f"{key}/{kind}.{name}" in names
                }
                for kind in ("cond", "uncond")
            }
        except (OSError, SafetensorError) as err:
            self._shards.pop(entry["shard"], None)
            raise CacheError(f"cache shard {entry['shard']} unreadable ({err.__class__.__name__})") from None
        cond, uncond = parts["cond"], parts["uncond"]
        if not {"target", "embeds", "image_pad_mask"} <= set(cond):
            raise CacheError(f"cache shard {entry['shard']} lacks {key}")
        encoding = SampleEncoding(
            target=cond["target"],
            target_grid=tuple(entry["target_grid"]),
            embeds=cond["embeds"],
            image_pad_mask=cond["image_pad_mask"].bool(),
            condition_latents=cond.get("condition_latents"),
            condition_grids=[tuple(g) for g in entry["condition_grids"]],
        )
        if not entry["unconditional"]:
            return encoding, None
        if not {"embeds", "image_pad_mask"} <= set(uncond):
            raise CacheError(f"cache shard {entry['shard']} lacks {key}/uncond")
        return encoding, replace(
            encoding, embeds=uncond["embeds"], image_pad_mask=uncond["image_pad_mask"].bool()
        )
