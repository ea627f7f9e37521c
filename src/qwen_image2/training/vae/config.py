"""The VAE training config (`qwen-image2 train-vae RECIPE [key=value ...]`): every field documented once, here."""

from typing import Any, Literal

from pydantic import Field, model_validator

from qwen_image2.config import Section
from qwen_image2.training.ema import EmaConfig
from qwen_image2.training.schedule import Stage


class SourceConfig(Section):
    """One data source of the mixture."""

    name: str = Field(description="Unique name; phases refer to it in their `mixture`.")
    kind: Literal["folder", "manifest", "text"] = Field(
        description="folder: images under `path`; manifest: parquet/jsonl with a `path` column or a list "
        "of paths; text: procedural text-rich images (no files)."
    )
    path: str | None = Field(None, description="Folder or manifest file (not for kind text).")
    weight: float = Field(1.0, ge=0, description="Mixture weight (relative).")
    style: Literal["full", "words"] = Field(
        "full",
        description="text: the renderer's style (full: every layout; words: the tiny model's posters).",
    )
    tier: Literal[64, 128, 256, 512, 1024] = Field(
        256, description="text: the renderer's resolution tier (scenes of about tier² pixels, then cropped)."
    )
    zh_share: float = Field(0.3, ge=0, le=1, description="text: share of Chinese scenes.")

    @model_validator(mode="after")
    def _path_for_files(self) -> "SourceConfig":
        if self.kind != "text" and not self.path:
            raise ValueError(f"source {self.name!r} of kind {self.kind} needs a path")
        return self


class BucketConfig(Section):
    """A training resolution: batches of one size, drawn with this probability."""

    width: int = Field(256, ge=16, multiple_of=16, description="Pixels, a multiple of 16 (one latent cell).")
    height: int = Field(256, ge=16, multiple_of=16)
    batch_size: int = Field(8, ge=1)
    probability: float = Field(1.0, ge=0)


class DataConfig(Section):
    sources: list[SourceConfig] = Field(min_length=1)
    buckets: list[BucketConfig] = Field(default_factory=lambda: [BucketConfig()], min_length=1)
    holdout: int = Field(8, ge=0, description="Images per source kept out of training, for validation.")
    num_workers: int = Field(2, ge=0, description="Image-loading threads; 0 loads on the main thread.")

    @model_validator(mode="after")
    def _unique_names(self) -> "DataConfig":
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        return self


class LossConfig(Section):
    l1: float = Field(1.0, ge=0, description="L1 weight (the Qwen-Image-VAE-2.0 loss is L1 + LPIPS + align).")
    l2: float = Field(0.0, ge=0, description="Optional L2 weight.")
    lpips: float = Field(1.0, ge=0, description="LPIPS weight; VA-VAE uses 1.0.")
    lpips_net: Literal["vgg", "alex"] = Field(
        "vgg", description="vgg is LPIPS's loss net (alex: its metric)."
    )
    lpips_weights: str | None = Field(
        None, description="torchvision backbone .pth (default: hub cache); 'random' for smoke tests only."
    )
    kl: float = Field(0.0, ge=0, description="KL weight; 0 (off) as Qwen-Image-VAE-2.0; VA-VAE used 1e-6.")
    gan: float = Field(
        0.0, ge=0, description="Adversarial weight (PatchGAN, hinge); 0 (off) as Qwen-Image-2.0; VA-VAE: 0.5."
    )
    gan_start: int = Field(
        0, ge=0, description="Step at which the adversarial term starts (taming: disc_start)."
    )
    gan_lr: float | None = Field(
        None, gt=0, description="Discriminator learning rate (default: the phase's)."
    )
    gan_channels: int = Field(64, ge=8, description="Discriminator base width.")
    gan_layers: int = Field(3, ge=1, le=5, description="Discriminator stride-2 layers (3: ~70 px patches).")


class AlignConfig(Section):
    enabled: bool = True
    model: str = Field(
        "random-tiny", description="DINOv2 transformers folder (facebook/dinov2-large) or random-tiny."
    )
    layer: int | None = Field(
        None, ge=0, description="Hidden-state index; default the middle (12 of DINOv2-L's 24)."
    )
    cos_weight: float = Field(1.0, ge=0, description="VA-VAE: 1.0.")
    dist_weight: float = Field(1.0, ge=0, description="VA-VAE: 1.0.")
    adaptive: bool = Field(True, description="Scale by ‖∇rec‖/‖∇align‖ at the encoder's last conv (VA-VAE).")


class Phase(Stage):
    """A stage of VAE training with its own alignment strength: strong early, relaxed later (report §3.1).
    VA-VAE: Adam at lr 1e-4."""

    align_weight: float = Field(0.5, ge=0, description="vf_weight; VA-VAE stages: 0.5, 0.1, 0.1.")
    margin_cos: float = Field(0.0, ge=0, le=2, description="VA-VAE stages: 0, 0, 0.5.")
    margin_dist: float = Field(0.0, ge=0, le=2, description="VA-VAE stages: 0, 0, 0.25.")
    mixture: dict[str, float] | None = Field(None, description="Source weights for this phase, by name.")
    buckets: list[BucketConfig] | None = Field(
        None, description="Resolutions for this phase (default: data's)."
    )


class OptimConfig(Section):
    betas: tuple[float, float] = Field((0.5, 0.9), description="VA-VAE's Adam betas.")
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0, description="Max global grad norm.")


class VAETrainConfig(Section):
    """`qwen-image2 train-vae RECIPE [key=value ...]`."""

    model: str = Field("tiny", description="Start: a preset (random init), a vae folder or a model folder.")
    architecture: dict[str, Any] = Field(
        default_factory=dict,
        description="From scratch: overrides of the preset's vae config (e.g. base_dim).",
    )
    base_model: str | None = Field(
        None, description="Also export a full model folder: this one with our VAE."
    )
    output_dir: str = Field("runs/vae", description="Checkpoints, tensorboard, grids, export, report.")
    seed: int = 0
    max_steps: int | None = Field(None, ge=1, description="Stop after this many steps (default: all phases).")
    checkpoint_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(3, ge=1)
    log_every: int = Field(10, ge=1)
    validate_every: int = Field(500, ge=1, description="Held-out PSNR/SSIM and a reconstruction grid PNG.")
    validation_size: int = Field(128, ge=16, multiple_of=16, description="Side of the held-out crops.")
    device: str = Field("auto", description="cpu, cuda, ... ('auto': cuda when available).")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 autocast for the forward on GPU.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice).")
    data: DataConfig
    phases: list[Phase] = Field(min_length=1)
    loss: LossConfig = LossConfig()
    align: AlignConfig = AlignConfig()
    optim: OptimConfig = OptimConfig()
    ema: EmaConfig = EmaConfig()

    @model_validator(mode="after")
    def _phase_mixtures_name_sources(self) -> "VAETrainConfig":
        names = {s.name for s in self.data.sources}
        for phase in self.phases:
            unknown = set(phase.mixture or {}) - names
            if unknown:
                raise ValueError(
                    f"phase {phase.name!r} mixes unknown sources {sorted(unknown)}; sources: {sorted(names)}"
                )
        return self

    @property
    def total_steps(self) -> int:
        planned = sum(phase.steps for phase in self.phases)
        return min(planned, self.max_steps) if self.max_steps else planned
