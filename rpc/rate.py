"""A token bucket: how many requests one WebSocket connection may send, and how fast.

An HTTP client pays a connection (and the connection guard's limits) per request; a WebSocket
client sends as many frames as it likes over one: 5,000 refused subscribe requests on five
connections held honest HTTP requests up ~200 ms (bench/soak.py). Each connection gets a
bucket; one that empties it is closed.
"""

from __future__ import annotations

import time


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self._now = time.monotonic
        self._last = self._now()

    def take(self, n: float = 1.0) -> bool:
        """Spend ``n`` tokens if there are that many; False (nothing spent) if not."""
        now = self._now()
        self.tokens = min(self.burst, self.tokens + (now - self._last) * self.rate)
        self._last = now
        if self.tokens < n:
            return False
        self.tokens -= n
        return True
