"""The dataclass family that flows through every stage.

Document → Unit (a citable article or chapter intro, with its Sentences) → Chunk
→ Hit → Citation (points at its Unit) → AnswerSentence (points at its Citation)
→ Answer. ChatTurn and Question type what comes in from users and question files.

A "unit" is what a citation points at: a numbered article, or a chapter's intro
paragraph, which belongs to no article but carries facts of its own. Its
sentences are split once, when the unit is made, and travel with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from assistant.text.numerals import chinese_number, chinese_to_int
from assistant.text.segment import split_sentences

UnitKind = Literal["article", "chapter_intro"]
Role = Literal["user", "assistant"]
_LEADING_PUNCT = "。，,；;：:"

@dataclass(frozen=True)
class DocumentMeta:
    doc_id: str
    title: str
    issuer: str
    adopted: str  # ISO date
    published: str  # ISO date
    source: str
    filename: str
    short_title: str = ""  # how residents name it, e.g. 瑶海区“十四五”规划建议
    english_title: str = ""  # e.g. the Yaohai District 14th Five-Year Plan proposals
    region: str = ""  # the place it governs, e.g. 合肥市瑶海区

    @property
    def name(self) -> str:
        """The plan's name for answers: the short title, else the full title."""
        return self.short_title or self.title

    @property
    def periods(self) -> tuple[str, ...]:
        """The five-year periods the plan is for, in residents' words ("十四五"), from its titles: "第十四个
        五年规划" in the full one, "“十四五”规划" in the short one."""
        found = re.findall(r"第([一二三四五六七八九十]+)个五年规划", self.title)
        found += re.findall(r"(?<![一二三四五六七八九十])([一二三四五六七八九十]+)五”?(?:规划|时期|期间)", self.short_title)
        return tuple(dict.fromkeys(f"{n}五" for n in found))

    @property
    def previous_periods(self) -> tuple[str, ...]:
        """The periods just before the plan's own ("十三五"): what its review of results speaks of."""
        numbers = [chinese_to_int(p[:-1]) for p in self.periods]
        return tuple(f"{chinese_number(n - 1)}五" for n in numbers if n is not None and 1 < n <= 100)

    def to_dict(self) -> dict[str, str]:
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "issuer": self.issuer,
            "adopted": self.adopted,
            "published": self.published,
            "source": self.source,
            "filename": self.filename,
            "short_title": self.short_title,
            "english_title": self.english_title,
            "region": self.region,
        }


@dataclass(frozen=True)
class Sentence:
    """One sentence of a unit: ``text`` is exactly ``source[start:end]`` (absolute offsets)."""

    unit: Unit = field(repr=False)
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Unit:
    """A citable unit: a numbered article, or a chapter intro (number is None).

    ``text`` is exactly ``source[start:end]``: for an article it starts at the
    heading (after "19."), for an intro it is the intro paragraph(s).
    ``sentences`` are split once, here, and shared by every later stage.
    """

    doc_id: str
    chapter: str  # chapter numeral, 一…十一
    number: int | None
    title: str
    text: str
    start: int
    end: int
    sentences: tuple[Sentence, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sentences", tuple(self._split()))

    def _split(self) -> list[Sentence]:
        out = []
        # A heading that runs straight into the body ("…挑战落实…") is not part of what the plan says.
        heading = self.number is not None and self.title and self.text.startswith(self.title)
        skip = len(self.title) if heading else 0
        for s, e in split_sentences(self.text):
            if e <= skip:
                continue
            s = max(s, skip)
            while s < e and (self.text[s].isspace() or self.text[s] in _LEADING_PUNCT):
                s += 1
            piece = self.text[s:e]
            if piece and (len(piece) > 3 or any("\u3400" <= ch <= "\u9fff" for ch in piece)):
                out.append(Sentence(self, self.start + s, self.start + e, piece))
        return out

    @property
    def kind(self) -> UnitKind:
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
    def english_label(self) -> str:
        return f"Article {self.number}" if self.number is not None else f"the intro of part {self.chapter}"

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
    intro: Unit | None
    articles: tuple[Unit, ...]


@dataclass(frozen=True)
class Document:
    meta: DocumentMeta
    source: str  # the whole raw file, offsets point into it
    preamble: Unit | None  # opening paragraph before chapter 一 (not numbered)
    chapters: tuple[Chapter, ...]
    closing: str

    @property
    def doc_id(self) -> str:
        return self.meta.doc_id

    @property
    def articles(self) -> list[Unit]:
        return [a for c in self.chapters for a in c.articles]

    @property
    def units(self) -> list[Unit]:
        """Everything citable, in reading order (intros before their articles)."""
        out: list[Unit] = []
        for c in self.chapters:
            if c.intro is not None:
                out.append(c.intro)
            out.extend(c.articles)
        return out

    def article(self, number: int) -> Unit | None:
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

    unit: Unit
    score: float  # fused score (RRF)
    dense_score: float | None = None  # best cosine among its chunks
    bm25_score: float | None = None  # best BM25 among its chunks
    dense_rank: int | None = None  # 1-based rank of its best chunk, dense
    bm25_rank: int | None = None
    chunks: list[Chunk] = field(default_factory=list)  # its matching chunks, best first
    aspect: str | None = None  # the part of an "A、B分别…" question this unit answers best, searched alone
    named: bool = False  # the question names this article by number ("第43条…")

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.unit.doc_id,
            "article": self.unit.number,
            "chapter": self.unit.chapter,
            "unit": self.unit.kind,
            "title": self.unit.title,
            "score": round(self.score, 6),
            "dense_score": None if self.dense_score is None else round(self.dense_score, 6),
            "bm25_score": None if self.bm25_score is None else round(self.bm25_score, 6),
        }


