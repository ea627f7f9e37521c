"""Fixtures for the server tests: the bundled demo model loaded once, servers on loopback ports.

`live_server(...)` runs the real app under uvicorn in a thread of this process (the demo model is loaded
once per session); `server_process(...)` runs `qwen-image2 serve` as its own process (for memory and
crash checks). Both yield the base URL, e.g. http://127.0.0.1:PORT.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from serving_helpers import DEMO, free_port, wait_healthy


@pytest.fixture(scope="session")
def demo_workers():
    """One CPU worker holding the demo model (and the random tiny preset, for cheap requests)."""
    from qwen_image2.serving.engine import load_workers

    return load_workers({"demo": str(DEMO), "tiny": "tiny"}, ["cpu"], "float32")


@pytest.fixture
def live_server(demo_workers, tmp_path):
    """A factory: `live_server(**ServeSettings fields)` -> base URL of a running app (stopped after the test).
    Defaults: both models, a SQLite store in tmp_path, quality "high" = 20 steps."""
    import uvicorn

    from qwen_image2.serving.app import build_app
    from qwen_image2.serving.settings import ServeSettings

    running = []

    def start(workers=None, **fields):
        fields.setdefault("models", {"demo": str(DEMO), "tiny": "tiny"})
        fields.setdefault("db_url", f"sqlite:///{tmp_path / f'serve{len(running)}.db'}")
        fields.setdefault("steps", 20)
        app = build_app(ServeSettings(**fields), workers or demo_workers)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        running.append((server, thread))
        url = f"http://127.0.0.1:{port}"
        start.app = app
        return url

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=30)


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
