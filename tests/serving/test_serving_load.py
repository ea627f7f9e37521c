"""200 concurrent generations against `qwen-image2 serve` in its own process (the demo model, 4 steps, a
queue of 16, batches of up to 8): every request is answered, 200 with its image or 429 with Retry-After,
none hangs, at least a full queue's worth is served, and the server's peak memory stays bounded. The peak
RSS (VmHWM) and the p50/p99 latency of the 200s are printed (-s) and written to tmp_path/load.json.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from pathlib import Path

import httpx
from PIL import Image

REQUESTS = 200
MAX_QUEUE = 16
REQUEST_TIMEOUT_S = 120
MAX_RSS = 4 * 2**30


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _storm(url: str) -> list[tuple[int, float, httpx.Response]]:
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=REQUEST_TIMEOUT_S) as client:

        async def one(i: int):
            body = {"model": "demo", "prompt": f"a poster that reads {i}", "size": "128x128", "seed": i}
            started = time.monotonic()
            response = await asyncio.wait_for(
                client.post("/v1/images/generations", json=body), REQUEST_TIMEOUT_S + 5
            )
            return i, time.monotonic() - started, response

        return await asyncio.gather(*(one(i) for i in range(REQUESTS)))


def test_200_concurrent_requests_are_all_answered(server_process, tmp_path):
    url, process = server_process(
        "--model", "demo=checkpoints/tiny-demo", "--steps", "4", "--max-queue", str(MAX_QUEUE), "--max-batch", "8",
        "--device", "cpu",
    )  # fmt: skip
    idle_rss = _kib(process.pid, "VmRSS")
    started = time.monotonic()
    answers = asyncio.run(_storm(url))
    wall_s = time.monotonic() - started
    peak_rss = _kib(process.pid, "VmHWM") * 1024

    statuses = [response.status_code for _, _, response in answers]
    assert set(statuses) <= {200, 429}, sorted(set(statuses))
    ok = [(i, latency, response) for i, latency, response in answers if response.status_code == 200]
    limited = [response for _, _, response in answers if response.status_code == 429]
    for response in limited:
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["error"]["code"] == "queue_full"
    for _, _, response in ok:
        (item,) = response.json()["data"]
        assert Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))).size == (128, 128)
    assert len(ok) >= MAX_QUEUE

    latencies = [latency for _, latency, _ in ok]
    report = {
        "requests": REQUESTS,
        "ok": len(ok),
        "rate_limited": len(limited),
        "wall_s": round(wall_s, 2),
        "p50_s": round(_percentile(latencies, 0.50), 3),
        "p99_s": round(_percentile(latencies, 0.99), 3),
        "max_s": round(max(latencies), 3),
        "idle_rss_mib": round(idle_rss / 1024, 1),
        "peak_rss_mib": round(peak_rss / 2**20, 1),
    }
    (tmp_path / "load.json").write_text(json.dumps(report, indent=2))
    print(f"\nload: {json.dumps(report)}")
    assert peak_rss < MAX_RSS

    # Still healthy, nothing left behind, and serving.
    health = httpx.get(f"{url}/health", timeout=10).json()
    assert (health["status"], health["queue"], health["running"]) == ("ok", 0, 0)
    after = httpx.post(
        f"{url}/v1/images/generations", json={"model": "demo", "prompt": "a red square"}, timeout=60
    )
    assert after.status_code == 200, after.text
    assert process.poll() is None
