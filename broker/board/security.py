"""Small security pieces of the board: login rate limit, loopback check, token compare.

The login rate limit is in memory (one board process per site), checked and counted
*before* the password hash: an attempt in flight counts as a failure until it succeeds, so 40
parallel guesses from one address cost at most `per_address` hashes, not 40. Two rules, in a
sliding `window_s`:

- per client address: at most `per_address` failed logins, whatever the names tried;
- per user name: at most `per_name` failures from all addresses together (a slower bound,
  against guessing spread over many addresses), except from an address where that name has
  logged in successfully in the last `trusted_s`: a stranger elsewhere can slow guessing at a
  nurse's name, but cannot lock her out of her own workstation.

Further attempts are refused, without checking the password, until the oldest failure leaves
the window. A successful login forgives its address's failures (a nurse who mistyped), not
the name's failures from elsewhere. The clock is injected so tests need no sleeping; memory
is bounded (`max_keys`).
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ServeLimits:
    """The server's limits (`server.py` applies them; here so the CLI needs no web stack)."""

    request_timeout_s: float = 10.0
    keep_alive_s: int = 5
    max_connections: int = 1000
    max_per_address: int = 64
    max_header_bytes: int = 16 * 1024


class LoginLimiter:
    def __init__(
        self,
        per_address: int = 5,
        per_name: int = 20,
        window_s: float = 300.0,
        trusted_s: float = 30 * 86400.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ):
        self.per_address = per_address
        self.per_name = per_name
        self.window_s = window_s
        self.trusted_s = trusted_s
        self.clock = clock
        self.max_keys = max_keys
        self.hashes_spared = 0  # attempts refused before their hash
        self._fails: dict[str, deque[float]] = {}
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _keys(address: str, name: str) -> tuple[str, str]:
        return f"ip:{address}", f"user:{name.lower()}"

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def _is_trusted(self, address: str, name: str, now: float) -> bool:
        at = self._trusted.get((name.lower(), address))
        return at is not None and now - at < self.trusted_s

    def _wait(self, address: str, name: str, now: float) -> float:
        ip_key, user_key = self._keys(address, name)
        wait = 0.0
        q = self._prune(ip_key, now)
        if len(q) >= self.per_address:
            wait = q[-self.per_address] + self.window_s - now
        q = self._prune(user_key, now)
        if len(q) >= self.per_name and not self._is_trusted(address, name, now):
            wait = max(wait, q[-self.per_name] + self.window_s - now)
        return wait

    def retry_after(self, address: str, name: str) -> float:
        """Seconds until an attempt would be allowed; 0 when it would be now."""
        now = self.clock()
        with self._lock:
            return self._wait(address, name, now)

    def attempt(self, address: str, name: str) -> tuple[float, float]:
        """Before the hash: (0, ticket) and the attempt is counted as a failure, or
        (seconds to wait, 0) and it must not be checked at all."""
        now = self.clock()
        with self._lock:
            wait = self._wait(address, name, now)
            if wait > 0:
                self.hashes_spared += 1
                return wait, 0.0
            for key in self._keys(address, name):
                if key not in self._fails and len(self._fails) >= self.max_keys:
                    stalest = min(self._fails, key=lambda k: self._fails[k][-1])
                    del self._fails[stalest]  # bounded memory: forget the stalest
                bound = max(self.per_address, self.per_name)
                self._fails.setdefault(key, deque(maxlen=bound)).append(now)
        return 0.0, now

    def succeeded(self, address: str, name: str, ticket: float) -> None:
        """The attempt with this ticket was right: it was no failure, the address's earlier
        failures are forgiven (a nurse who mistyped), the name's from elsewhere are not, and
        the address is trusted for this name from now on."""
        now = self.clock()
        ip_key, user_key = self._keys(address, name)
        with self._lock:
            self._fails.pop(ip_key, None)
            q = self._fails.get(user_key)
            if q is not None and ticket in q:
                q.remove(ticket)
                if not q:
                    del self._fails[user_key]
            pair = (name.lower(), address)
            self._trusted[pair] = now
            self._trusted.move_to_end(pair)
            while len(self._trusted) > self.max_keys:
                self._trusted.popitem(last=False)


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
