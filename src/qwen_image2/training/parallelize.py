"""Parallelism for the DiT, in one fixed order: activation checkpointing → compile per block →
`fully_shard` per transformer block (the last one kept unsharded after forward) → the root.

One mixed-precision policy. Model code never imports FSDP; this file is the only place that does.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from qwen_image2.training.config import Parallel


def init_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device) — from torchrun's environment, or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def exit_distributed_worker() -> None:
    """End a torchrun worker whose run has finished and written everything, skipping interpreter
    finalization: gloo's worker threads can still hold work objects whose tensors are freed while the
    interpreter is torn down, which aborts the process (SIGABRT, "terminate called without an active
    exception") now and then after a run that succeeded. A single process returns normally."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


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
