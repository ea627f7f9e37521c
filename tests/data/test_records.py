import pandas as pd
import pytest

from qwen_image2.data.records import RECORD_COLUMNS, Sample, load_samples


def test_a_manifest_written_with_the_old_task_name_reads_as_edit(tmp_path):
    rows = [
        {"id": "a", "path": "a.png", "caption": "x", "task": "ti2i", "conditions": ["s.png"]},
        {"id": "b", "path": "b.png", "caption": "y", "task": "t2i", "conditions": []},
    ]
    frame = pd.DataFrame([{**dict.fromkeys(RECORD_COLUMNS, 0), **row, "passed": True} for row in rows])
    frame.to_parquet(tmp_path / "manifest.parquet")
    assert [s.task for s in load_samples(tmp_path / "manifest.parquet")] == ["edit", "t2i"]


def test_an_edit_needs_a_condition_image_and_tasks_are_checked():
    with pytest.raises(ValueError, match="condition image"):
        Sample(id="a", path="a.png", task="edit")
    with pytest.raises(ValueError, match="task must be one of"):
        Sample(id="a", path="a.png", task="inpaint")
