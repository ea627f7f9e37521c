"""The pair filter's "unchanged" test on real synthetic edit pairs (the project's text renderer)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from qwen_image2.data.curation.config import PairThresholds
from qwen_image2.data.curation.pair import PairFilter
from qwen_image2.data.synthetic.writer import TextDataConfig, write_text_dataset


@pytest.fixture(scope="module")
def edit_pairs(tmp_path_factory):
    out = tmp_path_factory.mktemp("edits")
    manifest = write_text_dataset(out, 24, seed=0, config=TextDataConfig(tiers=(256,), edit_ratio=1.0))
    rows = pd.read_parquet(manifest)
    rows = rows[rows["task"] == "edit"]

    def load(name):
        return np.asarray(Image.open(manifest.parent / name).convert("RGB"))

    return [(row.edit, load(row.path), load(row.conditions[0])) for row in rows.itertuples()]


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def pair_batch(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    def column(values):
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out

    return {
        "image": column([t for t, _ in pairs]),
        "condition_images": column([[s] for _, s in pairs]),
        "width": np.array([t.shape[1] for t, _ in pairs]),
        "height": np.array([t.shape[0] for t, _ in pairs]),
        "condition_sizes": column([[(s.shape[1], s.shape[0])] for _, s in pairs]),
    }


def test_synthetic_edits_pass_even_where_phash_cannot_tell_them_apart(edit_pairs):
    assert len(edit_pairs) == 24 and sum(kind == "change_text" for kind, _, _ in edit_pairs) >= 5
    out = PairFilter()(pair_batch([(t, s) for _, t, s in edit_pairs]))
    assert out["pair_keep"].all(), [
        (kind, c)
        for (kind, _, _), c, k in zip(edit_pairs, out["pair_change"], out["pair_keep"], strict=True)
        if not k
    ]
    # Some of these edits leave the pHash (almost) as it was: a pHash "unchanged" test rejects them.
    assert (out["pair_score"] > 0.98).sum() >= 1
    assert (out["pair_change"] >= PairThresholds().min_change).all()


@pytest.mark.parametrize("quality", [None, 95, 75, 50])
def test_identical_and_reencoded_pairs_fail_as_unchanged(edit_pairs, quality):
    sources = [s for _, _, s in edit_pairs]
    copies = sources if quality is None else [jpeg(s, quality) for s in sources]
    out = PairFilter()(pair_batch(list(zip(copies, sources, strict=True))))
    assert not out["pair_keep"].any()
    assert (out["pair_change"] < PairThresholds().min_change).all()
    if quality is None:
        assert (out["pair_change"] == 0).all() and (out["pair_score"] == 1).all()
