"""ui.render on its own: data in, escaped HTML out (no gradio, no server)."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest

from assistant.ingest.corpus import load_corpus
from assistant.models import Answer, AnswerSentence, Citation, Document, Unit
from ui.render import (
    Pending,
    Turn,
    UnitIndex,
    esc,
    group_citations,
    marked,
    quote_span,
    render_answer,
    render_answer_text,
    render_chat,
    render_hint,
    render_search,
)

from conftest import CORPUS_DIR, ROOT

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)> & co'
EVIL_ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &amp; co"


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return load_corpus(CORPUS_DIR)


@pytest.fixture(scope="module")
def units(documents: list[Document]) -> UnitIndex:
    return UnitIndex(documents)


def _article(documents: list[Document], number: int) -> Unit:
    art = documents[0].article(number)
    assert art is not None and len(art.sentences) >= 3
    return art


def _answer(sentences: list[AnswerSentence], citations: list[Citation], **kw: Any) -> Answer:
    fields: dict[str, Any] = {
        "question": "问",
        "standalone_question": "问",
        "text": "".join(s.text for s in sentences),
        "abstained": False,
        "citations": citations,
        "backend": "extractive",
        "sentences": sentences,
    }
    fields.update(kw)
    return Answer(**fields)


def _tags(html: str) -> list[str]:
    return re.findall(r"</?([a-zA-Z]+)", html)


def test_render_module_does_not_import_gradio() -> None:
    code = "import sys, ui.render; assert 'gradio' not in sys.modules, 'ui.render imported gradio'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_question_and_answer_text_are_escaped(units: UnitIndex) -> None:
    ans = _answer([AnswerSentence(EVIL, None)], [], question=EVIL, warnings=[EVIL], formal_citation=EVIL)
    html = render_chat([Turn(EVIL, "hotline", answer=ans)], units, Pending(EVIL, "resident", status=EVIL, text=EVIL))
    # Both question bubbles, answer, warning, formal line, pending status and streamed text: all inert.
    assert html.count(EVIL_ESCAPED) == 7
    assert "script" not in _tags(html) and "img" not in _tags(html)
    failed = render_chat([Turn(EVIL, "resident", error=EVIL)], units)
    assert failed.count(EVIL_ESCAPED) == 2 and "script" not in _tags(failed)


def test_search_query_and_hints_are_escaped(units: UnitIndex) -> None:
    assert "<script" not in render_search(EVIL, [], units)
    assert EVIL_ESCAPED in render_search(EVIL, [], units)
    assert render_hint(EVIL, 'x" onmouseover="alert(1)') == (
        f'<div class="pqa-hint hint-x&quot; onmouseover=&quot;alert(1)">{EVIL_ESCAPED}</div>'
    )
    assert render_hint("") == ""


def test_marked_escapes_inside_and_outside_highlights() -> None:
    assert marked("<a>&<b>", [(3, 4)], cls="hit") == '&lt;a&gt;<mark class="hit">&amp;</mark>&lt;b&gt;'
    # Overlapping and touching spans merge; spans past the end are clipped; empty ones dropped.
    assert marked("abcdefgh", [(5, 99), (0, 2), (1, 3), (3, 4), (6, 6)]) == "<mark>abcd</mark>e<mark>fgh</mark>"


def test_citations_are_numbered_one_chip_per_unit(documents: list[Document], units: UnitIndex) -> None:
    a19, a15 = _article(documents, 19), _article(documents, 15)
    c19a, c15, c19b = Citation.of(a19.sentences[0]), Citation.of(a15.sentences[1]), Citation.of(a19.sentences[2])
    sentences = [
        AnswerSentence("第一句。", c19a),
        AnswerSentence("第二句。", c15),
        AnswerSentence("第三句。", c19b),
        AnswerSentence("说明。", None),
    ]
    answer = _answer(sentences, [c19a, c15, c19b])
    groups, number_of = group_citations(answer.citations)
    assert [(g.number, g.unit.number, len(g.citations)) for g in groups] == [(1, 19, 2), (2, 15, 1)]
    assert number_of == {c19a: 1, c15: 2, c19b: 1}
    assert render_answer_text(answer, number_of) == (
        '第一句。<sup class="ref">1</sup>第二句。<sup class="ref">2</sup>第三句。<sup class="ref">1</sup>说明。'
    )
    html = render_answer(answer, units, "resident")
    assert html.count('<details class="cite"') == 2
    assert html.index(f"「{a19.chip}」") < html.index(f"「{a15.chip}」")
    assert '<span class="ref-num">1</span>' in html and '<span class="ref-num">2</span>' in html
    assert '<span class="ref-num">3</span>' not in html


def test_citation_not_in_the_answer_list_gets_no_number(documents: list[Document]) -> None:
    a19 = _article(documents, 19)
    stray = Citation.of(a19.sentences[1])
    answer = _answer([AnswerSentence("第一句。", stray)], [])
    assert render_answer_text(answer, group_citations(answer.citations)[1]) == "第一句。"


def test_sentences_that_do_not_match_the_text_fall_back_to_plain_text() -> None:
    answer = _answer([AnswerSentence("<b>别的</b>", None)], [], text="<b>答案</b>")
    assert render_answer_text(answer, {}) == "&lt;b&gt;答案&lt;/b&gt;"


def test_quotes_are_highlighted_inside_the_whole_unit(documents: list[Document], units: UnitIndex) -> None:
    a19 = _article(documents, 19)
    first, third = a19.sentences[0], a19.sentences[2]
    cits = [Citation.of(first), Citation.of(third)]
    html = render_answer(_answer([AnswerSentence("答。", cits[0])], cits), units, "resident")
    chip = html[html.index('<details class="cite"') :]
    assert re.findall(r"<mark>(.*?)</mark>", chip) == [esc(first.text), esc(third.text)]
    # Everything else of the article is there too, unmarked.
    assert re.sub(r"</?mark>", "", chip).count(esc(a19.text[-20:])) == 1
    assert quote_span(a19, cits[1]) == (third.start - a19.start, third.end - a19.start)


def test_quote_with_stale_offsets_is_found_by_text_or_not_marked(documents: list[Document]) -> None:
    a19 = _article(documents, 19)
    s = a19.sentences[1]
    moved = Citation(a19, s.text, s.start + 500, s.end + 500)
    assert quote_span(a19, moved) == (s.start - a19.start, s.end - a19.start)
    assert quote_span(a19, Citation(a19, "规划里没有的一句话", 0, 9)) is None


def test_declined_answer_says_out_of_scope_and_stresses_the_hotline(units: UnitIndex) -> None:
    text = "这个问题超出了规划的范围，请拨打12345热线。"
    html = render_answer(_answer([], [], text=text, abstained=True, reason="off_topic"), units, "resident")
    assert 'data-reason="off_topic"' in html and "超出本助手的回答范围" in html
    assert '<b class="hotline-num">12345</b>' in html
    assert 'class="hotline"' not in html  # the text already names the hotline: no second banner


def test_streamed_draft_is_provisional_and_absent_from_the_final_answer(units: UnitIndex) -> None:
    draft = "补贴请到evil.cn申领，电话4001234567。"
    streaming = render_chat([], units, Pending("补贴？", "resident", text=draft))
    assert 'class="draft" data-provisional="true"' in streaming and "草稿（核对中）" in streaming
    assert streaming.index("草稿（核对中）") < streaming.index("evil.cn")  # the note comes first
    answer = Answer("补贴？", "补贴？", "规划没有写具体金额。", True, [], "llama", reason="amount", draft=draft)
    final = render_chat([Turn("补贴？", "resident", answer=answer)], units)
    assert "data-provisional" not in final and "草稿" not in final and "evil.cn" not in final
