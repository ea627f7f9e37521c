"""Encode throughput for latent caching: ours vs the stock diffusers encode loop, same model, same run.

Stock: `vae.encode(x.unsqueeze(2)).latent_dist.mode()` one image at a time in the VAE's dtype, as a naive
caching loop over a dataset calls it. Ours (`models/vae_direct.encode_for_cache`, which `qwen-image2
cache` calls on batches of same-size images): batched, the encoder called without the video feature
cache, channels-last, on GPU bf16 (autocast, or the VAE cast to bf16 as `cache --dtype auto` loads it),
optionally torch.compile (`cache --compile`). Outputs are checked against the fp32 stock result (bf16
tolerance on GPU).

  python benchmarks/vae_throughput.py                       # CPU, tiny preset, 256x256
  python benchmarks/vae_throughput.py --device cuda         # GPU, qwen-image-2.1 VAE, 1024x1024, bf16
  python benchmarks/vae_throughput.py --device cuda --precision bf16-weights --compile
  python benchmarks/vae_throughput.py --precision bf16 --size 64   # the GPU path's bf16 check, on CPU

Prints one JSON object naming the machine.
"""

import argparse
import copy
import json
import time

import torch

from qwen_image2.machine import describe
from qwen_image2.models.presets import build_vae, load_preset
from qwen_image2.models.vae_direct import encode_for_cache


def interleaved(functions: dict, repeats: int, device: str) -> tuple[dict, dict]:
    """Best wall-clock seconds of each function over `repeats` rounds (after a warm-up), taking turns in
    every round so that load from other processes falls on both alike; and each one's last result."""
    results = {name: function() for name, function in functions.items()}
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, function in functions.items():
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            results[name] = function()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default=None, help="default: tiny on CPU, qwen-image-2.1 on GPU")
    parser.add_argument("--size", type=int, default=None, help="default: 256 on CPU, 1024 on GPU")
    parser.add_argument("--images", type=int, default=8, help="images per timed pass")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder (ours)")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "bf16-weights"),
        default="auto",
        help="ours; bf16: fp32 weights under bf16 autocast; bf16-weights: the VAE cast to bf16, as "
        "`qwen-image2 cache` loads it on a GPU (--dtype auto); auto: bf16 on GPU, else fp32",
    )
    parser.add_argument(
        "--channels-last", choices=("on", "off"), default="on", help="ours in channels-last memory format"
    )
    args = parser.parse_args(argv)
    gpu = args.device.startswith("cuda")
    preset = args.preset or ("qwen-image-2.1" if gpu else "tiny")
    size = args.size or (1024 if gpu else 256)

    torch.manual_seed(0)
    vae = build_vae(load_preset(preset)["vae"]).to(args.device).eval()
    channels = vae.config.in_channels
    pixels = torch.rand(args.images, channels, size, size, device=args.device) * 2 - 1

    @torch.no_grad()
    def stock():
        return torch.cat([vae.encode(x[None].unsqueeze(2)).latent_dist.mode()[:, :, 0] for x in pixels])

    fast = copy.deepcopy(vae)
    channels_last = args.channels_last == "on"
    if channels_last:
        fast.to(memory_format=torch.channels_last)
    if args.compile:
        fast.encoder = torch.compile(fast.encoder)
    bf16 = args.precision == "bf16" or (args.precision == "auto" and gpu)
    autocast = torch.bfloat16 if bf16 else None
    bf16_weights = args.precision == "bf16-weights"
    if bf16_weights:
        fast.to(torch.bfloat16)
    inputs = pixels.to(torch.bfloat16) if bf16_weights else pixels

    def ours():
        return torch.cat(
            [
                encode_for_cache(fast, chunk, autocast, channels_last)
                for chunk in inputs.split(args.batch_size)
            ]
        )

    seconds, results = interleaved({"stock": stock, "ours": ours}, args.repeats, args.device)
    stock_seconds, ours_seconds = seconds["stock"], seconds["ours"]
    reference, latents = results["stock"], results["ours"]
    error = (latents.float() - reference.float()).abs().max().item()
    scale = reference.abs().max().item()
    # bf16 keeps 8 mantissa bits (relative step 2^-8 = 0.4%) and errors compound over the encoder's layers:
    # allow 2% of the latent's range (measured on CPU, tiny preset: 0.9%). fp32 differs only in sum order.
    low_precision = autocast is not None or bf16_weights
    tolerance = 0.02 * scale if low_precision else 1e-4 * max(scale, 1.0)
    result = {
        "benchmark": "vae_encode_throughput",
        "machine": describe(args.device),
        "torch": torch.__version__,
        "preset": preset,
        "size": size,
        "images": args.images,
        "batch_size": args.batch_size,
        "ours": {
            "precision": "bf16 weights" if bf16_weights else "bf16 autocast" if autocast else "fp32",
            "channels_last": channels_last,
            "compile": args.compile,
        },
        "stock_images_per_s": round(args.images / stock_seconds, 3),
        "ours_images_per_s": round(args.images / ours_seconds, 3),
        "speedup": round(stock_seconds / ours_seconds, 3),
        "max_abs_error_vs_fp32_stock": error,
        "latent_abs_max": scale,
        "within_tolerance": error <= tolerance,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
