"""How many battles a voter or an address drew in the last minute, kept in memory.

Drawing a battle writes nothing to the store (see `tickets`), so there is no row to count; each worker
counts its own page loads, and behind N workers a client may draw up to N times the limit. Votes, the
scarce thing, are counted in the store.
"""

from __future__ import annotations

import threading
import time
from collections import deque

WINDOW_S = 60.0
# Keys idle for a window are dropped every this many hits, so a crawl over many addresses stays bounded.
SWEEP_EVERY = 1024


class Throttle:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._since_sweep = 0

    def allow(self, keys: list[str], limit: int) -> bool:
        """Count one hit for every key, unless one of them already had `limit` in the last minute."""
        with self._lock:
            now = self._clock()
            self._sweep(now)
            windows = [self._window(key, now) for key in keys]
            if any(len(window) >= limit for window in windows):
                return False
            for window in windows:
                window.append(now)
            return True

    def _window(self, key: str, now: float) -> deque[float]:
        window = self._hits.setdefault(key, deque())
        while window and window[0] <= now - WINDOW_S:
            window.popleft()
        return window

    def _sweep(self, now: float) -> None:
        self._since_sweep += 1
        if self._since_sweep >= SWEEP_EVERY:
            self._since_sweep = 0
            self._hits = {k: w for k, w in self._hits.items() if w and w[-1] > now - WINDOW_S}
