"""DiT training throughput: our training step vs a plain loop written as the diffusers training examples do.

Both train the same QwenImage21Transformer2DModel on the same random latent batches (the cache path: no
encoders in the loop). Ours adds the trainer's parallelism function (compile per block), the single-pass
flex block-causal attention, a fused optimizer and bf16 autocast; the baseline is fp32 weights under
autocast, the default attention processor, a foreach AdamW.

  CPU, tiny preset:  python benchmarks/train_throughput.py --device cpu --preset tiny --size 128 --batch 4
  GPU, 1.3B config:  python benchmarks/train_throughput.py --device cuda --layers 24 --size 1024 --batch 4

Prints JSON: tokens/s of each, the ratio, model FLOPs utilisation on a known GPU, and the machine.
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F
from diffusers import QwenImage21Transformer2DModel
from diffusers.models.transformers.transformer_qwenimage21 import QwenImage21FlexAttnProcessor

from qwen_image2.diffusion.loss import flow_matching_loss
from qwen_image2.machine import describe
from qwen_image2.models.conditioning import Conditions
from qwen_image2.models.encoding import LatentBatch
from qwen_image2.models.presets import load_preset
from qwen_image2.training.dit.config import Parallel
from qwen_image2.training.parallelize import apply_parallelism

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense tensor-core FLOP/s


def model_config(args) -> dict:
    config = dict(load_preset(args.preset)["transformer"])
    if args.layers:  # a 1-2B member of the family: D = 2048, 16 heads of 128
        config.update(
            num_layers=args.layers, num_attention_heads=16, attention_head_dim=128, context_in_dim=4096
        )
    return config


def make_batch(config: dict, args, device) -> LatentBatch:
    grid = (args.size // 16, args.size // 16)
    tokens, text = grid[0] * grid[1], args.text_tokens
    generator = torch.Generator().manual_seed(0)
    embeds = torch.randn(args.batch, text, config["context_in_dim"], generator=generator)
    slots = torch.zeros(args.batch, text, dtype=torch.bool)
    target = torch.randn(args.batch, tokens, config["in_channels"], generator=generator)
    return LatentBatch(target.to(device), grid, Conditions(embeds.to(device), None, slots.to(device)))


def flops_per_step(transformer, batch: LatentBatch) -> float:
    """3 x forward: 2 FLOPs per weight per token for the matmuls, plus QK^T and AV over the joint sequence."""
    tokens = batch.target.shape[1] + batch.conditions.embeds.shape[1]
    weights = sum(p.numel() for n, p in transformer.named_parameters() if p.dim() == 2)
    width = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    attention = 4 * tokens * tokens * width * transformer.config.num_layers
    return 3 * batch.target.shape[0] * (2 * weights * tokens + attention)


def baseline_step(transformer, optimizer, batch: LatentBatch, device) -> None:
    """As in diffusers' examples/*/train_*.py: noise, sigmas, forward under autocast, MSE, backward, step."""
    latents = batch.target
    noise = torch.randn_like(latents)
    sigmas = torch.sigmoid(torch.randn(latents.shape[0], device=device)).view(-1, 1, 1)
    noisy = (1 - sigmas) * latents + sigmas * noise
    slots = batch.conditions.image_pad_mask
    img_mask = torch.cat([slots, slots.new_ones(slots.shape[0], latents.shape[1] // 4)], dim=1)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        pred = transformer(
            hidden_states=noisy,
            encoder_hidden_states=batch.conditions.embeds,
            timestep=sigmas.flatten(),
            img_shapes=[[(1, *batch.target_grid)]] * latents.shape[0],
            img_mask=img_mask,
            return_dict=False,
        )[0][:, -latents.shape[1] :]
    loss = F.mse_loss(pred.float(), (noise - latents).float())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(transformer.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad()


def our_step(transformer, optimizer, batch: LatentBatch, device) -> None:
    sigmas = torch.sigmoid(torch.randn(batch.target.shape[0], device=device))
    noise = torch.randn_like(batch.target)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        loss = flow_matching_loss(transformer, batch, sigmas=sigmas, noise=noise)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(transformer.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure(step, transformer, optimizer, batch, device, args) -> float:
    for _ in range(args.warmup):
        step(transformer, optimizer, batch, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        step(transformer, optimizer, batch, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / args.steps


def build(config: dict, device, ours: bool, compile_blocks: bool):
    torch.manual_seed(0)
    transformer = QwenImage21Transformer2DModel(**config).to(device).train()
    if ours:
        if compile_blocks and device.type == "cuda":  # flex attention has no CPU backward
            transformer.set_attn_processor(QwenImage21FlexAttnProcessor())
        apply_parallelism(transformer, Parallel(compile=compile_blocks), world_size=1, device=device)
    fused = {"fused": True} if ours and device.type == "cuda" else {}
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=1e-5, weight_decay=1e-3, **fused)
    return transformer, optimizer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--layers", type=int, default=0, help="Use the 1-2B config with this many layers.")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--text-tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Compile blocks + flex attention (default: on for GPU, off for CPU).",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    compile_blocks = args.compile if args.compile is not None else device.type == "cuda"
    config = model_config(args)
    batch = make_batch(config, args, device)
    results = {}
    for name, ours, step in (("baseline", False, baseline_step), ("ours", True, our_step)):
        transformer, optimizer = build(config, device, ours, compile_blocks)
        seconds = measure(step, transformer, optimizer, batch, device, args)
        tokens = args.batch * batch.target.shape[1]
        results[name] = {
            "seconds_per_step": seconds,
            "tokens_per_s": tokens / seconds,
            "achieved_tflops": flops_per_step(transformer, batch) / seconds / 1e12,
        }
        del transformer, optimizer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    peak = next(
        (v for k, v in PEAK_BF16.items() if device.type == "cuda" and k in torch.cuda.get_device_name()), None
    )
    for result in results.values():
        result["mfu"] = result["achieved_tflops"] * 1e12 / peak if peak else None
    with torch.device("meta"):
        params = sum(p.numel() for p in QwenImage21Transformer2DModel(**config).parameters())
    print(
        json.dumps(
            {
                "machine": describe(device),
                "torch": torch.__version__,
                "size": args.size,
                "batch": args.batch,
                "layers": config["num_layers"],
                "params": params,
                "compile": compile_blocks,
                "speedup": results["baseline"]["seconds_per_step"] / results["ours"]["seconds_per_step"],
                **results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
