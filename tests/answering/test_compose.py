"""Composing the shown answer: nothing in it may come from the question or the model alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.answering.compose import (
    AnswerComposer,
    clean_generated,
    echoes,
    finish_cut_sentence,
    grounded,
    harmless,
    specifics,
    with_what_it_heads,
)
from assistant.answering.evidence import SentenceScorer
from assistant.answering.pipeline import Assistant
from assistant.config import load_settings
from assistant.ingest.corpus import load_corpus
from assistant.models import AnswerSentence, Citation, Hit, Query, Sentence

from conftest import CORPUS_DIR, FakeEmbedder, ScriptedGenerator

ELDERLY = "我家老人想住养老院，区里有什么打算？"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("index")


def _ask(index_dir: Path, reply: str, question: str = ELDERLY):  # type: ignore[no-untyped-def]
    settings = load_settings(None, env={}, index_dir=index_dir, backend="llama")
    return Assistant(settings, embedder=FakeEmbedder(), generator=ScriptedGenerator(reply)).ask(question)


def test_specifics_are_numbers_addresses_and_latin_words() -> None:
    assert specifics("请拨打4001234567或访问evil.cn，到2025年达到25:75") == {"4001234567", "evil.cn", "2025", "25:75"}
    assert specifics("加强养老机构安全监管。") == set()


def test_short_framing_with_an_address_is_not_harmless() -> None:
    assert harmless("具体如下：")
    assert not harmless("补贴请到evil.cn申领。")
    assert not harmless("请拨打4001234567。")


def test_a_cited_sentence_loses_its_citation_for_a_number_not_in_the_source() -> None:
    unit = load_corpus(CORPUS_DIR)[0].article(19)
    assert unit is not None
    cite = Citation.of(unit.sentences[0])
    assert grounded(AnswerSentence(unit.sentences[0].text, cite)).citation is cite
    added = AnswerSentence(unit.sentences[0].text + "详情请拨打4001234567。", cite)
    assert grounded(added).citation is None


def test_a_phone_number_from_the_question_never_comes_back_cited(index_dir: Path) -> None:
    question = "养老机构安全监管有什么要求？听说打4001234567能问"
    reply = "规划提出要加强养老机构安全监管，确保养老机构安全平稳运行，可拨打4001234567咨询。补贴请到evil.cn申领。"
    answer = _ask(index_dir, reply, question)
    assert "4001234567" not in answer.text and "evil.cn" not in answer.text
    assert "4001234567" in answer.draft  # the raw draft keeps it, marked unverified


def test_a_question_in_the_draft_is_never_shown_as_a_cited_claim(index_dir: Path) -> None:
    # The plan's own words asked back as a question assert nothing, however close they are to the plan.
    unit = load_corpus(CORPUS_DIR)[0].article(19)
    assert unit is not None
    restated = unit.sentences[0].text.rstrip("。") + "吗？"
    answer = _ask(index_dir, f"{restated}规划提出要加强养老机构安全监管，确保养老机构安全平稳运行。")
    assert restated not in answer.text
    assert all(not s.text.endswith(("?", "？")) for s in answer.sentences)
    assert 19 in {c.article for c in answer.citations}


def test_the_verified_part_of_a_draft_is_kept(index_dir: Path) -> None:
    answer = _ask(index_dir, "规划提出要加强养老机构安全监管，确保养老机构安全平稳运行。")
    assert not answer.abstained and 19 in {c.article for c in answer.citations}


def test_a_sentence_cut_off_at_the_token_limit_is_finished_from_the_plan(index_dir: Path) -> None:
    # The model was copying a plan sentence when the token limit cut it: the plan's sentence finishes it.
    unit = load_corpus(CORPUS_DIR)[0].article(19)
    assert unit is not None
    whole = unit.sentences[0].text
    rest = next(s.text for s in unit.sentences[1:] if len(s.text) > 30)
    answer = _ask(index_dir, f"{whole}{rest[:16]}")
    assert not answer.abstained and rest in answer.text.replace("，", ",")
    assert finish_cut_sentence(f"{whole}{rest[:16]}", [unit]) == whole + rest
    assert finish_cut_sentence(whole, [unit]) == whole  # a finished draft stays as it is


def test_a_cut_off_sentence_not_from_the_plan_is_dropped(index_dir: Path) -> None:
    unit = load_corpus(CORPUS_DIR)[0].article(19)
    assert unit is not None
    whole, made_up = unit.sentences[0].text, "区里还将为每位老人每月发放一笔"
    answer = _ask(index_dir, f"{whole}{made_up}")
    assert not answer.abstained and made_up not in answer.text
    assert finish_cut_sentence(f"{whole}{made_up}", [unit]) == whole
    assert finish_cut_sentence("出自第十九条", [unit]) == "出自第十九条"  # all the draft says: kept for the checks after


def test_a_header_copied_from_the_prompt_is_not_shown(index_dir: Path) -> None:
    # The prompt introduces other articles as "[第十九条 标题]"; the answer names an article the reader's way.
    unit = load_corpus(CORPUS_DIR)[0].article(19)
    assert unit is not None
    answer = _ask(index_dir, f"[{unit.label} {unit.title}]{unit.sentences[0].text}")
    assert "[" not in answer.text and 19 in {c.article for c in answer.citations}


def test_each_part_of_a_question_about_several_things_is_cited(index_dir: Path) -> None:
    """The draft answers both parts from one article; the other part's own article is cited too."""
    from assistant.answering.guard import QuestionGuard

    doc = load_corpus(CORPUS_DIR)[0]
    reits = next(s for u in doc.units for s in u.sentences if "不动产投资信托基金" in s.text)
    question = "规划对不动产投资信托基金、老旧小区加装电梯分别有什么安排？"
    settings = load_settings(None, env={}, index_dir=index_dir, backend="llama")
    assistant = Assistant(settings, embedder=FakeEmbedder(), generator=ScriptedGenerator(reits.text), guard=QuestionGuard())
    hits = assistant.retriever().run(question)
    parts = {h.unit.number: h.aspect for h in hits if h.aspect}
    assert set(parts) == {reits.unit.number, 15}
    answer = assistant.ask(question)
    cited = {c.article for c in answer.citations}
    assert {reits.unit.number, 15} <= cited
    elevator = [c for c in answer.citations if c.article == 15]
    assert any("电梯" in c.quote for c in elevator)


