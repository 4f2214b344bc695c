"""The resident-facing chat app (Gradio): layout, event handlers and the ``/ask`` API.

Thin by design: every answer, refusal and citation comes from
``assistant.answering.pipeline.Assistant``; the HTML is made (and escaped) in
``ui.render``; serving (queue, theme, port checks) lives in ``ui.server``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.config import Settings
from assistant.errors import AssistantError, InvalidInputError
from assistant.feedback import FeedbackStore
from assistant.generation.slots import TicketLock
from assistant.models import Answer, ChatTurn
from ui.render import (
    HOTLINE,
    MODES,
    Pending,
    Turn,
    UnitIndex,
    copy_text,
    esc,
    render_chat,
    render_hint,
    render_outline,
    render_search,
)

if TYPE_CHECKING:
    from assistant.answering.pipeline import Assistant, StreamEvent

log = logging.getLogger(__name__)

MAX_HISTORY_TURNS = 3  # question/answer pairs fed back for follow-ups
STREAM_MIN_INTERVAL_S = 0.05  # at most ~20 page updates a second while tokens stream
DECLINED_REASONS = ("injection", "off_topic")  # refusals that must never become context for a follow-up
# Model work runs one request at a time, in arrival order, through ``Handlers.slot`` (a ticket lock):
# Gradio lets up to this many handlers run so that waiting users can be shown their place in line.
MODEL_WORKERS = 16
MODEL_QUEUE: dict[str, Any] = {"concurrency_id": "model", "concurrency_limit": MODEL_WORKERS}
QUEUE_POLL_S = 0.5  # how often a waiting user's place in line is refreshed

EXAMPLES: tuple[str, ...] = (
    "我家老人想找个能看病的养老院，规划里有说法吗？",
    "孩子快上小学了，区里会多建学校、增加学位吗？",
    "在家门口看病方便吗？社区医院会怎么加强？",
    "我们小区房子很旧了，会改造吗？能加装电梯吗？",
    "失业了想再就业，规划里有哪些就业和社保的支持？",
    "空气质量和河道水质，规划打算怎么治理？",
)


# ====================================================================== conversation and API input


def history_of(turns: Sequence[Turn]) -> list[ChatTurn]:
    """The last few answered exchanges, as the pipeline's history.

    Failed turns and declined ones (injection, off-topic) are left out: a
    question the assistant refused never becomes context for the next one.
    """
    kept = [t for t in turns if t.answer is not None and not _declined(t)]
    out: list[ChatTurn] = []
    for t in kept[-MAX_HISTORY_TURNS:]:
        assert t.answer is not None
        out.append(ChatTurn("user", t.question))
        out.append(ChatTurn("assistant", t.answer.text))
    return out


def _declined(turn: Turn) -> bool:
    return turn.answer is not None and turn.answer.abstained and turn.answer.reason in DECLINED_REASONS


def parse_history(history_json: str) -> list[ChatTurn]:
    """history_json → ChatTurns; InvalidInputError with a clear message for anything malformed."""
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
    out: list[ChatTurn] = []
    for i, turn in enumerate(data):
        if (
            not isinstance(turn, dict)
            or turn.get("role") not in ("user", "assistant")
            or not isinstance(turn.get("content"), str)
        ):
            raise InvalidInputError(f'history_json item {i} must be {{"role": "user"|"assistant", "content": str}}')
        out.append(ChatTurn(turn["role"], turn["content"]))
    return out


def parse_mode(mode: str | None, default: str) -> str:
    if mode is None or (isinstance(mode, str) and not mode.strip()):
        return default
    aliases = {"居民": "resident", "热线": "hotline"}
    value = aliases.get(str(mode).strip(), str(mode).strip().lower())
    if value not in MODES:
        raise InvalidInputError(f"mode {mode!r} is not one of resident, hotline")
    return value


# ====================================================================== handlers


Outputs = tuple[Any, ...]


@dataclass
class Handlers:
    """The event handlers over one warmed-up Assistant (bound methods are what the page calls)."""

    assistant: Assistant
    settings: Settings
    units: UnitIndex
    store: FeedbackStore
    slot: TicketLock = field(default_factory=TicketLock)  # one answer at a time, first come first served

    def on_submit(self, question: str | None, turns: list[Turn], mode: str) -> Iterator[Outputs]:
        """Stream one answer (after waiting its turn). Outputs: chat, turns, question box, hint, copy box."""
        question = question if isinstance(question, str) else ""
        turns = list(turns or [])
        if not question.strip():
            yield (gr.skip(), turns, "", render_hint("请先输入您的问题，例如：" + EXAMPLES[0]), gr.skip())
            return
        ticket = self.slot.take()
        got = False
        try:
            shown = -1
            while not (got := self.slot.wait(ticket, QUEUE_POLL_S)):
                ahead = self.slot.ahead(ticket)
                if ahead != shown:
                    box: Any = "" if shown < 0 else gr.skip()
                    shown = ahead
                    waiting = Pending(question=question.strip(), mode=mode, status=queue_status(ahead))
                    yield (render_chat(turns, self.units, waiting), turns, box, "", gr.skip())
            yield from self._answer(question, turns, mode, cleared=shown >= 0)
        finally:
            if got:
                self.slot.release()
            else:
                self.slot.cancel(ticket)  # the page was closed while waiting

    def _answer(self, question: str, turns: list[Turn], mode: str, cleared: bool = False) -> Iterator[Outputs]:
        pending = Pending(question=question.strip(), mode=mode, status=self._first_status())
        events = iter(self.assistant.stream(question, history_of(turns), mode))
        pushed = False
        try:
            # The first step validates the input: a rejected question stays in the box to be edited.
            first = next(events, None)
        except InvalidInputError as exc:
            yield (gr.skip(), turns, gr.skip(), render_hint(str(exc), "error"), gr.skip())
            return
        except Exception as exc:
            turn = _failed_turn(pending, exc)
        else:
            events = _chain([first] if first is not None else [], events)
            turn, pushed = yield from self._follow(pending, turns, events, cleared)
        new_turns = [*turns, turn]
        box: Any = gr.skip() if pushed or cleared else ""
        yield (render_chat(new_turns, self.units), new_turns, box, "", copy_text(new_turns))

    def _follow(
        self, pending: Pending, turns: list[Turn], events: Iterator[StreamEvent], cleared: bool = False
    ) -> Generator[Outputs, None, tuple[Turn, bool]]:
        """Show the events as they come (throttled); return the finished turn and whether the page changed."""
        last_push: float | None = None
        final: Answer | None = None
        try:
            for ev in events:
                if ev.kind == "answer":
                    final = ev.answer
                    continue
                _apply(pending, ev)
                now = time.monotonic()
                if ev.kind != "token" or last_push is None or now - last_push >= STREAM_MIN_INTERVAL_S:
                    # Clear the box once; afterwards leave it alone so the next question
                    # can be typed while this answer streams in.
                    box: Any = "" if last_push is None and not cleared else gr.skip()
                    last_push = now
                    yield (render_chat(turns, self.units, pending), turns, box, "", gr.skip())
            if final is None:
                raise AssistantError("没有得到回答")
        except Exception as exc:
            return _failed_turn(pending, exc), last_push is not None
        return Turn(question=pending.question, mode=pending.mode, answer=final), last_push is not None

    def _first_status(self) -> str:
        """"正在理解您的问题…", plus a note while the plan's prefix states are still being prepared."""
        warm = getattr(getattr(self.assistant, "resources", None), "prefix_warmup", None)
        progress = warm() if callable(warm) else None
        if progress is None:
            return Pending.status
        done, total = progress
        return f"正在理解您的问题…（系统正在预热 {done}/{total}，首次回答可能稍慢）"

    def on_new_chat(self) -> Outputs:
        return render_chat([], self.units), [], "", "", "", "", ""

    def on_mode(self, mode: str, turns: list[Turn]) -> Any:
        return gr.update(visible=mode == "hotline", value=copy_text(turns or []))

    def on_feedback(self, rating: str, reason: str | None, turns: list[Turn]) -> tuple[str, Any]:
        last = next((t for t in reversed(turns or []) if t.answer is not None), None)
        if last is None or last.answer is None:
            return render_hint("请先提问，得到回答后再评价。"), gr.skip()
        try:
            self.store.add_answer(last.answer, rating=rating, mode=last.mode, reason=reason or "")
        except AssistantError as exc:
            return render_hint(f"反馈没有保存成功：{exc}", "error"), gr.skip()
        thanks = "谢谢！很高兴能帮上忙。" if rating == "up" else "谢谢反馈！我们会根据您的意见改进。"
        return render_hint(thanks, "ok"), ""

    def on_search(self, query: str | None) -> str:
        query = (query or "").strip()
        if not query:
            return render_hint("请输入要查找的词或问题，例如“养老”“加装电梯”“学位”。")
        try:
            with self.slot.hold():
                hits = self.assistant.search(query, k=10)
        except AssistantError as exc:
            return render_hint(str(exc), "error")
        except Exception:
            log.exception("search failed")
            return render_hint("查找出错了，请稍后再试。", "error")
        return render_search(query, hits, self.units)


