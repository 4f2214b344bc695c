"""The resident-facing chat app (Gradio) and its ``/ask`` API.

Thin by design: every answer, refusal and citation comes from
``assistant.pipeline.Assistant``; this module only renders them. Everything
taken from the plan or typed by a user goes through ``html.escape`` before it
reaches the page, so a question like ``<script>…`` shows as text.

Fully offline: analytics off, no share link, a theme with local system fonts
only (the default theme would fetch Google Fonts), no CDN assets.
"""

from __future__ import annotations

import os

# Must be set before gradio is imported: it reads these at import time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import html  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import gradio as gr  # noqa: E402

from assistant.config import Settings  # noqa: E402
from assistant.errors import AssistantError, ConfigError, InvalidInputError  # noqa: E402
from assistant.feedback import FeedbackStore  # noqa: E402
from assistant.models import Answer, Article, Citation, Document, Hit  # noqa: E402

if TYPE_CHECKING:
    from assistant.pipeline import Assistant

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
HOTLINE = "12345"
MODES: dict[str, str] = {"resident": "居民", "hotline": "热线"}
MAX_HISTORY_TURNS = 3  # question/answer pairs fed back for follow-ups
STREAM_MIN_INTERVAL_S = 0.05  # at most ~20 page updates a second while tokens stream

EXAMPLES: tuple[str, ...] = (
    "我家老人想找个能看病的养老院，规划里有说法吗？",
    "孩子快上小学了，区里会多建学校、增加学位吗？",
    "在家门口看病方便吗？社区医院会怎么加强？",
    "我们小区房子很旧了，会改造吗？能加装电梯吗？",
    "失业了想再就业，规划里有哪些就业和社保的支持？",
    "空气质量和河道水质，规划打算怎么治理？",
)