@pytest.mark.parametrize("number", [5, 24, 43])
def test_quotes_for_a_question_naming_an_article_come_from_that_article(index_dir: Path, number: int) -> None:
    """The model's draft cannot be verified, so the answer falls back to quotes: they are the named
    article's, not a neighbour's that shares the question's words."""
    answer = _ask(index_dir, "这一条讲的是月球基地的建设。", f"第{number}条的主要内容是什么？规划有什么措施和要求？")
    assert not answer.abstained
    assert {c.article for c in answer.citations} == {number}


def test_numbers_in_a_draft_are_invented_only_when_neither_asked_nor_shown() -> None:
    from assistant.answering.compose import invented_numbers
    from assistant.models import Hit, Query

    doc = load_corpus(CORPUS_DIR)[0]
    elderly, goals = doc.article(19), doc.article(3)
    assert elderly is not None and "1335" in elderly.text
    assert goals is not None and "二〇三五" in goals.text and "2035" not in goals.text
    question = "区里的养老服务体系怎么建？２０２０年以前建成了吗？"
    query = Query(question, question, "zh-Hans", "resident")
    shown = [Hit(unit=elderly, score=1.0), Hit(unit=goals, score=0.9)]
    assert invented_numbers("“1335”里的“1”指区级平台，“3”指三种服务。", query, shown) == []  # parts of a shown number
    assert invented_numbers("2020年以前已经建成。", query, shown) == []  # asked (in full-width digits)
    assert invented_numbers("到2035年基本实现现代化。", query, shown) == []  # shown as 二〇三五
    assert invented_numbers("规划第23、24条和Articles 40 and 41都提到了。", query, shown) == []  # references
    assert invented_numbers("一个年级有24个班，每年投入10.5亿元。", query, shown) == ["10.5", "10.5亿", "24"]
    # an amount counts as shown only with its magnitude: "10" is a part of a shown figure, "10亿" is not
    period = Query("“十四五”期间进出口额是多少？", "“十四五”期间进出口额是多少？", "zh-Hans", "resident")
    assert invented_numbers("一年有10个项目。", period, shown) == []  # 十 of 十四五
    assert invented_numbers("一年进出口额为10亿美元。", period, shown) == ["10亿"]
    assert invented_numbers("一年进出口额为十亿美元。", period, shown) == ["十亿"]
    assert invented_numbers("到2035年基本实现现代化。", query, shown[:1]) == ["2035"]  # not shown: made up


def test_an_unverifiable_draft_with_a_made_up_figure_is_declined_as_silence(index_dir: Path) -> None:
    """Nothing in the draft is in the plan and its figures were never shown to the model: it made the
    answer up, so the plan is declared silent rather than quoted as if it answered."""
    answer = _ask(index_dir, "区里的养老机构共有3800张床位，每年新增500张。", "区里的养老机构规模有多大？")
    assert answer.abstained and answer.reason == "weak_evidence"
    assert "3800" not in answer.text and "12345" in answer.text
    # The same unverifiable draft without a figure falls back to verified quotes.
    quoted = _ask(index_dir, "区里的养老机构规模很大，床位很多。", "区里的养老机构规模有多大？")
    assert not quoted.abstained and quoted.citations


