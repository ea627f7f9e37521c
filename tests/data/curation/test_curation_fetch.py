"""Images fetched by URL from a real local HTTP server: retries with back-off, and which failures a
rerun of the curation tries again."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from curation_corpus import CAPTION, png_bytes, textured

from qwen_image2.data.curation import RunSettings, curate
from qwen_image2.data.curation.fetch import FetchError, fetch_url

IMAGE = png_bytes(textured(7, 300, 280))


class Server:
    """Serves IMAGE at every path after `failures[path]` answers of `status[path]` (forever if None)."""

    def __init__(self) -> None:
        self.failures: dict[str, int | None] = {}
        self.status: dict[str, int] = {}
        self.body: dict[str, bytes] = {}
        self.requests: dict[str, list[float]] = defaultdict(list)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests[self.path].append(time.monotonic())
                left = server.failures.get(self.path, 0)
                if left is None or left > 0:
                    if left:
                        server.failures[self.path] = left - 1
                    self.send_error(server.status.get(self.path, 503))
                    return
                body = server.body.get(self.path, IMAGE)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def test_a_url_that_fails_twice_is_fetched_on_the_third_try_with_growing_delays(server):
    server.failures["/flaky.png"] = 2
    assert fetch_url(f"{server.url}/flaky.png", 10**8, attempts=3, first_delay_s=0.1) == IMAGE
    first, second, third = server.requests["/flaky.png"]
    assert second - first >= 0.1 and third - second >= 0.2  # exponential back-off


@pytest.mark.parametrize(("status", "retryable", "tries"), [(503, True, 3), (429, True, 3), (404, False, 1)])
def test_only_transient_http_failures_are_retried(server, status, retryable, tries):
    server.failures["/x.png"], server.status["/x.png"] = None, status
    with pytest.raises(FetchError) as failure:
        fetch_url(f"{server.url}/x.png", 10**8, attempts=3, first_delay_s=0.01)
    assert failure.value.retryable is retryable
    assert len(server.requests["/x.png"]) == tries
    assert str(status) in str(failure.value)


def test_a_refused_connection_is_retryable():
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]
    with pytest.raises(FetchError) as failure:
        fetch_url(f"http://127.0.0.1:{port}/x.png", 10**8, attempts=2, first_delay_s=0.01)
    assert failure.value.retryable


def test_a_rerun_refetches_transient_failures_only(server, tmp_path):
    server.failures["/flaky.png"] = 2
    server.failures["/down.png"] = None  # 503 for the whole first run
    server.failures["/gone.png"], server.status["/gone.png"] = None, 404
    server.body["/garbage.png"] = b"not an image"
    names = ["flaky", "down", "gone", "garbage"]
    pq.write_table(
        pa.table({"url": [f"{server.url}/{n}.png" for n in names], "caption": [CAPTION] * 4}),
        tmp_path / "urls.parquet",
    )
    settings = RunSettings(filters=("broken", "resolution"))

    def run():
        result = curate(
            [str(tmp_path / "urls.parquet")], tmp_path / "out", settings=settings, workers=0, progress=False
        )
        m = pd.read_parquet(result.manifest)
        return {n: None if pd.isna(r) else r for n, r in zip(names, m["reason"], strict=True)}, m

    reasons, m = run()
    assert reasons == {"flaky": None, "down": "broken", "gone": "broken", "garbage": "broken"}
    assert m["retryable"].tolist() == [False, True, False, False]
    assert "503" in m["detail"][1] and "404" in m["detail"][2]

    server.failures["/down.png"] = 0  # the outage is over
    calls = {name: len(server.requests[f"/{name}.png"]) for name in names}
    reasons, m = run()
    assert reasons == {"flaky": None, "down": None, "gone": "broken", "garbage": "broken"}
    assert not m["retryable"].any()
    assert len(server.requests["/down.png"]) == calls["down"] + 1
    # Only the retryable row was fetched again.
    assert all(len(server.requests[f"/{n}.png"]) == calls[n] for n in ("flaky", "gone", "garbage"))
