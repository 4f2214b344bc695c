"""Every unit's sentences as vectors, embedded once and kept on disk.

The retriever ranks units by their best sentence (a colloquial question often matches one sentence of
an article better than any 220-character chunk of it), and the answer's evidence scores sentences with
the same vectors (``answering/evidence.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from assistant.models import Unit
from assistant.retrieval.embedders import Embedder
from assistant.retrieval.vector_cache import cached_vectors

Progress = Callable[[str], None]


def sentences_key(model_id: str, texts: Sequence[str]) -> str:
    """What a cache file must have been written for: this embedder and exactly these sentences."""
    return hashlib.sha256("\x1f".join([model_id, *texts]).encode("utf-8")).hexdigest()


class SentenceIndex:
    """The sentences of ``units`` (in order) and one vector per sentence."""

    def __init__(self, units: Sequence[Unit], embedder: Embedder, cache_file: Path | None = None) -> None:
        self.embedder = embedder
        self.owners: list[str] = []  # row i belongs to unit owners[i]
        self._rows: dict[str, slice] = {}
        texts: list[str] = []
        for unit in units:
            start = len(texts)
            texts += [s.text for s in unit.sentences]
            self._rows[unit.unit_id] = slice(start, len(texts))
            self.owners += [unit.unit_id] * len(unit.sentences)
        dim = int(embedder.dim)

        def embed() -> np.ndarray:
            return np.asarray(embedder.embed_passages(texts), dtype=np.float32) if texts else np.zeros((0, dim), np.float32)

        key = sentences_key(embedder.model_id, texts)
        self.matrix, self.computed = cached_vectors(cache_file, key, (len(texts), dim), embed, "sentence-vector")

    def __len__(self) -> int:
        return len(self.owners)

    def vectors(self, unit: Unit) -> np.ndarray | None:
        """The unit's sentence vectors, or None for a unit this index was not built with (or whose
        sentences changed since)."""
        return self.vectors_of(unit.unit_id, len(unit.sentences))

    def vectors_of(self, unit_id: str, count: int) -> np.ndarray | None:
        rows = self._rows.get(unit_id)
        if rows is None or rows.stop - rows.start != count:
            return None
        return self.matrix[rows]

    def rank_units(self, query_vector: np.ndarray) -> list[tuple[str, float]]:
        """Every unit by its best sentence's cosine to the query, best first."""
        if not len(self.owners):
            return []
        sims = self.matrix @ np.asarray(query_vector, dtype=np.float32).reshape(-1)
        best: dict[str, float] = {}
        for i in np.argsort(-sims, kind="stable"):
            best.setdefault(self.owners[i], float(sims[i]))
        return list(best.items())
