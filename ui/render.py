"""Pure rendering: answers, turns, search results and the plan outline → HTML strings.

No gradio here, so everything is unit-testable on its own. Everything taken
from the plan or typed by a user goes through ``esc`` (``html.escape``) before
it reaches the page, so a question like ``<script>…`` shows as text.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from assistant.models import Answer, Chapter, Citation, Document, Hit, Unit

HOTLINE = "12345"
MODES: dict[str, str] = {"resident": "居民", "hotline": "热线"}

WELCOME = (
    '<div class="welcome">'
    '<div class="welcome-title">您好！有什么想了解的？</div>'
    "<p>我会在《瑶海区“十四五”规划建议》里帮您查找关于<b>养老、上学、看病、老旧小区改造和加装电梯、就业社保、空气和水环境</b>等方面的说法。</p>"
    "<p>每个回答都注明出自第几条，<b>点开条款就能看到原文</b>，引用的句子会标成黄色。</p>"
    '<p class="muted">在下方输入问题，按 Enter 发送（Shift+Enter 换行）；也可以点下面的常见问题。</p>'
    "</div>"
)
DRAFT_NOTE = "草稿（核对中）：模型初稿，尚未与规划原文核对，核对后将替换为正式回答"


# ====================================================================== text and highlights


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _merge(spans: Sequence[tuple[int, int]], length: int) -> list[tuple[int, int]]:
    clipped = sorted((max(0, s), min(length, e)) for s, e in spans if e > s)
    out: list[tuple[int, int]] = []
    for s, e in clipped:
        if s >= e:
            continue
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def marked(text: str, spans: Sequence[tuple[int, int]], cls: str = "") -> str:
    """``text`` escaped, with ``spans`` (character offsets) wrapped in <mark>."""
    attr = f' class="{esc(cls)}"' if cls else ""
    parts: list[str] = []
    pos = 0
    for s, e in _merge(spans, len(text)):
        parts.append(esc(text[pos:s]))
        parts.append(f"<mark{attr}>{esc(text[s:e])}</mark>")
        pos = e
    parts.append(esc(text[pos:]))
    return "".join(parts)


def shared_spans(text: str, query: str, min_len: int = 2) -> list[tuple[int, int]]:
    """Spans of ``text`` that also occur in ``query`` (≥ min_len characters, not just punctuation).

    Language-agnostic highlighting for lookup results: works for 养老 as for "REITs".
    """
    q = query.lower()
    low = text.lower()
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(low):
        best = 0
        length = min_len
        while i + length <= len(low) and low[i : i + length] in q:
            best = length
            length += 1
        if best and any(ch.isalnum() for ch in low[i : i + best]):
            spans.append((i, i + best))
            i += best
        else:
            i += 1
    return spans


def quote_span(unit: Unit, citation: Citation) -> tuple[int, int] | None:
    """Where the citation's quote sits inside ``unit.text`` (offsets first, text search as fallback)."""
    s, e = citation.start - unit.start, citation.end - unit.start
    if 0 <= s < e <= len(unit.text) and unit.text[s:e] == citation.quote:
        return s, e
    found = unit.text.find(citation.quote) if citation.quote else -1
    return (found, found + len(citation.quote)) if found >= 0 else None


# ====================================================================== units and citations


class UnitIndex:
    """Chapter titles of the loaded documents, for the "第四部分 …" line under a chip."""

    def __init__(self, documents: Sequence[Document]) -> None:
        self.documents = list(documents)
        self._chapters: dict[tuple[str, str], str] = {
            (doc.doc_id, ch.numeral): ch.title for doc in self.documents for ch in doc.chapters
        }

    def chapter_title(self, doc_id: str, chapter: str) -> str:
        return self._chapters.get((doc_id, chapter), "")


