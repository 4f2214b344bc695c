"""Parse a plan text (as saved from the government web page) into chapters,
articles and chapter intros, with exact character offsets into the raw text.

The file is line-based: chapter headings ("三、以创新驱动…") and numbered article
headings ("10.\\u00a0奋力建设…") start a line after indentation; every other
non-blank line is a paragraph of the unit above it. Page boilerplate (返回首页,
breadcrumbs, 【…】 lines, 发布时间, 扫一扫…) is cut from both ends only, so a unit is
always one contiguous slice ``source[start:end]``.

Unit titles are not always set off by punctuation ("19. 积极应对人口老龄化挑战落实
人口老龄化国家战略,…"), so :func:`split_title` uses a general heuristic, not a
table of known titles: a heading alone on its line; else a short first sentence
ending in 。; else the first clause cut before a clause-opening word (坚持, 落实, 以…).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal

from assistant.errors import ConfigError, CorpusError
from assistant.models import Chapter, Document, DocumentMeta, Unit
from assistant.text import chinese_number

log = logging.getLogger(__name__)

# Bump whenever parsing output can change: the index manifest hashes it, so a
# parser change marks every built index stale.
PARSER_VERSION = "1"

# Whitespace as Python sees it (incl. U+00A0, U+3000, U+2003) plus the BOM and
# zero-width space, which web copies also leave around.
_STRIP = "".join(chr(c) for c in range(0x3001) if chr(c).isspace()) + "\ufeff\u200b"

_LINE = re.compile(r"[^\r\n]+")
_CHAPTER = re.compile(r"([一二三四五六七八九十]{1,3})、(.+)")
# "19." / "19．" then optional spaces; a digit or % right after the dot means a
# decimal ("8.25%", "25.43亿元"), never a heading.
_ARTICLE = re.compile(r"(\d{1,3})[.．](?![\d%％])[" + re.escape(_STRIP) + r"]*")
_BOILERPLATE = re.compile(
    r"(返回首页|首页\s*[>＞»›]|【|\[|发布时间|信息来源|来源[:：]|发布日期|字体[:：]|扫一扫|打印本页|关闭窗口|"
    r"分享到|浏览次数|访问量|上一篇|下一篇|相关链接|責任編輯|责任编辑)"
)
_BULLET = re.compile(r"(——|—|－|-|•|·|（[一二三四五六七八九十\d]+）|\([一二三四五六七八九十\d]+\)|[①-⑳])")

_SENTENCE_END = "。！？；;!?"
_CLAUSE_END = _SENTENCE_END + ",，:："
# Words that open the body clause of a run-in heading ("加强干部队伍建设|全面落实…").
# At each position the two-character words are tried before 以/把/将.
_OPENERS = (
    "高举", "坚持", "落实", "按照", "遵循", "全面", "面向", "全力", "紧紧", "围绕", "贯彻", "深入", "立足",
    "依托", "抢抓", "牢牢", "聚焦", "始终", "着力", "大力", "充分", "实施", "以", "把", "将",
)  # fmt: skip
# Single-character openers are also parts of common words: 可以/以及/一把手/将来…
_OPENER_NOT_AFTER = {"以": "可所予加难得足用借据", "把": "一", "将": "即必终"}
_OPENER_NOT_BEFORE = {"以": "及上下来后前便外内致免", "把": "握关手", "将": "来军士"}
# A title never ends with these (the split would cut a phrase in half). Not 与/及/和:
# 参与, 普及 end titles.
_BAD_TITLE_END = "的、“‘《(（"

_TitleRule = Literal["standalone", "sentence", "opener", "fallback"]


@dataclass(frozen=True)
class _Para:
    """One non-blank line, trimmed: ``source[start:end] == text``."""

    start: int
    end: int
    text: str


@dataclass
class _Heading:
    kind: Literal["chapter", "article"]
    index: int  # paragraph index
    number: int  # chapter index 1… or article number 1…
    numeral: str  # chapter numeral ("" for articles)
    title: str  # chapter title ("" for articles: split later)
    body_start: int  # offset after "N." + spaces (articles) / of the numeral (chapters)


def _paragraphs(source: str) -> list[_Para]:
    out: list[_Para] = []
    for m in _LINE.finditer(source):
        line = m.group()
        stripped = line.strip(_STRIP)
        if not stripped:
            continue
        start = m.start() + len(line) - len(line.lstrip(_STRIP))
        out.append(_Para(start, start + len(stripped), stripped))
    return out


def split_title(heading: str, *, max_chars: int = 32, min_chars: int = 4) -> tuple[str, _TitleRule]:
    """The title of an article from its heading paragraph (the text after "N.").

    Returns the title and which rule found it (for tests and debugging).
    """
    text = heading.strip(_STRIP)
    # 1. A heading alone on its line: "5.“十四五”时期瑶海经济社会发展必须遵循的原则".
    if len(text) <= max_chars and not any(ch in _CLAUSE_END for ch in text):
        return text, "standalone"
    if len(text) <= max_chars + 1 and text[-1] in ":：" and not any(ch in _CLAUSE_END for ch in text[:-1]):
        return text[:-1], "standalone"
    # 2. A short first sentence with no comma: "1. 决胜全面建成小康社会取得决定性成就。…".
    end = next((i for i, ch in enumerate(text) if ch in _SENTENCE_END), len(text))
    sentence = text[:end]
    if end < len(text) and min_chars <= len(sentence) <= max_chars and not any(ch in ",，" for ch in sentence):
        return sentence, "sentence"
    # 3. Run-in heading: cut the first clause before the word that opens its body.
    clause_end = next((i for i, ch in enumerate(text) if ch in _CLAUSE_END), len(text))
    clause = text[:clause_end]
    cut = _opener_position(clause, min_chars=min_chars, max_chars=max_chars)
    if cut is not None:
        return clause[:cut], "opener"
    fallback = clause[:max_chars]
    log.warning("could not find where the title ends in heading %r; using %r", text[:60], fallback)
    return fallback, "fallback"


def _opener_position(clause: str, *, min_chars: int, max_chars: int) -> int | None:
    for i in range(min_chars, min(len(clause), max_chars + 1)):
        if clause[i - 1] in _BAD_TITLE_END:
            continue
        for word in _OPENERS:
            if not clause.startswith(word, i):
                continue
            if len(clause) - i - len(word) < 2:  # the body clause needs some substance
                continue
            after = clause[i + len(word) : i + len(word) + 1]
            if clause[i - 1] in _OPENER_NOT_AFTER.get(word, "") or (
                after and after in _OPENER_NOT_BEFORE.get(word, "")
            ):
                continue
            return i
    return None


class PlanParser:
    """Raw plan text → :class:`Document` (chapters, articles, intros, offsets)."""

    def __init__(self, max_title_chars: int = 32, min_title_chars: int = 4) -> None:
        if isinstance(min_title_chars, bool) or not isinstance(min_title_chars, int) or min_title_chars < 1:
            raise ConfigError(f"min_title_chars must be a positive integer, got {min_title_chars!r}")
        if (
            isinstance(max_title_chars, bool)
            or not isinstance(max_title_chars, int)
            or max_title_chars < min_title_chars
        ):
            raise ConfigError(f"max_title_chars must be an integer >= min_title_chars, got {max_title_chars!r}")
        self.max_title_chars = max_title_chars
        self.min_title_chars = min_title_chars

    def run(self, text: str, meta: DocumentMeta) -> Document:
        name = meta.filename or meta.doc_id
        if not isinstance(text, str) or not text.strip(_STRIP):
            raise CorpusError(f"corpus file {name} is empty")
        if "\x00" in text:
            raise CorpusError(f"corpus file {name} contains NUL bytes (binary data?)")
        paras = _paragraphs(text)
        headings = self._find_headings(paras, name)
        chapters_idx = [h for h in headings if h.kind == "chapter"]
        if not chapters_idx:
            raise CorpusError(f"corpus file {name} has no chapter headings (一、… at the start of a line)")
        if not any(h.kind == "article" for h in headings):
            raise CorpusError(f"corpus file {name} has no numbered articles (1. … at the start of a line)")
        first = chapters_idx[0]
        stray = [h for h in headings if h.index < first.index]
        if stray:
            raise CorpusError(f"corpus file {name}: article {stray[0].number} appears before chapter 一")

        preamble = self._preamble(text, paras[: first.index], meta)
        body_end, closing = self._tail(paras, headings)

        chapters: list[Chapter] = []
        for ci, ch in enumerate(chapters_idx):
            stop = chapters_idx[ci + 1].index if ci + 1 < len(chapters_idx) else body_end
            inner = [h for h in headings if h.kind == "article" and ch.index < h.index < stop]
            intro = None
            intro_stop = inner[0].index if inner else stop
            if intro_stop > ch.index + 1:
                a, b = paras[ch.index + 1].start, paras[intro_stop - 1].end
                intro = Unit(meta.doc_id, ch.numeral, None, ch.title, text[a:b], a, b)
            articles: list[Unit] = []
            for ai, h in enumerate(inner):
                last = (inner[ai + 1].index if ai + 1 < len(inner) else stop) - 1
                a, b = h.body_start, paras[last].end
                title, _ = split_title(
                    paras[h.index].text[h.body_start - paras[h.index].start :],
                    max_chars=self.max_title_chars,
                    min_chars=self.min_title_chars,
                )
                articles.append(Unit(meta.doc_id, ch.numeral, h.number, title, text[a:b], a, b))
            if ci + 1 < len(chapters_idx):
                end = paras[chapters_idx[ci + 1].index].start
            elif closing is not None:
                end = closing.start
            else:
                end = paras[body_end - 1].end
            chapters.append(
                Chapter(meta.doc_id, ch.numeral, ch.number, ch.title, ch.body_start, end, intro, tuple(articles))
            )
        return Document(
            meta=meta,
            source=text,
            preamble=preamble,
            chapters=tuple(chapters),
            closing="" if closing is None else text[closing.start : closing.end],
        )

    def _find_headings(self, paras: list[_Para], name: str) -> list[_Heading]:
        out: list[_Heading] = []
        next_chapter, next_article = 1, 1
        for i, p in enumerate(paras):
            m = _CHAPTER.fullmatch(p.text)
            # A chapter heading is short, has no full stop and comes in order, so
            # "二、三产业…" inside a paragraph is never mistaken for one.
            if (
                m
                and next_chapter < 100
                and m.group(1) == chinese_number(next_chapter)
                and len(p.text) <= 80
                and "。" not in p.text
            ):
                title = m.group(2).strip(_STRIP)
                out.append(_Heading("chapter", i, next_chapter, m.group(1), title, p.start))
                next_chapter += 1
                continue
            m = _ARTICLE.match(p.text)
            if m and m.end() < len(p.text):
                number = int(m.group(1))
                if number == next_article:
                    out.append(_Heading("article", i, number, "", "", p.start + m.end()))
                    next_article += 1
                elif number > next_article:
                    raise CorpusError(
                        f"corpus file {name}: article {next_article} is missing (found {number}. at {p.text[:20]!r})"
                    )
                # a smaller number restarts a numbered list inside an article: body text
        return out

    def _preamble(self, text: str, head: list[_Para], meta: DocumentMeta) -> Unit | None:
        """The opening paragraph(s) after the page boilerplate and before chapter 一."""
        kept: list[_Para] = []
        for p in head:
            if _BOILERPLATE.match(p.text) or (meta.title and p.text.startswith(meta.title)):
                kept = []  # everything up to the last boilerplate line is page furniture
            else:
                kept.append(p)
        if not kept:
            return None
        a, b = kept[0].start, kept[-1].end
        return Unit(meta.doc_id, "", None, "序言", text[a:b], a, b)

    @staticmethod
    def _tail(paras: list[_Para], headings: list[_Heading]) -> tuple[int, _Para | None]:
        """Where the last unit ends (paragraph index, exclusive) and the closing span.

        After the last heading, the first boilerplate line starts the page footer.
        If the last heading is an article, it keeps its bullet paragraphs ("——…")
        (and, for a heading alone on its line, the paragraph that follows); the
        first plain paragraph after that starts the closing.
        """
        last = headings[-1]
        footer = next((i for i in range(last.index + 1, len(paras)) if _BOILERPLATE.match(paras[i].text)), len(paras))
        if last.kind == "chapter":
            return footer, None
        end = last.index + 1
        heading_text = paras[last.index].text
        standalone = not any(ch in _CLAUSE_END for ch in heading_text)
        if standalone and end < footer:
            end += 1
        while end < footer and _BULLET.match(paras[end].text):
            end += 1
        if end >= footer:
            return footer, None
        closing = _Para(paras[end].start, paras[footer - 1].end, "")
        return end, closing
