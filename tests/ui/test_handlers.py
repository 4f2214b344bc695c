"""The page's handlers and the /ask function without a server (issue 10, items 2, 4 and 5):
bounded history, the draft shown as provisional, rendering outside the model slot, a closed page
freeing the model, a per-session limit, and plain messages instead of internals."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conftest import CORPUS_DIR

pytest.importorskip("gradio")

from assistant.config import Settings  # noqa: E402
from assistant.errors import GenerationError  # noqa: E402
from assistant.feedback import FeedbackStore, FeedbackStoreError  # noqa: E402
from assistant.generation.slots import TicketLock  # noqa: E402
from assistant.ingest.corpus import load_corpus  # noqa: E402
from assistant.models import Answer, Document, StreamEvent  # noqa: E402
from ui.api import ask_api  # noqa: E402
from ui.handlers import FEEDBACK_FAILED, MAX_KEPT_TURNS, Handlers  # noqa: E402
from ui.limits import BUSY_MESSAGE, FAILED_MESSAGE, MAX_PER_SESSION, Feed  # noqa: E402
from ui.render import Turn, UnitIndex  # noqa: E402

SECRET = "secret internal detail: pip install llama-cpp-python http://127.0.0.1:8080/v1 /root/.cache/m.gguf"


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return load_corpus(CORPUS_DIR)


def _answer(question: str, text: str = "规划提出推进医养结合。") -> Answer:
    return Answer(question, question, text, False, [], "fake", draft="模型草稿")


class FakeAssistant:
    """Streams ``tokens`` while holding ``model`` (as the llama backend holds its slot), then the answer."""

    def __init__(self, documents: list[Document], tokens: int = 3, endless: bool = False) -> None:
        self.documents = documents
        self.model = TicketLock()
        self.tokens = tokens
        self.endless = endless
        self.produced = 0
        self.gate: threading.Event | None = None  # when set up, the answer waits for it

    def stream(self, question: str, history: Any = None, mode: Any = None) -> Iterator[StreamEvent]:
        yield StreamEvent("status", text="正在检索规划原文…")
        with self.model.hold():
            i = 0
            while self.endless or i < self.tokens:
                self.produced += 1
                yield StreamEvent("token", text=f"草稿{i}")
                i += 1
                time.sleep(0.001)
        if self.gate is not None:
            self.gate.wait(10)
        yield StreamEvent("answer", answer=_answer(question))

    def ask(self, question: str, history: Any = None, mode: Any = None) -> Answer:
        raise GenerationError(SECRET)


def _handlers(documents: list[Document], tmp_path: Path, assistant: Any = None, **store_kw: Any) -> Handlers:
    settings = Settings().replace(feedback_db=tmp_path / "fb.sqlite3")
    return Handlers(
        assistant or FakeAssistant(documents),
        settings,
        UnitIndex(documents),
        FeedbackStore(settings.feedback_db, **store_kw),
    )


def _last(outputs: Iterator[tuple[Any, ...]]) -> tuple[Any, ...]:
    return list(outputs)[-1]


def _until_a_token_is_shown(outputs: Iterator[tuple[Any, ...]]) -> None:
    for chat, *_ in outputs:
        if isinstance(chat, str) and "草稿0" in chat:
            return
    raise AssertionError("no draft token was shown")


def test_session_history_is_bounded(documents: list[Document], tmp_path: Path) -> None:
    h = _handlers(documents, tmp_path)
    turns: list[Turn] = []
    for i in range(MAX_KEPT_TURNS + 5):
        chat, turns, *_ = _last(h.on_submit(f"问题{i}？", turns, "resident"))
    assert len(turns) == MAX_KEPT_TURNS
    assert [t.question for t in turns][0] == "问题5？"
    assert chat.count('class="turn"') == MAX_KEPT_TURNS
    assert "问题4？" not in chat and f"问题{MAX_KEPT_TURNS + 4}？" in chat


def test_draft_is_provisional_while_streaming_and_replaced_by_the_answer(
    documents: list[Document], tmp_path: Path
) -> None:
    fake = FakeAssistant(documents)
    fake.gate = threading.Event()
    stream = _handlers(documents, tmp_path, assistant=fake).on_submit("养老院能看病吗？", [], "resident")
    outputs = [next(stream)]  # the draft so far, while verification is still running
    fake.gate.set()
    outputs.extend(stream)
    streamed = [o[0] for o in outputs[:-1] if isinstance(o[0], str) and "草稿2" in o[0]]
    assert streamed, outputs
    assert all('data-provisional="true"' in html and "草稿（核对中）" in html for html in streamed)
    final = outputs[-1][0]
    assert 'data-state="done"' in final and "规划提出推进医养结合。" in final
    assert "data-provisional" not in final and "草稿（核对中）" not in final and "草稿2" not in final


def test_rendering_never_holds_the_model_slot(documents: list[Document], tmp_path: Path) -> None:
    fake = FakeAssistant(documents, tokens=50)
    fake.gate = threading.Event()  # verification waits until the check below is done
    h = _handlers(documents, tmp_path, assistant=fake)
    outputs = h.on_submit("养老院能看病吗？", [], "resident")
    _until_a_token_is_shown(outputs)  # the page is being rendered / sent: the handler is suspended here
    # The model goes on without waiting for the page and frees its slot when it is done.
    assert fake.model.acquire(timeout=5), "the model waited for the page"
    fake.model.release()
    assert fake.produced == 50
    fake.gate.set()
    chat, turns, *_ = _last(outputs)
    assert turns[-1].answer is not None and 'data-state="done"' in chat
    assert h.slot.acquire(timeout=1)  # and the request slot is free again


def test_closing_the_page_mid_answer_frees_the_model(documents: list[Document], tmp_path: Path) -> None:
    fake = FakeAssistant(documents, endless=True)
    h = _handlers(documents, tmp_path, assistant=fake)
    outputs = h.on_submit("养老院能看病吗？", [], "resident")
    _until_a_token_is_shown(outputs)
    outputs.close()  # what Gradio does when the client goes away
    assert fake.model.acquire(timeout=5), "the model slot stayed held after the page closed"
    fake.model.release()
    assert h.slot.acquire(timeout=1)


def test_feed_hands_over_events_then_the_error(documents: list[Document]) -> None:
    def broken() -> Iterator[int]:
        yield 1
        yield 2
        raise GenerationError(SECRET)

    ended = threading.Event()
    feed = Feed(broken(), on_end=ended.set)
    got: list[int] = []
    with pytest.raises(GenerationError):
        for batch in feed.batches(0.05):
            got.extend(batch)
    assert got == [1, 2] and ended.wait(1) and feed.join(1)


def test_one_session_cannot_hold_more_than_its_share(documents: list[Document], tmp_path: Path) -> None:
    h = _handlers(documents, tmp_path)
    request = SimpleNamespace(session_hash="flood")
    entered = [h.sessions.enter("flood") for _ in range(MAX_PER_SESSION)]
    assert all(e.__enter__() for e in entered)
    chat, turns, _, hint, _ = _last(h.on_submit("养老院能看病吗？", [], "resident", request))  # type: ignore[arg-type]
    assert BUSY_MESSAGE in hint and turns == []
    assert "error" in ask_api(h.assistant, h.settings, h.slot, h.sessions)("养老？", request=request)  # type: ignore[arg-type]
    assert BUSY_MESSAGE in h.on_search("养老", request)  # type: ignore[arg-type]
    other = _last(h.on_submit("养老院能看病吗？", [], "resident", SimpleNamespace(session_hash="other")))  # type: ignore[arg-type]
    assert other[1][-1].answer is not None  # other clients are served
    for e in entered:
        e.__exit__(None, None, None)
    assert h.sessions.in_flight("flood") == 0


def test_a_failed_feedback_save_shows_a_plain_sentence(documents: list[Document], tmp_path: Path) -> None:
    h = _handlers(documents, tmp_path, max_rows=1)
    turns = [Turn("养老院能看病吗？", "resident", answer=_answer("养老院能看病吗？"))]
    ok, _ = h.on_feedback("up", "", turns)
    assert "谢谢" in ok
    full, reason_box = h.on_feedback("down", "没说清楚", turns)  # the store is full: it refuses
    assert FEEDBACK_FAILED in full and "hint-error" in full
    assert "记录已满" not in full and "feedback store" not in full and str(tmp_path) not in full

    class BrokenStore:
        def add_answer(self, *args: Any, **kw: Any) -> int:
            raise FeedbackStoreError(f"cannot write feedback to {tmp_path}/fb.sqlite3: {SECRET}")

    h.store = BrokenStore()  # type: ignore[assignment]
    msg, _ = h.on_feedback("up", "", turns)
    assert FEEDBACK_FAILED in msg and "secret" not in msg and "sqlite3" not in msg
    too_long, _ = h.on_feedback("up", "长" * 10_000, turns)
    assert "太长" in too_long  # a problem the resident can fix is said in plain words


def test_ask_api_errors_are_plain(documents: list[Document], tmp_path: Path) -> None:
    ask = ask_api(FakeAssistant(documents), Settings())  # type: ignore[arg-type]
    failed = ask("养老院能看病吗？")
    assert failed == {"error": FAILED_MESSAGE}
    assert "history_json" in ask("养老？", "{bad")["error"]  # input errors say what to fix

    class Unexpected(FakeAssistant):
        def ask(self, question: str, history: Any = None, mode: Any = None) -> Answer:
            raise KeyError(SECRET)

    result = ask_api(Unexpected(documents), Settings())("养老？")  # type: ignore[arg-type]
    assert result == {"error": FAILED_MESSAGE} and "KeyError" not in result["error"]


def test_failed_turn_and_lookup_show_no_internals(documents: list[Document], tmp_path: Path) -> None:
    class Broken(FakeAssistant):
        def stream(self, question: str, history: Any = None, mode: Any = None) -> Iterator[StreamEvent]:
            yield StreamEvent("status", text="正在检索规划原文…")
            raise GenerationError(SECRET)

        def search(self, query: str, k: int = 10) -> list[Any]:
            raise GenerationError(SECRET)

    h = _handlers(documents, tmp_path, assistant=Broken(documents))
    chat, turns, *_ = _last(h.on_submit("养老院能看病吗？", [], "resident"))
    assert FAILED_MESSAGE in chat and "secret" not in chat and 'data-state="error"' in chat
    assert turns[-1].error == FAILED_MESSAGE
    lookup = h.on_search("养老")
    assert "secret" not in lookup and "hint-error" in lookup
