"""Token buckets, per origin and global. Pure: ``now`` is monotonic seconds, an input."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class Bucket:
    capacity: float
    refill_per_second: float
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        self.tokens = min(
            self.capacity, self.tokens + max(0.0, now - self.stamp) * self.refill_per_second
        )
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RateLimiter:
    """One bucket per key, at most ``max_keys`` kept (least recently used go first — a
    flood from many origins cannot grow memory)."""

    def __init__(self, capacity: float, refill_per_second: float, max_keys: int) -> None:
        self._capacity, self._refill, self._max = capacity, refill_per_second, max_keys
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = Bucket(self._capacity, self._refill, self._capacity, now)
            self._buckets[key] = bucket
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may call again (0: now), for ``Retry-After`` and
        ``RateLimit-Reset``."""
        bucket = self._buckets.get(key)
        if bucket is None or self._refill <= 0:
            return 0.0
        tokens = min(self._capacity, bucket.tokens + max(0.0, now - bucket.stamp) * self._refill)
        return max(0.0, (1.0 - tokens) / self._refill)

    @property
    def capacity(self) -> float:
        return self._capacity

    def __len__(self) -> int:
        return len(self._buckets)
