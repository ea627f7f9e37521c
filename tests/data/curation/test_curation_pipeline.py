"""The whole pipeline: hostile inputs on Ray, accounting, resume after kill -9, re-thresholding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from curation_corpus import jpeg_bytes, plain_corpus, png_bytes, textured
from PIL import Image

from qwen_image2.data.curation import RunSettings, curate, rethreshold
from qwen_image2.data.curation.config import parse_filters
from qwen_image2.data.curation.manifest import read_metadata
from qwen_image2.data.records import load_samples
from qwen_image2.errors import UserError

SRC = str(Path(__file__).resolve().parents[3] / "src")


def read_manifest(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def test_hostile_corpus_every_file_gets_its_outcome_on_ray(
    ray_local, hostile, all_filters, random_clip_stages, tmp_path
):
    folder, expected = hostile
    result = curate(
        [str(folder)],
        tmp_path / "out",
        settings=all_filters,
        stages_file=str(random_clip_stages),
        workers=2,
        shard_size=5,
        progress=False,
    )
    m = read_manifest(result.manifest)
    m["name"] = m["path"].map(lambda p: Path(p).name)
    assert sorted(m["name"]) == sorted(expected)  # rows in == rows out, each once
    assert m["id"].is_unique
    outcomes = {
        name: None if pd.isna(reason) else reason for name, reason in zip(m["name"], m["reason"], strict=True)
    }
    assert outcomes == expected
    rejected = m[~m["passed"]]
    assert rejected["reason"].notna().all() and rejected["detail"].notna().all()
    assert m.loc[m["passed"], "reason"].isna().all()

    row = m.set_index("name")
    assert (row.loc["exif_rotated.jpg", ["width", "height", "rotated"]] == [300, 400, True]).all()
    assert not row.loc["good_b.jpg", "rotated"]
    assert row.loc["animated.gif", "frames"] == 3
    assert row.loc["gray16.png", "mode"] == "I;16" and row.loc["cmyk.jpg", "mode"] == "CMYK"
    assert "decompression bomb" in row.loc["bomb.png", "detail"]
    assert row.loc["dup_a1_copy.jpg", "detail"].startswith("exact duplicate of")
    assert row.loc["dup_a2_reencoded.jpg", "detail"].startswith("near duplicate of")
    assert row.loc["dup_a3_resized.png", "duplicate_of"].endswith("dup_a0_original.jpg")
    assert row.loc["caption_long.jpg", "tokens_score"] > 1024
    assert row.loc["good_b.jpg", ["entropy_score", "nsfw_score", "clip_score", "tokens_score"]].notna().all()

    meta = read_metadata(result.manifest)
    assert meta["stage"] == "s1-256p" and meta["filters"] == list(all_filters.filters)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["rows_in"] == len(expected) == report["rows_passed"] + sum(report["rejected_by"].values())
    assert report["rejected_by"]["broken"] == sum(1 for r in expected.values() if r == "broken")
    assert report["throughput"]["images_per_s"] > 0 and report["throughput"]["workers"] == 2
    assert set(report["scores"]) >= {
        "entropy_score",
        "nsfw_score",
        "clip_score",
        "tokens_score",
        "resolution_score",
    }
    with Image.open(tmp_path / "out" / "report.png") as png:
        assert png.format == "PNG" and png.width > 400
    assert {s.path for s in load_samples(result.manifest)} == {
        str(folder / n) for n, r in expected.items() if r is None
    }


CPU_FILTERS = "broken,resolution,duplicate,nsfw,entropy,tokens"


def test_kill_9_mid_run_then_rerun_equals_an_uninterrupted_run(ray_local, tokenizer_dir, tmp_path):
    corpus = tmp_path / "corpus"
    names = plain_corpus(corpus, 26)
    (corpus / "img_0003.jpg").write_bytes((corpus / "img_0002.jpg").read_bytes())  # a duplicate across shards
    (corpus / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 100)
    shards = (len(names) + 1 + 1) // 2
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    command = [
        sys.executable,
        "-m",
        "qwen_image2",
        "curate",
        str(corpus),
        "--out",
        str(killed),
        "--workers",
        "1",
        "--shard-size",
        "2",
        "--filters",
        CPU_FILTERS,
        "--tokenizer",
        str(tokenizer_dir),
    ]
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while len(list((killed / "parts").glob("*.parquet"))) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no shard finished in time"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list((killed / "parts").glob("*.parquet")))
    assert not (killed / "manifest.parquet").exists() and done < shards  # really killed mid-run

    settings = RunSettings(
        filters=parse_filters(CPU_FILTERS), tokenizer=str(tokenizer_dir)
    )  # as the CLI does
    resumed = curate([str(corpus)], killed, settings=settings, workers=2, shard_size=2, progress=False)
    assert resumed.report["throughput"]["shards_skipped"] >= done >= 2
    fresh = curate([str(corpus)], reference, settings=settings, workers=0, shard_size=2, progress=False)
    a, b = read_manifest(resumed.manifest), read_manifest(fresh.manifest)
    assert len(a) == len(names) + 1 and a["id"].is_unique
    pd.testing.assert_frame_equal(a, b)
    assert (a["reason"] == "duplicate").sum() == 1 and (a["reason"] == "broken").sum() == 1


@pytest.fixture(scope="module")
def tiered(tmp_path_factory, tokenizer_dir):
    """Images at every resolution tier, a cross-tier near-duplicate, and a fresh s1 run over them."""
    corpus = tmp_path_factory.mktemp("tiered") / "corpus"
    plain_corpus(corpus, 9, sizes=((300, 280), (640, 560), (1100, 1050)))
    big = textured(999, 1100, 1050)
    (corpus / "pair_big.jpg").write_bytes(jpeg_bytes(big))
    (corpus / "pair_small.png").write_bytes(png_bytes(big.resize((600, 573))))
    for name in ("pair_big.jpg", "pair_small.png"):
        (corpus / name).with_suffix(".txt").write_text("boats")
    settings = RunSettings(
        filters=("broken", "resolution", "duplicate", "orientation", "entropy", "tokens"),
        tokenizer=str(tokenizer_dir),
    )
    return corpus, settings


@pytest.mark.parametrize("stage", ["s3-512p", "s4-1024p", "s6-sft"])
def test_rethreshold_equals_a_fresh_run_at_that_stage(tiered, tmp_path, stage):
    corpus, settings = tiered
    base = curate([str(corpus)], tmp_path / "s1", "s1-256p", settings, workers=0, progress=False)
    redone = rethreshold(base.manifest, stage)
    assert redone.manifest == tmp_path / "s1" / f"stage-{stage}" / "manifest.parquet"
    fresh = curate([str(corpus)], tmp_path / stage, stage, settings, workers=0, progress=False)
    a, b = read_manifest(redone.manifest), read_manifest(fresh.manifest)
    pd.testing.assert_frame_equal(a, b)
    assert read_metadata(redone.manifest)["stage"] == stage
    assert a["passed"].sum() < read_manifest(base.manifest)["passed"].sum()  # stricter
    small = a.set_index(a["path"].map(lambda p: Path(p).name)).loc["pair_small.png"]
    # At 256p the small copy loses to the big one as a duplicate; at >= 1024p it fails resolution first.
    assert small["reason"] == ("resolution" if stage != "s3-512p" else "duplicate")


def test_rethreshold_does_not_decode_or_score(tiered, tmp_path, monkeypatch):
    corpus, settings = tiered
    base = curate([str(corpus)], tmp_path / "s1", "s1-256p", settings, workers=0, progress=False)
    import qwen_image2.data.curation.worker as worker

    monkeypatch.setattr(worker, "build_filters", lambda *a: pytest.fail("a filter was built"))
    monkeypatch.setattr("PIL.Image.open", lambda *a, **k: pytest.fail("an image was opened"))
    assert rethreshold(base.manifest, "s5-2048p").report["rows_passed"] == 0


def test_rerun_skips_finished_shards_and_rewrites_the_same_manifest(tiered, tmp_path):
    corpus, settings = tiered
    first = curate(
        [str(corpus)], tmp_path / "out", settings=settings, workers=0, shard_size=4, progress=False
    )
    before = read_manifest(first.manifest)
    second = curate(
        [str(corpus)], tmp_path / "out", settings=settings, workers=0, shard_size=4, progress=False
    )
    assert second.report["throughput"]["shards_processed"] == 0
    assert second.report["throughput"]["shards_skipped"] == 3
    pd.testing.assert_frame_equal(before, read_manifest(second.manifest))


def test_resume_with_other_settings_or_stage_is_refused(tiered, tmp_path):
    corpus, settings = tiered
    curate([str(corpus)], tmp_path / "out", settings=settings, workers=0, progress=False)
    other = RunSettings(**{**settings.model_dump(), "work_side": 256})
    with pytest.raises(UserError, match="work_side"):
        curate([str(corpus)], tmp_path / "out", settings=other, workers=0, progress=False)
    with pytest.raises(UserError, match="--rethreshold"):
        curate([str(corpus)], tmp_path / "out", "s3-512p", settings=settings, workers=0, progress=False)


def test_a_manifest_from_an_older_release_rethresholds(tiered, tmp_path):
    """Columns added since (the rotated-copy hashes, the pair change, `retryable`) read as nulls."""
    import pyarrow.parquet as pq

    corpus, settings = tiered
    base = curate([str(corpus)], tmp_path / "s1", "s1-256p", settings, workers=0, progress=False)
    table = pq.read_table(base.manifest)
    old = table.drop_columns(["phash_dihedral", "pair_change", "retryable"])
    old_manifest = tmp_path / "old" / "manifest.parquet"
    old_manifest.parent.mkdir()
    pq.write_table(old.replace_schema_metadata(table.schema.metadata), old_manifest)
    redone = rethreshold(old_manifest, "s1-256p")
    assert len(read_manifest(redone.manifest)) == table.num_rows
