"""Citations are attached and verified in code, never trusted from the model.

Each answer sentence is matched to the retrieved sentence that supports it best
(character-bigram containment, on simplified text); a sentence with no support
is marked unsupported. Every citation's quote is then checked to be exactly the
source text at its offsets, inside the unit it names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from assistant.models import AnswerSentence, Citation, Document, Hit, Sentence, Unit
from assistant.text import referenced_articles, split_answer, to_simplified

_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
# Connective and framing words an answer may use around the plan's words.
_FRAMING = "规划原文中提到，规划里提出、指出、明确、强调、要求、包括以下几个方面的措施和安排，区里政府将会要，同时还有此外另外，具体来说主要是"


def _bigrams(text: str) -> set[str]:
    t = _PUNCT.sub("", to_simplified(text).lower())
    if len(t) < 2:
        return {t} if t else set()
    return {t[i : i + 2] for i in range(len(t) - 1)}


class CitationAttacher:
    """Match answer sentences to the retrieved sentences that support them.

    ``min_support``: share of an answer sentence's bigrams that must occur in one
    source sentence; ``min_unit_support``: the looser share accepted across a
    whole unit (for sentences that summarise several of its clauses);
    ``min_clause_support``: share of each clause's bigrams that must occur somewhere
    in the retrieved units, so an invented conclusion cannot ride on a quote.
    """

    def __init__(
        self,
        min_support: float = 0.5,
        min_unit_support: float = 0.6,
        min_grams: int = 4,
        min_clause_support: float = 0.4,
        min_clause_grams: int = 6,
    ) -> None:
        self.min_clause_support = min_clause_support
        self.min_clause_grams = min_clause_grams
        for name, value in (
            ("min_support", min_support),
            ("min_unit_support", min_unit_support),
            ("min_clause_support", min_clause_support),
        ):
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        self.min_support = min_support
        self.min_unit_support = min_unit_support
        self.min_grams = min_grams

    def run(
        self, answer_text: str, hits: list[Hit], question: str = ""
    ) -> list[AnswerSentence]:
        """Each sentence of ``answer_text`` with the source sentence that supports it, or None."""
        candidates = [s for hit in hits for s in hit.unit.sentences]
        unit_grams = {hit.unit.unit_id: _bigrams(hit.unit.text) for hit in hits}
        cached = [(s, _bigrams(s.text)) for s in candidates]
        # Echoing the question ("区里对高中有以下规划") is framing, not invention.
        evidence: set[str] = set().union(*unit_grams.values(), _bigrams(question), _bigrams(_FRAMING))
        sentences: list[AnswerSentence] = []
        for sent in split_answer(answer_text):
            grams = _bigrams(sent)
            best = self._best(grams, cached, unit_grams) if len(grams) >= self.min_grams else None
            if best is not None and self._names_other_article(sent, best.unit):
                best = None
            if best is not None and self._has_unsupported_clause(sent, evidence):
                best = None
            if best is None:
                sentences.append(AnswerSentence(sent, None))
                continue
            sentences.append(AnswerSentence(sent, Citation.of(best)))
        return sentences

    def _best(
        self,
        grams: set[str],
        candidates: list[tuple[Sentence, set[str]]],
        unit_grams: dict[str, set[str]],
    ) -> Sentence | None:
        best: Sentence | None = None
        best_score = 0.0
        for sentence, sgrams in candidates:
            score = len(grams & sgrams) / len(grams)
            if score > best_score:
                best, best_score = sentence, score
        if best is not None and best_score >= self.min_support:
            return best
        # A summary of several clauses of one unit: accept the unit, quote its best sentence.
        for uid, ugrams in unit_grams.items():
            if len(grams & ugrams) / len(grams) >= self.min_unit_support:
                in_unit = [(s, g) for s, g in candidates if s.unit.unit_id == uid]
                if in_unit:
                    return max(in_unit, key=lambda sg: len(grams & sg[1]))[0]
        return None

    def _has_unsupported_clause(self, sentence: str, evidence: set[str]) -> bool:
        """A sentence can quote the plan and still slip in a conclusion of its own
        ("……，这表明瑶海区可能会建设地铁"): every substantial clause needs support
        somewhere in the retrieved text."""
        for clause in re.split(r"[，,；;：:]", sentence):
            grams = _bigrams(clause)
            if len(grams) >= self.min_clause_grams and len(grams & evidence) / len(grams) < self.min_clause_support:
                return True
        return False

    @staticmethod
    def _names_other_article(sentence: str, unit: Unit) -> bool:
        """A sentence that names an article other than the one supporting it is not verified."""
        named = referenced_articles(to_simplified(sentence))
        return bool(named) and unit.number not in named


class CitationVerifier:
    """Checks that a citation points at a real unit and quotes it verbatim."""

    def __init__(self, documents: Iterable[Document]) -> None:
        self._docs = {d.doc_id: d for d in documents}

    def problem(self, citation: Citation) -> str | None:
        """None when the citation is sound, else what is wrong with it."""
        doc = self._docs.get(citation.doc_id)
        if doc is None:
            return f"unknown document {citation.doc_id!r}"
        unit = next(
            (u for u in doc.units if u.number == citation.article and u.chapter == citation.chapter),
            None,
        )
        if unit is None:
            where = f"article {citation.article}" if citation.article is not None else f"chapter {citation.chapter} intro"
            return f"{where} does not exist in {citation.doc_id}"
        if not citation.quote.strip():
            return "empty quote"
        if not (unit.start <= citation.start < citation.end <= unit.end):
            return f"offsets {citation.start}-{citation.end} fall outside {unit.label}"
        if doc.source[citation.start : citation.end] != citation.quote:
            return f"quote does not match the source at {citation.start}-{citation.end}"
        return None

    def run(self, citations: list[Citation]) -> list[Citation]:
        """Only the citations that verify."""
        return [c for c in citations if self.problem(c) is None]

    def sentences(self, sentences: list[AnswerSentence]) -> list[AnswerSentence]:
        """The sentences with every citation that fails verification removed (the text stays)."""
        return [s if s.citation is None or self.problem(s.citation) is None else AnswerSentence(s.text, None) for s in sentences]


def cited(sentences: list[AnswerSentence]) -> list[Citation]:
    """The distinct citations of ``sentences``, in order of first use."""
    out: list[Citation] = []
    for s in sentences:
        if s.citation is not None and s.citation not in out:
            out.append(s.citation)
    return out
