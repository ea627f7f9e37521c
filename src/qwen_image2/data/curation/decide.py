"""Decisions from stored scores: `passed`, `reason` (the first filter in the report's order that rejects
the row), `detail`, `duplicate_of` and one `<filter>_keep` per filter.

Pure and deterministic, and the only place decisions are made: a fresh run and `--rethreshold` both
end here, which is why re-thresholding a manifest equals a fresh run at that stage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qwen_image2.data.curation.clip import keep_clip
from qwen_image2.data.curation.config import FILTER_ORDER, StageThresholds
from qwen_image2.data.curation.duplicate import find_duplicates
from qwen_image2.data.curation.entropy import keep_entropy
from qwen_image2.data.curation.nsfw import keep_nsfw
from qwen_image2.data.curation.pair import keep_pair
from qwen_image2.data.curation.resolution import keep_resolution
from qwen_image2.data.curation.tokens import keep_tokens

# Filters after `duplicate` that judge one row alone; a duplicate group keeps a member passing them.
_LATER = ("nsfw", "entropy", "clip", "tokens")


def _row_keeps(df: pd.DataFrame, t: StageThresholds, filters: tuple[str, ...]) -> dict[str, np.ndarray]:
    n = len(df)
    rules = {
        "resolution": lambda: keep_resolution(df, t.resolution),
        "pair": lambda: keep_pair(df, t.pair),
        "nsfw": lambda: keep_nsfw(df, t.nsfw),
        "entropy": lambda: keep_entropy(df, t.entropy),
        "clip": lambda: keep_clip(df, t.clip),
        "tokens": lambda: keep_tokens(df, t.tokens),
    }
    keeps = {name: np.ones(n, dtype=bool) for name in FILTER_ORDER}
    keeps["broken"] = df["broken_detail"].isna().to_numpy()
    for name, rule in rules.items():
        if name in filters:
            keeps[name] = np.asarray(rule(), dtype=bool)
    return keeps


def _objects(series: pd.Series) -> np.ndarray:
    """Values as an object array with None for every kind of missing (pandas may use NaN or NA)."""
    out = np.empty(len(series), dtype=object)
    for i, value in enumerate(series.tolist()):
        out[i] = None if value is None or (np.isscalar(value) and pd.isna(value)) else value
    return out


def _embeddings(df: pd.DataFrame) -> np.ndarray | None:
    values = _objects(df["clip_embedding"]) if "clip_embedding" in df else np.empty(0, dtype=object)
    present = [e for e in values if e is not None]
    if not present:
        return None
    out = np.full((len(df), len(present[0])), np.nan, dtype=np.float32)
    for i, e in enumerate(values):
        if e is not None:
            out[i] = np.asarray(e, dtype=np.float32)
    return out


def _duplicate_keep(df: pd.DataFrame, t: StageThresholds, keeps: dict[str, np.ndarray]):
    eligible = keeps["broken"] & keeps["resolution"] & keeps["pair"]
    later_ok = np.logical_and.reduce([keeps[name] for name in _LATER])
    area = (df["width"].fillna(0) * df["height"].fillna(0)).to_numpy(dtype=np.int64)
    # Best member first: one that passes the later filters, then the largest, then the first listed.
    rank = (~later_ok).astype(np.int64) * (1 << 40) - area
    semantic = t.duplicate.semantic_similarity
    groups = find_duplicates(
        _objects(df["sha256"]),
        _objects(df["phash"]),
        (df["task"] == "t2i").to_numpy(),
        eligible,
        rank,
        t.duplicate.phash_distance,
        embeddings=_embeddings(df) if semantic is not None else None,
        semantic_similarity=semantic,
    )
    return groups.duplicate_of < 0, groups


def _detail(
    name: str, row: pd.Series, t: StageThresholds, duplicate_path: str | None, kind: str | None
) -> str:
    if name == "broken":
        return str(row["broken_detail"])
    if name == "resolution":
        if row["resolution_score"] < t.resolution.min_side:
            return f"shorter side {row['resolution_score']:.0f} < {t.resolution.min_side}"
        return f"aspect {row['aspect']:.2f} > {t.resolution.max_aspect}"
    if name == "pair":
        if row["pair_aspect_change"] > t.pair.max_aspect_change:
            return f"aspect ratios differ by {row['pair_aspect_change']:.2f}x > {t.pair.max_aspect_change}"
        p = t.pair
        return f"similarity {row['pair_score']:.3f} outside [{p.min_similarity}, {p.max_similarity}]"
    if name == "duplicate":
        return f"{kind} duplicate of {duplicate_path}"
    if name == "nsfw":
        return f"score {row['nsfw_score']:.3f} > {t.nsfw.max_score}"
    if name == "entropy":
        return f"{row['entropy_score']:.2f} bits < {t.entropy.min_score}"
    if name == "clip":
        return f"similarity {row['clip_score']:.3f} < {t.clip.min_score}"
    return f"{row['tokens_score']:.0f} tokens outside [{t.tokens.min_tokens}, {t.tokens.max_tokens}]"


def decide(df: pd.DataFrame, thresholds: StageThresholds, filters: tuple[str, ...]) -> pd.DataFrame:
    """The decision columns for `df` (a parts or manifest table) under `thresholds`."""
    n = len(df)
    keeps = _row_keeps(df, thresholds, filters)
    duplicate_of = np.full(n, None, dtype=object)
    kinds = np.full(n, None, dtype=object)
    if "duplicate" in filters and n:
        keeps["duplicate"], groups = _duplicate_keep(df, thresholds, keeps)
        paths = df["path"].to_numpy(dtype=object)
        dup = groups.duplicate_of >= 0
        duplicate_of[dup] = paths[groups.duplicate_of[dup]]
        kinds = groups.kind
    stacked = (
        np.stack([keeps[name] for name in FILTER_ORDER], axis=1)
        if n
        else np.ones((0, len(FILTER_ORDER)), bool)
    )
    passed = stacked.all(axis=1)
    first_failure = np.argmin(stacked, axis=1)
    reason = np.full(n, None, dtype=object)
    detail = np.full(n, None, dtype=object)
    for i in np.flatnonzero(~passed):
        name = FILTER_ORDER[first_failure[i]]
        reason[i] = name
        detail[i] = _detail(name, df.iloc[i], thresholds, duplicate_of[i], kinds[i])
    decisions = {"passed": passed, "reason": reason, "detail": detail, "duplicate_of": duplicate_of}
    decisions.update({f"{name}_keep": keeps[name] for name in FILTER_ORDER})
    return pd.DataFrame(decisions, index=df.index)
