"""eval/expansion.py: the model's reply becomes questions, the cache is keyed by the unit's text and the
model, and the expansion stage moves a unit up only as far as its weight allows (no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.evaluation.scripts import eval_script
from assistant.ingest.chunker import Chunker
from assistant.ingest.corpus import load_corpus
from assistant.retrieval.retriever import Retriever
from assistant.retrieval.store import IndexStore

from conftest import CORPUS_DIR, FakeEmbedder

expansion = eval_script("expansion")


def test_a_reply_becomes_questions_without_list_markers_repeats_or_scraps() -> None:
    reply = "1. 区里要建几个养老中心？\n2、区里要建几个养老中心？\n- 老人吃饭有人管吗？\n（3）好\n\n• 看病能走几步就到吗？"
    assert expansion.parse_questions(reply, 8) == ["区里要建几个养老中心？", "老人吃饭有人管吗？", "看病能走几步就到吗？"]
    assert expansion.parse_questions(reply, 1) == ["区里要建几个养老中心？"]


def test_the_cache_is_keyed_by_the_unit_text_and_model_and_skips_broken_lines(tmp_path: Path) -> None:
    unit = load_corpus(CORPUS_DIR)[0].units[3]
    key = expansion.unit_key(unit, "model-a", 8)
    assert key != expansion.unit_key(unit, "model-b", 8) and key != expansion.unit_key(unit, "model-a", 4)
    cache = tmp_path / "expansions.jsonl"
    cache.write_text('{"unit_id": "u1", "key": "k", "questions": ["问一？"]}\nnot json\n{"unit_id": "u2"}\n', encoding="utf-8")
    assert expansion.read_cache(cache) == {"u1": {"key": "k", "questions": ["问一？"]}}
    assert expansion.read_cache(tmp_path / "missing.jsonl") == {}


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    documents = load_corpus(CORPUS_DIR)
    index = IndexStore(tmp_path_factory.mktemp("ix") / "fake").build(Chunker(220, 40).run(documents), FakeEmbedder(), "fp", {})
    return Retriever(index, FakeEmbedder(), documents, top_k=5)


def test_a_unit_whose_pseudo_question_is_the_question_moves_up_by_its_weight(retriever: Retriever) -> None:
    question = "小区门口的早餐摊以后还能摆吗？"
    base = [h.unit.unit_id for h in retriever.run(question, k=10)]
    target = base[-1]  # ranked tenth without expansion
    expansions = {uid: ["规划里写了哪些目标？"] for uid in retriever.units}
    expansions[target] = [question]
    strong = expansion.ExpandedRetriever(retriever, FakeEmbedder(), expansions, 5.0).run(question, k=10)
    assert strong[0].unit.unit_id == target
    weak = expansion.ExpandedRetriever(retriever, FakeEmbedder(), expansions, 1e-6).run(question, k=10)
    assert [h.unit.unit_id for h in weak] == base
    assert [h.unit.unit_id for h in expansion.ExpandedRetriever(retriever, FakeEmbedder(), {}, 5.0).run(question, k=10)] == base
