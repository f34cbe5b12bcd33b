"""The discrete-event engine: virtual time and a heap of events (SimPy's core, simplified).

Ties at the same time run in scheduling order (a sequence number breaks them), so the same
inputs and the same seed give the same run, bit for bit. Nothing here reads the wall clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class Clock:
    """``schedule(delay, fn, *args)``, then ``step()`` / ``peek()`` / ``run(until=)``."""

    __slots__ = ("_heap", "_seq", "now")

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self._heap: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = 0

    def schedule(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        if delay < 0:
            raise ValueError(f"cannot schedule into the past (delay {delay})")
        self._seq += 1
        heapq.heappush(self._heap, (self.now + delay, self._seq, fn, args))

    def peek(self) -> float | None:
        """The time of the next event, or None when nothing is scheduled."""
        return self._heap[0][0] if self._heap else None

    def step(self) -> bool:
        """Run the next event; False when there was none."""
        if not self._heap:
            return False
        t, _seq, fn, args = heapq.heappop(self._heap)
        self.now = t
        fn(*args)
        return True

    def run(self, until: float | None = None) -> None:
        """Run events up to and including time ``until`` (all of them when None)."""
        while self._heap and (until is None or self._heap[0][0] <= until):
            self.step()
        if until is not None and until > self.now:
            self.now = until
