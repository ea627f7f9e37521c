"""The DiT trainer, top to bottom: build → parallelise → optimizer → resume → loop → export.

Stages, T2I vs edit, LoRA vs full are data in the recipe. Every random draw of a step (batch, caption
dropout, σ, noise) is a pure function of (seed, step) over the *global* batch, so a resumed run repeats an
uninterrupted one exactly, and N ranks reproduce one process with the same global batch.
"""

import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from qwen_image2.config import dump_config
from qwen_image2.data.cache import CacheReader
from qwen_image2.data.loader import CachedSample, StageLoader, build_buckets, image_root, read_manifest
from qwen_image2.diffusion.loss import draw_sigmas_and_noise, flow_matching_loss
from qwen_image2.models.conditioning import Conditions, encode_empty_prompt
from qwen_image2.models.encoding import SampleEncoding, TrainingSample, encode_sample, stack_encodings
from qwen_image2.models.loading import load_components
from qwen_image2.seeding import Stream, stage_seed, step_generator, step_rng
from qwen_image2.training.checkpoint import (
    ModelAndOptimizer,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from qwen_image2.training.distributed import init_distributed, is_main, max_over_ranks, mean_over_ranks
from qwen_image2.training.dit.config import TrainConfig
from qwen_image2.training.dit.validation import Validator
from qwen_image2.training.ema import EMA
from qwen_image2.training.export import export_model
from qwen_image2.training.lora import apply_lora
from qwen_image2.training.parallelize import apply_parallelism
from qwen_image2.training.runlog import RunLog
from qwen_image2.training.schedule import learning_rate, stage_at


def encode_for_training(
    components, sample: TrainingSample | CachedSample, dropped: bool, empty_prompt: Conditions
) -> SampleEncoding:
    """The sample's encoding from the cache or the frozen encoders, with its caption dropped if drawn so."""
    if isinstance(sample, TrainingSample):
        prompt = "" if dropped else sample.prompt
        return encode_sample(components, TrainingSample(prompt, sample.image, sample.condition_images))
    if not dropped:
        return sample.encoding
    if sample.unconditional is not None:
        return sample.unconditional
    # A T2I sample's empty prompt is the same for every sample: encoded once per run.
    return replace(
        sample.encoding, embeds=empty_prompt.embeds[0], image_pad_mask=empty_prompt.image_pad_mask[0]
    )


def stage_buckets(stage):
    return build_buckets(stage.resolution, stage.buckets)


def caption_dropout_mask(seed: int, step: int, global_size: int, rate: float) -> np.ndarray:
    """Which samples of the step's global batch train with an empty caption (bool, global positions)."""
    return step_rng(seed, step, Stream.CAPTION_DROPOUT).random(global_size) < rate


def accumulate_gradients(
    components, transformer, batch, config: TrainConfig, step: int, autocast, empty_prompt: Conditions
):
    """Forward and backward over this rank's micro-batches; returns (mean loss, target tokens per sample).

    Caption dropout, σ and noise are drawn for the whole global batch from (seed, step) and sliced by the
    samples' global positions, so that ranks and resumed runs agree exactly.
    """
    device = next(transformer.parameters()).device
    global_size = batch.bucket.batch_size
    dropped = caption_dropout_mask(config.seed, step, global_size, config.caption_dropout)
    num_tokens = (batch.bucket.width // 16) * (batch.bucket.height // 16)
    generator = step_generator(config.seed, step, Stream.NOISE)
    sigmas, noise = draw_sigmas_and_noise(
        global_size, num_tokens, components.vae.config.z_dim, config.sigma, generator
    )
    micro = len(batch.samples) // config.parallel.grad_accum
    loss_sum = torch.zeros((), device=device)
    for start in range(0, len(batch.samples), micro):
        positions = batch.positions[start : start + micro]
        chunk = batch.samples[start : start + micro]
        encodings = [
            encode_for_training(components, sample, bool(dropped[position]), empty_prompt)
            for sample, position in zip(chunk, positions, strict=True)
        ]
        latent_batch = stack_encodings(encodings).to(device)
        # Text is right-padded and the target's RoPE positions follow the padded length, so every rank pads
        # to the longest prompt of the global micro-batch: the result cannot depend on the sharding.
        length = max_over_ranks(latent_batch.conditions.embeds.shape[1], device)
        latent_batch.conditions = latent_batch.conditions.pad_to(length)
        if hasattr(transformer, "set_requires_gradient_sync"):  # FSDP2: reduce gradients once, after the last
            transformer.set_requires_gradient_sync(start + micro >= len(batch.samples))
        with autocast:
            loss = flow_matching_loss(
                transformer, latent_batch, sigmas=sigmas[positions], noise=noise[positions]
            )
        (loss / config.parallel.grad_accum).backward()
        loss_sum += loss.detach() / config.parallel.grad_accum
    return loss_sum, num_tokens


def train(config: TrainConfig) -> Path:  # noqa: C901 - the loop reads top to bottom, as one function
    rank, world, device = init_distributed()
    out = Path(config.output_dir)
    # A bad manifest or cache folder fails before the model loads.
    samples = read_manifest(config.data.manifest)
    cache = CacheReader(config.data.cache_dir) if config.data.cache_dir else None

    # 1. Build the model: frozen encoder and VAE, trainable transformer (or its LoRA)
    components = load_components(config.model, device=device, seed=config.seed)
    components.text_encoder.requires_grad_(False)
    components.vae.requires_grad_(False)
    transformer = components.transformer
    if config.lora.enabled:
        apply_lora(transformer, config.lora)
    transformer.train()
    apply_parallelism(transformer, config.parallel, world, device)
    autocast = (
        torch.autocast(device.type, torch.bfloat16)
        if config.parallel.mixed_precision == "bf16" and world == 1
        else nullcontext()
    )

    # 2. Optimizer (Adam, weight decay 0.001, clip 1.0: the report's Table 2) and EMA
    params = [p for p in transformer.parameters() if p.requires_grad]
    optim_class = torch.optim.Adam if config.optim.name == "adam" else torch.optim.AdamW
    optimizer = optim_class(
        params,
        lr=config.stages[0].lr,
        betas=config.optim.betas,
        eps=config.optim.eps,
        weight_decay=config.optim.weight_decay,
    )
    ema = EMA(transformer, config.ema.decay) if config.ema.enabled else None

    # 3. Resume from the latest checkpoint, if any
    progress = {"step": torch.tensor(0)}
    state = {"train": ModelAndOptimizer(transformer, optimizer), "progress": progress}
    if ema is not None:
        state["ema"] = ema
    checkpoint_dir = out / "checkpoints"
    resume_from = latest_checkpoint(checkpoint_dir)
    if resume_from is not None:
        load_checkpoint(resume_from, state)
    step = int(progress["step"])
    log = RunLog(out, enabled=is_main(), resume_step=step)
    if is_main():
        # The resolved recipe goes to the run folder, not the terminal: one line says where.
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(dump_config(config))
        print(
            f"{'resuming from ' + str(resume_from) if resume_from else 'starting'}; config: {out / 'config.yaml'}"
        )

    # 4. Data: held-out samples first, then one loader per stage
    root = image_root(config.data.manifest, config.data.root)
    if cache is not None:  # made by these encoders for these buckets, else a UserError naming what differs
        cache.check(components, [(b.width, b.height) for s in config.stages for b in stage_buckets(s)])
    # Read only with cached samples, which load on the CPU: it stays there until the batch moves.
    empty_prompt = encode_empty_prompt(components.text_encoder, components.processor).to("cpu")
    validator = Validator(components, transformer, config.validation, samples, root, config.seed, out)
    total = config.total_steps
    for stage in config.stages:  # every stage's pools now: errors and notes at start
        probe = StageLoader(
            samples,
            root,
            stage,
            0,
            grad_accum=config.parallel.grad_accum,
            num_workers=0,
            exclude=validator.holdout_ids,
            world=world,
        )
        if probe.renormalised:
            log.renormalised[stage.name] = probe.renormalised
            if is_main():
                print(f"stage {stage.name}: {probe.renormalised}", file=sys.stderr)
    loader, loader_stage, pending = None, None, None
    bar = tqdm(total=total, initial=step, disable=not is_main(), desc="train")

    # 5. The loop
    while step < total:
        stage_index, stage_start = stage_at(config.stages, step)
        stage = config.stages[stage_index]
        if stage_index != loader_stage:
            if loader:
                loader.close()
            loader = StageLoader(
                samples,
                root,
                stage,
                seed=stage_seed(config.seed, stage_index),
                rank=rank,
                world=world,
                grad_accum=config.parallel.grad_accum,
                num_workers=config.data.num_workers,
                exclude=validator.holdout_ids,
                cache=cache,
            )
            loader_stage, pending = stage_index, loader.prefetch(step - stage_start)
        started = time.perf_counter()
        batch = loader.result(pending)
        if step + 1 < min(total, stage_start + stage.steps):
            pending = loader.prefetch(step + 1 - stage_start)
        lr = learning_rate(stage, step - stage_start)
        for group in optimizer.param_groups:
            group["lr"] = lr

        loss_sum, num_tokens = accumulate_gradients(
            components, transformer, batch, config, step, autocast, empty_prompt
        )
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.optim.grad_clip)
        grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(transformer)
        step += 1

        loss_value = mean_over_ranks(loss_sum)
        elapsed = time.perf_counter() - started
        log.step(
            step=step,
            stage=stage.name,
            task=batch.task,
            bucket=f"{batch.bucket.width}x{batch.bucket.height}",
            loss=loss_value,
            lr=lr,
            grad_norm=float(grad_norm),
            tokens_per_s=batch.bucket.batch_size * num_tokens / elapsed,
            skipped=batch.skipped,
            cache_misses=round(
                mean_over_ranks(torch.tensor(float(batch.cache_misses), device=loss_sum.device)) * world
            ),
        )
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}", stage=stage.name)
        if step % config.checkpoint_every == 0 or step == total:
            progress["step"] = torch.tensor(step)
            save_checkpoint(checkpoint_dir, step, state, config.keep_checkpoints, dump_config(config))
        if config.validation.every and step % config.validation.every == 0:
            log.validation(step, validator.run(step))

    # 6. Export the final (or EMA) weights as a diffusers folder
    bar.close()
    if loader:
        loader.close()
    # The folder says the side it was trained at: generate, edit and eval text default to it.
    trained = replace(components, training_resolution=config.stages[-1].resolution)
    model_dir = export_model(
        trained, transformer, ema if config.export_ema else None, config.lora, out / "model"
    )
    log.finish(model_dir)
    return model_dir
