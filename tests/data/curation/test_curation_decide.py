"""`decide` from stored scores: NSFW and CLIP keep/reject at and around their thresholds, and semantic
dedup with the embeddings kept in Arrow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from qwen_image2.data.curation import pipeline
from qwen_image2.data.curation.config import (
    ClipThresholds,
    DuplicateThresholds,
    NsfwThresholds,
    StageThresholds,
)
from qwen_image2.data.curation.decide import clip_embeddings, decide
from qwen_image2.data.curation.manifest import batch_to_part_table


def part(n: int, **columns) -> pa.Table:
    """A part table of `n` decodable 512 px t2i rows with distinct hashes, plus `columns`."""
    batch = {
        "id": np.array([f"id{i}" for i in range(n)], dtype=object),
        "path": np.array([f"p{i}" for i in range(n)], dtype=object),
        "task": np.array(["t2i"] * n, dtype=object),
        "conditions": np.array([[] for _ in range(n)] + [None], dtype=object)[:n],
        "width": np.full(n, 512),
        "height": np.full(n, 512),
        "sha256": np.array([f"{i:064x}" for i in range(n)], dtype=object),
        "retryable": np.zeros(n, dtype=bool),
        **columns,
    }
    return batch_to_part_table(batch)


def decided(table: pa.Table, thresholds: StageThresholds, filters: tuple[str, ...]) -> pd.DataFrame:
    df = table.drop_columns(["clip_embedding"]).to_pandas()
    return decide(df, thresholds, filters).astype(object).where(lambda d: d.notna(), None)


NSFW = StageThresholds(nsfw=NsfwThresholds(max_score=0.5))
CLIP = StageThresholds(clip=ClipThresholds(min_score=0.2))


def test_nsfw_keeps_scores_up_to_the_threshold_and_rows_without_a_score():
    scores = np.array([0.0, 0.4999, 0.5, 0.5001, 1.0, np.nan])
    d = decided(part(6, nsfw_score=scores), NSFW, ("broken", "nsfw"))
    assert d["passed"].tolist() == [True, True, True, False, False, True]
    assert d["reason"].tolist() == [None, None, None, "nsfw", "nsfw", None]
    assert d["detail"][3] == "score 0.500 > 0.5" and d["detail"][4] == "score 1.000 > 0.5"


def test_clip_keeps_scores_from_the_threshold_up_and_rows_without_a_score():
    scores = np.array([-0.3, 0.1999, 0.2, 0.2001, 0.9, np.nan])
    d = decided(part(6, clip_score=scores), CLIP, ("broken", "clip"))
    assert d["passed"].tolist() == [False, False, True, True, True, True]
    assert d["clip_keep"].tolist() == [False, False, True, True, True, True]
    assert d["detail"][1] == "similarity 0.200 < 0.2"


def test_a_filter_left_out_rejects_nothing_and_the_first_failing_filter_is_the_reason():
    table = part(2, nsfw_score=np.array([0.9, 0.1]), clip_score=np.array([0.0, 0.0]))
    both = decided(table, StageThresholds(nsfw=NSFW.nsfw, clip=CLIP.clip), ("broken", "nsfw", "clip"))
    assert both["reason"].tolist() == ["nsfw", "clip"]  # the report's order: nsfw before clip
    assert both["clip_keep"].tolist() == [False, False]
    assert decided(table, NSFW, ("broken",))["passed"].all()


@pytest.mark.parametrize(("max_score", "kept"), [(0.3, [True, False, True]), (0.95, [True, True, True])])
def test_nsfw_filter_scores_from_a_detector_decide_the_row(max_score, kept):
    from curation_corpus import jpeg_bytes, textured

    from qwen_image2.data.curation.broken import BrokenFilter
    from qwen_image2.data.curation.nsfw import NsfwFilter
    from qwen_image2.data.curation.sources import RawItem
    from qwen_image2.data.curation.worker import items_to_batch

    class FixedScores:
        def score(self, images):
            return np.array([0.1, 0.9][: len(images)])

    items = [RawItem(f"p{i}", "c", data=jpeg_bytes(textured(i))) for i in range(2)] + [RawItem("p2", "c")]
    batch = BrokenFilter()(items_to_batch(items))
    batch = NsfwFilter(FixedScores(), NsfwThresholds(max_score=max_score))(batch)
    batch.update(width=np.full(3, 400), height=np.full(3, 360))
    d = decided(
        batch_to_part_table(batch),
        StageThresholds(nsfw=NsfwThresholds(max_score=max_score)),
        ("broken", "nsfw"),
    )
    assert d["nsfw_keep"].tolist() == kept
    assert d["reason"][2] == "broken"  # no image to score: rejected by `broken`, not by nsfw


def test_clip_embeddings_come_from_arrow_as_a_matrix_with_nan_rows_where_missing():
    vectors = [np.array([1, 0, 0], np.float16), None, np.array([0, 0.5, 0.25], np.float16)]
    matrix = clip_embeddings(part(3, clip_embedding=np.array(vectors, dtype=object)))
    np.testing.assert_array_equal(matrix[[0, 2]], np.stack([vectors[0], vectors[2]]).astype(np.float32))
    assert np.isnan(matrix[1]).all()
    assert clip_embeddings(part(2)) is None


def test_semantic_dedup_in_a_manifest_never_turns_embeddings_into_python_objects(tmp_path, monkeypatch):
    vectors = [
        np.array([1, 0, 0], np.float16),
        np.array([0.99, 0.05, 0], np.float16),
        np.array([0, 1, 0], np.float16),
    ]
    table = part(3, clip_embedding=np.array(vectors, dtype=object), width=np.array([512, 640, 512]))
    seen_columns = []
    real_decide = pipeline.decide

    def spy_decide(df, *args):
        seen_columns.extend(df.columns)
        return real_decide(df, *args)

    monkeypatch.setattr(pipeline, "decide", spy_decide)
    thresholds = StageThresholds(duplicate=DuplicateThresholds(semantic_similarity=0.95))
    pipeline._finish(table, tmp_path, "s", thresholds, ("broken", "duplicate"), {})
    assert "clip_score" in seen_columns and "clip_embedding" not in seen_columns
    m = pd.read_parquet(tmp_path / "manifest.parquet").astype(object).where(lambda d: d.notna(), None)
    # The larger image of the two close ones is kept.
    assert m["reason"].tolist() == ["duplicate", None, None]
    assert m["detail"][0] == "semantic duplicate of p1"
    assert list(m["clip_embedding"][1]) == pytest.approx([0.99, 0.05, 0], abs=1e-3)
