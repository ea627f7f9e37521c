"""Run the real `qwen-image2` command in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, launcher: tuple[str, ...] = (), **kwargs) -> subprocess.CompletedProcess:
    """The real `qwen-image2` in a subprocess (optionally under torchrun)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    command = (
        [*launcher, "-m", "qwen_image2", *args] if launcher else [sys.executable, "-m", "qwen_image2", *args]
    )
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600, **kwargs)
