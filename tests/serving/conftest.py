"""Fixtures for the server tests: the bundled demo model loaded once, servers on loopback ports.

`live_server(...)` runs the real app under uvicorn in a thread of this process (the demo model is loaded
once per session); `server_process(...)` runs `qwen-image2 serve` as its own process (for memory and
crash checks). Both yield the base URL, e.g. http://127.0.0.1:PORT.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from contextlib import ExitStack

import pytest
from serving_helpers import DEMO, wait_healthy

from web_helpers import free_port, served


@pytest.fixture(scope="session")
def demo_workers():
    """One CPU worker holding the demo model (and the random tiny preset, for cheap requests)."""
    from qwen_image2.serving.engine import load_workers

    return load_workers({"demo": str(DEMO), "tiny": "tiny"}, ["cpu"], "float32")


@pytest.fixture
def live_server(demo_workers, tmp_path):
    """A factory: `live_server(**ServeSettings fields)` -> base URL of a running app (stopped after the test;
    `live_server.app` is the last one started). Defaults: both models, a SQLite store in tmp_path, quality
    "high" = 20 steps."""
    from qwen_image2.serving.app import build_app
    from qwen_image2.serving.settings import ServeSettings

    with ExitStack() as running:
        count = itertools.count()

        def start(workers=None, **fields):
            fields.setdefault("models", {"demo": str(DEMO), "tiny": "tiny"})
            fields.setdefault("db_url", f"sqlite:///{tmp_path / f'serve{next(count)}.db'}")
            fields.setdefault("steps", 20)
            start.app = build_app(ServeSettings(**fields), workers or demo_workers)
            return running.enter_context(served(start.app))

        yield start


@pytest.fixture
def server_process(tmp_path):
    """A factory: `server_process(*serve args)` -> (base URL, Popen) of `qwen-image2 serve` in its own
    process; terminated after the test."""
    processes = []

    def start(*args: str):
        port = free_port()
        command = [sys.executable, "-m", "qwen_image2", "serve", "--port", str(port), *args]
        if "--db" not in args:
            command += ["--db", f"sqlite:///{tmp_path / 'serve.db'}"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process=process)
        return url, process

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
