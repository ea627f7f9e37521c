"""Fetching an image by URL: a few tries with exponential back-off, and a verdict on whether a failure is
worth retrying later.

Transient failures (timeouts, refused or reset connections, HTTP 5xx and 429) are retried here and, if
they persist, reported as retryable: the row is rejected for now, and a rerun of the curation fetches it
again. Permanent failures (any other HTTP status, such as 404) are final.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

ATTEMPTS = 3
FIRST_DELAY_S = 0.5  # then 1 s: a short outage is ridden out, a long one is left to the rerun
TIMEOUT_S = 30


@dataclass
class FetchError(Exception):
    """Why a URL could not be fetched; `retryable` when the failure was transient."""

    message: str
    retryable: bool

    def __str__(self) -> str:
        return self.message


def _is_transient(url: str, err: Exception) -> bool:
    if url.startswith("file://"):
        return False  # a local file does not come back by waiting
    if isinstance(err, urllib.error.HTTPError):
        return err.code == 429 or err.code >= 500
    # URLError wraps refused connections and DNS failures; TimeoutError and ConnectionError arrive bare
    # when the failure comes while reading the body.
    return isinstance(err, urllib.error.URLError | TimeoutError | ConnectionError)


def fetch_url(
    url: str,
    max_bytes: int,
    attempts: int = ATTEMPTS,
    first_delay_s: float = FIRST_DELAY_S,
    timeout_s: float = TIMEOUT_S,
) -> bytes:
    """At most `max_bytes + 1` bytes of `url` (one more than allowed, so the caller sees it is too big)."""
    attempt = 1
    while True:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                return response.read(max_bytes + 1)
        except (OSError, http.client.HTTPException, ValueError) as err:  # URLError is an OSError
            transient = _is_transient(url, err)
            if not transient or attempt >= attempts:
                tries = f" after {attempt} tries" if transient else ""
                message = f"unreadable{tries}: {type(err).__name__}: {err}"
                raise FetchError(message, retryable=transient) from None
            time.sleep(first_delay_s * 2 ** (attempt - 1))
            attempt += 1
