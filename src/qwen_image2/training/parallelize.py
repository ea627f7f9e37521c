"""Parallelism for the DiT, in one fixed order: activation checkpointing → compile per block →
`fully_shard` per transformer block (the last one kept unsharded after forward) → the root.

One mixed-precision policy. Model code never imports FSDP; this file is the only place that does.
"""

from typing import Literal

import torch
from pydantic import Field
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from qwen_image2.config import Section


class Parallel(Section):
    mixed_precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16 params and compute, fp32 grads."
    )
    activation_checkpointing: bool = False
    compile: bool = Field(False, description="torch.compile each transformer block.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")


def apply_parallelism(
    transformer: torch.nn.Module, config: Parallel, world_size: int, device: torch.device
) -> None:
    """Change `transformer` in place for training: AC, compile, FSDP2 (when world_size > 1)."""
    if config.activation_checkpointing:
        transformer.enable_gradient_checkpointing()
    blocks = transformer.transformer_blocks
    if config.compile:
        for block in blocks:
            block.compile()
    if world_size == 1:
        return  # one process: bf16 comes from autocast in the loop
    mesh = init_device_mesh(device.type, (world_size,))
    param_dtype = torch.bfloat16 if config.mixed_precision == "bf16" else torch.float32
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    for index, block in enumerate(blocks):
        # The last block's parameters are needed again right away by backward: don't reshard them.
        fully_shard(block, mesh=mesh, mp_policy=policy, reshard_after_forward=index < len(blocks) - 1)
    fully_shard(transformer, mesh=mesh, mp_policy=policy)
