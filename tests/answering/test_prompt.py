"""The prompt layout: a stable prefix (rules + the top unit whole) first, the question last."""

from __future__ import annotations

import pytest

from assistant.answering.evidence import SentenceScorer
from assistant.answering.prompt import (
    ASK,
    DEFAULT_STYLE,
    Drafter,
    build_messages,
    build_prompt,
    prefix_messages,
    prompt_hits,
    secondary_hits,
)
from assistant.config import Settings
from assistant.ingest.corpus import load_corpus
from assistant.models import Hit, Query
from assistant.retrieval.retriever import Retriever

from conftest import CORPUS_DIR, FakeEmbedder, ScriptedGenerator

PLAN = "瑶海区“十四五”规划建议"


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    settings = Settings(corpus_dir=CORPUS_DIR, index_dir=tmp_path_factory.mktemp("index"), backend="extractive")
    return Retriever.from_settings(settings, embedder=FakeEmbedder(), documents=load_corpus(CORPUS_DIR))


def hits_for(retriever: Retriever, question: str) -> list[Hit]:
    return retriever.run(question, k=5)


def test_prefix_is_the_same_for_two_questions_on_the_same_unit(retriever: Retriever) -> None:
    hits = hits_for(retriever, "规划对养老服务体系怎么安排？")
    a = build_messages("规划对养老服务体系怎么安排？", hits, "zh-Hans", "resident", plan_name=PLAN)
    b = build_messages("老人看病方便吗？", hits, "en", "hotline", plan_name=PLAN)
    assert a[:-1] == b[:-1] == prefix_messages(hits[0].unit, PLAN)
    assert [m["role"] for m in a] == ["system", "user"]


def test_the_question_a_follow_up_follows_is_a_line_of_the_last_message(retriever: Retriever) -> None:
    hits = hits_for(retriever, "这方面的安全有人管吗？")
    plain = build_prompt("这方面的安全有人管吗？", hits, "zh-Hans", "resident", plan_name=PLAN)[0]
    after = build_prompt("这方面的安全有人管吗？", hits, "zh-Hans", "resident", plan_name=PLAN, previous="规划对养老服务怎么安排？")[0]
    assert after[:-1] == plain[:-1]  # the cached prefix is the same
    assert after[-1]["content"] == plain[-1]["content"].replace("问题：", "上一问：规划对养老服务怎么安排？\n问题：", 1)


def test_question_and_style_only_in_the_last_message(retriever: Retriever) -> None:
    question = "规划对养老服务体系怎么安排？"
    hits = hits_for(retriever, question)
    messages = build_messages(question, hits, "zh-Hans", "hotline", plan_name=PLAN)
    assert question in messages[-1]["content"] and "正式" in messages[-1]["content"]
    assert all(question not in m["content"] and "正式" not in m["content"] for m in messages[:-1])


def test_top_unit_is_whole_and_plan_name_comes_from_the_caller(retriever: Retriever) -> None:
    hits = hits_for(retriever, "规划对养老服务体系怎么安排？")
    messages = build_messages("x", hits, "zh-Hans", "resident", plan_name="某某区规划")
    assert hits[0].unit.text in messages[0]["content"] and hits[0].unit.label in messages[0]["content"]
    assert "某某区规划" in messages[0]["content"] and "瑶海" not in messages[0]["content"]


def test_secondary_units_are_short_excerpts_in_the_last_message(retriever: Retriever) -> None:
    question = "规划对养老服务体系怎么安排？"
    hits = hits_for(retriever, question)
    shown = prompt_hits(hits)
    scored = SentenceScorer().run(question, shown)
    messages = build_messages(question, hits, "zh-Hans", "resident", scored, plan_name=PLAN)
    for h in secondary_hits(shown, scored):
        assert h.unit.label in messages[-1]["content"]
    assert len(messages[-1]["content"]) < 400


