"""Split each citable unit (chapter intro or article) into overlapping chunks.

Chunks never cross a unit boundary, so every retrieved chunk points at exactly
one article to cite. Each chunk keeps exact offsets (``source[start:end] ==
text``) and a short ``context`` (chapter + article title) that is prefixed when
embedding, so a short chunk still says what it is about.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assistant.errors import ConfigError, CorpusError, MissingDependencyError
from assistant.models import Chapter, Chunk, Document, Unit

# Coarse to fine: paragraph, line, sentence ends, clause breaks, then characters.
# The plan uses ASCII "," and ";" as often as the full-width forms, so both.
SEPARATORS = ("\n\n", "\n", "。", "！", "？", "；", ";", "，", ",", "")
MAX_CHUNK_SIZE = 8000

_Choice = tuple[int, int] | None  # where a piece goes, or None: it adds nothing


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


class Chunker:
    """Units → chunks of at most ``chunk_size`` characters, ``chunk_overlap`` shared."""

    def __init__(self, chunk_size: int = 220, chunk_overlap: int = 40) -> None:
        self.chunk_size = _check_int("chunk_size", chunk_size, 1, MAX_CHUNK_SIZE)
        self.chunk_overlap = _check_int("chunk_overlap", chunk_overlap, 0, MAX_CHUNK_SIZE)
        if chunk_overlap >= chunk_size:
            raise ConfigError(f"chunk_overlap must be smaller than chunk_size ({chunk_size}), got {chunk_overlap!r}")
        self._splitter: Any = None

    def _split(self, text: str) -> list[str]:
        if self._splitter is None:
            try:
                from langchain_text_splitters import RecursiveCharacterTextSplitter
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise MissingDependencyError(
                    f"Python package 'langchain-text-splitters' is not installed ({exc}). "
                    "Fix: .venv/bin/pip install 'langchain-text-splitters>=0.3'"
                ) from exc
            self._splitter = RecursiveCharacterTextSplitter(
                separators=list(SEPARATORS),
                keep_separator="end",  # "…落到实处。" keeps its full stop
                chunk_size=self.chunk_size,
                chunk_overlap=self.chunk_overlap,
                strip_whitespace=True,
            )
        pieces: list[str] = self._splitter.split_text(text)
        return pieces

    def run(self, documents: Sequence[Document]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for doc in documents:
            for chapter in doc.chapters:
                units = ([chapter.intro] if chapter.intro is not None else []) + list(chapter.articles)
                for unit in units:
                    chunks.extend(self._chunk_unit(doc, chapter, unit))
        return chunks

    def _chunk_unit(self, doc: Document, chapter: Chapter, unit: Unit) -> list[Chunk]:
        context = f"{chapter.numeral}、{chapter.title} {unit.label}"
        if unit.number is not None:
            context += f" {unit.title}"
        pieces = [p.strip() for p in self._split(unit.text)]
        spans = self._place(unit, [p for p in pieces if p])
        out: list[Chunk] = []
        for i, (a, b) in enumerate(spans):
            start, end = unit.start + a, unit.start + b
            text = doc.source[start:end]
            if text != unit.text[a:b]:  # offsets must be exact: citations quote them
                raise CorpusError(f"chunking {unit.unit_id}: chunk offsets {start}:{end} do not match the source")
            out.append(
                Chunk(
                    chunk_id=f"{unit.unit_id}:{i}",
                    doc_id=doc.doc_id,
                    chapter=unit.chapter,
                    article=unit.number,
                    unit=unit.kind,
                    unit_id=unit.unit_id,
                    text=text,
                    start=start,
                    end=end,
                    context=context,
                )
            )
        return out

    def _place(self, unit: Unit, pieces: list[str]) -> list[tuple[int, int]]:
        """Offsets (into ``unit.text``) of the splitter's pieces, which come as bare strings.

        A piece can occur more than once, so the offsets are found by a small
        search under what the splitter guarantees: pieces come in order, each
        starts no earlier than the previous one, shares at most chunk_overlap
        characters with the text already covered, skips nothing but whitespace,
        and together they cover the unit. A piece that adds nothing (the splitter
        can repeat a prefix when the overlap is large) is dropped; a longer piece
        with the same start replaces the shorter one.
        """
        text, n = unit.text, len(pieces)

        def options(i: int, last_start: int, covered: int) -> list[_Choice]:
            piece = pieces[i]
            out: list[_Choice] = []
            at = text.find(piece, max(last_start, covered - self.chunk_overlap))
            while at >= 0:
                if at > covered and text[covered:at].strip():
                    break  # would skip text: later occurrences would skip more
                if at + len(piece) > covered:
                    out.append((at, at + len(piece)))
                at = text.find(piece, at + 1)
            if covered and text.find(piece, 0, covered) >= 0:
                out.append(None)
            return out

        # Iterative depth-first search (units can yield thousands of pieces)
        # with a memo of dead ends; in practice the first option nearly always works.
        dead: set[tuple[int, int, int]] = set()
        path: list[_Choice] = []
        stack: list[tuple[int, int, int, list[_Choice]]] = [(0, 0, 0, options(0, 0, 0) if n else [])]
        while stack:
            i, last_start, covered, opts = stack[-1]
            if i == n:
                if not text[covered:].strip():
                    break
                stack.pop()
                dead.add((i, last_start, covered))
                if path:
                    path.pop()
                continue
            if not opts:
                stack.pop()
                dead.add((i, last_start, covered))
                if path:
                    path.pop()
                continue
            choice = opts.pop(0)
            nxt = (i + 1, last_start, covered) if choice is None else (i + 1, choice[0], choice[1])
            if nxt in dead:
                continue
            path.append(choice)
            stack.append((*nxt, options(*nxt) if nxt[0] < n else []))
        else:
            raise CorpusError(f"chunking {unit.unit_id}: could not map the chunks back onto the unit text")

        spans: list[tuple[int, int]] = []
        for choice in path:
            if choice is None:
                continue
            if spans and spans[-1][0] == choice[0]:
                spans.pop()
            spans.append(choice)
        return spans