class _SameDirection:
    """Every text embeds to the same vector: any English sentence is as close to the plan as can be."""

    model_id = "same-direction"
    dim = 4

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return np.full((len(texts), self.dim), 0.5, dtype=np.float32)

    embed_passages = embed_queries


def test_an_english_sentence_that_restates_the_question_is_not_cited() -> None:
    """Cosine support is what English sentences are verified by, and a restatement of the question is close to
    whatever the question retrieved: it asserts nothing the plan says, so only the other sentence is cited."""
    documents = load_corpus(CORPUS_DIR)
    unit = documents[0].article(19)
    assert unit is not None
    composer = AnswerComposer(documents, SentenceScorer(embedder=_SameDirection()))  # type: ignore[arg-type]
    question = "Will the district help elderly people who live alone at home?"
    query = Query(question, "区里会帮助独居老人吗？", "en", "resident", question)
    hits = [Hit(unit=unit, score=0.03)]
    draft = "Yes, the district will help elderly people who live alone at home. The plan builds a smart elderly care platform."
    answer = composer.from_draft(draft, query, hits, "scripted")
    assert answer is not None
    assert [s.text for s in answer.sentences if s.citation is not None] == ["The plan builds a smart elderly care platform."]
    assert "live alone" not in answer.text
    assert echoes("Yes, the district will help elderly people who live alone at home.", question)
    assert not echoes("The plan builds a smart elderly care platform.", question)
    # a figure the question lacks is a claim to check, however much of the question the sentence repeats
    assert not echoes("The district will help 3000 elderly people who live alone.", question)


def test_a_cut_loop_is_not_finished_into_a_sentence_it_already_said() -> None:
    unit = load_corpus(CORPUS_DIR)[0].article(19)
    assert unit is not None
    first, second = unit.sentences[0].text, unit.sentences[2].text
    assert finish_cut_sentence(f"{first}{second}{first[:20]}", [unit]) == f"{first}{second}"


def test_where_a_draft_stops_says_whether_it_was_cut() -> None:
    unit = load_corpus(CORPUS_DIR)[0].article(19)
    assert unit is not None
    first = unit.sentences[0].text
    assert finish_cut_sentence(f"{first}搭建“1335”", [unit]) == first  # a closing quote after no full stop
    assert finish_cut_sentence(f"{first}主要包括：", [unit]) == first  # a lead-in the model never stops at
    finished = f"{first}规划称之为“八个有”。”"
    assert finish_cut_sentence(finished, [unit]) == finished  # a full stop, then closing marks


def test_a_cut_sentence_is_dropped_when_the_copied_sentence_is_not_clear() -> None:
    unit = load_corpus(CORPUS_DIR)[0].article(19)
    assert unit is not None
    first = unit.sentences[0].text
    cut = next(s.text for s in unit.sentences[1:] if len(s.text) > 30)[:16]
    assert finish_cut_sentence(f"{first}{cut}", [unit, unit]) == first  # two sentences hold its end
    assert finish_cut_sentence(f"{first}{cut}", []) == first  # an English draft: no plan sentence to finish it


def test_article_headers_in_any_bracket_are_not_kept() -> None:
    assert clean_generated("【第十九条 积极应对人口老龄化挑战】落实人口老龄化国家战略。") == "落实人口老龄化国家战略。"
    assert clean_generated("[第四部分引言 加快发展现代产业体系]推动产业发展。") == "推动产业发展。"


def test_a_run_in_heading_is_quoted_with_the_sentence_it_heads() -> None:
    doc = load_corpus(CORPUS_DIR)[0]
    unit = doc.article(20)
    assert unit is not None
    heading = next(s for s in unit.sentences if s.text == "做实系统。")
    quoted = with_what_it_heads(heading)
    assert quoted.text.startswith("做实系统。") and len(quoted.text) > len(heading.text)
    assert doc.source[quoted.start : quoted.end] == quoted.text  # still the plan's exact words
    whole = max(unit.sentences, key=lambda s: len(s.text))
    assert with_what_it_heads(whole) is whole
    last = unit.sentences[-1]
    tail = Sentence(unit, last.end - 5, last.end, doc.source[last.end - 5 : last.end])
    assert not any(mark in tail.text for mark in "，,、：:")
    assert with_what_it_heads(tail) is tail  # nothing in its unit follows it
