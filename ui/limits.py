"""Bounds for a reachable app: requests per client, plain messages instead of internals, and a
stream reader that never makes the model wait on the page.

- ``SessionLimit``: one browser session or API client holds at most ``MAX_PER_SESSION`` model
  requests (waiting or running); more are answered at once with ``BUSY_MESSAGE``. Gradio has no
  per-session queue setting; its global bound is ``queue(max_size=...)`` in ``ui.server``. A
  client can open new sessions, so this stops a careless flood, not a determined one.
- ``Feed``: runs the pipeline's stream in its own thread. The model (which holds its slot while
  it generates) hands over each event and goes on at once; rendering and sending the page happen
  in the handler's thread, outside the slot.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from ui.render import HOTLINE

MAX_PER_SESSION = 4
BUSY_MESSAGE = "您同时提出的问题太多了，请等前面的回答完成后再问。"
FAILED_MESSAGE = f"抱歉，系统出了点问题，这次没能回答，请稍后再试。急需帮助请拨打 {HOTLINE} 热线。"

T = TypeVar("T")


def session_of(request: Any) -> str | None:
    """The Gradio session a request belongs to (None outside a server, e.g. in tests)."""
    return getattr(request, "session_hash", None) if request is not None else None


class SessionLimit:
    """Counts each session's requests in flight; ``enter`` admits one while under the limit."""

    def __init__(self, limit: int = MAX_PER_SESSION) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._count: Counter[str] = Counter()

    @contextmanager
    def enter(self, session: str | None) -> Iterator[bool]:
        """``with limit.enter(session) as admitted:`` (a request without a session is always admitted)."""
        with self._lock:
            admitted = session is None or self._count[session] < self.limit
            if admitted and session is not None:
                self._count[session] += 1
        try:
            yield admitted
        finally:
            if admitted and session is not None:
                with self._lock:
                    self._count[session] -= 1
                    if self._count[session] <= 0:
                        del self._count[session]

    def in_flight(self, session: str) -> int:
        with self._lock:
            return self._count[session]


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


class Feed(Generic[T]):
    """Iterates ``events`` in a thread of its own and hands them over through a queue.

    ``on_end`` runs in that thread once the stream is finished or closed (the UI frees its own
    request slot there). ``close()`` makes the thread stop at the next event and close the stream,
    which frees the model slot: a page closed mid-answer stops the model.
    """

    def __init__(self, events: Iterator[T], on_end: Callable[[], None] | None = None) -> None:
        self._events = events
        self._on_end = on_end
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ui-feed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for ev in self._events:
                self._queue.put(ev)
                if self._stop.is_set():
                    break
        except BaseException as exc:  # handed to the reader, which decides what the user sees
            self._queue.put(_Failure(exc))
        finally:
            try:
                close = getattr(self._events, "close", None)
                if callable(close):
                    close()
            finally:
                if self._on_end is not None:
                    self._on_end()
                self._queue.put(_END)

    def batches(self, interval: float) -> Iterator[list[T]]:
        """Lists of events: waits for one, then takes what else arrives within ``interval`` seconds.

        What the stream raised is raised here, after the events that came before it.
        """
        while True:
            batch: list[T] = []
            item = self._queue.get()
            deadline = time.monotonic() + interval
            while item is not _END and not isinstance(item, _Failure):
                batch.append(item)
                left = deadline - time.monotonic()
                try:
                    if left <= 0:
                        raise queue.Empty
                    item = self._queue.get(timeout=left)
                except queue.Empty:
                    item = None
                    break
            if batch:
                yield batch
            if isinstance(item, _Failure):
                raise item.exc
            if item is _END:
                return

    def close(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()
