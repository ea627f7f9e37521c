"""The aesthetic reward: LAION's improved aesthetic predictor, an MLP head over CLIP ViT-L/14 image
embeddings (github.com/christophschuhmann/improved-aesthetic-predictor, `sac+logos+ava1-l14-linearMSE.pth`),
through open_clip. Its score is on a 1-10 scale (AVA ratings); the reward is score / 10.

A scorer is any `(images) -> list[float]`; this is the one shipped. No weights, no scorer: there is no
stand-in (image sharpness or contrast is not aesthetics), the reward is then simply not configured.
"""

from pathlib import Path

import torch
from PIL import Image
from torch import nn


class AestheticHead(nn.Module):
    """The predictor's MLP; its state-dict keys are the released file's (`layers.0.weight`, ...)."""

    def __init__(self, input_size: int = 768):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(n, input_size) L2-normalised CLIP image embeddings -> (n,) scores."""
        return self.layers(embeddings).squeeze(-1)


class LaionAesthetic:
    """An open_clip model, its eval preprocessing, and the head (all frozen, eval mode)."""

    def __init__(self, clip_model: nn.Module, preprocess, head: AestheticHead):
        self.clip, self.preprocess, self.head = clip_model.eval(), preprocess, head.eval()

    @torch.no_grad()
    def __call__(self, images: list[Image.Image]) -> list[float]:
        """Scores on the predictor's 1-10 scale, one per image."""
        if not images:
            return []
        batch = torch.stack([self.preprocess(image.convert("RGB")) for image in images])
        features = self.clip.encode_image(batch)
        features = features / features.norm(dim=-1, keepdim=True)
        return self.head(features.float()).tolist()


def load_laion_aesthetic(head: Path, clip_weights: Path, clip_model: str = "ViT-L-14") -> LaionAesthetic:
    """The released head over `clip_model` with `clip_weights` (open_clip's `pretrained=` file path)."""
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(clip_model, pretrained=str(clip_weights))
    scorer = AestheticHead(model.visual.output_dim)
    scorer.load_state_dict(torch.load(head, map_location="cpu", weights_only=True))
    return LaionAesthetic(model, preprocess, scorer)


def aesthetic_reward(images: list[Image.Image | None], scorer) -> list[float]:
    """score / 10 per image (clamped to [0, 1]); 0 for a missing image. Drawn images are scored in one batch."""
    drawn = [image for image in images if image is not None]
    scores = iter(scorer(drawn))
    return [0.0 if image is None else min(1.0, max(0.0, next(scores) / 10.0)) for image in images]
