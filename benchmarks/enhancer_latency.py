"""Seconds for one rewrite by a local prompt enhancer on the CPU: median over held-out colloquial prompts.

The goal is at most 0.2 s per rewrite (greedy, the enhancer's default sampling) on 2 CPU cores with torch
pinned to 2 threads. Beside each `PromptEnhancer.rewrite` (chat template, generate, parse, rules) the
bare transformers `generate` on the same tokens runs in the same process, turn about: the difference is
what the enhancer adds around the model.

  python benchmarks/enhancer_latency.py                               # checkpoints/tiny-enhancer
  python benchmarks/enhancer_latency.py --enhancer runs/enhancer-grpo-tiny/model --prompts 50

Prints one JSON object naming the machine.
"""

import argparse
import json
import statistics
import time

import torch

from qwen_image2.enhancer.evaluation import colloquial_prompt_files
from qwen_image2.enhancer.loading import load_enhancer
from qwen_image2.enhancer.local import LocalBackend
from qwen_image2.enhancer.messages import build_messages
from qwen_image2.evaluation.text_rendering import load_prompts
from qwen_image2.machine import describe

GOAL_SECONDS = 0.2


def _bare_generate(backend: LocalBackend, prompt: str, max_new_tokens: int) -> int:
    """transformers alone: template, tokenize, greedy generate; returns the number of new tokens."""
    text = backend.tokenizer.apply_chat_template(
        build_messages(prompt, [], "t2i", False), add_generation_prompt=True, tokenize=False
    )
    inputs = backend.tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        output = backend.model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=backend.end_ids,
            pad_token_id=backend.pad_id,
        )
    return output.shape[1] - inputs["input_ids"].shape[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--enhancer", default="checkpoints/tiny-enhancer", help="a local causal-LM folder")
    parser.add_argument("--prompts", type=int, default=20, help="how many held-out T2I prompts to rewrite")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    enhancer = load_enhancer(args.enhancer)
    backend = enhancer.backend
    prompts = [entry.prompt for entry in load_prompts(colloquial_prompt_files()[0])][: args.prompts]
    max_new_tokens = enhancer.sampling["t2i"].max_new_tokens
    enhancer.rewrite(prompts[0])  # warm-up
    _bare_generate(backend, prompts[0], max_new_tokens)
    seconds = {"rewrite": [], "bare_generate": []}
    parsed, tokens = 0, []
    for prompt in prompts:
        start = time.perf_counter()
        rewrite = enhancer.rewrite(prompt)
        seconds["rewrite"].append(time.perf_counter() - start)
        parsed += rewrite.parse_ok
        start = time.perf_counter()
        tokens.append(_bare_generate(backend, prompt, max_new_tokens))
        seconds["bare_generate"].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    result = {
        "machine": describe("cpu"),
        "enhancer": args.enhancer,
        "prompts": len(prompts),
        "median_seconds": {name: round(value, 4) for name, value in median.items()},
        "p90_seconds": {
            name: round(sorted(values)[int(0.9 * (len(values) - 1))], 4) for name, values in seconds.items()
        },
        "rewrite_over_bare": round(median["rewrite"] / median["bare_generate"], 3),
        "mean_new_tokens": round(statistics.mean(tokens), 1),
        "ms_per_token": round(1000 * median["bare_generate"] / max(1.0, statistics.median(tokens)), 2),
        "parse_ok": round(parsed / len(prompts), 3),
        "goal_seconds": GOAL_SECONDS,
        "meets_goal": median["rewrite"] <= GOAL_SECONDS,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
