"""The resident-facing chat app (Gradio): the page's layout and its wiring.

Thin by design: every answer, refusal and citation comes from
``assistant.answering.pipeline.Assistant``; the HTML is made (and escaped) in
``ui.render``; the event handlers are ``ui.handlers``, the ``/ask`` API is
``ui.api``; serving (queue, theme, port checks, upload limit) lives in ``ui.server``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.config import Settings
from assistant.feedback import FeedbackStore
from ui.api import ask_api
from ui.handlers import EXAMPLES, Handlers, constant
from ui.render import HOTLINE, Turn, UnitIndex, esc, render_chat, render_outline

if TYPE_CHECKING:
    from assistant.answering.pipeline import Assistant

# Model work runs one request at a time, in arrival order, through ``Handlers.slot`` (a ticket lock):
# Gradio lets up to this many handlers run so that waiting users can be shown their place in line.
MODEL_WORKERS = 16
MODEL_QUEUE: dict[str, Any] = {"concurrency_id": "model", "concurrency_limit": MODEL_WORKERS}


# ====================================================================== layout and events


def build_app(assistant: Assistant, settings: Settings) -> gr.Blocks:
    """The chat, browse/lookup tab, feedback and the ``/ask`` API over one warmed-up Assistant."""
    documents = assistant.documents
    units = UnitIndex(documents)
    handlers = Handlers(assistant, settings, units, FeedbackStore(settings.feedback_db))
    plan_title = documents[0].meta.title if documents else "瑶海区“十四五”规划建议"
    # delete_cache: files in Gradio's cache (small uploads included) are removed hourly.
    with gr.Blocks(title="瑶海区“十四五”规划 · 政策问答", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
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
        gr.api(ask_api(assistant, settings, handlers.slot, handlers.sessions), api_name="ask", **MODEL_QUEUE)
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
                btn.click(constant(text), outputs=question, queue=False, api_visibility="undocumented").then(
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


def _rate(handler: Callable[[str, str | None, list[Turn]], tuple[str, Any]], rating: str) -> Callable[..., Any]:
    def rate(reason: str | None, turns: list[Turn]) -> tuple[str, Any]:
        return handler(rating, reason, turns)

    return rate
