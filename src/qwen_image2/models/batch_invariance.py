"""Batch invariance: a request denoised in a batch with others gives the same bits as denoised alone.

Two things break it on a stock transformer (measured on CPU, float32):

1. Every GEMM's result depends on its row count M, because BLAS picks a kernel (and a reduction order) per
   M, and which M switches kernels differs from CPU to CPU. The per-sample embedding rows (timestep
   embedder, modulation, output norm) run at M = B (+1 for the t = 0 row of a causal-condition model); the
   token GEMMs (projections, MLPs) at M = B·L, which with the KV cache is only the target's tokens (8 at
   64x32, where a batch of two already takes another kernel than one sample). Attention and the norms
   are batch invariant.
2. Right-padding a prompt to the batch's longest. The padding is masked out of attention, but 2.1's rotary
   positions still count it: the target image's frame index is the number of encoder tokens before it, so
   padding P tokens moves the image P frames away from its prompt. The image changes (slightly on a
   trained model, up to 1/255 on the demo model; visibly on a random one), so prompts of different lengths
   cannot share a batch without changing what each would be alone.

`make_batch_invariant` computes each embedding row with exactly the rows it has alone (its own row, plus
the shared t = 0 row) and each sample's token GEMMs at its own M = L, so a batch of one is untouched
(bit-equal to stock diffusers). Per-sample token GEMMs cost nothing measurable on CPU: the demo model
denoising a batch of 8 at 128 px took 0.74 s a step with them and 0.82 s without, a batch of 4 at 256 px
1.64 and 1.69 s (2-core Xeon, float32, best of three). Requests then batch exactly when their encoded prompts have the same length. `pad_to_bucket` trades that exactness for more
batching: every prompt, alone or batched, is padded to a multiple of a bucket (so it is the same image
either way, but not stock diffusers' image of that prompt).
"""

import torch
from torch import nn

from qwen_image2.models.conditioning import Conditions


def pad_to_bucket(conditions: Conditions, bucket: int) -> Conditions:
    """Right-padded to the next multiple of `bucket` tokens, always with a mask (an all-ones mask and no
    mask run different attention paths)."""
    length = -(-conditions.embeds.shape[1] // bucket) * bucket
    if conditions.mask is None:
        ones = torch.ones(conditions.embeds.shape[:2], dtype=torch.long, device=conditions.embeds.device)
        conditions = Conditions(conditions.embeds, ones, conditions.image_pad_mask)
    return conditions.pad_to(length)


def _rowwise(linear: nn.Linear, shared_last_row: bool):
    """`linear.forward` computing each sample's embedding row (B, C) as a batch of one would: alone, or with
    the shared last row (the t = 0 row that a causal-condition transformer appends to the timesteps)."""
    forward = linear.forward
    alone_rows = 2 if shared_last_row else 1

    def rowwise_forward(x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[0] <= alone_rows:
            return forward(x)
        if not shared_last_row:
            return torch.cat([forward(x[i : i + 1]) for i in range(x.shape[0])])
        last = x[-1:]
        rows = [forward(torch.cat([x[i : i + 1], last]))[:1] for i in range(x.shape[0] - 1)]
        return torch.cat([*rows, forward(torch.cat([x[:1], last]))[1:]])

    return rowwise_forward


def _samplewise(linear: nn.Linear):
    """`linear.forward` running one GEMM per sample of a token input (B, L, C), at the M = L it has alone."""
    forward = linear.forward

    def samplewise_forward(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3 and x.shape[0] > 1:
            return torch.cat([forward(sample) for sample in x.split(1)])
        return forward(x)

    return samplewise_forward


def make_batch_invariant(transformer) -> None:
    """Install row-by-row embedding GEMMs and per-sample token GEMMs on a `QwenImage21Transformer2DModel`
    (in place, idempotent)."""
    if getattr(transformer, "_batch_invariant", False):
        return
    shared = bool(transformer.config.causal_condition)
    embedder = transformer.time_text_embed.timestep_embedder
    modulation = [module for module in transformer.modulation if isinstance(module, nn.Linear)]
    rows = [embedder.linear_1, embedder.linear_2, *modulation, transformer.norm_out.linear]
    for linear in rows:
        linear.forward = _rowwise(linear, shared)
    row_ids = {id(linear) for linear in rows}
    for linear in transformer.modules():
        if isinstance(linear, nn.Linear) and id(linear) not in row_ids:
            linear.forward = _samplewise(linear)
    transformer._batch_invariant = True
