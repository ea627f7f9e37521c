"""The sampling loop over the DiT (Euler by default, any solver step plugged in), which the pipeline runs."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.models.transformers.transformer_qwenimage21 import QwenImage21KVCache

from qwen_image2.diffusion.flow import dynamic_shift_mu
from qwen_image2.diffusion.guidance import true_cfg
from qwen_image2.models.conditioning import Conditions


def set_schedule(
    scheduler: FlowMatchEulerDiscreteScheduler,
    num_steps: int,
    num_tokens: int,
    sigmas: list[float] | None = None,
    device: str | torch.device | None = None,
) -> FlowMatchEulerDiscreteScheduler:
    """Set the published dynamic-shift grid (μ from the target token count) and return the scheduler to step."""
    if sigmas is None:
        sigmas = np.linspace(1.0, 1.0 / num_steps, num_steps)
    if len(sigmas) == 1 and scheduler.config.shift_terminal:
        # Stretching a one-point grid to the terminal σ divides by zero; one step goes from σ = 1 to 0.
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(scheduler.config, shift_terminal=None)
    scheduler.set_timesteps(sigmas=sigmas, device=device, mu=dynamic_shift_mu(num_tokens))
    scheduler.set_begin_index(0)
    return scheduler


def target_velocity(transformer, hidden, timestep, conditions: Conditions, img_shapes, cache=None, mode=None):
    """The DiT's velocity for the target tokens, which are the last `N/4` slots of the joint sequence.

    Shapes: `hidden` (B, Nc + N, C) condition latents then target latents; returns (B, N, C).
    """
    num_target = img_shapes[0][-1][1] * img_shapes[0][-1][2]
    slots = conditions.image_pad_mask
    img_mask = torch.cat([slots, slots.new_ones(slots.shape[0], num_target // 4)], dim=1)
    output = transformer(
        hidden_states=hidden,
        timestep=timestep,
        encoder_hidden_states=conditions.embeds,
        encoder_hidden_states_mask=conditions.mask,
        img_shapes=img_shapes,
        img_mask=img_mask,
        kv_cache=cache,
        kv_cache_mode=mode,
        return_dict=False,
    )[0]
    return output[:, -num_target:]


# One solver step: (scheduler, step index, velocity, latents) -> the latents at the next σ. Euler by default;
# RL and distillation plug in stochastic (SDE) or few-step solvers here.
StepFunction = Callable[[FlowMatchEulerDiscreteScheduler, int, torch.Tensor, torch.Tensor], torch.Tensor]


def euler_step(
    scheduler: FlowMatchEulerDiscreteScheduler, index: int, velocity: torch.Tensor, latents: torch.Tensor
) -> torch.Tensor:
    """The scheduler's own Euler step (so that sampling matches stock diffusers bit for bit)."""
    return scheduler.step(velocity, scheduler.timesteps[index], latents, return_dict=False)[0]


@dataclass
class Trajectory:
    """The latents before every step and after the last (`states[0]` is the noise, `states[-1]` the result),
    the σ of each state, and the velocity each step used."""

    states: list[torch.Tensor]
    sigmas: list[float]
    velocities: list[torch.Tensor]

    @property
    def latents(self) -> torch.Tensor:
        return self.states[-1]


def denoise(
    transformer,
    scheduler: FlowMatchEulerDiscreteScheduler,
    latents: torch.Tensor,
    *,
    conditions: Conditions,
    img_shapes: list[list[tuple[int, int, int]]],
    condition_latents: torch.Tensor | None = None,
    negative: Conditions | None = None,
    guidance_scale: float = 1.0,
    cfg_rescale: bool = False,
    use_kv_cache: bool = True,
    step: StepFunction = euler_step,
    callback: Callable[[int, float, torch.Tensor], None] | None = None,
    progress: Callable[[Iterable], Iterable] = lambda steps: steps,
) -> Trajectory:
    """Solver steps over `scheduler.timesteps` (already set) from noise `latents` (B, N, C) to clean latents.

    The text and condition tokens are modulated at t = 0 and attend causally, so with `use_kv_cache` their
    keys and values are computed on the first step only. CFG runs when `negative` is given.
    """
    batch_size, dtype = latents.shape[0], latents.dtype
    cache_on = use_kv_cache and transformer.config.causal_condition
    branches = [conditions] if negative is None else [conditions, negative]
    caches = [QwenImage21KVCache(len(transformer.transformer_blocks)) if cache_on else None for _ in branches]
    trajectory = Trajectory(states=[latents], sigmas=[float(scheduler.sigmas[0])], velocities=[])
    for index, t in enumerate(progress(scheduler.timesteps)):
        mode = ("extract" if index == 0 else "cached") if cache_on else None
        hidden = latents if condition_latents is None else torch.cat([condition_latents, latents], dim=1)
        timestep = t.expand(batch_size).to(dtype) / 1000
        velocities = [
            target_velocity(transformer, hidden, timestep, branch, img_shapes, cache, mode)
            for branch, cache in zip(branches, caches, strict=True)
        ]
        velocity = velocities[0]
        if negative is not None:
            velocity = true_cfg(velocities[0], velocities[1], guidance_scale, cfg_rescale)
        latents = step(scheduler, index, velocity, latents)
        trajectory.states.append(latents)
        trajectory.sigmas.append(float(scheduler.sigmas[index + 1]))
        trajectory.velocities.append(velocity)
        if callback is not None:
            callback(index, float(t) / 1000, latents)
    return trajectory
