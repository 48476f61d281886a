"""Small security pieces of the board: login rate limit, loopback check, token compare.

The rate limit is in memory (one board process per site): at most `max_failures` failed
logins per key (client address, and separately user name) in a sliding `window_s`; further
attempts are refused, without checking the password, until the oldest failure leaves the
window. The clock is injected so tests need no sleeping.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable


class LoginLimiter:
    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ):
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def retry_after(self, *keys: str) -> float:
        """Seconds until an attempt is allowed for all keys; 0 when allowed now."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                q = self._prune(key, now)
                if len(q) >= self.max_failures:
                    wait = max(wait, q[0] + self.window_s - now)
        return wait

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._fails) >= self.max_keys:  # bounded memory: forget the stalest
                oldest = min(self._fails, key=lambda k: self._fails[k][-1])
                del self._fails[oldest]
            for key in keys:
                self._fails.setdefault(key, deque(maxlen=self.max_failures)).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._fails.pop(key, None)


def is_loopback_host(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1 (where `--no-auth` is allowed)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def same_token(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