def unit_details(
    unit: Unit,
    spans: Sequence[tuple[int, int]] = (),
    *,
    number: int | None = None,
    cls: str = "cite",
    mark_cls: str = "",
    chapter_title: str = "",
    summary_extra: str = "",
    open_: bool = False,
) -> str:
    """One expandable chip: 「第十九条 …」 → the whole unit with ``spans`` highlighted."""
    badge = f'<span class="ref-num">{number}</span>' if number is not None else ""
    where = f'<span class="where">第{esc(unit.chapter)}部分 {esc(chapter_title)}</span>' if chapter_title else ""
    anchor = f"article-{unit.number}" if unit.number is not None else f"intro-{unit.chapter}"
    return (
        f'<details class="{esc(cls)}" data-unit="{esc(anchor)}"{" open" if open_ else ""}>'
        f'<summary>{badge}<span class="chip">「{esc(unit.chip)}」</span>{where}{summary_extra}</summary>'
        f'<div class="unit-text">{marked(unit.text, spans, mark_cls)}</div>'
        "</details>"
    )


@dataclass
class CitationGroup:
    """The citations of one unit: shown as one numbered chip."""

    number: int
    unit: Unit
    citations: list[Citation] = field(default_factory=list)


def group_citations(citations: Sequence[Citation]) -> tuple[list[CitationGroup], dict[Citation, int]]:
    """One chip per cited unit, numbered from 1 in order of first citation; maps each citation to its number."""
    groups: dict[str, CitationGroup] = {}
    number_of: dict[Citation, int] = {}
    for c in citations:
        key = c.unit.unit_id
        if key not in groups:
            groups[key] = CitationGroup(len(groups) + 1, c.unit)
        groups[key].citations.append(c)
        number_of[c] = groups[key].number
    return list(groups.values()), number_of


def render_citation_group(group: CitationGroup, units: UnitIndex) -> str:
    spans = [sp for c in group.citations if (sp := quote_span(group.unit, c)) is not None]
    return unit_details(
        group.unit,
        spans,
        number=group.number,
        chapter_title=units.chapter_title(group.unit.doc_id, group.unit.chapter),
    )


# ====================================================================== answers


def render_answer_text(answer: Answer, number_of: dict[Citation, int]) -> str:
    """The answer, each supported sentence followed by its chip number."""
    text = answer.text
    if not answer.sentences:
        return esc(text)
    parts: list[str] = []
    pos = 0
    for s in answer.sentences:
        at = text.find(s.text, pos) if s.text else -1
        if at < 0:  # sentence text differs from the joined answer: fall back to plain text
            return esc(text)
        number = number_of.get(s.citation) if s.citation is not None else None
        ref = f'<sup class="ref">{number}</sup>' if number is not None else ""
        parts.append(esc(text[pos:at]) + esc(s.text) + ref)
        pos = at + len(s.text)
    parts.append(esc(text[pos:]))
    return "".join(parts)


def _abstain_card(answer: Answer, body: str) -> str:
    declined = answer.reason in ("off_topic", "injection")
    title = "超出本助手的回答范围" if declined else "规划里没有找到这方面的明确说法"
    hotline = (
        ""
        if HOTLINE in answer.text
        else f'<div class="hotline">☎ 具体政策和办事流程，请拨打 <b>{HOTLINE}</b> 政务服务便民热线咨询</div>'
    )
    return (
        f'<div class="abstain-card" data-reason="{esc(answer.reason or "")}">'
        f'<div class="abstain-title">ⓘ {title}</div>{body}{hotline}</div>'
    )


def render_answer(answer: Answer, units: UnitIndex, mode: str) -> str:
    groups, number_of = group_citations(answer.citations)
    text_html = render_answer_text(answer, number_of)
    if answer.abstained:  # make the hotline number stand out wherever the text names it
        text_html = text_html.replace(HOTLINE, f'<b class="hotline-num">{HOTLINE}</b>')
    body = f'<div class="answer-text">{text_html}</div>'
    out = [_abstain_card(answer, body) if answer.abstained else body]
    out.extend(f'<div class="warn">⚠ {esc(w)}</div>' for w in answer.warnings)
    if mode == "hotline" and answer.formal_citation:
        out.append(f'<div class="formal">{esc(answer.formal_citation)}</div>')
    if groups:
        head = "相关条款" if answer.abstained else "回答依据"
        out.append(
            f'<div class="cites"><div class="cites-head">{head}（点开条款核对原文，黄色为引用的句子）</div>'
            + "".join(render_citation_group(g, units) for g in groups)
            + "</div>"
        )
    return "".join(out)


