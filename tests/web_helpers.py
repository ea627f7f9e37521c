"""What every web test shares: required services, Debian's Chromium, and an app served on loopback.

(A module of its own at the top of the test tree, importable as `web_helpers` from every folder.)
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_ENV = "QWEN_IMAGE2_TEST_POSTGRES_URL"
CHROMIUM = "/usr/bin/chromium"
# The machine's probe flags: without the background-networking ones Chromium keeps dialling Google's
# hosts, which this closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_service(what: str) -> None:
    """Skip locally, fail in CI (QWEN_IMAGE2_REQUIRE_SERVICES=1, set by `.ci/run`), when a service is missing."""
    if os.environ.get("QWEN_IMAGE2_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} is required in CI (QWEN_IMAGE2_REQUIRE_SERVICES=1) but missing")
    pytest.skip(f"{what} not available; `.ci/run` provides it")


def postgres_url() -> str:
    """The CI PostgreSQL database's URL (skips or fails as `require_service` says when unset)."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        require_service(f"PostgreSQL (set {POSTGRES_ENV})")
    return url


def require_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        require_service(f"Debian chromium at {CHROMIUM}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(app, **config) -> Iterator[str]:
    """`app` under uvicorn in a thread of this process on a free loopback port; yields its base URL and
    stops the server on leaving."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def empty_store(kind: str, sqlite_file, build_engine, metadata) -> str:
    """The URL of an empty store: a fresh SQLite file, or the CI PostgreSQL database with `metadata`'s
    tables dropped and made again (through `build_engine`, so added columns are there too)."""
    if kind == "sqlite":
        return f"sqlite:///{sqlite_file}"
    url = postgres_url()
    engine = build_engine(url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    engine.dispose()
    return url


@contextmanager
def chromium_context():
    """A headless Debian Chromium context (1280x900), closed on leaving."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_context(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()
