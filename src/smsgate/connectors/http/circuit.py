"""A circuit breaker for one upstream: closed → open after N failures in a row → half-open → closed or open.

    closed      requests flow; each failure (no connection, timeout, 5xx) counts, any success resets the count
    open        after ``threshold`` failures in a row, or at once when the upstream refuses our credentials
                (``trip``): routing skips the connector and messages go to the route's next connector or wait
                in the outbox; nothing is sent for ``open_seconds``
    half-open   then one request probes the upstream (the connector lets only one through): a success closes
                the circuit, a failure opens it for another ``open_seconds``

Pure state with an injected clock, so the connector holds it and tests step through it without sleeping.
Each node keeps its own: a node that cannot reach the upstream stops using it whatever the others see.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Circuit:
    def __init__(self, threshold: int, open_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.open_seconds = open_seconds
        self._clock = clock
        self._state = State.CLOSED
        self._opened_at = 0.0
        self.failures = 0  # in a row
        self.reason = ""  # the last failure, for the operator (never credentials)
        self.opened = 0  # times the circuit opened, for metrics

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._clock() >= self._opened_at + self.open_seconds:
            self._state = State.HALF_OPEN
        return self._state

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a probe through (0 when not open)."""
        if self.state is not State.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.open_seconds - self._clock())

    def success(self) -> None:
        self.failures = 0
        self._state = State.CLOSED

    def failure(self, reason: str) -> None:
        self.failures += 1
        self.reason = reason
        if self.state is State.HALF_OPEN or self.failures >= self.threshold:
            self._open()

    def trip(self, reason: str) -> None:
        """Open now, whatever the count: the upstream answered in a way no retry can fix soon (credentials)."""
        self.failures = max(self.failures + 1, self.threshold)
        self.reason = reason
        self._open()

    def _open(self) -> None:
        if self._state is not State.OPEN:
            self.opened += 1
        self._state = State.OPEN
        self._opened_at = self._clock()