def render_hits(hits: Sequence[Hit], units: UnitIndex, cls: str = "excerpt") -> str:
    """Retrieved units while the answer is being written: matching chunks highlighted."""
    return "".join(
        unit_details(
            h.unit,
            [(c.start - h.unit.start, c.end - h.unit.start) for c in h.chunks[:1]],
            cls=cls,
            mark_cls="hit",
            chapter_title=units.chapter_title(h.unit.doc_id, h.unit.chapter),
        )
        for h in hits
    )


# ====================================================================== the conversation


@dataclass
class Turn:
    """One question and what came back: an Answer, or an error message."""

    question: str
    mode: str
    answer: Answer | None = None
    error: str = ""
    hits: list[Hit] = field(default_factory=list)  # kept for errors after retrieval


@dataclass
class Pending:
    """The turn being streamed."""

    question: str
    mode: str
    status: str = "正在理解您的问题…"
    hits: list[Hit] = field(default_factory=list)
    text: str = ""


def _user_row(question: str) -> str:
    return f'<div class="msg-row user"><div class="pqa-bubble user-bubble">{esc(question)}</div></div>'


def _bot_row(inner: str, extra_cls: str = "") -> str:
    return (
        '<div class="msg-row bot"><div class="avatar" aria-hidden="true">政</div>'
        f'<div class="pqa-bubble bot-bubble {extra_cls}">{inner}</div></div>'
    )


def render_turn(turn: Turn, units: UnitIndex) -> str:
    if turn.answer is not None:
        cls = "abstained" if turn.answer.abstained else "answered"
        inner = render_answer(turn.answer, units, turn.mode)
        state = "done"
    else:
        cls = "failed"
        inner = f'<div class="error-card">⚠ {esc(turn.error)}</div>'
        if turn.hits:
            inner += (
                '<div class="cites"><div class="cites-head">找到的相关条款</div>'
                + render_hits(turn.hits, units)
                + "</div>"
            )
        state = "error"
    mode_tag = f'<span class="mode-tag">{esc(MODES.get(turn.mode, ""))}</span>'
    return (
        f'<div class="turn" data-state="{state}" data-mode="{esc(turn.mode)}">'
        f"{_user_row(turn.question)}{_bot_row(mode_tag + inner, cls)}</div>"
    )


def render_pending(p: Pending, units: UnitIndex) -> str:
    parts = [f'<div class="pqa-status"><span class="pqa-spinner"></span>{esc(p.status)}</div>']
    if p.hits:
        parts.append(
            f'<div class="excerpts"><div class="cites-head">找到 {len(p.hits)} 条相关条款，正在据此作答…</div>'
            + render_hits(p.hits, units)
            + "</div>"
        )
    if p.text:  # the model's raw draft: shown as provisional, replaced by the verified answer
        parts.append(
            f'<div class="draft" data-provisional="true"><div class="draft-head">{DRAFT_NOTE}</div>'
            f'<div class="answer-text streaming">{esc(p.text)}<span class="cursor"></span></div></div>'
        )
    return (
        f'<div class="turn" data-state="streaming" data-mode="{esc(p.mode)}">'
        f"{_user_row(p.question)}{_bot_row(''.join(parts), 'pending')}</div>"
    )


def render_chat(
    turns: Sequence[Turn], units: UnitIndex, pending: Pending | None = None, done: str | None = None
) -> str:
    """The conversation; ``done``: the finished turns' HTML when already made (only ``pending`` changes)."""
    if not turns and pending is None:
        body = WELCOME
    else:
        body = done if done is not None else "".join(render_turn(t, units) for t in turns)
        if pending is not None:
            body += render_pending(pending, units)
    return f'<div class="chat-log">{body}</div>'


