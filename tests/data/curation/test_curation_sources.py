"""Sources other than folders (WebDataset tars, parquet with paths and URLs) and editing pairs."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from curation_corpus import CAPTION, jpeg_bytes, png_bytes, textured
from PIL import Image, ImageDraw

from qwen_image2.data.curation import RunSettings, curate
from qwen_image2.data.curation.sources import list_shards, read_shard

FILTERS = ("broken", "resolution", "pair", "duplicate", "orientation", "entropy", "tokens")


def outcomes(manifest) -> dict[str, str | None]:
    m = pd.read_parquet(manifest)
    return {p: None if pd.isna(r) else r for p, r in zip(m["path"], m["reason"], strict=True)}


def write_tar(path, samples: dict[str, dict[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for key, members in samples.items():
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_webdataset_shard_rows_are_keyed_by_shard_and_key(tmp_path, tokenizer_dir):
    shard = tmp_path / "shard-000000.tar"
    write_tar(
        shard,
        {
            "sub/a": {"jpg": jpeg_bytes(textured(1)), "txt": CAPTION.encode()},
            "sub/b": {"png": png_bytes(textured(2)), "txt": CAPTION.encode()},
            "sub/c": {"jpg": b"not a jpeg", "txt": CAPTION.encode()},
            "sub/d": {"jpg": jpeg_bytes(textured(3))},  # no caption
        },
    )
    settings = RunSettings(filters=FILTERS, tokenizer=str(tokenizer_dir))
    result = curate([str(shard)], tmp_path / "out", settings=settings, workers=0, progress=False)
    assert outcomes(result.manifest) == {
        f"{shard}#sub/a": None,
        f"{shard}#sub/b": None,
        f"{shard}#sub/c": "broken",
        f"{shard}#sub/d": "tokens",
    }


def test_truncated_tar_keeps_what_it_could_read(tmp_path):
    shard = tmp_path / "cut.tar"
    write_tar(shard, {f"k{i}": {"jpg": jpeg_bytes(textured(i)), "txt": b"x"} for i in range(4)})
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    (only,) = list_shards([str(shard)])
    items = list(read_shard(only, 10**8))
    assert 1 <= len(items) < 4
    assert all(item.path.startswith(f"{shard}#k") for item in items)


def edited(img: Image.Image) -> Image.Image:
    out = img.copy()
    ImageDraw.Draw(out).rectangle((20, 20, 150, 120), fill=(250, 250, 30))
    return out


def test_edit_pairs_from_parquet_pass_or_fail_as_one(tmp_path, tokenizer_dir):
    src = textured(50)
    files = {
        "source.jpg": jpeg_bytes(src),
        "target_edit.jpg": jpeg_bytes(edited(src)),
        "target_inverted.jpg": jpeg_bytes(Image.fromarray(255 - np.asarray(src))),
        "target_portrait.jpg": jpeg_bytes(edited(textured(50, 360, 400))),
        "truncated_source.jpg": jpeg_bytes(src)[:4000],
        "t2i.jpg": jpeg_bytes(textured(51)),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    rows = [
        {"path": "target_edit.jpg", "caption": "add a yellow box", "conditions": ["source.jpg"]},
        {"path": "source.jpg", "caption": "change nothing", "conditions": ["source.jpg"]},
        {"path": "target_inverted.jpg", "caption": "invert", "conditions": ["source.jpg"]},
        {"path": "target_portrait.jpg", "caption": "make it portrait", "conditions": ["source.jpg"]},
        {
            "path": "target_edit.jpg",
            "caption": "from a broken source",
            "conditions": ["truncated_source.jpg"],
        },
        {"path": (tmp_path / "t2i.jpg").as_uri(), "caption": CAPTION, "conditions": []},
        {"path": "missing.jpg", "caption": CAPTION, "conditions": []},
    ]
    table = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [("path", pa.string()), ("caption", pa.string()), ("conditions", pa.list_(pa.string()))]
        ),
    )
    pq.write_table(table, tmp_path / "pairs.parquet")
    settings = RunSettings(filters=FILTERS, tokenizer=str(tokenizer_dir))
    result = curate(
        [str(tmp_path / "pairs.parquet")], tmp_path / "out", "s2-256p", settings, workers=0, progress=False
    )
    m = pd.read_parquet(result.manifest)
    assert len(m) == len(rows)
    assert m["task"].tolist() == ["edit"] * 5 + ["t2i"] * 2
    reasons = [None if pd.isna(r) else r for r in m["reason"]]
    assert reasons == [None, "pair", "pair", "pair", "broken", None, "broken"]
    assert 0.55 < m["pair_score"][0] < 0.98 and m["pair_score"][1] == 1.0 and m["pair_score"][2] < 0.5
    assert "aspect ratios differ" in m["detail"][3]
    assert m["detail"][4].startswith("condition 0:")
    assert "unreadable" in m["detail"][6]
    assert list(m["conditions"][0]) == ["source.jpg"]


def test_parquet_source_is_read_one_row_group_at_a_time(tmp_path, monkeypatch):
    for i in range(10):
        (tmp_path / f"{i}.png").write_bytes(png_bytes(textured(i, 64, 64)))
    table = pa.table({"path": [f"{i}.png" for i in range(10)], "caption": [f"c{i}" for i in range(10)]})
    pq.write_table(table, tmp_path / "rows.parquet", row_group_size=3)  # groups of 3, 3, 3, 1
    groups_read = []
    real_read_row_group = pq.ParquetFile.read_row_group

    def spy_read_row_group(self, i, *args, **kwargs):
        groups_read.append(i)
        return real_read_row_group(self, i, *args, **kwargs)

    def no_whole_file(*args, **kwargs):
        raise AssertionError("a parquet source must not be read whole")

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy_read_row_group)
    monkeypatch.setattr(pq.ParquetFile, "read", no_whole_file)
    monkeypatch.setattr(pq, "read_table", no_whole_file)
    shards = list_shards([str(tmp_path / "rows.parquet")], shard_size=4)  # rows 0-3, 4-7, 8-9
    items = [item for shard in shards for item in read_shard(shard, 10**8)]
    assert [item.caption for item in items] == [f"c{i}" for i in range(10)]
    assert all(item.data == (tmp_path / item.path).read_bytes() for item in items)
    # Each shard reads only the row groups its range overlaps.
    assert groups_read == [0, 1, 1, 2, 2, 3]
