"""The chat page in a real browser: Debian's headless Chromium driven by Playwright.

Types a question, presses Enter, watches the answer stream in, opens a citation
chip and checks the quoted sentence is highlighted; also refusal, hotline mode,
escaping, feedback, new chat and the browse tab. Screenshots and the measured
Enter → first excerpt → full answer times go to tests/artifacts/ (gitignored).

Needs /usr/bin/chromium (``scripts/install_browser``); never downloads a browser.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from conftest import ROOT, FakeEmbedder

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ELDERLY = "我家老人想找个能看病的养老院，规划里有说法吗？"
UNANSWERABLE = "老楼加装电梯，政府每户能补贴多少钱？"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (run scripts/install_browser)"
    ),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

# Records, in the page, when the answer reaches each stage (ms after Enter was pressed).
STAGE_OBSERVER = """
() => {
  window.__stages = {};
  window.__t0 = null;
  const box = document.querySelector('#question textarea');
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      window.__t0 = performance.now();
      window.__stages = {};
      window.__doneBefore = document.querySelectorAll('#chat .turn[data-state=done]').length;
    }
  }, true);
  const note = (name, sel) => {
    if (window.__t0 !== null && !(name in window.__stages) && document.querySelector(sel)) {
      window.__stages[name] = performance.now() - window.__t0;
    }
  };
  new MutationObserver(() => {
    note('status', '#chat .turn[data-state=streaming] .pqa-status');
    note('excerpt', '#chat .turn[data-state=streaming] .excerpts details');
    note('token', '#chat .turn[data-state=streaming] .answer-text.streaming');
    if (window.__t0 !== null && !('done' in window.__stages)
        && document.querySelectorAll('#chat .turn[data-state=done]').length > window.__doneBefore) {
      window.__stages.done = performance.now() - window.__t0;
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
}
"""


class PacedAssistant:
    """Delegates to the real Assistant; optionally pauses after the excerpts so a test
    can see the intermediate stage deterministically (pace = 0: untouched timing)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.pace = 0.0

    @property
    def documents(self) -> Any:
        return self.inner.documents

    def ask(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.ask(*args, **kwargs)

    def search(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.search(*args, **kwargs)

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for event in self.inner.stream(*args, **kwargs):
            yield event
            if event.kind == "excerpts" and self.pace:
                time.sleep(self.pace)


@dataclass
class Server:
    url: str
    assistant: PacedAssistant
    feedback_db: Path
    external: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from assistant.answering.pipeline import Assistant
    from assistant.config import Settings
    from ui.app import build_app
    from ui.server import launch

    tmp = tmp_path_factory.mktemp("browser")
    settings = Settings().replace(
        backend="extractive",
        index_dir=tmp / "index",
        cache_dir=tmp / "cache",
        feedback_db=tmp / "feedback.sqlite3",
        host="127.0.0.1",
        port=_free_port(),
    )
    inner = Assistant(settings, embedder=FakeEmbedder())
    inner.warm_up()
    paced = PacedAssistant(inner)
    app = build_app(paced, settings)  # type: ignore[arg-type]
    _, url, _ = launch(app, settings, prevent_thread_lock=True, quiet=True)
    try:
        yield Server(url=url, assistant=paced, feedback_db=settings.feedback_db)
    finally:
        app.close()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1100, "height": 1300},
            locale="zh-CN",
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any, server: Server) -> Iterator[Any]:
    pg = browser_context.new_page()
    pg.set_default_timeout(30_000)

    def guard(route: Any) -> None:
        # Offline product: anything not on loopback is blocked and remembered.
        url = route.request.url
        host = urlparse(url).hostname or ""
        if url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            server.external.append(url)
            route.abort()

    pg.route("**/*", guard)
    pg.goto(server.url)
    pg.wait_for_selector("#question textarea")
    pg.evaluate(STAGE_OBSERVER)
    yield pg
    pg.close()
    assert server.external == [], f"the page tried to reach the network: {server.external}"


def _ask(pg: Any, question: str) -> dict[str, float]:
    """Type a question, press Enter, wait for the full answer; returns the stage times (ms)."""
    done_before = pg.locator("#chat .turn[data-state=done]").count()
    box = pg.locator("#question textarea")
    box.click()
    box.fill(question)
    box.press("Enter")
    pg.wait_for_function(
        f"document.querySelectorAll('#chat .turn[data-state=done]').length > {done_before}", timeout=60_000
    )
    stages: dict[str, float] = pg.evaluate("window.__stages")
    return stages


def test_ask_stream_and_check_citation(page: Any, server: Server, plan_text: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # Empty Enter: a hint, no request, no turn.
    page.locator("#question textarea").press("Enter")
    page.wait_for_selector("#hint .pqa-hint")
    assert "请先输入" in page.locator("#hint").inner_text()
    assert page.locator("#chat .turn").count() == 0

    # 1) Real timing (no pacing): Enter → first excerpt → full answer.
    timing = _ask(page, ELDERLY)
    assert "done" in timing

    # 2) With a pause after retrieval, the cited excerpts must be visible before the answer.
    server.assistant.pace = 1.0
    try:
        done_before = page.locator("#chat .turn[data-state=done]").count()
        box = page.locator("#question textarea")
        box.fill("老旧小区改造和加装电梯，规划怎么说？")
        box.press("Enter")
        page.wait_for_selector("#chat .turn[data-state=streaming] .excerpts details")
        page.screenshot(path=str(ARTIFACTS / "ui_streaming.png"))
        page.wait_for_function(
            f"document.querySelectorAll('#chat .turn[data-state=done]').length > {done_before}", timeout=60_000
        )
        staged = page.evaluate("window.__stages")
    finally:
        server.assistant.pace = 0.0
    assert "excerpt" in staged and staged["excerpt"] < staged["done"], staged

    last = page.locator("#chat .turn[data-state=done]").last
    assert last.locator(".user-bubble").inner_text() == "老旧小区改造和加装电梯，规划怎么说？"
    assert page.locator("#question textarea").input_value() == ""  # box cleared after sending

    # Open the first citation chip of the first answer: whole article, quote highlighted.
    first = page.locator("#chat .turn[data-state=done]").first
    chip = first.locator("details.cite").first
    summary = chip.locator("summary")
    assert "「第" in summary.inner_text() and "」" in summary.inner_text()
    summary.click()
    assert chip.evaluate("d => d.open") is True
    mark = chip.locator(".unit-text mark").first
    mark.wait_for(state="visible")
    quote = mark.inner_text()
    assert len(quote) >= 4 and quote in plan_text
    bg = mark.evaluate("m => getComputedStyle(m).backgroundColor")
    assert bg not in ("rgba(0, 0, 0, 0)", "transparent")
    whole = chip.locator(".unit-text").inner_text()
    assert len(whole) > len(quote)  # the whole article, not just the quote
    chip.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "ui_chat.png"), full_page=True)

    report = {
        "backend": "extractive (FakeEmbedder, tmp index)",
        "enter_to_first_excerpt_ms": round(timing.get("excerpt", timing["done"]), 1),
        "excerpt_stage_rendered_separately": "excerpt" in timing,
        "enter_to_full_answer_ms": round(timing["done"], 1),
        "paced_run_ms": {k: round(v, 1) for k, v in staged.items()},
    }
    (ARTIFACTS / "ui_timings.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    print("UI timings:", report)


def test_refusal_hotline_escaping_feedback_and_new_chat(page: Any, server: Server) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    evil = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">${7*7}{{x}} 养老'
    _ask(page, evil)
    turn = page.locator("#chat .turn[data-state=done]").last
    assert turn.locator(".user-bubble").inner_text() == evil  # shown as text, verbatim
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#chat img").count() == 0

    _ask(page, UNANSWERABLE)
    card = page.locator("#chat .turn[data-state=done]").last.locator(".abstain-card")
    card.wait_for(state="visible")
    assert "12345" in card.inner_text()
    border = card.evaluate("c => getComputedStyle(c).backgroundColor")
    answered_bg = page.locator("#chat .bot-bubble").first.evaluate("b => getComputedStyle(b).backgroundColor")
    assert border != answered_bg  # looks different from a normal answer

    # Hotline mode: formal citation line + copy box with answer and citation.
    assert not page.locator("#copy-box").is_visible()
    page.get_by_text("热线：附正式依据").click()
    page.locator("#copy-box").wait_for(state="visible")
    _ask(page, ELDERLY)
    formal = page.locator("#chat .turn[data-state=done]").last.locator(".formal")
    assert formal.inner_text().startswith("依据：《")
    copy_value = page.locator("#copy-box textarea").input_value()
    assert formal.inner_text() in copy_value and len(copy_value) > len(formal.inner_text())
    assert page.locator("#copy-box button").count() >= 1  # the copy button

    # Feedback on the last answer.
    page.locator("#fb-reason textarea").fill("想知道具体地址")
    page.locator("#fb-down").click()
    page.wait_for_selector("#fb-msg .hint-ok")
    from assistant.feedback import FeedbackStore

    with FeedbackStore(server.feedback_db) as store:
        rec = store.records()[-1]
    assert (rec.question, rec.rating, rec.reason, rec.mode) == (ELDERLY, "down", "想知道具体地址", "hotline")
    page.screenshot(path=str(ARTIFACTS / "ui_hotline.png"), full_page=True)

    page.locator("#new-chat").click()
    page.wait_for_selector("#chat .welcome")
    assert page.locator("#chat .turn").count() == 0


def test_browse_tab_outline_and_lookup(page: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.get_by_role("tab", name="浏览与查找").click()
    box = page.locator("#lookup input, #lookup textarea").first
    box.fill("加装电梯")
    box.press("Enter")
    page.wait_for_selector("#results .result")
    assert page.locator("#results .result mark").count() >= 1
    assert "加装电梯" in (page.locator("#results").text_content() or "")

    chapters = page.locator("#outline details.chapter")
    assert chapters.count() == 11
    five = chapters.nth(4)
    five.locator("summary").first.click()
    art = five.locator("details.article").nth(1)
    art.locator("summary").click()
    assert art.locator(".unit-text").is_visible()
    page.screenshot(path=str(ARTIFACTS / "ui_browse.png"), full_page=True)
