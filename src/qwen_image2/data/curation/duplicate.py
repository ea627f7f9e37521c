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


def _thumbnails(images: list[np.ndarray | None]) -> dict[int, Image.Image]:
    """The grey 32x32 Lanczos thumbnails `imagehash.phash` starts from, for the non-flat images.

    Hashing a thumbnail gives the same bits as hashing the image (resizing to its own size is a copy),
    so each image is resized once, for its hash, its flatness and its seven other orientations.
    """
    out = {}
    for i, img in enumerate(images):
        if img is None:
            continue
        thumb = Image.fromarray(img).convert("L").resize((32, 32), Image.Resampling.LANCZOS)
        if np.asarray(thumb, dtype=np.float64).std() >= FLAT_STD:
            out[i] = thumb
    return out


def phash_images(images: list[np.ndarray | None]) -> list[str | None]:
    """64-bit perceptual hashes (`imagehash.phash`) as 16 hex digits; None for missing or flat images."""
    import imagehash

    thumbs = _thumbnails(images)
    return [str(imagehash.phash(thumbs[i])) if i in thumbs else None for i in range(len(images))]


# The seven other orientations: rotations by 90, 180 and 270 degrees, and the mirror image of each of
# the four. `phash_dihedral` stores their hashes, concatenated in this order.
_DIHEDRAL = (
    lambda a: np.rot90(a, 1),
    lambda a: np.rot90(a, 2),
    lambda a: np.rot90(a, 3),
    np.fliplr,
    lambda a: np.fliplr(np.rot90(a, 1)),
    lambda a: np.fliplr(np.rot90(a, 2)),
    lambda a: np.fliplr(np.rot90(a, 3)),
)


def dihedral_phashes(images: list[np.ndarray | None]) -> tuple[list[str | None], list[str | None]]:
    """(`phash`, `phash_dihedral`): each image's pHash, and the pHashes of its 7 other rotations and
    mirror images as 7 x 16 hex digits, so rotated or mirrored copies can be matched as near duplicates."""
    import imagehash

    thumbs = _thumbnails(images)
    phash: list[str | None] = [None] * len(images)
    others: list[str | None] = [None] * len(images)
    for i, thumb in thumbs.items():
        pixels = np.asarray(thumb)
        phash[i] = str(imagehash.phash(thumb))
        others[i] = "".join(
            str(imagehash.phash(Image.fromarray(np.ascontiguousarray(t(pixels))))) for t in _DIHEDRAL
        )
    return phash, others


def hamming(a: str, b: str) -> int:
    """Hamming distance of two hex pHashes. >>> hamming("00ff", "01ff") == 1"""
    return (int(a, 16) ^ int(b, 16)).bit_count()


class DuplicateFilter:
    """Adds `phash` and `phash_dihedral` (target image; None for flat or broken images).
    Grouping: `find_duplicates`."""

    name = "duplicate"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        phash, others = dihedral_phashes(list(batch["image"]))
        return {
            **batch,
            "phash": np.array(phash, dtype=object),
            "phash_dihedral": np.array(others, dtype=object),
        }


@dataclass
class DuplicateGroups:
    """Result of grouping: for each row, the index of the row it duplicates (-1: kept or not grouped)."""

    duplicate_of: np.ndarray  # int64, -1 where the row is kept
    kind: np.ndarray  # object: "exact" | "near" | "semantic" | None


def _multi_hash_index(codes: np.ndarray, radius: int):
    """A FAISS multi-index-hashing index over `codes`, exact for range searches up to `radius`.

    4 tables of 16 bits, probing every bucket within 2 bit flips: by pigeonhole, two codes within 11 bits
    agree to within 2 flips on at least one of the 4 substrings, so the search is exact for radius <= 11.
    """
    import faiss

    if radius > 11:
        raise ValueError("the multi-hash index is exact up to a radius of 11 bits")
    index = faiss.IndexBinaryMultiHash(PHASH_BITS, 4, 16)
    index.nflip = 2
    index.add(codes)
    return index


def _pairs_within(codes: np.ndarray, radius: int, chunk: int = 65536) -> np.ndarray:
    """All (i, j), i < j, with Hamming(codes[i], codes[j]) <= radius, via FAISS multi-index hashing."""
    index = _multi_hash_index(codes, radius)
    return _range_pairs(index, codes, radius + 1, chunk)  # strict "<" in FAISS


def _dihedral_pairs(codes: np.ndarray, others: np.ndarray, radius: int, chunk: int = 65536) -> np.ndarray:
    """All (i, j), i != j, where one of the 7 other orientations of i (`others`, (n, 7, 8)) is within
    `radius` bits of `codes[j]`: rotated and mirrored copies."""
    index = _multi_hash_index(codes, radius)
    queries = np.ascontiguousarray(others.reshape(-1, 8))
    pairs = []
    for start in range(0, len(queries), chunk):
        lims, _, ids = index.range_search(queries[start : start + chunk], radius + 1)
        query = np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims).astype(np.int64)) // 7
        keep = ids != query
        pairs.append(np.stack([query[keep], ids[keep]], axis=1))
    return np.concatenate(pairs) if pairs else np.empty((0, 2), dtype=np.int64)


def _hex_codes(hashes: np.ndarray) -> np.ndarray:
    """Hex pHash strings (16 digits each, or 7 x 16 for `phash_dihedral`) as (n, bytes) uint8."""
    raw = bytes.fromhex("".join(hashes))
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(hashes), -1)


def near_distance(phash_a: str, dihedral_a: str | None, phash_b: str) -> int:
    """Bits between b's pHash and the closest orientation of a (a itself, or a rotated or mirrored)."""
    variants = [phash_a] + (
        [dihedral_a[k : k + 16] for k in range(0, len(dihedral_a), 16)] if dihedral_a else []
    )
    return min(hamming(v, phash_b) for v in variants)


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
    phash_dihedral: np.ndarray | None = None,
) -> DuplicateGroups:
    """Group duplicates among `eligible` rows and keep the best-ranked member of each group.

    Args:
        sha256, phash: per row (object arrays of hex strings or None).
        near_ok: rows whose pHash may be matched approximately (editing pairs only match exactly).
        eligible: rows still alive when `duplicate` runs (decoded, resolution and pair checks passed).
        rank: lower is better; the kept member is the group's lowest rank (ties: lowest row index).
        embeddings: (n, d) image embeddings with NaN rows where missing, for semantic dedup.
        phash_dihedral: per row, the pHashes of the image's 7 other orientations (`dihedral_phashes`);
            with it, rotated (90/180/270 degrees) and mirrored copies are near duplicates too.
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
        codes = _hex_codes(unique)
        edges.append(near_rows[first_index][_pairs_within(codes, phash_distance)])
        if phash_dihedral is not None:
            turned = near_rows[np.array([phash_dihedral[i] is not None for i in near_rows], dtype=bool)]
            if len(turned):
                others = _hex_codes(phash_dihedral[turned].astype(str)).reshape(len(turned), 7, 8)
                found = _dihedral_pairs(codes, others, phash_distance)
                edges.append(np.stack([turned[found[:, 0]], near_rows[first_index][found[:, 1]]], axis=1))
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
    dihedral = phash_dihedral if phash_dihedral is not None else np.full(n, None, dtype=object)
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
            and min(
                near_distance(phash[i], dihedral[i], phash[keeper]),
                near_distance(phash[keeper], dihedral[keeper], phash[i]),
            )
            <= phash_distance
        ):
            kind[i] = "near"
        else:  # linked through other members of the group
            kind[i] = "semantic" if semantic_on else "near"
    return DuplicateGroups(duplicate_of, kind)
