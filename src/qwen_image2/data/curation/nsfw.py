"""`nsfw`: the detector that the `nudenet` package ships (YOLOv8n, ONNX, 320x320, runs offline), behind
an `NsfwModel` interface so another model can stand in. The score is the detector's highest confidence
for an exposed-body class, 0 when it finds none; the largest over all images of an edit pair counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from qwen_image2.data.curation.config import NsfwThresholds
from qwen_image2.errors import UserError

# NudeNet's classes that make an image unsafe; its *_COVERED and FACE_* classes do not.
UNSAFE_CLASSES = frozenset(
    {
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)


class NsfwModel(Protocol):
    def score(self, images: list[np.ndarray]) -> np.ndarray:
        """NSFW probability-like scores in [0, 1], one per H x W x 3 uint8 RGB image."""
        ...


class NudeNetModel:
    """NudeNet's detector; `model_path` takes another ONNX file with the same outputs."""

    def __init__(self, model_path: str | None = None, threads: int = 1, batch_size: int = 8) -> None:
        try:
            import onnxruntime
            from nudenet import NudeDetector
            from nudenet import nudenet as nudenet_module
        except ImportError as err:
            raise UserError(
                f"the nsfw filter needs the nudenet package ({err}); or leave it out with --filters"
            ) from None
        path = model_path or str(Path(nudenet_module.__file__).parent / "320n.onnx")
        if not Path(path).is_file():
            raise UserError(f"--nsfw-model {path}: no such file")
        self.detector = NudeDetector(model_path=path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # one worker per core; no oversubscription
        options.inter_op_num_threads = 1
        self.detector.onnx_session = onnxruntime.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        self.batch_size = batch_size

    def score(self, images: list[np.ndarray]) -> np.ndarray:
        if not images:
            return np.zeros(0)
        # NudeNet's reader converts RGBA->BGR and then swaps to RGB itself, so it is given RGBA.
        rgba = [np.dstack([img, np.full(img.shape[:2], 255, np.uint8)]) for img in images]
        detections = self.detector.detect_batch(rgba, batch_size=self.batch_size)
        return np.array(
            [
                max((d["score"] for d in found if d["class"] in UNSAFE_CLASSES), default=0.0)
                for found in detections
            ]
        )


def keep_nsfw(columns: Mapping[str, np.ndarray], thresholds: NsfwThresholds) -> np.ndarray:
    score = np.asarray(columns["nsfw_score"], dtype=np.float64)
    return (score <= thresholds.max_score) | np.isnan(score)


class NsfwFilter:
    """Adds `nsfw_score` and `nsfw_keep`."""

    name = "nsfw"

    def __init__(self, model: NsfwModel | None = None, thresholds: NsfwThresholds = NsfwThresholds()) -> None:
        self.model = model if model is not None else NudeNetModel()
        self.thresholds = thresholds

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["image"])
        owners, images = [], []
        for i in range(n):
            if batch["image"][i] is not None:
                for img in [batch["image"][i], *batch["condition_images"][i]]:
                    owners.append(i)
                    images.append(img)
        score = np.full(n, np.nan)
        if images:
            scores = self.model.score(images)
            np.fmax.at(score, np.array(owners), scores)
        out = {**batch, "nsfw_score": score}
        out["nsfw_keep"] = keep_nsfw(out, self.thresholds)
        return out
