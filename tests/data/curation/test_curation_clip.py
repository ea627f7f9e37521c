"""The CLIP filter: a tiny untrained open_clip model, and real weights loaded from a path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from curation_corpus import CAPTION, jpeg_bytes, textured

from qwen_image2.data.curation.broken import BrokenFilter
from qwen_image2.data.curation.clip import ClipFilter
from qwen_image2.data.curation.config import ClipThresholds
from qwen_image2.data.curation.sources import RawItem
from qwen_image2.data.curation.worker import items_to_batch
from qwen_image2.errors import UserError


def batch():
    items = [
        RawItem(f"i{k}", CAPTION if k else "a red poster", data=jpeg_bytes(textured(k))) for k in range(3)
    ]
    items.append(
        RawItem(
            "edit",
            "make it blue",
            "edit",
            data=jpeg_bytes(textured(5)),
            conditions=["c"],
            condition_data=[jpeg_bytes(textured(6))],
            condition_errors=[None],
        )
    )
    return BrokenFilter()(items_to_batch(items))


def test_weights_from_a_path_are_the_weights_used(tiny_clip_config, tmp_path):
    random_filter = ClipFilter(str(tiny_clip_config), "random", ClipThresholds(min_score=-1.0))
    checkpoint = tmp_path / "tiny.pt"
    torch.save(random_filter.model.state_dict(), checkpoint)
    loaded = ClipFilter(str(tiny_clip_config), str(checkpoint))
    a, b = random_filter(batch()), loaded(batch())
    np.testing.assert_allclose(a["clip_score"][:3], b["clip_score"][:3], atol=1e-6)
    assert np.isnan(a["clip_score"][3])  # an edit instruction is not a caption
    assert a["clip_keep"].all()

    state = {
        k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v
        for k, v in random_filter.model.state_dict().items()
    }
    torch.save(state, tmp_path / "other.pt")
    other = ClipFilter(str(tiny_clip_config), str(tmp_path / "other.pt"))(batch())
    assert not np.allclose(other["clip_score"][:3], a["clip_score"][:3], atol=1e-4)
    assert other["clip_embedding"][0].dtype == np.float16 and other["clip_embedding"][0].shape == (32,)


def test_missing_weights_name_the_fix(tiny_clip_config, tmp_path):
    with pytest.raises(UserError, match="--clip-weights.*--filters"):
        ClipFilter(str(tiny_clip_config), None)
    with pytest.raises(UserError, match="no such file"):
        ClipFilter(str(tiny_clip_config), str(tmp_path / "absent.pt"))
    with pytest.raises(UserError, match="--clip-model"):
        ClipFilter(str(tmp_path / "absent.json"), "random")