def queue_status(ahead: int) -> str:
    """The waiting user's status line."""
    if ahead <= 0:
        return "马上轮到您…"
    return f"排队中：前面还有 {ahead} 位，请稍候…"


def _apply(pending: Pending, ev: StreamEvent) -> None:
    """Fold one progress event into the turn being streamed."""
    if ev.kind == "status":
        pending.status = ev.text or pending.status
    elif ev.kind == "excerpts":
        pending.hits = list(ev.hits)
        pending.status = "已找到相关条款，正在组织回答…"
    elif ev.kind == "token":
        pending.text += ev.text


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


def ask_api(assistant: Assistant, settings: Settings, slot: TicketLock | None = None) -> Callable[..., dict]:
    """The ``/ask`` API function (its signature is what API clients see); it waits its turn in ``slot``."""
    slot = slot or TicketLock()

    def ask(question: str, history_json: str = "[]", mode: str = "resident") -> dict:
        """Answer one question; returns Answer.to_dict(), or {"error": message} for bad input."""
        try:
            history = parse_history(history_json)
            parsed_mode = parse_mode(mode, settings.mode)
            with slot.hold():
                answer = assistant.ask(question, history, parsed_mode)
        except AssistantError as exc:
            return {"error": str(exc)}
        except Exception as exc:
            log.exception("API /ask failed")
            return {"error": f"internal error ({type(exc).__name__}); see the server log"}
        return answer.to_dict()

    return ask


