"""The serving benchmark end to end at toy size: two real `qwen-image2 serve` processes (batched and
--max-batch 1) on the demo model, 2 steps, concurrency 1 and 2, and the JSON it prints and writes."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "serving_throughput.py"
FIGURES = {"images_per_s", "p50_s", "p99_s", "requests", "batches", "mean_batch_images"}


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("serving_throughput", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.mark.timeout(120)
def test_benchmark_measures_both_servers_at_each_concurrency(benchmark, tmp_path):
    out = tmp_path / "result.json"
    args = ["--concurrency", "1", "2", "--requests-per-client", "2", "--steps", "2", "--out", str(out)]
    result = benchmark.main(args)
    assert json.loads(out.read_text()) == result
    assert "cores" in result["machine"] and result["gpu"] is None
    assert result["settings"]["concurrency"] == [1, 2]
    demo = result["runs"]["demo"]
    assert demo["batched"]["max_batch"] == 8 and demo["unbatched"]["max_batch"] == 1
    for kind in ("batched", "unbatched"):
        for concurrency in ("1", "2"):
            figures = demo[kind]["concurrency"][concurrency]
            assert set(figures) >= FIGURES, figures
            assert figures["requests"] == 2 * int(concurrency)
            assert figures["images_per_s"] > 0 and 0 < figures["p50_s"] <= figures["p99_s"]
            # every timed image went through one of the engine's batches
            assert figures["mean_batch_images"] * figures["batches"] == pytest.approx(
                figures["requests"], abs=0.01 * figures["batches"]
            )
    # --max-batch 1 never batches
    assert demo["unbatched"]["concurrency"]["2"]["sizes"] == {"<=1": 2 * 2}
    ratio = demo["batched_over_unbatched"]["2"]
    batched, unbatched = demo["batched"]["concurrency"]["2"], demo["unbatched"]["concurrency"]["2"]
    assert ratio["images_per_s"] == pytest.approx(
        batched["images_per_s"] / unbatched["images_per_s"], abs=0.01
    )
    assert ratio["p99"] == pytest.approx(batched["p99_s"] / unbatched["p99_s"], abs=0.01)
    assert result["goal"]["met"] is None  # concurrency 8 was not run


def test_a_server_that_cannot_start_is_a_clear_error(benchmark, tmp_path):
    with pytest.raises(RuntimeError, match="exited with code"):
        benchmark.main(
            ["--model", str(tmp_path / "missing"), "--concurrency", "1", "--requests-per-client", "1"]
        )
