"""One line naming the machine a measurement ran on: benchmarks print it beside every figure."""

import os
import platform
from pathlib import Path

import torch


def describe(device: str | torch.device = "cpu") -> str:
    """'NVIDIA H100 80GB HBM3 (79 GiB)' on a GPU; on a CPU its model name, cores and torch's threads."""
    if torch.device(device).type == "cuda":
        memory = torch.cuda.get_device_properties(0).total_memory / 2**30
        return f"{torch.cuda.get_device_name()} ({memory:.0f} GiB)"
    cpuinfo = Path("/proc/cpuinfo")
    names = [
        line.split(":", 1)[1].strip()
        for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
        if line.startswith("model name")
    ]
    name = names[0] if names else platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
