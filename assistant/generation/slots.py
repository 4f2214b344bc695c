"""A first-come, first-served slot for work that must run one at a time (a llama.cpp context),
which can say how many requests are ahead of a waiting one (the UI shows "前面还有 N 位")."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class TicketLock:
    """A FIFO lock with tickets: ``take()`` queues a request, ``wait(ticket)`` blocks until it is
    the first in line and the slot is free, ``release()`` frees the slot, ``cancel(ticket)``
    leaves the line. ``ahead(ticket)`` counts the requests before it (the running one included)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._line: list[int] = []
        self._holder: int | None = None
        self._numbers = itertools.count(1)

    def take(self) -> int:
        with self._cond:
            ticket = next(self._numbers)
            self._line.append(ticket)
            return ticket

    def wait(self, ticket: int, timeout: float | None = None) -> bool:
        """True once ``ticket`` holds the slot; False after ``timeout`` seconds (still in line)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if ticket not in self._line:
                raise ValueError(f"ticket {ticket} is not waiting")
            while self._holder is not None or self._line[0] != ticket:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            self._line.pop(0)
            self._holder = ticket
            return True

    def cancel(self, ticket: int) -> None:
        """Leave the line (a request that gave up waiting); harmless if it is no longer there."""
        with self._cond:
            if ticket in self._line:
                self._line.remove(ticket)
                self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._holder = None
            self._cond.notify_all()

    def acquire(self, timeout: float | None = None) -> bool:
        ticket = self.take()
        if self.wait(ticket, timeout):
            return True
        self.cancel(ticket)
        return False

    @contextmanager
    def hold(self, timeout: float | None = None) -> Iterator[bool]:
        """``with slot.hold(t) as got:`` — ``got`` is False when the wait timed out."""
        got = self.acquire(timeout)
        try:
            yield got
        finally:
            if got:
                self.release()

    def ahead(self, ticket: int) -> int:
        """Requests before ``ticket``: the one holding the slot plus those earlier in line (0 once it runs)."""
        with self._cond:
            if ticket == self._holder or ticket not in self._line:
                return 0
            return self._line.index(ticket) + (1 if self._holder is not None else 0)

    @property
    def waiting(self) -> int:
        """Requests in line (not counting the one holding the slot)."""
        with self._cond:
            return len(self._line)

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._holder is not None