def test_secondary_sentences_are_quotes_of_their_own_units_prefix(retriever: Retriever) -> None:
    """A backend with saved states copies a secondary unit's sentences from that unit's own state: each
    piece must be that unit's prefix text verbatim, and the last message must hold them back to back."""
    question = "规划对不动产投资信托基金、老旧小区加装电梯分别有什么安排？"
    shown = prompt_hits(hits_for(retriever, question))
    scored = SentenceScorer().run(question, shown)
    messages, quotes = build_prompt(question, shown, "zh-Hans", "resident", scored, plan_name=PLAN)
    assert quotes and len(quotes) == len(secondary_hits(shown, scored, several=any(h.aspect for h in shown)))
    for quote, hit in zip(quotes, secondary_hits(shown, scored, several=any(h.aspect for h in shown)), strict=True):
        assert quote.source == prefix_messages(hit.unit, PLAN)
        assert quote.pieces[0] == f"[{hit.unit.label} {hit.unit.title}]" and len(quote.pieces) >= 2
        assert all(piece and piece in quote.source[-1]["content"] for piece in quote.pieces)
        assert all(piece in hit.unit.text for piece in quote.pieces[1:])  # sentences of that unit, not another
    assert "".join(q.text for q in quotes) in messages[-1]["content"]
    one = build_prompt(question, shown[:1], "zh-Hans", "resident", scored, plan_name=PLAN)
    assert one[1] == [] and "其他相关原文" not in one[0][-1]["content"]


def test_drafter_hands_quotes_only_to_a_backend_that_takes_them(retriever: Retriever) -> None:
    question = "规划对不动产投资信托基金、老旧小区加装电梯分别有什么安排？"
    hits = hits_for(retriever, question)
    plain = ScriptedGenerator("规划提出……")
    list(Drafter(plain, SentenceScorer(), 32).run(Query(question, question, "zh-Hans", "resident"), hits))
    assert plain.kwargs[0].get("quotes") is None

    class Quoting(ScriptedGenerator):
        takes_quotes = True

    quoting = Quoting("规划提出……")
    list(Drafter(quoting, SentenceScorer(), 32).run(Query(question, question, "zh-Hans", "resident"), hits))
    quotes = quoting.kwargs[0]["quotes"]
    assert quotes and "".join(q.text for q in quotes) in quoting.calls[0][-1]["content"]


def test_with_one_unit_the_last_message_is_the_question(retriever: Retriever) -> None:
    """The last message is what is evaluated after the saved state: for the default style, the question
    and a few words asking for an answer from the text above."""
    question = "规划对养老服务体系怎么安排？"
    hits = hits_for(retriever, question)[:1]
    messages = build_messages(question, hits, "zh-Hans", "resident", plan_name=PLAN)
    assert messages[-1]["content"] == f"问题：{question}\n{ASK}"
    assert DEFAULT_STYLE in messages[0]["content"]


def test_drafter_passes_the_plan_name(retriever: Retriever) -> None:
    question = "规划对养老服务体系怎么安排？"
    gen = ScriptedGenerator("规划提出完善养老服务体系。")
    drafter = Drafter(gen, SentenceScorer(), 32, plan_name=PLAN)
    out = "".join(drafter.run(Query(question, question, "zh-Hans", "resident"), hits_for(retriever, question)))
    assert out == "规划提出完善养老服务体系。"
    assert PLAN in gen.calls[0][0]["content"] and question in gen.calls[0][-1]["content"]


def test_no_hits_still_gives_a_prompt() -> None:
    messages = build_messages("问题", [], "zh-Hans", "resident")
    assert messages[0]["role"] == "system" and "问题" in messages[-1]["content"]


def test_a_question_about_each_of_several_things_keeps_every_shown_unit(retriever: Retriever) -> None:
    """Its sentences are scored against the whole question, which one part can dominate: the close-score
    filter would drop the other part's article."""
    question = "规划对不动产投资信托基金、老旧小区加装电梯分别有什么安排？"
    shown = prompt_hits(hits_for(retriever, question))
    scored = SentenceScorer().run(question, shown)
    assert len(shown) >= 2
    assert secondary_hits(shown, scored, several=True) == shown[1:]
    messages = build_messages(question, shown, "zh-Hans", "resident", scored, plan_name=PLAN)
    assert all(h.unit.label in messages[-1]["content"] for h in shown[1:])


def test_a_question_naming_an_article_shows_the_model_only_that_article(retriever: Retriever) -> None:
    hits = hits_for(retriever, "第二十四条里关于养老服务体系是怎么说的？")
    assert hits[0].unit.number == 24 and len(hits) > 1
    assert [h.unit.number for h in prompt_hits(hits)] == [24]
    messages = build_messages("第二十四条里关于养老服务体系是怎么说的？", hits, "zh-Hans", "resident", plan_name=PLAN)
    assert "其他相关原文" not in messages[-1]["content"]
