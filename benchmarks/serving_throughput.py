"""Images/s and latency of `qwen-image2 serve` under concurrent clients: continuous batching against
`--max-batch 1`, same model, same requests, same run.

Two servers run as their own processes on free loopback ports, the bundled demo model on the CPU (128x128,
20 steps, guidance 2 against the empty prompt, as `make demo`): one batching up to `--max-batch` images,
one with `--max-batch 1`. At each concurrency C, after a warm-up, C clients each send
`--requests-per-client` requests back to back (prompts drawn from PROMPTS, of varying lengths; seeds
random but seeded; the same sequence for both servers), taking turns server by server at each C so that
load from other processes falls on both alike. Per server and C: images/s over the phase's wall time,
p50/p99 latency of a request (send to answer), and the batches the engine ran (its /metrics histogram
qwen_image2_batch_images). `--text-bucket N` is passed to both servers (default 1, theirs: only prompts
of one encoded length batch; N pads prompts to multiples of N tokens so that more do). With
`--preset-gpu`, or when CUDA is available and `--model-path` is given, the same comparison then runs on
the model folder `--model-path` (e.g. Qwen-Image-2.1) on the GPU at 1024x1024 (its own pair of servers,
started once the demo's are stopped).

  python benchmarks/serving_throughput.py                       # demo model, C = 1, 8, 32
  python benchmarks/serving_throughput.py --concurrency 8 --requests-per-client 4
  python benchmarks/serving_throughput.py --text-bucket 64     # padded prompts: more of them batch
  python benchmarks/serving_throughput.py --preset-gpu --model-path /models/Qwen-Image-2.1

Prints one JSON object naming the machine (`--out FILE` also writes it). The goal: at concurrency 8 on the
2-core CPU, batching serves >= 2x the images/s of --max-batch 1, with p99 latency at most 1.5x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import torch

from qwen_image2.machine import describe

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "checkpoints" / "tiny-demo"
GOAL = {"concurrency": 8, "images_per_s_ratio_at_least": 2.0, "p99_ratio_at_most": 1.5}

# What people ask an image API for: signs, posters, labels, scenes; from a few words to a paragraph.
PROMPTS = [
    'A poster that reads "CAT" in black bold monospaced letters, left-aligned on a flat white background.',
    "A red stop sign.",
    'A wooden sign that reads "OPEN" hanging on a bakery door.',
    "A neon sign in a rainy alley at night.",
    'A coffee shop chalkboard menu that reads "LATTE 3" in white chalk handwriting.',
    "A lighthouse on a cliff at sunset, oil painting.",
    'A concert poster for "THE MOTHS" with a large moth in orange and teal, screen-printed look.',
    "A bowl of ramen, top view.",
    'A street sign that reads "MAIN ST" under a blue sky.',
    "A cat sleeping on a stack of books beside a window, soft morning light, film photo.",
    'A movie poster titled "DEEP BLUE" with a diver silhouette against glowing water, bold sans-serif title '
    "at the top and small credits at the bottom.",
    'A hand-lettered birthday card that says "HAPPY 30TH" surrounded by confetti.',
    "A minimalist logo of a mountain and a sun.",
    'A warning sign that reads "WET FLOOR" on a yellow plastic stand in a shopping mall.',
    "An isometric illustration of a tiny city block with a park, a library and a tram stop.",
    'A book cover: "THE QUIET ROOM" in serif capitals over a photo of an empty chair.',
    "A watercolor fox in the snow.",
    'A shop window decal that reads "SALE 50%" in red, seen from the street with reflections of passers-by '
    "and parked bicycles, late afternoon.",
    'A product label for a jar of honey that reads "WILDFLOWER HONEY 500 g", kraft paper, black ink.',
    "A train station at dawn with fog over the tracks and a single red lamp.",
]


@dataclass
class Server:
    name: str
    model: str
    max_batch: int
    url: str
    process: subprocess.Popen
    log: Path


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    name, model_spec, device, max_batch, max_queue, steps, text_bucket, workdir: Path, env
) -> Server:
    port = free_port()
    log = workdir / f"{name}.log"
    command = [
        sys.executable, "-m", "qwen_image2", "serve",
        "--model", model_spec, "--device", device, "--port", str(port),
        "--max-batch", str(max_batch), "--max-queue", str(max_queue), "--steps", str(steps),
        "--text-bucket", str(text_bucket), "--timeout", "3600",
        "--db", f"sqlite:///{workdir / f'{name}.db'}",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return Server(name, model_spec.partition("=")[0], max_batch, f"http://127.0.0.1:{port}", process, log)


def wait_ready(server: Server, seconds: float) -> None:
    """Until /health answers 200; a clear error (with the server's last output) if it exits or never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(
                f"server {server.name!r} exited with code {server.process.returncode} before it was ready:\n"
                + tail
            )
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    tail = server.log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"server {server.name!r} was not ready after {seconds:.0f} s:\n{tail}")


