"""Decisions from stored scores: `passed`, `reason` (the first filter in the report's order that rejects
the row), `detail`, `duplicate_of` and one `<filter>_keep` per filter.

Pure and deterministic, and the only place decisions are made: a fresh run and `--rethreshold` both
end here, which is why re-thresholding a manifest equals a fresh run at that stage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

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


def _with_none(series: pd.Series) -> np.ndarray:
    """Values as an object array with None for every kind of missing (pandas may use NaN or NA)."""
    return series.astype(object).where(series.notna(), None).to_numpy()


def clip_embeddings(table: pa.Table) -> np.ndarray | None:
    """The `clip_embedding` list column as an (n, d) float32 matrix, NaN rows where missing; read from
    Arrow's flat value buffer, so no row ever becomes a Python object."""
    if "clip_embedding" not in table.column_names:
        return None
    column = table.column("clip_embedding").combine_chunks()
    present = column.is_valid().to_numpy(zero_copy_only=False)
    if not present.any():
        return None
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    out = np.full((len(column), len(values) // int(present.sum())), np.nan, dtype=np.float32)
    out[present] = values.reshape(int(present.sum()), -1)
    return out


def _duplicate_keep(
    df: pd.DataFrame, t: StageThresholds, keeps: dict[str, np.ndarray], embeddings: np.ndarray | None
):
    eligible = keeps["broken"] & keeps["resolution"] & keeps["pair"]
    later_ok = np.logical_and.reduce([keeps[name] for name in _LATER])
    area = (df["width"].fillna(0) * df["height"].fillna(0)).to_numpy(dtype=np.int64)
    # Best member first: one that passes the later filters, then the largest, then the first listed.
    rank = (~later_ok).astype(np.int64) * (1 << 40) - area
    semantic = t.duplicate.semantic_similarity
    groups = find_duplicates(
        _with_none(df["sha256"]),
        _with_none(df["phash"]),
        (df["task"] == "t2i").to_numpy(),
        eligible,
        rank,
        t.duplicate.phash_distance,
        embeddings=embeddings if semantic is not None else None,
        semantic_similarity=semantic,
        phash_dihedral=_with_none(df["phash_dihedral"]) if "phash_dihedral" in df else None,
    )
    return groups.duplicate_of < 0, groups


def _fixed(values: pd.Series, digits: int) -> pd.Series:
    """Numbers as text with `digits` decimals (as f"{x:.2f}" writes them), a whole column at once."""
    return pd.Series(
        np.char.mod(f"%.{digits}f", values.to_numpy(np.float64)), index=values.index, dtype=object
    )


def _details(name: str, rows: pd.DataFrame, t: StageThresholds, duplicate_of: pd.Series, kind: pd.Series):
    """Why each of `rows` (all rejected by filter `name`) was rejected."""
    if name == "broken":
        return rows["broken_detail"].astype(str)
    if name == "resolution":
        short = "shorter side " + _fixed(rows["resolution_score"], 0) + f" < {t.resolution.min_side}"
        wide = "aspect " + _fixed(rows["aspect"], 2) + f" > {t.resolution.max_aspect}"
        return short.where(rows["resolution_score"] < t.resolution.min_side, wide)
    if name == "pair":
        p = t.pair
        reshaped = (
            "aspect ratios differ by " + _fixed(rows["pair_aspect_change"], 2) + f"x > {p.max_aspect_change}"
        )
        unrelated = "similarity " + _fixed(rows["pair_score"], 3) + f" < {p.min_similarity}"
        unchanged = "unchanged: pixel change " + _fixed(rows["pair_change"], 1) + f" < {p.min_change}"
        similar = unrelated.where(rows["pair_score"] < p.min_similarity, unchanged)
        return reshaped.where(rows["pair_aspect_change"] > p.max_aspect_change, similar)
    if name == "duplicate":
        return kind.astype(str) + " duplicate of " + duplicate_of.astype(str)
    if name == "nsfw":
        return "score " + _fixed(rows["nsfw_score"], 3) + f" > {t.nsfw.max_score}"
    if name == "entropy":
        return _fixed(rows["entropy_score"], 2) + f" bits < {t.entropy.min_score}"
    if name == "clip":
        return "similarity " + _fixed(rows["clip_score"], 3) + f" < {t.clip.min_score}"
    return _fixed(rows["tokens_score"], 0) + f" tokens outside [{t.tokens.min_tokens}, {t.tokens.max_tokens}]"


def decide(
    df: pd.DataFrame,
    thresholds: StageThresholds,
    filters: tuple[str, ...],
    embeddings: np.ndarray | None = None,
) -> pd.DataFrame:
    """The decision columns for `df` (a parts or manifest table, without `clip_embedding`) under
    `thresholds`; `embeddings` (`clip_embeddings`) for the semantic dedup, when a stage asks for it."""
    n = len(df)
    keeps = _row_keeps(df, thresholds, filters)
    duplicate_of = np.full(n, None, dtype=object)
    kinds = np.full(n, None, dtype=object)
    if "duplicate" in filters and n:
        keeps["duplicate"], groups = _duplicate_keep(df, thresholds, keeps, embeddings)
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
    reason = np.where(passed, None, np.array(FILTER_ORDER, dtype=object)[np.argmin(stacked, axis=1)])
    detail = pd.Series(None, index=df.index, dtype=object)
    for name in FILTER_ORDER:
        rejected = reason == name
        if rejected.any():
            detail[rejected] = _details(
                name,
                df[rejected],
                thresholds,
                pd.Series(duplicate_of[rejected], index=df.index[rejected]),
                pd.Series(kinds[rejected], index=df.index[rejected]),
            )
    decisions = {
        "passed": passed,
        "reason": reason,
        "detail": detail.to_numpy(),
        "duplicate_of": duplicate_of,
    }
    decisions.update({f"{name}_keep": keeps[name] for name in FILTER_ORDER})
    return pd.DataFrame(decisions, index=df.index)
