"""Rate limit of the quarantine per room, so one room's flood cannot starve the others.

How this works: one token bucket per quarantine bucket (the `(site, room)` of the topic, or
`('', '')` for topics that name no room, see `store.quarantine_bucket`). A rejected message
takes a token; with none left it is not stored, only counted (`RateLimited`: the store adds it
to the bucket's `dropped` count and the logger's totals). Tokens come back at `rate_per_s` up
to `burst`. Accepted messages never pass through here. Pure: the clock is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from broker.logger.ingest import Classified, RateLimited, Rejected
from broker.logger.store.base import quarantine_bucket

MAX_BUCKETS = 100_000  # bounded memory: past this, idle buckets are forgotten (full again)


class QuarantineRateLimiter:
    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1, burst)
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # tokens, at

    def allow(self, bucket: tuple[str, str]) -> bool:
        now = self._clock()
        tokens, at = self._buckets.get(bucket, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate_per_s)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        if len(self._buckets) >= MAX_BUCKETS and bucket not in self._buckets:
            self._forget_full(now)
        self._buckets[bucket] = (tokens, now)
        return allowed

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled (forgetting them changes nothing)."""
        full = [
            key
            for key, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate_per_s >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= MAX_BUCKETS:  # all busy: the oldest go first
            for key in list(self._buckets)[: MAX_BUCKETS // 10]:
                del self._buckets[key]

    def apply(self, item: Classified) -> Classified:
        """`item`, or `RateLimited` when it is a rejection over its room's rate."""
        if not isinstance(item, Rejected) or self.allow(quarantine_bucket(item.topic)):
            return item
        return RateLimited(item.topic, item.size)