def stop(servers: list[Server]) -> None:
    for server in servers:
        if server.process.poll() is None:
            server.process.terminate()
    for server in servers:
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def batch_histogram(url: str) -> dict[str, float]:
    """The engine's qwen_image2_batch_images histogram: cumulative bucket counts, sum and count."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = {}
    for line in text.splitlines():
        match = re.match(r'qwen_image2_batch_images_(bucket\{le="([^"]+)"\}|sum|count) (\S+)', line)
        if match:
            found[match.group(2) or match.group(1)] = float(match.group(3))
    return found


def batch_stats(before: dict[str, float], after: dict[str, float]) -> dict:
    """Batches run between two readings of the histogram: their count, mean size, and how many of each size
    range (a bucket `le` holds the batches of at most that many images and more than the previous one)."""
    count = after["count"] - before["count"]
    sizes, previous = {}, 0.0
    for le in sorted((k for k in after if k not in ("sum", "count", "+Inf")), key=float):
        cumulative = after[le] - before.get(le, 0.0)
        if cumulative - previous:
            sizes[f"<={float(le):g}"] = int(cumulative - previous)
        previous = cumulative
    mean = (after["sum"] - before["sum"]) / count if count else None
    return {
        "batches": int(count),
        "mean_batch_images": None if mean is None else round(mean, 2),
        "sizes": sizes,
    }


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def prompt_tokens(model: Path, text_bucket: int) -> dict | None:
    """How the prompts spread over token lengths (what exact batching, --text-bucket 1, must match)."""
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model / "processor")
    except Exception:  # a model folder without a processor/ tokenizer: not worth failing the run
        return None
    lengths = [len(tokenizer(prompt).input_ids) for prompt in PROMPTS]
    return {
        "min": min(lengths),
        "max": max(lengths),
        "distinct_lengths": len(set(lengths)),
        "distinct_buckets": len({-(-n // text_bucket) for n in lengths}),
    }


def requests_per_client(concurrency: int) -> int:
    """The default: about 96 timed requests at each concurrency, at least 4 from each client."""
    return max(4, math.ceil(96 / concurrency))


def workload(seed: int, concurrency: int, per_client: int) -> list[list[tuple[str, int]]]:
    """Each client's (prompt, seed) sequence: random, but the same for every server at one concurrency."""
    rng = random.Random(f"{seed}-{concurrency}")
    return [
        [(rng.choice(PROMPTS), rng.randrange(2**31)) for _ in range(per_client)] for _ in range(concurrency)
    ]


async def send(client: httpx.AsyncClient, server: Server, body: dict) -> float:
    start = time.perf_counter()
    response = await client.post(f"{server.url}/v1/images/generations", json={"model": server.model, **body})
    seconds = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"{server.name}: HTTP {response.status_code}: {response.text[:500]}")
    if len(response.json()["data"]) != body.get("n", 1):
        raise RuntimeError(f"{server.name}: wrong number of images in {response.text[:200]}")
    return seconds


async def phase(
    server: Server, requests: list[list[tuple[str, int]]], common: dict
) -> tuple[float, list[float]]:
    """Every client sends its requests back to back; (wall seconds, each request's latency)."""
    limits = httpx.Limits(max_connections=len(requests) + 4, max_keepalive_connections=len(requests) + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(3600.0), limits=limits) as client:

        async def run_client(sequence):
            return [await send(client, server, {**common, "prompt": p, "seed": s}) for p, s in sequence]

        start = time.perf_counter()
        latencies = await asyncio.gather(*(run_client(sequence) for sequence in requests))
        return time.perf_counter() - start, [seconds for client in latencies for seconds in client]


def measure(server: Server, concurrency: int, per_client: int, common: dict, seed: int) -> dict:
    # Warm-up: one request per client up to a full batch, untimed (its batches are not counted either).
    warm = workload(seed + 1, min(concurrency, max(server.max_batch, 1)), 1)
    asyncio.run(phase(server, warm, common))
    before = batch_histogram(server.url)
    wall, latencies = asyncio.run(phase(server, workload(seed, concurrency, per_client), common))
    after = batch_histogram(server.url)
    return {
        "images_per_s": round(len(latencies) / wall, 3),
        "p50_s": round(percentile(latencies, 50), 3),
        "p99_s": round(percentile(latencies, 99), 3),
        "mean_s": round(sum(latencies) / len(latencies), 3),
        "requests": len(latencies),
        "wall_s": round(wall, 2),
        **batch_stats(before, after),
    }


def ratios(batched: dict, unbatched: dict) -> dict:
    return {
        c: {
            "images_per_s": round(batched[c]["images_per_s"] / unbatched[c]["images_per_s"], 2),
            "p99": round(batched[c]["p99_s"] / unbatched[c]["p99_s"], 2),
        }
        for c in batched
    }


