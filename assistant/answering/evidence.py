"""Sentence-level evidence: which sentences of the retrieved units answer the question.

``SentenceScorer`` ranks the sentences of the top units (shared by the prompt's
excerpts, the extractive answer and the "closest thing the plan says" line).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.models import Hit, Sentence, Unit
from assistant.retrieval.embedders import Embedder
from assistant.retrieval.sentences import SentenceIndex
from assistant.text import CHAR_PREFIX, bm25_tokens, is_han, pos_tags, search_terms, to_simplified

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredSentence:
    score: float
    rank: int  # the rank of its unit among the hits (0 = best)
    sentence: Sentence


class SentenceScorer:
    """Scores sentences by the question words they contain (longer words weigh more),
    by semantic similarity to the question when an embedder is given (sentence
    vectors are computed once per unit and cached), and by lying in one of the
    retriever's best chunks. Lower-ranked units get a small penalty."""

    def __init__(
        self, embedder: Embedder | None = None, semantic_weight: float = 3.0, *, index: SentenceIndex | None = None
    ) -> None:
        if semantic_weight < 0:
            raise ValueError(f"semantic_weight must be >= 0, got {semantic_weight}")
        self.embedder = embedder
        self.index = index  # the retriever's sentence vectors, when it has them: embedded once for both
        self.semantic_weight = semantic_weight
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def sentence_vectors(self, unit: Unit) -> tuple[tuple[Sentence, ...], np.ndarray]:
        """A unit's sentences and their (cached) vectors. Needs an embedder."""
        sentences = unit.sentences
        return sentences, self._unit_vectors(unit.unit_id, sentences)

    def _unit_vectors(self, unit_id: str, sentences: tuple[Sentence, ...]) -> np.ndarray:
        assert self.embedder is not None
        rows = self.index.vectors_of(unit_id, len(sentences)) if self.index is not None else None
        if rows is not None:
            return rows
        with self._lock:  # a unit the index does not hold (or no index): embedded once, on first use
            cached = self._vectors.get(unit_id)
        if cached is None or len(cached) != len(sentences):
            cached = np.asarray(self.embedder.embed_passages([s.text for s in sentences]), dtype=np.float32)
            with self._lock:
                self._vectors[unit_id] = cached
        return cached

    def precompute(self, units: list[Unit], cache_file: Path | None = None) -> int:
        """Embed every unit's sentences now (at start-up) instead of on first use, kept on disk in
        ``cache_file`` (a ``SentenceIndex``: a damaged or stale file is rebuilt, an unwritable one only
        costs the next start). Nothing to do when the index already holds them (the retriever's).
        Returns how many sentences were embedded (0 when loaded from the cache)."""
        if self.embedder is None or (self.index is not None and all(self.index.vectors(u) is not None for u in units)):
            return 0
        self.index = SentenceIndex(units, self.embedder, cache_file)
        return len(self.index) if self.index.computed else 0

    def run(self, question: str, hits: list[Hit]) -> list[ScoredSentence]:
        """All sentences of ``hits``, best first."""
        terms = set(bm25_tokens(question))
        per_hit = [h.unit.sentences for h in hits]
        semantic: list[np.ndarray] = []
        if self.embedder is not None and self.semantic_weight > 0 and any(per_hit):
            qvec = np.asarray(self.embedder.embed_queries([question]), dtype=np.float32)[0]
            sims = [
                self._unit_vectors(h.unit.unit_id, s) @ qvec if s else np.zeros(0)
                for h, s in zip(hits, per_hit, strict=True)
            ]
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


# A question that asks where, or in how many places, the plan says something.
_PLURAL = re.compile(
    r"分别|哪两条|哪几条|各自|前后|都提到|哪些地方|过去.{0,16}(今后|接下来|以后|下一步)"
    r"|成绩.{0,16}(今后|接下来|以后|下一步)|both|each|where\s+else",
    re.IGNORECASE,
)
# "几处 / 几次" count places in the text only next to a word for saying or for the text ("提到过几次", "哪几处
# 写了", "规划里哪几处"): "全区有几处考核断面…" and "去了好几次" count things in the world.
_MENTION_COUNT = re.compile(
    r"(提到|提及|出现|写|说|讲)(了|过|在)?哪?(几|两|多)(处|次)|哪?(几|两|多)处都?(提到|提及|出现|写|说|讲)"
    r"|(规划|建议|原文|文中|文件)(里|中|内)?在?哪?(几|两|多)处"
)


def asks_for_several(question: str) -> bool:
    """The question asks where, or in how many places, the plan says something."""
    return bool(_PLURAL.search(question) or _MENTION_COUNT.search(question))


