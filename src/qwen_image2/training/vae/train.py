"""The VAE trainer: build → optimizer and EMA → data → resume → `while step < total:` → export.

Trains `AutoencoderKLQwenImage21` (any size: a preset with architecture overrides, or existing weights)
with L1 (+L2) + LPIPS + VA-VAE alignment (+ optional KL and PatchGAN terms), the alignment weight and margins
set per phase (strong early, relaxed later: Qwen-Image-2.0 report §3.1; VA-VAE's long schedule, reference
§2.1). The adversarial term is off by default: the report found it redundant at scale. Single process, CPU
or one GPU.
A step's batch is a function of (seed, step) and the loss has no other randomness, so a resumed run
repeats an uninterrupted one exactly (CPU, fp32).
"""

import copy
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

from qwen_image2.config import dump_config
from qwen_image2.errors import UserError
from qwen_image2.metrics.fidelity import build_lpips, psnr, ssim, to_uint8
from qwen_image2.metrics.grid import comparison_grid
from qwen_image2.models.device import resolve_device
from qwen_image2.models.loading import load_vae
from qwen_image2.models.presets import build_vae, load_preset, preset_names
from qwen_image2.models.vae_direct import apply_image_only, check_trainable, decode_raw, encode_moments
from qwen_image2.seeding import Stream, step_generator
from qwen_image2.training.checkpoint import (
    ModelAndOptimizer,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from qwen_image2.training.ema import EMA
from qwen_image2.training.runlog import truncate_metrics
from qwen_image2.training.schedule import learning_rate, stage_at
from qwen_image2.training.vae.config import Phase, VAETrainConfig
from qwen_image2.training.vae.data import VAEData
from qwen_image2.training.vae.discriminator import (
    PatchDiscriminator,
    discriminator_hinge_loss,
    generator_loss,
)
from qwen_image2.training.vae.export import export_vae, latent_statistics
from qwen_image2.training.vae.losses import (
    Alignment,
    adaptive_weight,
    build_dinov2,
    kl_loss,
    lpips_loss,
    reconstruction_loss,
)


class TrainableVAE(nn.Module):
    """What the optimizer steps and the checkpoint holds: the VAE and the alignment projection."""

    def __init__(self, vae: nn.Module, alignment: Alignment | None):
        super().__init__()
        self.vae, self.alignment = vae, alignment


def build_vae_to_train(config: VAETrainConfig):
    """A preset (random weights from the seed, `architecture` overriding its vae config) or saved weights."""
    if config.model in preset_names():
        torch.manual_seed(config.seed)
        return build_vae(dict(load_preset(config.model)["vae"], **config.architecture))
    check_start(config)
    return load_vae(config.model)


def check_start(config: VAETrainConfig) -> None:
    """What can be wrong with where training starts, before anything loads or is written."""
    if config.model not in preset_names() and config.architecture:
        raise UserError(
            f"architecture overrides ({', '.join(sorted(config.architecture))}) apply to a preset "
            f"(from scratch), not to the saved weights of model={config.model}; drop them or use a preset"
        )


def compute_losses(
    model: TrainableVAE,
    pixels: torch.Tensor,
    phase: Phase,
    config: VAETrainConfig,
    lpips,
    step: int,
    discriminator: nn.Module | None = None,
):
    """(total loss, {name: value}, reconstruction) of one batch of pixels (B, C, H, W) in [-1, 1]."""
    vae, loss = model.vae, config.loss
    mean, logvar = encode_moments(vae, pixels)
    latents = mean
    if loss.kl:  # with a KL term, decode a posterior sample (seeded by the step: resumable)
        noise = torch.randn(mean.shape, generator=step_generator(config.seed, step, Stream.POSTERIOR))
        latents = mean + (0.5 * logvar).exp() * noise.to(mean.device, mean.dtype)
    reconstruction = decode_raw(vae, latents).float()
    rec = reconstruction_loss(reconstruction, pixels, loss.l1, loss.l2)
    terms = {"rec": rec}
    if lpips is not None:
        terms["lpips"] = lpips_loss(lpips, reconstruction, pixels)
        rec = rec + loss.lpips * terms["lpips"]
    total = rec
    if discriminator is not None and step >= loss.gan_start:
        # Frozen for this pass: the generator's backward then computes no gradients for its weights.
        discriminator.requires_grad_(False)
        fake = generator_loss(discriminator(reconstruction))
        discriminator.requires_grad_(True)
        # taming's adaptive weight: the adversarial pull on the decoder's last layer matches reconstruction's
        weight = adaptive_weight(rec, fake, vae.decoder.conv_out.weight) if model.training else torch.ones(())
        terms.update(gan_g=fake, gan_weight=weight)
        total = total + loss.gan * weight * fake
    if loss.kl:
        terms["kl"] = kl_loss(mean.float(), logvar.float())
        total = total + loss.kl * terms["kl"]
    if model.alignment is not None and phase.align_weight > 0:
        cos, dist = model.alignment(latents, pixels, phase.margin_cos, phase.margin_dist)
        align = config.align.cos_weight * cos + config.align.dist_weight * dist
        weight = torch.ones(())
        if config.align.adaptive and model.training:
            weight = adaptive_weight(rec, align, vae.encoder.conv_out.weight)
        terms.update(align_cos=cos, align_dist=dist, align_weight=weight)
        total = total + phase.align_weight * weight * align
    terms["total"] = total
    return total, {name: float(value.detach()) for name, value in terms.items()}, reconstruction


@torch.no_grad()
def validate(
    vae: nn.Module, pixels: torch.Tensor, sources: list[str] | None = None, batch_size: int = 8
) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Held-out PSNR/SSIM under the eval protocol (posterior mode, clamp, uint8, RGB), with the uint8 pairs;
    with `sources` (one name per image) also `psnr/<name>` for each source of more than one kind."""
    was_training = vae.training
    vae.eval()
    device = next(vae.parameters()).device
    outputs = [
        decode_raw(vae, encode_moments(vae, chunk.to(device))[0]).float().cpu()
        for chunk in pixels.split(batch_size)
    ]
    vae.train(was_training)
    reference, reconstruction = to_uint8(pixels[:, :3]), to_uint8(torch.cat(outputs)[:, :3])
    per_image = psnr(reference, reconstruction)
    scores = {"psnr": per_image.mean().item(), "ssim": ssim(reference, reconstruction).mean().item()}
    if sources and len(set(sources)) > 1:
        for name in sorted(set(sources)):
            scores[f"psnr/{name}"] = per_image[[s == name for s in sources]].mean().item()
    return scores, reference, reconstruction


def validate_and_log(vae, ema, ema_vae, holdout, sources, step: int, writer, metrics, out: Path) -> None:
    """Held-out scores of the raw (and EMA) weights to metrics and tensorboard; the grid of the last."""
    scores, reference, reconstruction = validate(vae, holdout, sources)
    record = {"step": step, **{f"val/{name}": value for name, value in scores.items()}}
    if ema:
        ema.copy_to(ema_vae)
        ema_scores, reference, reconstruction = validate(ema_vae, holdout, sources)
        record.update({f"val_ema/{name}": value for name, value in ema_scores.items()})
    log(record, writer, metrics)
    save_grid(reference, reconstruction, out / "grids" / f"step-{step:07d}.png", writer, step)


def save_grid(reference: torch.Tensor, reconstruction: torch.Tensor, path: Path, writer, step: int) -> None:
    pairs = [(str(i), reference[i], reconstruction[i]) for i in range(min(8, len(reference)))]
    path.parent.mkdir(parents=True, exist_ok=True)
    comparison_grid(pairs).save(path)
    writer.add_image("val/grid", torch.cat([torch.cat([r, x], dim=2) for _, r, x in pairs], dim=1), step)


def log(record: dict, writer, file) -> None:
    file.write(json.dumps(record) + "\n")
    file.flush()
    for name, value in record.items():
        if name != "step" and isinstance(value, int | float):
            writer.add_scalar(name, value, record["step"])


def open_metrics(path: Path, resume_step: int):
    """metrics.jsonl for appending, without the lines a killed run wrote after its last checkpoint (nor an
    unfinished last line)."""
    truncate_metrics(path, resume_step)
    return path.open("a")


def discriminator_step(
    discriminator: nn.Module, optimizer, pixels: torch.Tensor, reconstruction: torch.Tensor, config, lr: float
) -> float:
    """One hinge-loss step of the discriminator on real pixels against the (detached) reconstructions."""
    for group in optimizer.param_groups:
        group["lr"] = config.loss.gan_lr or lr
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(pixels.device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
        loss = discriminator_hinge_loss(discriminator(pixels), discriminator(reconstruction.detach()))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(discriminator.parameters(), config.optim.grad_clip)
    optimizer.step()
    return float(loss.detach())


def build_training(config: VAETrainConfig, device: torch.device):
    """(vae, trainable model, LPIPS or None, optimizer, EMA or None, (discriminator, its optimizer) or None)
    for `config`, on `device`."""
    # 1. The model: the VAE, the alignment projection with its frozen foundation model, LPIPS.
    vae = build_vae_to_train(config)
    check_trainable(vae)
    apply_image_only(vae)
    alignment = None
    if config.align.enabled:
        alignment = Alignment(
            build_dinov2(config.align.model, config.seed), vae.config.z_dim, config.align.layer
        )
    model = TrainableVAE(vae, alignment).to(device).train()
    lpips = None
    if config.loss.lpips:
        weights = config.loss.lpips_weights
        random_backbone = weights == "random"
        backbone = Path(weights) if weights and not random_backbone else None
        lpips = build_lpips(config.loss.lpips_net, backbone, random_backbone).to(device)

    # 2. Optimizer and EMA.
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        parameters, lr=config.phases[0].lr, betas=config.optim.betas, weight_decay=config.optim.weight_decay
    )
    ema = EMA(vae, config.ema.decay) if config.ema.enabled else None

    # 3. The discriminator and its own optimizer, when the adversarial term is on.
    adversary = None
    if config.loss.gan:
        torch.manual_seed(config.seed + 1)
        loss = config.loss
        discriminator = PatchDiscriminator(vae.config.out_channels, loss.gan_channels, loss.gan_layers).to(
            device
        )
        adversary = (
            discriminator,
            torch.optim.AdamW(
                discriminator.parameters(), lr=config.phases[0].lr, betas=config.optim.betas, weight_decay=0.0
            ),
        )
    return vae, model, lpips, optimizer, ema, adversary


def finish(
    config: VAETrainConfig,
    final: nn.Module,
    holdout: torch.Tensor,
    sources: list[str],
    step: int,
    skipped: dict,
) -> dict:
    """Export `final` with its latent statistics; write and return the report."""
    out = Path(config.output_dir)
    final = final.eval()
    device = next(final.parameters()).device
    latents_mean, latents_std = latent_statistics(final, holdout.to(device).split(8))
    final.register_to_config(latents_mean=latents_mean, latents_std=latents_std)
    scores, _, _ = validate(final, holdout, sources)
    export = export_vae(final.to("cpu"), out / "export", config.base_model)
    report = {"steps": step, "export": str(export), **{f"holdout_{k}": v for k, v in scores.items()}}
    report["skipped_images"] = dict(skipped)  # unreadable files met since the run (re)started, by reason
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def train(config: VAETrainConfig) -> dict:
    """Run (or resume) the training `config` describes; returns the final report (also out/report.json)."""
    from torch.utils.tensorboard import SummaryWriter

    out = Path(config.output_dir)
    device = torch.device(resolve_device(config.device))
    check_start(config)
    if config.threads:
        torch.set_num_threads(config.threads)

    # 1-2. The model (VAE, alignment projection, frozen DINOv2), LPIPS, optimizer and EMA: before
    # anything is written, so that a bad model is an error with no output folder left behind.
    vae, model, lpips, optimizer, ema, adversary = build_training(config, device)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_config(config))  # the resolved recipe, not printed whole
    print(f"config: {out / 'config.yaml'}", file=sys.stderr)
    parameters = optimizer.param_groups[0]["params"]  # the trainable ones, as build_training chose them

    # 3. Data: a batch is a function of (seed, step); the held-out set is fixed.
    data = VAEData(config.data, vae.config.in_channels, config.seed)
    holdout = data.holdout(config.validation_size)

    # 4. Resume from the latest complete checkpoint, if any.
    state = {"model": ModelAndOptimizer(model, optimizer), "step": 0, **({"ema": ema} if ema else {})}
    discriminator = adversary[0] if adversary else None
    if adversary:
        state["discriminator"] = ModelAndOptimizer(*adversary)
    checkpoint_dir = out / "checkpoints"
    latest = latest_checkpoint(checkpoint_dir)
    if latest is not None:
        load_checkpoint(latest, state)
        print(f"resumed from {latest}", file=sys.stderr)
    step = int(state["step"])
    writer = SummaryWriter(out / "tensorboard", purge_step=step)
    metrics = open_metrics(out / "metrics.jsonl", step)
    ema_vae = copy.deepcopy(vae).eval() if ema else None
    total_steps, started = config.total_steps, time.perf_counter()

    # 5. The loop.
    while step < total_steps:
        phase_index, phase_start = stage_at(config.phases, step)
        phase = config.phases[phase_index]
        lr = learning_rate(phase, step - phase_start)
        for group in optimizer.param_groups:
            group["lr"] = lr
        pixels = data.batch(step, phase.mixture, phase.buckets).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            loss, terms, reconstruction = compute_losses(
                model, pixels, phase, config, lpips, step, discriminator
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, config.optim.grad_clip)
        optimizer.step()
        if adversary and step >= config.loss.gan_start:
            terms["gan_d"] = discriminator_step(*adversary, pixels, reconstruction, config, lr)
        if ema:
            ema.update(vae)
        step += 1

        if step % config.log_every == 0 or step == total_steps:
            record = {"step": step, "phase": phase.name, "lr": lr, "grad_norm": float(grad_norm), **terms}
            record["seconds"] = round(time.perf_counter() - started, 3)
            log(record, writer, metrics)
        if step % config.validate_every == 0 or step == total_steps:
            validate_and_log(vae, ema, ema_vae, holdout, data.holdout_sources, step, writer, metrics, out)
        if step % config.checkpoint_every == 0 or step == total_steps:
            state["step"] = step
            save_checkpoint(checkpoint_dir, step, state, config.keep_checkpoints)
    writer.close()
    metrics.close()

    # 6. Export the EMA weights (or the raw ones) as a diffusers vae/ folder, with latent statistics.
    if ema:
        ema.copy_to(ema_vae)
    return finish(config, ema_vae if ema else vae, holdout, data.holdout_sources, step, data.skipped)
