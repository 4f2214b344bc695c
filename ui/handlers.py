"""The page's event handlers over one warmed-up Assistant: ask (streamed), new chat, mode, feedback, lookup.

Residents never see internals: an input problem is shown in the input check's own words, anything
else as one plain sentence, with the details in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.config import Settings
from assistant.errors import InvalidInputError
from assistant.feedback import MAX_REASON_CHARS, FeedbackStore
from assistant.generation.slots import TicketLock
from assistant.models import Answer, ChatTurn, StreamEvent
from ui.limits import BUSY_MESSAGE, FAILED_MESSAGE, Feed, SessionLimit, session_of
from ui.render import Pending, Turn, UnitIndex, copy_text, render_chat, render_hint, render_search, render_turn

if TYPE_CHECKING:
    from assistant.answering.pipeline import Assistant

log = logging.getLogger(__name__)

MAX_HISTORY_TURNS = 3  # question/answer pairs fed back for follow-ups
MAX_KEPT_TURNS = 20  # turns a session keeps (and shows); older ones are dropped
STREAM_MIN_INTERVAL_S = 0.05  # at most ~20 page updates a second while tokens stream
DECLINED_REASONS = ("injection", "off_topic")  # refusals that must never become context for a follow-up
QUEUE_POLL_S = 0.5  # how often a waiting user's place in line is refreshed
FEEDBACK_FAILED = "抱歉，这次评价没有保存成功，请稍后再试。"

EXAMPLES: tuple[str, ...] = (
    "我家老人想找个能看病的养老院，规划里有说法吗？",
    "孩子快上小学了，区里会多建学校、增加学位吗？",
    "在家门口看病方便吗？社区医院会怎么加强？",
    "我们小区房子很旧了，会改造吗？能加装电梯吗？",
    "失业了想再就业，规划里有哪些就业和社保的支持？",
    "空气质量和河道水质，规划打算怎么治理？",
)

Outputs = tuple[Any, ...]


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


@dataclass
class Handlers:
    """The event handlers over one warmed-up Assistant (bound methods are what the page calls)."""

    assistant: Assistant
    settings: Settings
    units: UnitIndex
    store: FeedbackStore
    slot: TicketLock = field(default_factory=TicketLock)  # one answer at a time, first come first served
    sessions: SessionLimit = field(default_factory=SessionLimit)  # requests in flight per client

    def on_submit(
        self, question: str | None, turns: list[Turn], mode: str, request: gr.Request | None = None
    ) -> Iterator[Outputs]:
        """Stream one answer (after waiting its turn). Outputs: chat, turns, question box, hint, copy box."""
        question = question if isinstance(question, str) else ""
        turns = list(turns or [])[-MAX_KEPT_TURNS:]
        if not question.strip():
            yield (gr.skip(), turns, "", render_hint("请先输入您的问题，例如：" + EXAMPLES[0]), gr.skip())
            return
        with self.sessions.enter(session_of(request)) as admitted:
            if not admitted:
                yield (gr.skip(), turns, gr.skip(), render_hint(BUSY_MESSAGE, "error"), gr.skip())
                return
            yield from self._queued(question, turns, mode)

    def _queued(self, question: str, turns: list[Turn], mode: str) -> Iterator[Outputs]:
        """Wait for the slot (showing the place in line), then answer; the answer's Feed frees the slot."""
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
        finally:
            if not got:
                self.slot.cancel(ticket)  # the page was closed while waiting
        yield from self._answer(question, turns, mode, cleared=shown >= 0)

    def _answer(self, question: str, turns: list[Turn], mode: str, cleared: bool = False) -> Iterator[Outputs]:
        """Answer holding the slot (taken by the caller); the stream runs in a Feed, which frees it when done."""
        pending = Pending(question=question.strip(), mode=mode, status=self._first_status())
        try:
            feed: Feed[StreamEvent] = Feed(
                iter(self.assistant.stream(question, history_of(turns), mode)), on_end=self.slot.release
            )
        except BaseException:
            self.slot.release()
            raise
        try:
            outcome, pushed = yield from self._follow(pending, turns, feed, cleared)
        finally:
            feed.close()  # a closed page stops the model at its next token
        if isinstance(outcome, InvalidInputError):  # rejected before anything ran: left in the box to edit
            yield (gr.skip(), turns, gr.skip(), render_hint(str(outcome), "error"), gr.skip())
            return
        new_turns = [*turns, outcome][-MAX_KEPT_TURNS:]
        box: Any = gr.skip() if pushed or cleared else ""
        yield (render_chat(new_turns, self.units), new_turns, box, "", copy_text(new_turns))

    def _follow(
        self, pending: Pending, turns: list[Turn], feed: Feed[StreamEvent], cleared: bool = False
    ) -> Generator[Outputs, None, tuple[Turn | InvalidInputError, bool]]:
        """Show the events as they come (in batches, at most every STREAM_MIN_INTERVAL_S); return the
        finished turn (or the input error) and whether the page changed."""
        done = "".join(render_turn(t, self.units) for t in turns)  # made once; only the new turn changes
        pushed = seen = False
        final: Answer | None = None
        try:
            for batch in feed.batches(STREAM_MIN_INTERVAL_S):
                seen = True
                for ev in batch:
                    if ev.kind == "answer":
                        final = ev.answer
                    else:
                        _apply(pending, ev)
                if final is None:
                    # Clear the box once; afterwards leave it alone so the next question
                    # can be typed while this answer streams in.
                    box: Any = "" if not pushed and not cleared else gr.skip()
                    pushed = True
                    yield (render_chat(turns, self.units, pending, done), turns, box, "", gr.skip())
            if final is None:
                raise RuntimeError("the stream ended without an answer")
        except InvalidInputError as exc:
            return (exc if not seen else _failed_turn(pending, exc)), pushed
        except Exception as exc:
            return _failed_turn(pending, exc), pushed
        return Turn(question=pending.question, mode=pending.mode, answer=final), pushed

    def _first_status(self) -> str:
        """The first status line, plus a note while the plan's prefix states are still being prepared."""
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
        reason = reason if isinstance(reason, str) else ""
        if len(reason) > MAX_REASON_CHARS:
            return render_hint(
                f"反馈原因太长（{len(reason)} 字），请精简到 {MAX_REASON_CHARS} 字以内。", "error"
            ), gr.skip()
        try:
            self.store.add_answer(last.answer, rating=rating, mode=last.mode, reason=reason)
        except Exception:  # a full or unwritable store, a field over its limit: the operator reads the log
            log.warning("feedback was not saved", exc_info=True)
            return render_hint(FEEDBACK_FAILED, "error"), gr.skip()
        thanks = "谢谢！很高兴能帮上忙。" if rating == "up" else "谢谢反馈！我们会根据您的意见改进。"
        return render_hint(thanks, "ok"), ""

    def on_search(self, query: str | None, request: gr.Request | None = None) -> str:
        query = (query or "").strip()
        if not query:
            return render_hint("请输入要查找的词或问题，例如“养老”“加装电梯”“学位”。")
        with self.sessions.enter(session_of(request)) as admitted:
            if not admitted:
                return render_hint(BUSY_MESSAGE, "error")
            try:
                with self.slot.hold():
                    hits = self.assistant.search(query, k=10)
            except InvalidInputError as exc:
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


def _failed_turn(pending: Pending, exc: Exception) -> Turn:
    """A turn that says what went wrong in one plain line; the details go to the log only."""
    if isinstance(exc, InvalidInputError):  # the input check's sentence says what to change
        message = f"抱歉，这次没能回答：{exc}"
    else:
        log.error("answering failed", exc_info=exc)
        message = FAILED_MESSAGE
    return Turn(question=pending.question, mode=pending.mode, error=message, hits=pending.hits)


def constant(value: str) -> Callable[[], str]:
    def fill() -> str:
        return value

    return fill
