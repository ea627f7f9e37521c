"""`clip`: image-text alignment, the cosine similarity of open_clip's image and caption embeddings
(DataComp's CLIP-score filter). Model and weights are configurable: a model name open_clip knows
(`ViT-B-32`) or a path to a model-config JSON, and a checkpoint path. `weights="random"` builds an
untrained model — for tests and timing only, as its scores mean nothing.

Editing rows get no score: their caption is an instruction, not a description of the image. The image
embedding is kept (`clip_embedding`, float16) for the optional semantic dedup.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from qwen_image2.data.curation.config import ClipThresholds
from qwen_image2.errors import UserError


def check_clip_settings(model: str, weights: str | None) -> None:
    """The user-fixable mistakes, found without loading anything."""
    if model.endswith(".json") and not Path(model).is_file():
        raise UserError(f"--clip-model {model}: no such model config file")
    if weights is None:
        raise UserError(
            "the clip filter needs weights: pass --clip-weights PATH (an open_clip checkpoint for "
            f"{model}), or leave the filter out with --filters"
        )
    if weights != "random" and not Path(weights).is_file():
        raise UserError(f"--clip-weights {weights}: no such file")


def load_clip(model: str, weights: str | None):
    """Return (model, preprocess, tokenizer) from open_clip, with user-fixable failures as `UserError`."""
    import open_clip

    check_clip_settings(model, weights)
    name = model
    if model.endswith(".json"):
        open_clip.add_model_config(Path(model))
        name = Path(model).stem
    if weights == "random":
        import torch

        torch.manual_seed(0)  # the same untrained model in every worker, so runs and resumes agree
    try:
        clip_model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=None if weights == "random" else weights
        )
    except RuntimeError as err:
        raise UserError(f"--clip-model {model} / --clip-weights {weights}: {err}") from None
    return clip_model.eval(), preprocess, open_clip.get_tokenizer(name)


def keep_clip(columns: Mapping[str, np.ndarray], thresholds: ClipThresholds) -> np.ndarray:
    score = np.asarray(columns["clip_score"], dtype=np.float64)
    return (score >= thresholds.min_score) | np.isnan(score)


class ClipFilter:
    """Adds `clip_score`, `clip_embedding` and `clip_keep`."""

    name = "clip"

    def __init__(
        self,
        model: str = "ViT-B-32",
        weights: str | None = None,
        thresholds: ClipThresholds = ClipThresholds(),
    ) -> None:
        self.model, self.preprocess, self.tokenizer = load_clip(model, weights)
        self.thresholds = thresholds

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        n = len(batch["image"])
        rows = [
            i
            for i in range(n)
            if batch["image"][i] is not None
            and batch["task"][i] == "t2i"
            and isinstance(batch["caption"][i], str)
        ]
        score = np.full(n, np.nan)
        embedding = np.full(n, None, dtype=object)
        if rows:
            pixels = torch.stack([self.preprocess(Image.fromarray(batch["image"][i])) for i in rows])
            text = self.tokenizer([batch["caption"][i] for i in rows])
            with torch.inference_mode():
                image_emb = torch.nn.functional.normalize(self.model.encode_image(pixels).float(), dim=-1)
                text_emb = torch.nn.functional.normalize(self.model.encode_text(text).float(), dim=-1)
            score[rows] = (image_emb * text_emb).sum(-1).numpy()
            for k, i in enumerate(rows):
                embedding[i] = image_emb[k].numpy().astype(np.float16)
        out = {**batch, "clip_score": score, "clip_embedding": embedding}
        out["clip_keep"] = keep_clip(out, self.thresholds)
        return out
