"""A simulated read-only or full file system under one folder, for fault-injection tests.

``chmod`` cannot stop root (tests often run as root in containers), so instead every
way the code under test writes (``open`` for writing, ``os.open`` with write flags,
``mkdir``, ``unlink``, ``rename``, ``replace``, ``rmdir``) is wrapped: under ``root``
it raises ``OSError(EROFS)`` (or ``ENOSPC`` for a full disk) and is recorded;
reads and everything outside ``root`` work as usual.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path
from typing import Any

import pytest

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class DeniedWrites:
    """Which writes under ``root`` were attempted (and refused)."""

    def __init__(self, root: Path, code: int) -> None:
        self.root = root.resolve()
        self.code = code
        self.attempts: list[tuple[str, str]] = []

    def inside(self, path: Any) -> bool:
        if isinstance(path, int) or not isinstance(path, str | bytes | os.PathLike):
            return False
        try:
            return Path(os.fsdecode(path)).resolve().is_relative_to(self.root)
        except (OSError, ValueError):
            return False

    def deny(self, op: str, path: Any) -> None:
        self.attempts.append((op, os.fsdecode(path)))
        raise OSError(self.code, os.strerror(self.code), os.fsdecode(path))


def deny_writes(monkeypatch: pytest.MonkeyPatch, root: Path, code: int = errno.EROFS) -> DeniedWrites:
    """Make ``root`` behave as read-only (EROFS) or full (ENOSPC) until ``monkeypatch`` is undone."""
    state = DeniedWrites(root, code)
    real_open = io.open
    real_os_open = os.open

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wax+") and state.inside(file):
            state.deny("open", file)
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & _WRITE_FLAGS and state.inside(path):
            state.deny("os.open", path)
        return real_os_open(path, flags, *args, **kwargs)

    def wrap(name: str, two_paths: bool = False) -> None:
        real = getattr(os, name)

        def fake(*args: Any, **kwargs: Any) -> Any:
            paths = args[:2] if two_paths else args[:1]
            for p in paths:
                if state.inside(p):
                    state.deny(f"os.{name}", p)
            return real(*args, **kwargs)

        monkeypatch.setattr(os, name, fake)

    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    for name in ("mkdir", "unlink", "remove", "rmdir"):
        wrap(name)
    for name in ("rename", "replace"):
        wrap(name, two_paths=True)
    return state
