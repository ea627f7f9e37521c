"""Latent and condition-state caches: VAE latents (posterior mode, normalised) and Qwen3-VL states per
sample and bucket size, in sharded safetensors files, so that training skips both frozen encoders.

A sample is cached under `id@WxH` (its bucket size) with its conditional encoding and, for edits, the
text states of an empty instruction (caption dropout keeps the images, so those depend on the sample). Shards are written to a temporary
name and renamed, then the index is rewritten; a rerun skips every key the index already has.

The index also records what made the cache (`fingerprint`): a hash of the VAE's and the text encoder's
config and of a few of their weights, and the bucket sizes cached. Training from a cache another model or
another bucket set made is refused at start (`check_cache`), and so is a cache older than the fingerprint.
"""

import hashlib
import json
import os
import warnings
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from qwen_image2.errors import UserError
from qwen_image2.models.encoding import SampleEncoding

INDEX = "index.json"
VOLATILE = ("transformers_version", "torch_dtype", "dtype")  # config keys that do not change the model
FORMAT = 2  # index.json: {"format", "fingerprint", "entries"}; format 1 was the bare entries
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


def module_hash(module: torch.nn.Module) -> str:
    """A cheap identity of a frozen encoder: its config, every tensor's name and shape, and the first values
    and the sum of a few tensors (read in bfloat16, so that a bf16 and an fp32 copy of the weights agree)."""
    config = getattr(module, "config", None)
    config = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
    # bookkeeping, not architecture (`_use_default_values` is even in set order, which varies by process)
    config = {k: v for k, v in config.items() if not k.startswith("_") and k not in VOLATILE}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    state = module.state_dict()
    names = list(state)
    for name in names:
        digest.update(f"{name}{tuple(state[name].shape)}".encode())
    for name in dict.fromkeys(names[i] for i in (0, len(names) // 2, -1)) if names else ():
        values = state[name].detach().flatten().to("cpu", torch.bfloat16).double()
        digest.update(repr([round(v, 6) for v in values[:16].tolist()]).encode())
        digest.update(f"{float(values.sum()):.4e}".encode())
    return digest.hexdigest()[:16]


def fingerprint(components, sizes) -> dict:
    """What made a cache: the VAE's and text encoder's hashes and the (width, height) bucket sizes."""
    return {
        "vae": module_hash(components.vae),
        "text_encoder": module_hash(components.text_encoder),
        "buckets": sorted({f"{w}x{h}" for w, h in sizes}),
    }


def _read_json(path: Path) -> dict:
    """A JSON file, or {} with a warning when it is damaged (a killed writer's partial file)."""
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        warnings.warn(
            f"{path} is damaged (a killed run?): dropped; its samples are encoded again", stacklevel=3
        )
        return {}
    return value if isinstance(value, dict) else {}


def _read_index(path: Path) -> tuple[dict | None, dict[str, dict], bool]:
    """(fingerprint, entries, old format) of an index file; a missing or damaged one is empty."""
    index = _read_json(path)
    if not index:
        return None, {}, False
    if index.get("format") != FORMAT:
        return None, index, True
    return index.get("fingerprint"), index["entries"], False


def _write_index(path: Path, index: dict[str, dict], fingerprint: dict | None) -> None:
    partial = path.with_name(f"{path.name}.tmp")
    partial.write_text(json.dumps({"format": FORMAT, "fingerprint": fingerprint, "entries": index}))
    os.replace(partial, path)


def _old_cache(folder: Path) -> UserError:
    return UserError(
        f"cache {folder} was written before caches recorded their model and buckets: "
        "rebuild it with `qwen-image2 cache` into a new folder"
    )


def _merged_fingerprint(folder: Path, old: dict | None, new: dict | None) -> dict | None:
    """The fingerprint of a cache `new` adds to: the same encoders, the union of the bucket sizes."""
    if old is None or new is None:
        return new or old
    for part in ("vae", "text_encoder"):
        if old[part] != new[part]:
            raise UserError(
                f"cache {folder} was made with another {part.replace('_', ' ')} "
                f"({old[part]}; this model's is {new[part]}): rebuild the cache for this model, in a new folder"
            )
    return {**new, "buckets": sorted(set(old["buckets"]) | set(new["buckets"]))}


def merge_part_indexes(folder: str | Path) -> None:
    """Fold the indexes that parallel writers left (`index-<part>.json`) into `index.json`. Done before
    parallel writers start (a crashed run's parts) and after they end."""
    folder = Path(folder)
    parts = sorted(folder.glob("index-*.json"))
    if not parts:
        return
    found, index, old = _read_index(folder / INDEX)
    if old:
        raise _old_cache(folder)
    for part in parts:
        part_fingerprint, entries, old = _read_index(part)
        if old:
            raise _old_cache(folder)
        found = _merged_fingerprint(folder, found, part_fingerprint)
        index.update(entries)
    _write_index(folder / INDEX, index, found)
    for part in parts:
        part.unlink()


class CacheWriter:
    """Buffers encodings and writes a shard every `shard_size` samples (and on `close`).

    One of several writers filling the same folder at once names its `part`: its shards are then
    `shard-<part>-N` and its index `index-<part>.json`, which `merge_part_indexes` folds into `index.json`.
    """

    def __init__(
        self,
        folder: str | Path,
        shard_size: int = 256,
        part: str | None = None,
        fingerprint: dict | None = None,
    ):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.prefix = f"shard-{part}-" if part else "shard-"
        self.index_path = self.folder / (f"index-{part}.json" if part else INDEX)
        merged, self.known, old = _read_index(self.folder / INDEX)  # the merged index, read-only for a part
        if old:
            raise _old_cache(self.folder)
        self.fingerprint = _merged_fingerprint(self.folder, merged, fingerprint)
        if part:
            own, self.index, old = _read_index(self.index_path)
            if old:
                raise _old_cache(self.folder)
            self.fingerprint = _merged_fingerprint(self.folder, own, self.fingerprint)
        else:
            self.index, self.known = self.known, {}
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
        _write_index(self.index_path, self.index, self.fingerprint)
        self.shard_count += 1
        self.pending.clear()

    def close(self) -> None:
        self.flush()
        if not self.index_path.exists() or _read_index(self.index_path)[0] != self.fingerprint:
            _write_index(self.index_path, self.index, self.fingerprint)  # a rerun that only adds buckets


class CacheReader:
    """Reads cached encodings by key; a missing or damaged shard raises `CacheError`.

    Opening a shard parses its header (about a thousand tensor names), which costs more than reading one
    sample's tensors, so the last `open_shards` shards stay open (memory-mapped) between reads.
    """

    def __init__(self, folder: str | Path, open_shards: int = 256):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            what = "is not a folder" if self.folder.exists() else "does not exist"
            raise UserError(f"data.cache_dir {self.folder} {what}; make it with `qwen-image2 cache`")
        if not (self.folder / INDEX).is_file():
            raise UserError(
                f"data.cache_dir {self.folder} holds no {INDEX}; make it with `qwen-image2 cache`"
            )
        self.fingerprint, self.index, old = _read_index(self.folder / INDEX)
        if old:
            raise _old_cache(self.folder)
        self.open_shards = open_shards
        self._shards: OrderedDict[str, tuple[object, set[str]]] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def check(self, components, sizes) -> None:
        """Refuse (UserError) a cache another VAE or text encoder made, or one lacking bucket sizes in `sizes`."""
        if self.fingerprint is None:
            return  # an empty cache (a damaged index, dropped): every sample is a counted cache miss
        expected = fingerprint(components, sizes)
        _merged_fingerprint(self.folder, self.fingerprint, expected)
        missing = sorted(set(expected["buckets"]) - set(self.fingerprint["buckets"]))
        if missing:
            raise UserError(
                f"cache {self.folder} was built for buckets {', '.join(self.fingerprint['buckets'])}, "
                f"not {', '.join(missing)}: cache this recipe with `qwen-image2 cache --recipe`"
            )

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