class MentionFinder:
    """For a question that asks where the plan mentions something ("…分别怎么说？",
    "…在哪几处提到？"), every unit whose text contains the question's longest phrase
    that the plan uses verbatim, with the sentence that holds it. Exact mentions in the
    plan itself, so nothing is guessed; between two and ``max_units`` units, else none."""

    def __init__(self, units: list[Unit], *, min_chars: int = 3, max_units: int = 4) -> None:
        if min_chars < 2:
            raise ValueError(f"min_chars must be >= 2, got {min_chars}")
        self.units = units
        self.min_chars = min_chars
        self.max_units = max_units
        self.text = "\n".join(u.text for u in units)

    def phrases(self, question: str) -> list[str]:
        """Maximal substrings of the question that the plan contains, in question order
        (a question names its topic first: "垃圾分类在规划里出现在哪两条？")."""
        found: list[str] = []
        for q in re.split(r"[^\w]+", to_simplified(question)):
            i = 0
            while i < len(q):
                j = i + self.min_chars
                best = ""
                while j <= len(q) and q[i:j] in self.text:
                    best = q[i:j]
                    j += 1
                if best:
                    found.append(best)
                    i += len(best)
                else:
                    i += 1
        return found

    def run(self, question: str) -> list[Sentence]:
        if not asks_for_several(question):
            return []
        question = to_simplified(question)
        for phrase in self.phrases(question):
            found = [s for s in (self._first(u, phrase, []) for u in self.units) if s is not None]
            if len(found) > self.max_units:
                # A common phrase ("养老机构的安全…在哪几处"): the places where a sentence holds it together
                # with another of the question's words that is not itself everywhere in the plan.
                others = self._topic_words(question, phrase)
                found = [s for s in (self._first(f.unit, phrase, others) for f in found) if s is not None]
            if 2 <= len(found) <= self.max_units:
                return found
        return []

    @staticmethod
    def _first(unit: Unit, phrase: str, others: list[str]) -> Sentence | None:
        """The unit's first sentence with ``phrase`` (and, if given, one of ``others``)."""
        for s in unit.sentences:
            if phrase in s.text and (not others or any(w in s.text for w in others)):
                return s
        return None

    def _topic_words(self, question: str, phrase: str) -> list[str]:
        words = {t for t in search_terms(question) if not t.startswith(CHAR_PREFIX) and len(t) >= 2}
        common = len(self.units) / 2
        return [w for w in words if w not in phrase and phrase not in w and sum(w in u.text for u in self.units) < common]


# Words for what has been done, then for what comes next ("…这几年有什么成效，接下来…"). "之前" after a date
# ("2025年之前") points forward; "取得" can too ("要取得哪些突破"), so it is not one.
_DONE = r"过去|以往|此前|(?<![\d年月日底])之前|已经|成绩|成效|成就|进展|做了(?:多少|什么|哪些)|做成了?"
_NEXT = r"今后|以后|接下来|下一步|将来|未来|打算|还要|还会"
_DONE_THEN_NEXT = re.compile(rf"(?:{_DONE}).*?(?:{_NEXT})")
_CUES = re.compile(rf"{_DONE}|{_NEXT}")


def asks_done_then_next(question: str) -> bool:
    """The question asks what was done before it asks what comes next, in words (a question that names the
    periods is ``ReviewFinder.names_then_and_now``'s)."""
    return bool(_DONE_THEN_NEXT.search(to_simplified(question)))


class ReviewFinder:
    """For a question about what has been achieved and what comes next ("垃圾分类这几年做了什么，以后怎么推进？"),
    a sentence of the plan's review of the previous period that holds the question's topic: the review
    reports the results, the topic's own article the plans, and the review's one sentence on a topic is
    rarely what the question's words retrieve first.

    The review is every unit that names a period before the plan's own (from the corpus); the first of their
    sentences, in plan order, that holds the topic is returned. The topic is the question's longest phrase
    that the plan uses, once the words for done and next and the periods' names are taken out, shortened by
    whole words from its end until a review sentence holds it ("老旧小区改造" → "老旧小区"); never to a verb
    alone, to fewer than ``min_chars`` Chinese characters, or to words a quarter of the units use (they frame
    any question)."""

    def __init__(
        self, units: list[Unit], previous_periods: Sequence[str], own_periods: Sequence[str], *, min_chars: int = 2
    ) -> None:
        if min_chars < 2:
            raise ValueError(f"min_chars must be >= 2, got {min_chars}")
        self.units = units
        self.review = [u for u in units if any(p in u.text for p in previous_periods)]
        self.previous_periods = list(previous_periods)
        self.own_periods = list(own_periods)
        # Its own phrase finder: a topic can be two characters ("空气"); a mention is looked up by longer ones.
        self.phrases = MentionFinder(units, min_chars=min_chars)
        self.min_chars = min_chars

    def run(self, question: str) -> Sentence | None:
        question = to_simplified(question)
        if not self.review or not (asks_done_then_next(question) or self.names_then_and_now(question)):
            return None
        topic = _CUES.sub(" ", question)
        for period in (*self.previous_periods, *self.own_periods):
            topic = topic.replace(period, " ")
        for phrase in sorted(self.phrases.phrases(topic), key=len, reverse=True):  # the most specific first
            words = pos_tags(phrase)
            for end in range(len(words), 0, -1):
                head = "".join(w for w, _ in words[:end])
                if sum(map(is_han, head)) < self.min_chars or self._common(head):
                    break
                if end == 1 and words[0][1].startswith("v") and words[0][1] != "vn":
                    break  # a verb alone ("建成", "扩建") names no topic
                found = next((s for u in self.review for s in u.sentences if head in s.text), None)
                if found is not None:
                    return found
        return None

    def names_then_and_now(self, question: str) -> bool:
        """The question names the period before the plan's, then the plan's own, and has a word for what was
        done or what comes next ("市民中心“十三五”时有什么进展？“十四五”又有什么计划？"): it asks for the
        results and for the plans. The periods alone frame a change ("…有什么不同"), not results."""
        then = min((question.find(p) for p in self.previous_periods if p in question), default=-1)
        now = max((question.rfind(p) for p in self.own_periods if p in question), default=-1)
        return 0 <= then < now and bool(_CUES.search(question))

    def _common(self, words: str) -> bool:
        """Words a quarter of the plan's units use (its region's name, "发展", "服务") frame a question."""
        return sum(words in u.text for u in self.units) >= len(self.units) / 4