THEME_FONTS = ["Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "Source Han Sans SC", "sans-serif"]
MONO_FONTS = ["Noto Sans Mono CJK SC", "DejaVu Sans Mono", "monospace"]


# ====================================================================== rendering


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


class UnitIndex:
    """Finds the full unit (article or chapter intro) a citation or hit points at."""

    def __init__(self, documents: Sequence[Document]) -> None:
        self.documents = list(documents)
        self._units: dict[tuple[str, str], Article] = {}
        self._chapters: dict[tuple[str, str], str] = {}
        for doc in self.documents:
            for ch in doc.chapters:
                self._chapters[(doc.doc_id, ch.numeral)] = ch.title
            for unit in doc.units:
                self._units[(doc.doc_id, self._key(unit.number, unit.chapter))] = unit

    @staticmethod
    def _key(article: int | None, chapter: str) -> str:
        return f"article-{article}" if article is not None else f"intro-{chapter}"

    def unit(self, doc_id: str, article: int | None, chapter: str) -> Article | None:
        return self._units.get((doc_id, self._key(article, chapter)))

    def chapter_title(self, doc_id: str, chapter: str) -> str:
        return self._chapters.get((doc_id, chapter), "")


def quote_span(unit: Article, citation: Citation) -> tuple[int, int] | None:
    """Where the citation's quote sits inside ``unit.text`` (offsets first, text search as fallback)."""
    s, e = citation.start - unit.start, citation.end - unit.start
    if 0 <= s < e <= len(unit.text) and unit.text[s:e] == citation.quote:
        return s, e
    found = unit.text.find(citation.quote) if citation.quote else -1
    return (found, found + len(citation.quote)) if found >= 0 else None


def unit_details(
    unit: Article,
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
    number: int
    unit: Article | None
    citations: list[Citation] = field(default_factory=list)


def group_citations(citations: Sequence[Citation], units: UnitIndex) -> tuple[list[CitationGroup], dict[int, int]]:
    """One chip per cited unit; maps each citation index to its chip number."""
    groups: dict[tuple[str, str], CitationGroup] = {}
    number_of: dict[int, int] = {}
    for i, c in enumerate(citations):
        key = (c.doc_id, UnitIndex._key(c.article, c.chapter))
        if key not in groups:
            groups[key] = CitationGroup(len(groups) + 1, units.unit(c.doc_id, c.article, c.chapter))
        groups[key].citations.append(c)
        number_of[i] = groups[key].number
    return list(groups.values()), number_of


def render_citation_group(group: CitationGroup, units: UnitIndex) -> str:
    first = group.citations[0]
    if group.unit is None:  # should not happen: citations are verified against the same documents
        quotes = "".join(f"<mark>{esc(c.quote)}</mark>" for c in group.citations)
        return (
            f'<details class="cite"><summary><span class="ref-num">{group.number}</span>'
            f'<span class="chip">「{esc(first.chip)}」</span></summary><div class="unit-text">{quotes}</div></details>'
        )
    spans = [sp for c in group.citations if (sp := quote_span(group.unit, c)) is not None]
    return unit_details(
        group.unit,
        spans,
        number=group.number,
        chapter_title=units.chapter_title(first.doc_id, first.chapter),
    )


def render_answer_text(answer: Answer, number_of: dict[int, int]) -> str:
    """The answer, each supported sentence followed by its chip number."""
    text = answer.text
    if not answer.sentences:
        return esc(text)
    parts: list[str] = []
    pos = 0
    for s in answer.sentences:
        at = text.find(s.text, pos) if s.text else -1
        ref = ""
        if s.citation is not None and s.citation in number_of:
            ref = f'<sup class="ref">{number_of[s.citation]}</sup>'
        if at < 0:  # sentence text differs from the joined answer: fall back to plain text
            return esc(text)
        parts.append(esc(text[pos:at]) + esc(s.text) + ref)
        pos = at + len(s.text)
    parts.append(esc(text[pos:]))
    return "".join(parts)


def render_answer(answer: Answer, units: UnitIndex, mode: str) -> str:
    groups, number_of = group_citations(answer.citations, units)
    text_html = render_answer_text(answer, number_of)
    if answer.abstained:  # make the hotline number stand out wherever the text names it
        text_html = text_html.replace(HOTLINE, f'<b class="hotline-num">{HOTLINE}</b>')
    body = f'<div class="answer-text">{text_html}</div>'
    out: list[str] = []
    if answer.abstained:
        declined = answer.reason in ("off_topic", "injection")
        title = "超出本助手的回答范围" if declined else "规划里没有找到这方面的明确说法"
        hotline = (
            ""
            if HOTLINE in answer.text
            else f'<div class="hotline">☎ 具体政策和办事流程，请拨打 <b>{HOTLINE}</b> 政务服务便民热线咨询</div>'
        )
        out.append(
            f'<div class="abstain-card" data-reason="{esc(answer.reason or "")}">'
            f'<div class="abstain-title">ⓘ {title}</div>{body}{hotline}</div>'
        )
    else:
        out.append(body)
    for w in answer.warnings:
        out.append(f'<div class="warn">⚠ {esc(w)}</div>')
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
    items = []
    for h in hits:
        spans = [(c.start - h.unit.start, c.end - h.unit.start) for c in h.chunks[:1]]
        items.append(
            unit_details(
                h.unit,
                spans,
                cls=cls,
                mark_cls="hit",
                chapter_title=units.chapter_title(h.unit.doc_id, h.unit.chapter),
            )
        )
    return "".join(items)


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
        a = turn.answer
        cls = "abstained" if a.abstained else "answered"
        inner = render_answer(a, units, turn.mode)
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
    mode_tag = f'<span class="mode-tag">{MODES.get(turn.mode, "")}</span>'
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
    if p.text:
        parts.append(f'<div class="answer-text streaming">{esc(p.text)}<span class="cursor"></span></div>')
    return (
        f'<div class="turn" data-state="streaming" data-mode="{esc(p.mode)}">'
        f"{_user_row(p.question)}{_bot_row(''.join(parts), 'pending')}</div>"
    )


WELCOME = (
    '<div class="welcome">'
    '<div class="welcome-title">您好！有什么想了解的？</div>'
    "<p>我会在《瑶海区“十四五”规划建议》里帮您查找关于<b>养老、上学、看病、老旧小区改造和加装电梯、就业社保、空气和水环境</b>等方面的说法。</p>"
    "<p>每个回答都注明出自第几条，<b>点开条款就能看到原文</b>，引用的句子会标成黄色。</p>"
    '<p class="muted">在下方输入问题，按 Enter 发送（Shift+Enter 换行）；也可以点下面的常见问题。</p>'
    "</div>"
)


def render_chat(turns: Sequence[Turn], units: UnitIndex, pending: Pending | None = None) -> str:
    if not turns and pending is None:
        body = WELCOME
    else:
        body = "".join(render_turn(t, units) for t in turns)
        if pending is not None:
            body += render_pending(pending, units)
    return f'<div class="chat-log">{body}</div>'


def render_hint(message: str, kind: str = "info") -> str:
    return f'<div class="pqa-hint hint-{esc(kind)}">{esc(message)}</div>' if message else ""


def render_outline(documents: Sequence[Document], units: UnitIndex) -> str:
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
        for ch in doc.chapters:
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
            parts.append(
                f'<details class="chapter" data-chapter="{esc(ch.numeral)}"><summary>'
                f'<span class="ch-num">{esc(ch.numeral)}</span><span class="ch-title">{esc(ch.title)}</span>'
                f'<span class="ch-count">{esc(first_last)}</span></summary>'
                f'<div class="chapter-body">{"".join(inner)}</div></details>'
            )
        if doc.closing.strip():
            parts.append(
                f'<details class="article closing"><summary>结束语</summary>'
                f'<div class="unit-text">{esc(doc.closing.strip())}</div></details>'
            )
    return f'<div class="outline">{"".join(parts)}</div>'


def render_search(query: str, hits: Sequence[Hit], units: UnitIndex) -> str:
    if not hits:
        return render_hint(f"没有找到与“{query}”相关的条款，换个说法试试（如“养老”“电梯”“学校”）。")
    items = []
    for rank, h in enumerate(hits, 1):
        snippet_src = h.chunks[0].text if h.chunks else h.unit.text[:160]
        snippet = marked(snippet_src, shared_spans(snippet_src, query))
        cut = "…" if h.chunks and (h.chunks[0].start > h.unit.start) else ""
        tail = "…" if (h.chunks and h.chunks[0].end < h.unit.end) or (not h.chunks and len(h.unit.text) > 160) else ""
        full = marked(h.unit.text, shared_spans(h.unit.text, query))
        chapter = units.chapter_title(h.unit.doc_id, h.unit.chapter)
        items.append(
            f'<div class="result" data-unit="{esc(h.unit.unit_id)}">'
            f'<div class="result-head"><span class="rank">{rank}</span><span class="chip">「{esc(h.unit.chip)}」</span>'
            f'<span class="where">第{esc(h.unit.chapter)}部分 {esc(chapter)}</span></div>'
            f'<div class="pqa-snippet">{cut}{snippet}{tail}</div>'
            f'<details class="article"><summary>查看全文</summary><div class="unit-text">{full}</div></details>'
            "</div>"
        )
    return f'<div class="results"><div class="cites-head">找到 {len(hits)} 条相关条款</div>{"".join(items)}</div>'


def history_of(turns: Sequence[Turn]) -> list[dict[str, str]]:
    """The last few answered exchanges, as the pipeline's history."""
    out: list[dict[str, str]] = []
    for t in [t for t in turns if t.answer is not None][-MAX_HISTORY_TURNS:]:
        assert t.answer is not None
        out.append({"role": "user", "content": t.question})
        out.append({"role": "assistant", "content": t.answer.text})
    return out


def copy_text(turns: Sequence[Turn]) -> str:
    """Answer + formal citation of the latest answer, for hotline staff to paste."""
    for t in reversed(turns):
        if t.answer is not None:
            a = t.answer
            return a.text + (f"\n{a.formal_citation}" if a.formal_citation else "")
    return ""


# ====================================================================== API


def parse_history(history_json: str) -> list[dict[str, str]]:
    """history_json → [{"role", "content"}, …]; InvalidInputError with a clear message otherwise."""
    if history_json is None or (isinstance(history_json, str) and not history_json.strip()):
        return []
    if not isinstance(history_json, str):
        raise InvalidInputError("history_json must be a JSON string")
    try:
        data = json.loads(history_json)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"history_json is not valid JSON: {exc.msg} (position {exc.pos})") from exc
    if not isinstance(data, list):
        raise InvalidInputError('history_json must be a JSON list of {"role", "content"} objects')
    out: list[dict[str, str]] = []
    for i, turn in enumerate(data):
        if (
            not isinstance(turn, dict)
            or turn.get("role") not in ("user", "assistant")
            or not isinstance(turn.get("content"), str)
        ):
            raise InvalidInputError(f'history_json item {i} must be {{"role": "user"|"assistant", "content": str}}')
        out.append({"role": turn["role"], "content": turn["content"]})
    return out


def parse_mode(mode: str | None, default: str) -> str:
    if mode is None or (isinstance(mode, str) and not mode.strip()):
        return default
    aliases = {"居民": "resident", "热线": "hotline"}
    value = aliases.get(str(mode).strip(), str(mode).strip().lower())
    if value not in MODES:
        raise InvalidInputError(f"mode {mode!r} is not one of resident, hotline")
    return value


# ====================================================================== app


def _theme() -> gr.themes.Base:
    return gr.themes.Soft(
        primary_hue=gr.themes.colors.blue,
        secondary_hue=gr.themes.colors.sky,
        neutral_hue=gr.themes.colors.slate,
        font=THEME_FONTS,
        font_mono=MONO_FONTS,
        text_size=gr.themes.sizes.text_lg,
    )


def _css() -> str:
    path = HERE / "style.css"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:  # pragma: no cover - only when the package was installed without its data files
        log.warning("ui/style.css is missing; the page will use Gradio's default look")
        return ""


def build_app(assistant: Assistant, settings: Settings) -> gr.Blocks:
    """The chat, browse/lookup tab, feedback and the ``/ask`` API over one warmed-up Assistant."""
    documents = assistant.documents
    units = UnitIndex(documents)
    store = FeedbackStore(settings.feedback_db)
    plan_title = documents[0].meta.title if documents else "瑶海区“十四五”规划建议"

    # ------------------------------------------------------------ handlers

    def on_submit(question: str | None, turns: list[Turn], mode: str) -> Iterator[tuple[Any, ...]]:
        """Stream one answer. Outputs: chat, turns, question box, hint, copy box."""
        question = question if isinstance(question, str) else ""
        turns = list(turns or [])
        if not question.strip():
            yield (gr.skip(), turns, "", render_hint("请先输入您的问题，例如：" + EXAMPLES[0]), gr.skip())
            return
        pending = Pending(question=question.strip(), mode=mode)
        last_push = 0.0  # when the page was last updated; 0.0 = not yet
        events = iter(assistant.stream(question, history_of(turns), mode))
        try:
            # The first step validates the input: a rejected question stays in the box to be edited.
            first = next(events, None)
        except InvalidInputError as exc:
            yield (gr.skip(), turns, gr.skip(), render_hint(str(exc), "error"), gr.skip())
            return
        except Exception as exc:
            turn = _failed_turn(pending, exc)
        else:
            final: Answer | None = None
            try:
                for ev in _chain([first] if first is not None else [], events):
                    if ev.kind == "answer":
                        final = ev.answer
                        continue
                    if ev.kind == "status":
                        pending.status = ev.text or pending.status
                    elif ev.kind == "excerpts":
                        pending.hits = list(ev.hits)
                        pending.status = "已找到相关条款，正在组织回答…"
                    elif ev.kind == "token":
                        pending.text += ev.text
                    now = time.monotonic()
                    if ev.kind != "token" or now - last_push >= STREAM_MIN_INTERVAL_S:
                        # Clear the box once; afterwards leave it alone so the next question
                        # can be typed while this answer streams in.
                        box: Any = "" if last_push == 0.0 else gr.skip()
                        last_push = now
                        yield (render_chat(turns, units, pending), turns, box, "", gr.skip())
                if final is None:
                    raise AssistantError("没有得到回答")
                turn = Turn(question=pending.question, mode=mode, answer=final)
            except Exception as exc:
                turn = _failed_turn(pending, exc)
        new_turns = [*turns, turn]
        cleared: Any = gr.skip() if last_push else ""
        yield (render_chat(new_turns, units), new_turns, cleared, "", copy_text(new_turns))

    def on_new_chat() -> tuple[Any, ...]:
        return render_chat([], units), [], "", "", "", "", ""

    def on_mode(mode: str, turns: list[Turn]) -> Any:
        return gr.update(visible=mode == "hotline", value=copy_text(turns or []))

    def on_feedback(rating: str, reason: str | None, turns: list[Turn]) -> tuple[str, Any]:
        last = next((t for t in reversed(turns or []) if t.answer is not None), None)
        if last is None or last.answer is None:
            return render_hint("请先提问，得到回答后再评价。"), gr.skip()
        try:
            store.add_answer(last.answer, rating=rating, mode=last.mode, reason=reason or "")
        except AssistantError as exc:
            return render_hint(f"反馈没有保存成功：{exc}", "error"), gr.skip()
        thanks = "谢谢！很高兴能帮上忙。" if rating == "up" else "谢谢反馈！我们会根据您的意见改进。"
        return render_hint(thanks, "ok"), ""

    def on_search(query: str | None) -> str:
        query = (query or "").strip()
        if not query:
            return render_hint("请输入要查找的词或问题，例如“养老”“加装电梯”“学位”。")
        try:
            hits = assistant.search(query, k=10)
        except AssistantError as exc:
            return render_hint(str(exc), "error")
        except Exception:
            log.exception("search failed")
            return render_hint("查找出错了，请稍后再试。", "error")
        return render_search(query, hits, units)

    def ask(question: str, history_json: str = "[]", mode: str = "resident") -> dict:
        """Answer one question; returns Answer.to_dict(), or {"error": message} for bad input."""
        try:
            history = parse_history(history_json)
            answer = assistant.ask(question, history, parse_mode(mode, settings.mode))
        except AssistantError as exc:
            return {"error": str(exc)}
        except Exception as exc:
            log.exception("API /ask failed")
            return {"error": f"internal error ({type(exc).__name__}); see the server log"}
        return answer.to_dict()

    # ------------------------------------------------------------ layout

    with gr.Blocks(title="瑶海区“十四五”规划 · 政策问答", analytics_enabled=False) as app:
        gr.HTML(
            '<div class="hero"><div class="hero-title">瑶海区“十四五”规划 · 政策问答</div>'
            f'<div class="hero-sub">依据《{esc(plan_title)}》回答您的问题，'
            "每个回答都注明出自哪一条，点开即可核对原文。</div></div>",
            js_on_load=None,
        )
        turns_state = gr.State([])
        with gr.Tabs():
            with gr.Tab("💬 问答", id="chat"):
                with gr.Row(equal_height=True, elem_classes="pqa-toolbar"):
                    mode = gr.Radio(
                        choices=[("居民：通俗简明", "resident"), ("热线：附正式依据", "hotline")],
                        value=settings.mode,
                        label="回答方式",
                        show_label=False,
                        scale=4,
                        elem_id="mode",
                    )
                    new_chat = gr.Button("🗨 新对话", variant="secondary", size="sm", scale=1, elem_id="new-chat")
                chat = gr.HTML(
                    render_chat([], units),
                    elem_id="chat",
                    js_on_load=None,
                    autoscroll=True,
                    max_height=600,
                    min_height=260,
                    padding=False,
                )
                question = gr.Textbox(
                    placeholder="请输入您的问题，按 Enter 发送（Shift+Enter 换行）",
                    show_label=False,
                    lines=1,
                    max_lines=6,
                    submit_btn="发送",
                    autofocus=True,
                    elem_id="question",
                )
                hint = gr.HTML("", elem_id="hint", js_on_load=None)
                copy_box = gr.Textbox(
                    label="热线答复口径（答复 + 依据，点右上角按钮复制）",
                    lines=3,
                    max_lines=10,
                    interactive=False,
                    buttons=["copy"],
                    visible=settings.mode == "hotline",
                    elem_id="copy-box",
                )
                with gr.Column(elem_classes="pqa-examples"):
                    gr.HTML('<div class="examples-head">大家常问</div>', js_on_load=None)
                    with gr.Row(elem_classes="example-row"):
                        example_buttons = [
                            gr.Button(q, size="sm", variant="secondary", elem_classes="example-btn") for q in EXAMPLES
                        ]
                with gr.Row(equal_height=True, elem_id="feedback"):
                    gr.HTML('<div class="fb-q">这个回答有帮助吗？</div>', js_on_load=None, scale=0, min_width=150)
                    up = gr.Button("👍 有帮助", size="sm", elem_id="fb-up", scale=0, min_width=104)
                    down = gr.Button("👎 没帮助", size="sm", elem_id="fb-down", scale=0, min_width=104)
                    reason = gr.Textbox(
                        placeholder="可选：哪里不对、缺了什么？",
                        show_label=False,
                        lines=1,
                        max_lines=3,
                        scale=1,
                        elem_id="fb-reason",
                    )
                fb_msg = gr.HTML("", elem_id="fb-msg", js_on_load=None)
            with gr.Tab("📖 浏览与查找", id="browse"):
                with gr.Row(equal_height=True):
                    lookup = gr.Textbox(
                        placeholder="输入关键词或问题，例如：养老、加装电梯、学位、就业",
                        show_label=False,
                        lines=1,
                        max_lines=1,
                        submit_btn="查找",
                        elem_id="lookup",
                    )
                results = gr.HTML("", elem_id="results", js_on_load=None)
                gr.HTML(
                    '<div class="outline-head">规划全文目录（点开章节和条款阅读原文）</div>'
                    + render_outline(documents, units),
                    elem_id="outline",
                    js_on_load=None,
                )
        gr.HTML(
            '<div class="footer-note">本助手离线运行，只依据规划原文作答，不代表政府部门的正式答复。'
            f"具体政策与办事流程，请拨打 <b>{HOTLINE}</b> 政务服务便民热线。</div>",
            js_on_load=None,
        )

        # ------------------------------------------------------------ events

        answer_outputs = [chat, turns_state, question, hint, copy_box]
        # All model work shares one queue slot: concurrent users wait their turn, never crash.
        question.submit(
            on_submit,
            inputs=[question, turns_state, mode],
            outputs=answer_outputs,
            api_name="chat",
            concurrency_id="model",
            concurrency_limit=1,
            api_visibility="undocumented",
            show_progress="minimal",
        )
        for btn, text in zip(example_buttons, EXAMPLES, strict=True):
            btn.click(_constant(text), outputs=question, queue=False, api_visibility="undocumented").then(
                on_submit,
                inputs=[question, turns_state, mode],
                outputs=answer_outputs,
                concurrency_id="model",
                concurrency_limit=1,
                api_visibility="undocumented",
                show_progress="minimal",
            )
        new_chat.click(
            on_new_chat,
            outputs=[chat, turns_state, question, hint, copy_box, fb_msg, reason],
            api_name="new_chat",
            queue=False,
            api_visibility="undocumented",
        )
        mode.change(on_mode, inputs=[mode, turns_state], outputs=copy_box, queue=False, api_visibility="undocumented")
        for btn, rating in ((up, "up"), (down, "down")):
            btn.click(
                _rate(on_feedback, rating),
                inputs=[reason, turns_state],
                outputs=[fb_msg, reason],
                api_name=f"rate_{rating}",
                api_visibility="undocumented",
            )
        lookup.submit(
            on_search,
            inputs=lookup,
            outputs=results,
            api_name="lookup",
            concurrency_id="model",
            concurrency_limit=1,
            api_visibility="undocumented",
        )
        gr.api(ask, api_name="ask", concurrency_id="model", concurrency_limit=1)
    return app


def _chain(first: list[Any], rest: Iterator[Any]) -> Iterator[Any]:
    yield from first
    yield from rest


def _failed_turn(pending: Pending, exc: Exception) -> Turn:
    """A turn that shows what went wrong in one friendly line (the traceback goes to the log only)."""
    if isinstance(exc, AssistantError):
        message = f"抱歉，这次没能回答：{exc}"
    else:
        log.error("answering failed", exc_info=exc)
        message = f"抱歉，系统出了点问题，请稍后再试。急需帮助请拨打 {HOTLINE} 热线。"
    return Turn(question=pending.question, mode=pending.mode, error=message, hits=pending.hits)


def _constant(value: str) -> Callable[[], str]:
    def fill() -> str:
        return value

    return fill


def _rate(handler: Callable[[str, str | None, list[Turn]], tuple[str, Any]], rating: str) -> Callable[..., Any]:
    def rate(reason: str | None, turns: list[Turn]) -> tuple[str, Any]:
        return handler(rating, reason, turns)

    return rate


# ====================================================================== serving


def launch(
    app: gr.Blocks,
    settings: Settings,
    *,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
    max_queue: int = 64,
) -> tuple[Any, str, str]:
    """Start the server on settings.host:port with queuing, offline theme and CSS."""
    app.queue(default_concurrency_limit=1, max_size=max_queue)
    try:
        return app.launch(
            server_name=settings.host,
            server_port=settings.port,
            share=False,
            prevent_thread_lock=prevent_thread_lock,
            quiet=quiet,
            show_error=False,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            footer_links=["api"],
            theme=_theme(),
            css=_css(),
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {settings.host}:{settings.port} ({exc}); is another server using the port? "
            "Choose another with --port."
        ) from exc


def check_port_free(host: str, port: int) -> None:
    """Raise ConfigError if host:port cannot be bound (in use, or not an address of this machine)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"setting 'host' = {host!r} is not a valid address ({exc})") from exc
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); is another server using the port? "
                "Choose another with --port."
            ) from exc


def serve(
    settings: Settings,
    assistant: Assistant | None = None,
    progress: Callable[[str], None] = print,
) -> None:
    """``policy-qa serve``: warm everything up once (with progress), then serve until interrupted."""
    # Fail before the (possibly long) warm-up if the port is taken.
    check_port_free(settings.host, settings.port)
    if assistant is None:
        from assistant.pipeline import Assistant

        assistant = Assistant(settings, progress=progress)
    started = time.perf_counter()
    assistant.warm_up()
    progress(f"准备完成，用时 {time.perf_counter() - started:.1f} 秒。")
    app = build_app(assistant, settings)
    progress(f"在浏览器中打开 http://{settings.host}:{settings.port} （Ctrl+C 退出）")
    launch(app, settings, quiet=True)