# ====================================================================== layout and events


def build_app(assistant: Assistant, settings: Settings) -> gr.Blocks:
    """The chat, browse/lookup tab, feedback and the ``/ask`` API over one warmed-up Assistant."""
    documents = assistant.documents
    units = UnitIndex(documents)
    handlers = Handlers(assistant, settings, units, FeedbackStore(settings.feedback_db))
    plan_title = documents[0].meta.title if documents else "瑶海区“十四五”规划建议"
    with gr.Blocks(title="瑶海区“十四五”规划 · 政策问答", analytics_enabled=False) as app:
        gr.HTML(
            '<div class="hero"><div class="hero-title">瑶海区“十四五”规划 · 政策问答</div>'
            f'<div class="hero-sub">依据《{esc(plan_title)}》回答您的问题，'
            "每个回答都注明出自哪一条，点开即可核对原文。</div></div>",
            js_on_load=None,
        )
        turns = gr.State([])
        with gr.Tabs():
            with gr.Tab("💬 问答", id="chat"):
                _chat_tab(handlers, turns)
            with gr.Tab("📖 浏览与查找", id="browse"):
                _browse_tab(handlers)
        gr.HTML(
            '<div class="footer-note">本助手离线运行，只依据规划原文作答，不代表政府部门的正式答复。'
            f"具体政策与办事流程，请拨打 <b>{HOTLINE}</b> 政务服务便民热线。</div>",
            js_on_load=None,
        )
        gr.api(ask_api(assistant, settings, handlers.slot), api_name="ask", **MODEL_QUEUE)
    return app


