"""The dataclass family that flows through every stage.

Document → Article (a citable unit) → Chunk → Hit → Citation → Answer.

A "unit" is what a citation points at: a numbered article, or a chapter's intro
paragraph, which belongs to no article but carries facts of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

UnitKind = Literal["article", "chapter_intro"]

CHINESE_NUMERALS = "零一二三四五六七八九十"


def chinese_number(n: int) -> str:
    """1 → 一, 19 → 十九, 43 → 四十三 (enough for article and chapter numbers)."""
    if n < 0 or n >= 100:
        raise ValueError(f"chinese_number supports 0..99, got {n}")
    if n < 10:
        return CHINESE_NUMERALS[n]
    tens, ones = divmod(n, 10)
    head = "" if tens == 1 else CHINESE_NUMERALS[tens]
    return head + "十" + (CHINESE_NUMERALS[ones] if ones else "")


@dataclass(frozen=True)
class DocumentMeta:
    doc_id: str
    title: str
    issuer: str
    adopted: str  # ISO date
    published: str  # ISO date
    source: str
    filename: str

    def to_dict(self) -> dict[str, str]:
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "issuer": self.issuer,
            "adopted": self.adopted,
            "published": self.published,
            "source": self.source,
            "filename": self.filename,
        }


@dataclass(frozen=True)
class Article:
    """A citable unit: a numbered article, or a chapter intro (number is None).

    ``text`` is exactly ``source[start:end]``: for an article it starts at the
    heading (after "19."), for an intro it is the intro paragraph(s).
    """

    doc_id: str
    chapter: str  # chapter numeral, 一…十一
    number: int | None
    title: str
    text: str
    start: int
    end: int

    @property
    def unit(self) -> UnitKind:
        return "chapter_intro" if self.number is None else "article"

    @property
    def unit_id(self) -> str:
        if self.number is None:
            return f"{self.doc_id}#chapter-{self.chapter}"
        return f"{self.doc_id}#article-{self.number}"

    @property
    def label(self) -> str:
        """How a person names it: 第十九条, or 第四部分引言."""
        if self.number is None:
            return f"第{self.chapter}部分引言"
        return f"第{chinese_number(self.number)}条"

    @property
    def chip(self) -> str:
        """Short display form, e.g. 「第十九条 积极应对人口老龄化挑战」."""
        return f"{self.label} {self.title}".strip()


@dataclass(frozen=True)
class Chapter:
    doc_id: str
    numeral: str  # 一…十一
    index: int  # 1…11
    title: str
    start: int  # offset of the heading line
    end: int  # offset where the next chapter (or the closing) starts
    intro: Article | None
    articles: tuple[Article, ...]


@dataclass(frozen=True)
class Document:
    meta: DocumentMeta
    source: str  # the whole raw file, offsets point into it
    preamble: Article | None  # opening paragraph before chapter 一 (not numbered)
    chapters: tuple[Chapter, ...]
    closing: str

    @property
    def doc_id(self) -> str:
        return self.meta.doc_id

    @property
    def articles(self) -> list[Article]:
        return [a for c in self.chapters for a in c.articles]

    @property
    def units(self) -> list[Article]:
        """Everything citable, in reading order (intros before their articles)."""
        out: list[Article] = []
        for c in self.chapters:
            if c.intro is not None:
                out.append(c.intro)
            out.extend(c.articles)
        return out

    def article(self, number: int) -> Article | None:
        for a in self.articles:
            if a.number == number:
                return a
        return None


@dataclass(frozen=True)
class Chunk:
    """A piece of one unit; never crosses a unit boundary."""

    chunk_id: str
    doc_id: str
    chapter: str
    article: int | None
    unit: UnitKind
    unit_id: str
    text: str  # exact source slice: source[start:end]
    start: int
    end: int
    context: str  # chapter + article title, prefixed when embedding

    @property
    def embed_text(self) -> str:
        return f"{self.context}\n{self.text}"


@dataclass
class Hit:
    """A retrieved unit with the evidence from each retrieval stage."""

    unit: Article
    score: float  # fused score (RRF)
    dense_score: float | None = None  # best cosine among its chunks
    bm25_score: float | None = None  # best BM25 among its chunks
    dense_rank: int | None = None  # 1-based rank of its best chunk, dense
    bm25_rank: int | None = None
    chunks: list[Chunk] = field(default_factory=list)  # its matching chunks, best first

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.unit.doc_id,
            "article": self.unit.number,
            "chapter": self.unit.chapter,
            "unit": self.unit.unit,
            "title": self.unit.title,
            "score": round(self.score, 6),
            "dense_score": None if self.dense_score is None else round(self.dense_score, 6),
            "bm25_score": None if self.bm25_score is None else round(self.bm25_score, 6),
        }


@dataclass(frozen=True)
class Citation:
    """A verified pointer from an answer sentence to the plan's exact words."""

    doc_id: str
    article: int | None
    chapter: str
    unit: UnitKind
    title: str
    quote: str  # verbatim: source[start:end] == quote
    start: int
    end: int
    label: str  # 第十九条 / 第四部分引言

    @property
    def chip(self) -> str:
        return f"{self.label} {self.title}".strip()

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "article": self.article,
            "chapter": self.chapter,
            "unit": self.unit,
            "title": self.title,
            "quote": self.quote,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True)
class AnswerSentence:
    text: str
    citation: int | None  # index into Answer.citations; None = unsupported


@dataclass
class Answer:
    question: str
    standalone_question: str
    text: str
    abstained: bool
    citations: list[Citation]
    backend: str
    language: str = "zh-Hans"  # zh-Hans | zh-Hant | en
    reason: str | None = None  # why abstained: not_in_plan, off_topic, injection, invalid_input
    sentences: list[AnswerSentence] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    formal_citation: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. "LLM unavailable, answered extractively"
    draft: str = ""  # the model's raw text before verification (empty for extractive answers)

    def to_dict(self, question_id: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if question_id is not None:
            out["id"] = question_id
        out.update(
            {
                "question": self.question,
                "standalone_question": self.standalone_question,
                "answer": self.text,
                "abstained": self.abstained,
                "reason": self.reason,
                "language": self.language,
                "citations": [c.to_dict() for c in self.citations],
                "sentences": [
                    {"text": s.text, "citation": s.citation} for s in self.sentences
                ],
                "formal_citation": self.formal_citation,
                "backend": self.backend,
                "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
                "warnings": list(self.warnings),
                "draft": self.draft,
            }
        )
        return out
