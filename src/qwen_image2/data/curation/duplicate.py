"""`duplicate`: exact copies (SHA-256 of decoded pixels), near copies (pHash within a Hamming radius,
found through a FAISS multi-index-hashing index), and optionally semantic copies (CLIP image embeddings,
FAISS inner-product range search). One member of each group is kept; the rest are rejected.

Per batch, `DuplicateFilter` only computes hashes (`phash`; `sha256` comes from the decoder). Grouping
is global, so it runs once over the stored hashes in `find_duplicates`, which is also what lets a
stricter stage re-group without decoding anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

PHASH_BITS = 64
# A 32x32 thumbnail this flat has no structure for pHash to describe: its bits would be rounding noise and
# would match every other flat image. Such rows get no pHash (exact dedup still applies).
FLAT_STD = 2.0


def phash_images(images: list[np.ndarray | None]) -> list[str | None]:
    """64-bit perceptual hashes as 16 hex digits, batched; the same bits as `imagehash.phash`.

    Grey 32x32 Lanczos thumbnail -> 2-D DCT-II -> top-left 8x8 -> bit = coefficient > median.
    """
    from scipy.fft import dct

    present = [i for i, img in enumerate(images) if img is not None]
    out: list[str | None] = [None] * len(images)
    if not present:
        return out
    thumbs = np.stack(
        [
            np.asarray(
                Image.fromarray(images[i]).convert("L").resize((32, 32), Image.Resampling.LANCZOS),
                dtype=np.float64,
            )
            for i in present
        ]
    )
    coeffs = dct(dct(thumbs, axis=1), axis=2)[:, :8, :8].reshape(len(present), 64)
    bits = coeffs > np.median(coeffs, axis=1, keepdims=True)
    packed = np.packbits(bits, axis=1)
    flat = thumbs.reshape(len(present), -1).std(axis=1) < FLAT_STD
    for k, i in enumerate(present):
        out[i] = None if flat[k] else packed[k].tobytes().hex()
    return out


def hamming(a: str, b: str) -> int:
    """Hamming distance of two hex pHashes. >>> hamming("00ff", "01ff") == 1"""
    return (int(a, 16) ^ int(b, 16)).bit_count()


class DuplicateFilter:
    """Adds `phash` (target image; None for flat or broken images). Grouping: `find_duplicates`."""

    name = "duplicate"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        hashes = phash_images(list(batch["image"]))
        return {**batch, "phash": np.array(hashes, dtype=object)}


@dataclass
class DuplicateGroups:
    """Result of grouping: for each row, the index of the row it duplicates (-1: kept or not grouped)."""

    duplicate_of: np.ndarray  # int64, -1 where the row is kept
    kind: np.ndarray  # object: "exact" | "near" | "semantic" | None


def _pairs_within(codes: np.ndarray, radius: int, chunk: int = 65536) -> np.ndarray:
    """All (i, j), i < j, with Hamming(codes[i], codes[j]) <= radius, via FAISS multi-index hashing.

    4 tables of 16 bits, probing every bucket within 2 bit flips: by pigeonhole, two codes within 11 bits
    agree to within 2 flips on at least one of the 4 substrings, so the search is exact for radius <= 11.
    """
    import faiss

    if radius > 11:
        raise ValueError("the multi-hash index is exact up to a radius of 11 bits")
    index = faiss.IndexBinaryMultiHash(PHASH_BITS, 4, 16)
    index.nflip = 2
    index.add(codes)
    return _range_pairs(index, codes, radius + 1, chunk)  # strict "<" in FAISS


def _semantic_pairs(embeddings: np.ndarray, threshold: float, chunk: int = 16384) -> np.ndarray:
    import faiss

    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True).clip(min=1e-12)
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(emb)
    return _range_pairs(index, emb, threshold, chunk)


def _range_pairs(index, data: np.ndarray, radius: float, chunk: int) -> np.ndarray:
    """All (i, j), i < j, that `index` (holding `data`) returns for a range search of `data` itself."""
    pairs = []
    for start in range(0, len(data), chunk):
        lims, _, ids = index.range_search(data[start : start + chunk], radius)
        query = np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims).astype(np.int64))
        keep = ids > query
        pairs.append(np.stack([query[keep], ids[keep]], axis=1))
    return np.concatenate(pairs) if pairs else np.empty((0, 2), dtype=np.int64)


def _same_value_pairs(values: np.ndarray) -> np.ndarray:
    """Pairs linking each row to the first row with the same value (a star per group)."""
    import pandas as pd

    codes, _ = pd.factorize(pd.Series(values))
    first = pd.Series(np.arange(len(values))).groupby(codes).transform("min").to_numpy()
    linked = first != np.arange(len(values))
    return np.stack([first[linked], np.arange(len(values))[linked]], axis=1)


def find_duplicates(
    sha256: np.ndarray,
    phash: np.ndarray,
    near_ok: np.ndarray,
    eligible: np.ndarray,
    rank: np.ndarray,
    phash_distance: int,
    embeddings: np.ndarray | None = None,
    semantic_similarity: float | None = None,
) -> DuplicateGroups:
    """Group duplicates among `eligible` rows and keep the best-ranked member of each group.

    Args:
        sha256, phash: per row (object arrays of hex strings or None).
        near_ok: rows whose pHash may be matched approximately (editing pairs only match exactly).
        eligible: rows still alive when `duplicate` runs (decoded, resolution and pair checks passed).
        rank: lower is better; the kept member is the group's lowest rank (ties: lowest row index).
        embeddings: (n, d) image embeddings with NaN rows where missing, for semantic dedup.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(sha256)
    rows = np.flatnonzero(eligible & np.array([s is not None for s in sha256], dtype=bool))
    edges = [rows[_same_value_pairs(sha256[rows].astype(str))]]
    near_rows = rows[np.array([phash[i] is not None and near_ok[i] for i in rows], dtype=bool)]
    if len(near_rows):
        # Identical hashes are linked directly, so the index sees each distinct code once.
        unique, first_index = np.unique(phash[near_rows].astype(str), return_index=True)
        edges.append(near_rows[_same_value_pairs(phash[near_rows].astype(str))])
        codes = np.frombuffer(bytes.fromhex("".join(unique)), dtype=np.uint8).reshape(-1, 8)
        edges.append(near_rows[first_index][_pairs_within(codes, phash_distance)])
    if embeddings is not None and semantic_similarity is not None:
        sem_rows = rows[~np.isnan(embeddings[rows]).any(axis=1)]
        if len(sem_rows):
            edges.append(sem_rows[_semantic_pairs(embeddings[sem_rows], semantic_similarity)])
    all_edges = np.concatenate([e.reshape(-1, 2) for e in edges]).astype(np.int64)
    graph = coo_matrix((np.ones(len(all_edges)), (all_edges[:, 0], all_edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    kind = np.full(n, None, dtype=object)
    grouped = np.zeros(n, dtype=bool)
    grouped[all_edges.ravel()] = True
    members = np.flatnonzero(grouped)
    order = members[np.lexsort((members, rank[members], labels[members]))]
    keeper_of_label = {}
    for i in order:
        keeper_of_label.setdefault(labels[i], i)
    semantic_on = embeddings is not None and semantic_similarity is not None
    for i in members:
        keeper = keeper_of_label[labels[i]]
        if keeper == i:
            continue
        duplicate_of[i] = keeper
        if sha256[i] == sha256[keeper]:
            kind[i] = "exact"
        elif (
            phash[i] is not None
            and phash[keeper] is not None
            and hamming(phash[i], phash[keeper]) <= phash_distance
        ):
            kind[i] = "near"
        else:  # linked through other members of the group
            kind[i] = "semantic" if semantic_on else "near"
    return DuplicateGroups(duplicate_of, kind)