def compare(setup: dict, args, workdir: Path, env: dict) -> dict:
    """Start the setup's batched and unbatched servers (stopped at the end, whatever happens), and measure
    each concurrency, the two servers taking turns."""
    servers: list[Server] = []
    try:
        queue = max(64, 2 * max(args.concurrency))  # never a 429: every client's request waits its turn
        for kind, max_batch in (("batched", args.max_batch), ("unbatched", 1)):
            name = f"{setup['name']}-{kind}"
            servers.append(
                start_server(
                    name,
                    setup["spec"],
                    setup["device"],
                    max_batch,
                    queue,
                    setup["steps"],
                    args.text_bucket,
                    workdir,
                    env,
                )
            )
        for server in servers:
            wait_ready(server, args.start_timeout)
        common = {
            "size": f"{setup['size']}x{setup['size']}",
            "num_inference_steps": setup["steps"],
            "guidance_scale": args.guidance,
            "response_format": "b64_json",
        }
        figures = {server.name: {} for server in servers}
        for concurrency in args.concurrency:
            per_client = args.requests_per_client or requests_per_client(concurrency)
            for server in servers:
                result = measure(server, concurrency, per_client, common, args.seed)
                figures[server.name][str(concurrency)] = result
                print(f"{server.name} C={concurrency}: {result}", file=sys.stderr)
        batched, unbatched = (figures[server.name] for server in servers)
        return {
            "model": setup["spec"],
            "device": setup["device"],
            **{k: v for k, v in common.items() if k != "response_format"},
            "batched": {"max_batch": args.max_batch, "concurrency": batched},
            "unbatched": {"max_batch": 1, "concurrency": unbatched},
            "batched_over_unbatched": ratios(batched, unbatched),
        }
    finally:
        stop(servers)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(DEMO), help="the CPU model folder (default: the demo model)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=2.0, help="true CFG against the empty prompt")
    parser.add_argument("--max-batch", type=int, default=8, help="of the batching server")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--requests-per-client", type=int, default=0, help="default: max(4, ceil(96 / concurrency))"
    )
    parser.add_argument(
        "--text-bucket",
        type=int,
        default=1,
        help="the servers' --text-bucket (1, their default: only prompts of one encoded length batch)",
    )
    parser.add_argument("--seed", type=int, default=0, help="of the prompt and seed sequences")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads of the servers (default torch's)"
    )
    parser.add_argument("--preset-gpu", action="store_true", help="also the --model-path model on the GPU")
    parser.add_argument(
        "--model-path", default=None, help="a Qwen-Image-2.1 diffusers folder, for the GPU run"
    )
    parser.add_argument("--gpu-device", default="cuda")
    parser.add_argument("--gpu-size", type=int, default=1024)
    parser.add_argument("--gpu-steps", type=int, default=40)
    parser.add_argument(
        "--start-timeout", type=float, default=600.0, help="seconds a server may take to load"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)

    gpu = args.preset_gpu or (torch.cuda.is_available() and args.model_path is not None)
    if gpu and args.model_path is None:
        parser.error("--preset-gpu needs --model-path (a Qwen-Image-2.1 diffusers folder)")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    if args.threads:
        torch.set_num_threads(args.threads)
        env["OMP_NUM_THREADS"] = str(args.threads)
    setups = [
        {
            "name": "demo",
            "spec": f"demo={args.model}",
            "device": "cpu",
            "size": args.size,
            "steps": args.steps,
        }
    ]
    if gpu:
        spec = f"qwen-image-2.1={args.model_path}"
        setups.append(
            {
                "name": "gpu",
                "spec": spec,
                "device": args.gpu_device,
                "size": args.gpu_size,
                "steps": args.gpu_steps,
            }
        )
    load_before = [round(x, 2) for x in os.getloadavg()]  # other work on the machine, before ours
    with tempfile.TemporaryDirectory(prefix="serving-throughput-") as workdir:
        runs = {setup["name"]: compare(setup, args, Path(workdir), env) for setup in setups}
    demo = runs["demo"]
    goal_c = str(GOAL["concurrency"])
    met = None
    if goal_c in demo["batched_over_unbatched"]:
        ratio = demo["batched_over_unbatched"][goal_c]
        met = (
            ratio["images_per_s"] >= GOAL["images_per_s_ratio_at_least"]
            and ratio["p99"] <= GOAL["p99_ratio_at_most"]
        )
    result = {
        "machine": describe("cpu"),
        "gpu": describe(args.gpu_device) if gpu and torch.cuda.is_available() else None,
        "load_average": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        "settings": {
            "max_batch": args.max_batch,
            "concurrency": args.concurrency,
            "requests_per_client": {
                str(c): args.requests_per_client or requests_per_client(c) for c in args.concurrency
            },
            "text_bucket": args.text_bucket,
            "prompts": len(PROMPTS),
            "prompt_tokens": prompt_tokens(Path(args.model), args.text_bucket),
            "seed": args.seed,
            "server_threads": args.threads or torch.get_num_threads(),
        },
        "runs": runs,
        "goal": {**GOAL, "met": met},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the servers are stopped (finally)
    main()
