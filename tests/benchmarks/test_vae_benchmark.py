"""The throughput benchmark's code paths (GPU mode's bf16 autocast or bf16 weights, channels-last) at toy size on CPU."""

import importlib.util
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "vae_throughput.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("vae_throughput", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NAMES = {"fp32": "fp32", "bf16": "bf16 autocast", "bf16-weights": "bf16 weights"}


@pytest.mark.parametrize("precision", list(NAMES))
def test_benchmark_reports_speedup_and_stays_within_tolerance_of_fp32_stock(benchmark, precision):
    args = ["--size", "32", "--images", "2", "--batch-size", "2", "--repeats", "1", "--precision", precision]
    result = benchmark.main(args)
    assert result["within_tolerance"], result
    assert result["ours"]["precision"] == NAMES[precision]
    # speedup is stock time over ours: the ratio of the two throughputs (each rounded to 3 decimals)
    ratio = result["ours_images_per_s"] / result["stock_images_per_s"]
    assert result["speedup"] == pytest.approx(ratio, rel=0.01, abs=2e-3)
    assert "cores" in result["machine"]
