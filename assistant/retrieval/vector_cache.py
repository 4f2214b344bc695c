"""Vectors computed once and kept on disk (sentence vectors, intent examples).

The cache is only ever an optimisation: a missing, empty, truncated or corrupt
file, or one written for other texts or another embedder, is treated as missing
and rewritten; when it cannot be written (a read-only or full disk) the vectors
stay in memory and the caller goes on.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from assistant.files import replace_atomically

log = logging.getLogger(__name__)

# What a damaged .npz can raise on load: a truncated or empty zip (BadZipFile, EOFError),
# an unreadable file (OSError), a bad array header (ValueError), a missing member (KeyError).
_CACHE_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError)


def cached_vectors(
    cache_file: Path | None,
    key: str,
    shape: tuple[int, int],
    compute: Callable[[], np.ndarray],
    what: str = "vector",
) -> tuple[np.ndarray, bool]:
    """The vectors stored under ``key`` with ``shape``, or ``compute()``'s (then saved).
    Returns them and whether they were computed now."""
    matrix = load_vectors(cache_file, key, shape, what) if cache_file is not None else None
    if matrix is not None:
        return matrix, False
    matrix = np.asarray(compute(), dtype=np.float32)
    if cache_file is not None:
        save_vectors(cache_file, key, matrix, what)
    return matrix, True


def load_vectors(cache_file: Path, key: str, shape: tuple[int, int], what: str = "vector") -> np.ndarray | None:
    """The cached vectors if ``cache_file`` holds exactly these (``key``, ``shape``), else None."""
    try:
        if not cache_file.is_file():
            return None
        data = np.load(cache_file, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):  # a bare .npy array, not our archive
            raise ValueError("not an .npz archive")
        with data:
            if str(data["key"]) != key:
                return None
            matrix = np.asarray(data["vectors"], dtype=np.float32)
    except _CACHE_ERRORS as exc:
        log.warning("%s cache %s is unreadable (%s: %s); rebuilding it", what, cache_file, type(exc).__name__, exc)
        return None
    if matrix.shape != shape or not np.all(np.isfinite(matrix)):
        log.warning(
            "%s cache %s does not fit (shape %s, expected %s); rebuilding it", what, cache_file, matrix.shape, shape
        )
        return None
    return matrix


def save_vectors(cache_file: Path, key: str, matrix: np.ndarray, what: str = "vector") -> None:
    """Write the cache atomically and durably; a failure (read-only or full disk) is logged, never raised."""
    buf = io.BytesIO()
    np.savez(buf, key=np.array(key), vectors=matrix)
    try:
        replace_atomically(cache_file, buf.getvalue())
    except OSError as exc:
        log.warning(
            "cannot write the %s cache %s (%s); keeping the vectors in memory, the next start will compute them again",
            what,
            cache_file,
            exc.strerror or exc,
        )