@dataclass(frozen=True)
class Citation:
    """A verified pointer from an answer sentence to the plan's exact words in ``unit``."""

    unit: Unit = field(repr=False)
    quote: str  # verbatim: source[start:end] == quote
    start: int
    end: int

    @classmethod
    def of(cls, sentence: Sentence) -> Citation:
        return cls(sentence.unit, sentence.text, sentence.start, sentence.end)

    @property
    def doc_id(self) -> str:
        return self.unit.doc_id

    @property
    def article(self) -> int | None:
        return self.unit.number

    @property
    def chapter(self) -> str:
        return self.unit.chapter

    @property
    def title(self) -> str:
        return self.unit.title

    @property
    def label(self) -> str:
        return self.unit.label

    @property
    def chip(self) -> str:
        return self.unit.chip

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "article": self.article,
            "chapter": self.chapter,
            "unit": self.unit.kind,
            "title": self.title,
            "quote": self.quote,
            "start": self.start,
            "end": self.end,
        }


@dataclass(frozen=True)
class AnswerSentence:
    text: str
    citation: Citation | None  # None: framing text that asserts nothing checkable


@dataclass(frozen=True)
class ChatTurn:
    """One turn of a conversation, as the client sent it (untrusted: checked before use)."""

    role: Role
    content: str

    @classmethod
    def parse_list(cls, raw: object, *, max_turns: int, max_chars: int) -> list[ChatTurn]:
        """Well-formed turns only, the last ``max_turns``, each cut to ``max_chars``;
        anything malformed is skipped, never an error (a bad history never breaks a question)."""
        if not isinstance(raw, list | tuple):
            return []
        out: list[ChatTurn] = []
        for turn in raw:
            pair: tuple[object, object] = (
                (turn.role, turn.content) if isinstance(turn, ChatTurn)
                else (turn.get("role"), turn.get("content")) if isinstance(turn, dict)
                else (None, None)
            )
            role, content = pair
            if (role == "user" or role == "assistant") and isinstance(content, str) and content.strip():
                out.append(cls(role, content.strip()[:max_chars]))
        return out[-max_turns:] if max_turns > 0 else []

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Question:
    """A row of a question file (the dev-question schema)."""

    id: str
    question: str
    history: tuple[ChatTurn, ...] = ()
    gold_articles: tuple[int, ...] = ()
    answer_points: tuple[str, ...] = ()
    kind: str = ""


@dataclass(frozen=True)
class Query:
    """One question on its way through the answering stage."""

    question: str  # as the user wrote it (validated)
    standalone: str  # simplified, follow-ups rewritten, English rendered into Chinese for search
    language: str  # zh-Hans | zh-Hant | en
    mode: str  # resident | hotline
    english: str = ""  # the English question itself, when the user wrote English
    previous: str = ""  # the conversation's last question, for a question asked in one and not rewritten


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

    def citation_index(self, citation: Citation | None) -> int | None:
        """Position of ``citation`` in ``citations`` (the JSON interface refers to citations by index)."""
        if citation is None:
            return None
        for i, c in enumerate(self.citations):
            if c == citation:
                return i
        return None

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
                "sentences": [{"text": s.text, "citation": self.citation_index(s.citation)} for s in self.sentences],
                "formal_citation": self.formal_citation,
                "backend": self.backend,
                "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
                "warnings": list(self.warnings),
                "draft": self.draft,
            }
        )
        return out


@dataclass
class StreamEvent:
    """What the answer flow yields: status lines, the excerpts, draft tokens, then the Answer."""

    kind: Literal["status", "excerpts", "token", "answer"]
    text: str = ""
    hits: list[Hit] = field(default_factory=list)
    answer: Answer | None = None