def render_hint(message: str, kind: str = "info") -> str:
    return f'<div class="pqa-hint hint-{esc(kind)}">{esc(message)}</div>' if message else ""


def copy_text(turns: Sequence[Turn]) -> str:
    """Answer + formal citation of the latest answer, for hotline staff to paste (plain text)."""
    for t in reversed(turns):
        if t.answer is not None:
            a = t.answer
            return a.text + (f"\n{a.formal_citation}" if a.formal_citation else "")
    return ""


# ====================================================================== browse and lookup


def _chapter_outline(ch: Chapter) -> str:
    count = len(ch.articles)
    first_last = (
        f"第{ch.articles[0].label[1:-1]}至{ch.articles[-1].label[1:]}"
        if count > 1
        else (ch.articles[0].label if count == 1 else "")
    )
    inner = []
    if ch.intro is not None:
        inner.append(unit_details(ch.intro, cls="article intro"))
    inner.extend(unit_details(a, cls="article") for a in ch.articles)
    return (
        f'<details class="chapter" data-chapter="{esc(ch.numeral)}"><summary>'
        f'<span class="ch-num">{esc(ch.numeral)}</span><span class="ch-title">{esc(ch.title)}</span>'
        f'<span class="ch-count">{esc(first_last)}</span></summary>'
        f'<div class="chapter-body">{"".join(inner)}</div></details>'
    )


def render_outline(documents: Sequence[Document], units: UnitIndex) -> str:
    """The whole plan: preamble, every chapter with its intro and articles, closing."""
    parts: list[str] = []
    for doc in documents:
        meta = doc.meta
        parts.append(
            f'<div class="doc-head"><div class="doc-title">《{esc(meta.title)}》</div>'
            f'<div class="doc-meta">{esc(meta.issuer)} · {esc(meta.adopted)} 通过 · {esc(meta.published)} 发布</div></div>'
        )
        if doc.preamble is not None:
            parts.append(
                f'<details class="article preamble"><summary>序言</summary>'
                f'<div class="unit-text">{esc(doc.preamble.text)}</div></details>'
            )
        parts.extend(_chapter_outline(ch) for ch in doc.chapters)
        if doc.closing.strip():
            parts.append(
                f'<details class="article closing"><summary>结束语</summary>'
                f'<div class="unit-text">{esc(doc.closing.strip())}</div></details>'
            )
    return f'<div class="outline">{"".join(parts)}</div>'


def _search_result(rank: int, h: Hit, query: str, units: UnitIndex) -> str:
    unit = h.unit
    chunk = h.chunks[0] if h.chunks else None
    snippet_src = chunk.text if chunk else unit.text[:160]
    snippet = marked(snippet_src, shared_spans(snippet_src, query))
    cut = "…" if chunk and chunk.start > unit.start else ""
    tail = "…" if (chunk and chunk.end < unit.end) or (not chunk and len(unit.text) > 160) else ""
    full = marked(unit.text, shared_spans(unit.text, query))
    chapter = units.chapter_title(unit.doc_id, unit.chapter)
    return (
        f'<div class="result" data-unit="{esc(unit.unit_id)}">'
        f'<div class="result-head"><span class="rank">{rank}</span><span class="chip">「{esc(unit.chip)}」</span>'
        f'<span class="where">第{esc(unit.chapter)}部分 {esc(chapter)}</span></div>'
        f'<div class="pqa-snippet">{cut}{snippet}{tail}</div>'
        f'<details class="article"><summary>查看全文</summary><div class="unit-text">{full}</div></details>'
        "</div>"
    )


def render_search(query: str, hits: Sequence[Hit], units: UnitIndex) -> str:
    if not hits:
        return render_hint(f"没有找到与“{query}”相关的条款，换个说法试试（如“养老”“电梯”“学校”）。")
    items = "".join(_search_result(rank, h, query, units) for rank, h in enumerate(hits, 1))
    return f'<div class="results"><div class="cites-head">找到 {len(hits)} 条相关条款</div>{items}</div>'
