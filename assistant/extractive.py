"""Sentence-level evidence: which sentences of the retrieved units answer the question.

``SentenceScorer`` ranks the sentences of the top units (shared by the prompt's
excerpts, the extractive answer and the "closest thing the plan says" line).
``ExtractiveAnswerer`` is the no-LLM answerer built on it: the best supporting
sentences, quoted verbatim. Instant, always available, and the fallback when
the language model fails or times out.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .citations import SourceSentence, unit_sentences
from .embedders import Embedder
from .models import Article, Hit
from .text import bm25_tokens


@dataclass(frozen=True)
class ScoredSentence:
    score: float
    rank: int  # the rank of its unit among the hits (0 = best)
    sentence: SourceSentence


class SentenceScorer:
    """Scores sentences by the question words they contain (longer words weigh more),
    by semantic similarity to the question when an embedder is given (sentence
    vectors are computed once per unit and cached), and by lying in one of the
    retriever's best chunks. Lower-ranked units get a small penalty."""

    def __init__(self, embedder: Embedder | None = None, semantic_weight: float = 3.0) -> None:
        if semantic_weight < 0:
            raise ValueError(f"semantic_weight must be >= 0, got {semantic_weight}")
        self.embedder = embedder
        self.semantic_weight = semantic_weight
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def sentence_vectors(self, unit: Article) -> tuple[list[SourceSentence], np.ndarray]:
        """A unit's sentences and their (cached) vectors. Needs an embedder."""
        sentences = unit_sentences(unit)
        return sentences, self._unit_vectors(unit.unit_id, sentences)

    def _unit_vectors(self, unit_id: str, sentences: list[SourceSentence]) -> np.ndarray:
        assert self.embedder is not None
        with self._lock:
            cached = self._vectors.get(unit_id)
        if cached is None or len(cached) != len(sentences):
            cached = np.asarray(self.embedder.embed_passages([s.text for s in sentences]), dtype=np.float32)
            with self._lock:
                self._vectors[unit_id] = cached
        return cached

    def precompute(self, units: list[Article], cache_file: Path | None = None) -> int:
        """Embed every unit's sentences now (at start-up) instead of on first use.

        With ``cache_file`` the vectors are kept on disk, keyed by the embedder and
        the exact sentences, so later starts load them instead of re-embedding.
        Returns how many sentences were embedded (0 when loaded from the cache)."""
        if self.embedder is None:
            return 0
        per_unit = [(u.unit_id, unit_sentences(u)) for u in units]
        texts = [s.text for _, sents in per_unit for s in sents]
        key = hashlib.sha256(("\x1f".join([self.embedder.model_id, *texts])).encode("utf-8")).hexdigest()
        matrix: np.ndarray | None = None
        if cache_file is not None and cache_file.is_file():
            try:
                with np.load(cache_file, allow_pickle=False) as data:
                    if str(data["key"]) == key and data["vectors"].shape[0] == len(texts):
                        matrix = np.asarray(data["vectors"], dtype=np.float32)
            except (OSError, ValueError, KeyError):
                matrix = None  # a corrupt cache is simply rebuilt
        embedded = 0
        if matrix is None:
            matrix = np.asarray(self.embedder.embed_passages(texts), dtype=np.float32)
            embedded = len(texts)
            if cache_file is not None:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_file.with_name(cache_file.name + ".tmp.npz")
                np.savez(tmp, key=np.array(key), vectors=matrix)
                os.replace(tmp, cache_file)
        row = 0
        with self._lock:
            for unit_id, sents in per_unit:
                self._vectors[unit_id] = matrix[row : row + len(sents)]
                row += len(sents)
        return embedded

    def run(self, question: str, hits: list[Hit]) -> list[ScoredSentence]:
        """All sentences of ``hits``, best first."""
        terms = set(bm25_tokens(question))
        per_hit = [unit_sentences(h.unit) for h in hits]
        semantic: list[np.ndarray] = []
        if self.embedder is not None and self.semantic_weight > 0 and any(per_hit):
            qvec = np.asarray(self.embedder.embed_queries([question]), dtype=np.float32)[0]
            sims = [self._unit_vectors(h.unit.unit_id, s) @ qvec if s else np.zeros(0) for h, s in zip(hits, per_hit, strict=True)]
            flat = np.concatenate([s for s in sims if len(s)]) if any(len(s) for s in sims) else np.zeros(0)
            lo, hi = (float(flat.min()), float(flat.max())) if len(flat) else (0.0, 1.0)
            # Cosines of a small model sit in a narrow band: rescale within this candidate set.
            semantic = [(s - lo) / (hi - lo + 1e-6) for s in sims]
        out: list[ScoredSentence] = []
        for rank, (hit, sentences) in enumerate(zip(hits, per_hit, strict=True)):
            for i, sentence in enumerate(sentences):
                overlap = sum(len(t) for t in terms if t in sentence.text)
                bonus = 0.0
                for chunk_rank, chunk in enumerate(hit.chunks[:2]):
                    if chunk.start <= sentence.start < chunk.end:
                        bonus = max(bonus, 1.0 / (1 + chunk_rank))
                sem = self.semantic_weight * float(semantic[rank][i]) if semantic else 0.0
                out.append(ScoredSentence(overlap + bonus + sem - 0.5 * rank, rank, sentence))
        out.sort(key=lambda x: (-x.score, x.rank, x.sentence.start))
        return out


@dataclass(frozen=True)
class Extract:
    sentences: list[SourceSentence]  # in reading order, grouped by unit


class ExtractiveAnswerer:
    """Pick up to ``max_sentences`` sentences from the top ``max_units`` hits.

    Further sentences must come within ``relative_floor`` of the best score, and
    within ``other_unit_floor`` when they come from another unit, so an unrelated
    unit is not quoted just because it was retrieved.
    """

    def __init__(
        self,
        max_sentences: int = 3,
        max_units: int = 3,
        relative_floor: float = 0.6,
        other_unit_floor: float = 0.85,
        scorer: SentenceScorer | None = None,
    ) -> None:
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be >= 1, got {max_sentences}")
        if max_units < 1:
            raise ValueError(f"max_units must be >= 1, got {max_units}")
        for name, value in (("relative_floor", relative_floor), ("other_unit_floor", other_unit_floor)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.other_unit_floor = other_unit_floor
        self.max_sentences = max_sentences
        self.max_units = max_units
        self.relative_floor = relative_floor
        self.scorer = scorer or SentenceScorer()

    def run(self, question: str, hits: list[Hit]) -> Extract:
        scored = self.scorer.run(question, hits[: self.max_units])
        if not scored:
            return Extract([])
        top_score = scored[0].score
        chosen = [scored[0]]
        for item in scored[1:]:
            if len(chosen) >= self.max_sentences:
                break
            floor = self.relative_floor if item.rank == scored[0].rank else self.other_unit_floor
            if item.score > 0 and item.score >= floor * top_score:
                chosen.append(item)
        # Reading order: by hit rank, then position in the plan.
        chosen.sort(key=lambda x: (x.rank, x.sentence.start))
        return Extract([c.sentence for c in chosen])
