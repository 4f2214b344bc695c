"""Milliseconds since a question arrived, per step (``timings_ms`` of an Answer)."""

from __future__ import annotations

import time


class Timer:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.ms: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.ms[name] = (time.perf_counter() - self.t0) * 1000

    def first(self, name: str) -> None:
        """Mark ``name`` only the first time (e.g. the first streamed token)."""
        if name not in self.ms:
            self.mark(name)