def _chat_tab(h: Handlers, turns: gr.State) -> None:
    """The conversation: mode switch, log, question box, copy box, examples and feedback."""
    with gr.Row(equal_height=True, elem_classes="pqa-toolbar"):
        mode = gr.Radio(
            choices=[("居民：通俗简明", "resident"), ("热线：附正式依据", "hotline")],
            value=h.settings.mode,
            label="回答方式",
            show_label=False,
            scale=4,
            elem_id="mode",
        )
        new_chat = gr.Button("🗨 新对话", variant="secondary", size="sm", scale=1, elem_id="new-chat")
    chat = gr.HTML(
        render_chat([], h.units),
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
        visible=h.settings.mode == "hotline",
        elem_id="copy-box",
    )
    _examples(h, inputs=[question, turns, mode], outputs=[chat, turns, question, hint, copy_box])
    fb_msg, reason = _feedback_row(h, turns)
    new_chat.click(
        h.on_new_chat,
        outputs=[chat, turns, question, hint, copy_box, fb_msg, reason],
        api_name="new_chat",
        queue=False,
        api_visibility="undocumented",
    )
    mode.change(h.on_mode, inputs=[mode, turns], outputs=copy_box, queue=False, api_visibility="undocumented")


def _examples(h: Handlers, inputs: list[Any], outputs: list[Any]) -> None:
    """Submitting the question box, and the example buttons that fill it and submit."""
    question = inputs[0]
    answer: dict[str, Any] = {"api_visibility": "undocumented", "show_progress": "minimal", **MODEL_QUEUE}
    # Concurrent users wait their turn for the one model slot, never crash.
    question.submit(h.on_submit, inputs=inputs, outputs=outputs, api_name="chat", **answer)
    with gr.Column(elem_classes="pqa-examples"):
        gr.HTML('<div class="examples-head">大家常问</div>', js_on_load=None)
        with gr.Row(elem_classes="example-row"):
            for text in EXAMPLES:
                btn = gr.Button(text, size="sm", variant="secondary", elem_classes="example-btn")
                btn.click(_constant(text), outputs=question, queue=False, api_visibility="undocumented").then(
                    h.on_submit, inputs=inputs, outputs=outputs, **answer
                )


def _feedback_row(h: Handlers, turns: gr.State) -> tuple[gr.HTML, gr.Textbox]:
    """👍/👎 on the latest answer, with an optional reason; returns the message and reason boxes."""
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
    for btn, rating in ((up, "up"), (down, "down")):
        btn.click(
            _rate(h.on_feedback, rating),
            inputs=[reason, turns],
            outputs=[fb_msg, reason],
            api_name=f"rate_{rating}",
            api_visibility="undocumented",
        )
    return fb_msg, reason


def _browse_tab(h: Handlers) -> None:
    """Lookup by keyword, and the whole plan as an outline."""
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
        + render_outline(h.units.documents, h.units),
        elem_id="outline",
        js_on_load=None,
    )
    lookup.submit(
        h.on_search, inputs=lookup, outputs=results, api_name="lookup", api_visibility="undocumented", **MODEL_QUEUE
    )


def _constant(value: str) -> Callable[[], str]:
    def fill() -> str:
        return value

    return fill


def _rate(handler: Callable[[str, str | None, list[Turn]], tuple[str, Any]], rating: str) -> Callable[..., Any]:
    def rate(reason: str | None, turns: list[Turn]) -> tuple[str, Any]:
        return handler(rating, reason, turns)

    return rate
