"""Validation during training: held-out loss at fixed σ, and a sample grid on fixed prompts and edits."""

import math
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

from qwen_image2.data.loader import load_training_sample
from qwen_image2.diffusion.loss import flow_matching_loss
from qwen_image2.metrics.grid import contact_sheet
from qwen_image2.models.encoding import TrainingSample, encode_batch
from qwen_image2.pipelines.qwen_image2 import QwenImage2Pipeline
from qwen_image2.seeding import Stream, step_generator
from qwen_image2.training.distributed import is_main
from qwen_image2.training.dit.config import Validation


class Validator:
    """Holds out `config.holdout` samples (edits first, so that the grid shows some) and evaluates on them."""

    def __init__(
        self, components, transformer, config: Validation, samples, root: Path, seed: int, out: Path
    ):
        self.components, self.transformer, self.config = components, transformer, config
        self.seed, self.out, self.root = seed, out, root
        ordered = sorted(samples, key=lambda s: (s.task != "edit", s.id))
        self.holdout = ordered[: config.holdout] if config.holdout < len(samples) else []
        self.holdout_ids = {s.id for s in self.holdout}

    def _load(self, sample) -> TrainingSample:
        width, height = (max(32, side // 32 * 32) for side in (sample.width, sample.height))
        return load_training_sample(sample, self.root, width, height)

    @torch.no_grad()
    def heldout_loss(self) -> dict[str, float]:
        figures: dict[str, float] = {}
        losses = {s: [] for s in self.config.sigmas}
        for index, sample in enumerate(self.holdout):
            batch = encode_batch(self.components, [self._load(sample)])[0]
            generator = step_generator(self.seed, index, Stream.HELDOUT)
            noise = torch.randn(batch.target.shape, generator=generator)
            for value in self.config.sigmas:
                sigmas = torch.full((1,), value)
                losses[value].append(
                    float(flow_matching_loss(self.transformer, batch, sigmas=sigmas, noise=noise))
                )
        for value, items in losses.items():
            if items:
                figures[f"heldout_loss_sigma_{value:g}"] = sum(items) / len(items)
        if figures:
            figures["heldout_loss"] = sum(figures.values()) / len(figures)
        return figures

    @torch.no_grad()
    def sample(self, prompt: str, width: int, height: int, references: list[Image.Image]) -> Image.Image:
        """One grid image through the pipeline users run, with the transformer being trained."""
        pipe = QwenImage2Pipeline.from_components(replace(self.components, transformer=self.transformer))
        pipe.set_progress_bar_config(disable=True)
        return pipe(
            prompt,
            image=references or None,
            width=width,
            height=height,
            num_inference_steps=self.config.steps,
            resolution=round(math.sqrt(width * height)),
            generator=torch.Generator().manual_seed(self.seed),
        ).images[0]

    def run(self, step: int) -> dict[str, float]:
        self.transformer.eval()
        figures = self.heldout_loss()
        rows = [[self.sample(p, self.config.size, self.config.size, [])] for p in self.config.prompts]
        for sample in self.holdout:
            if sample.task == "edit":
                loaded = self._load(sample)
                output = self.sample(
                    loaded.prompt, loaded.image.width, loaded.image.height, loaded.condition_images
                )
                rows.append([*loaded.condition_images, output, loaded.image])
        self.transformer.train()
        if rows and is_main():
            grid = self.out / "grids" / f"step-{step:07d}.png"
            grid.parent.mkdir(parents=True, exist_ok=True)
            contact_sheet(rows, background=(96, 96, 96)).save(grid)
        return figures
