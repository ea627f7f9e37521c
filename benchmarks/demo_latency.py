"""Seconds for one image from the demo model on the CPU, as `make demo` makes it: median of several runs.

The goal is at most 10 s per image on 2 CPU cores. Stock `diffusers.QwenImage21Pipeline` on the same
weights, prompt, seed, steps and guidance runs beside ours in the same process, turn about, for
reference; the two images must agree (max abs difference printed).

  python benchmarks/demo_latency.py        # checkpoints/tiny-demo, 128x128, 20 steps, guidance 2
  python benchmarks/demo_latency.py --model tiny-demo --runs 3     # random weights of the same shape

Prints one JSON object naming the machine.
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch
from diffusers import QwenImage21Pipeline

from qwen_image2.machine import describe
from qwen_image2.pipelines.qwen_image2 import QwenImage2Pipeline

PROMPT = (
    'A poster that reads "CAT" in black bold monospaced letters, left-aligned on a flat white background.'
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="checkpoints/tiny-demo")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=2.0, help="true CFG against an empty prompt")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    ours = QwenImage2Pipeline.from_model(args.model)
    load_seconds = time.perf_counter() - start
    stock = QwenImage21Pipeline(**ours.as_components().pipeline_parts())

    # The two pipelines name the guidance scale differently; both guide only when given a negative prompt.
    guidance = {"ours": {"guidance_scale": args.guidance}, "stock": {"true_cfg_scale": args.guidance}}

    def generate(name, pipe):
        generator = torch.Generator("cpu").manual_seed(0)
        kwargs = dict(height=args.size, width=args.size, num_inference_steps=args.steps, output_type="np")
        negative = "" if args.guidance > 1 else None
        return pipe(PROMPT, negative_prompt=negative, generator=generator, **kwargs, **guidance[name]).images

    seconds = {"ours": [], "stock": []}
    images = {name: generate(name, pipe) for name, pipe in (("ours", ours), ("stock", stock))}  # warm-up
    for _ in range(args.runs):
        for name, pipe in (("ours", ours), ("stock", stock)):
            start = time.perf_counter()
            images[name] = generate(name, pipe)
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print(
        json.dumps(
            {
                "machine": describe("cpu"),
                "model": args.model,
                "size": args.size,
                "steps": args.steps,
                "guidance": args.guidance,
                "runs": args.runs,
                "load_seconds": round(load_seconds, 2),
                "median_seconds": {name: round(value, 3) for name, value in median.items()},
                "seconds": {name: [round(v, 3) for v in values] for name, values in seconds.items()},
                "stock_over_ours": round(median["stock"] / median["ours"], 2),
                "max_abs_difference": float(
                    np.abs(np.asarray(images["ours"]) - np.asarray(images["stock"])).max()
                ),
                "goal_seconds": 10.0,
                "meets_goal": median["ours"] <= 10.0,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
