"""Kill -9 and resume for the enhancer's trainers: the same command run whole, and run, killed at its first
checkpoint and rerun; the two exported models must be bit-equal."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from qwen_image2.enhancer.trainer_run import last_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def trainer_command(trainer: str, recipe: Path, output: Path) -> list[str]:
    return [sys.executable, "-m", "qwen_image2", "enhancer", trainer, str(recipe), f"output_dir={output}"]


def assert_resume_after_kill_equals_whole_run(trainer: str, recipe: Path, tmp_path: Path) -> Path:
    """Returns the resumed run's folder (for the caller's checks of its log)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    run = [trainer_command(trainer, recipe, out) for out in (whole, broken)]
    subprocess.run(run[0], env=env, check=True, capture_output=True, timeout=300)

    process = subprocess.Popen(run[1], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while last_checkpoint(broken / "checkpoints") is None:
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (broken / "model").exists(), "the run finished before it was killed"

    subprocess.run(run[1], env=env, check=True, capture_output=True, timeout=300)
    ours, reference = (load_file(out / "model" / "model.safetensors") for out in (broken, whole))
    assert ours.keys() == reference.keys()
    assert all(torch.equal(ours[k], reference[k]) for k in ours)
    return broken
