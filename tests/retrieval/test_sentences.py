"""SentenceIndex: one vector per sentence of every unit, embedded once (kept on disk), ranking units by
their best sentence; the retriever fuses that ranking in hybrid mode and the evidence scorer reuses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.answering.evidence import SentenceScorer
from assistant.errors import ConfigError
from assistant.ingest.chunker import Chunker
from assistant.ingest.corpus import load_corpus
from assistant.models import Document, Unit
from assistant.retrieval.retriever import Retriever
from assistant.retrieval.sentences import SentenceIndex
from assistant.retrieval.store import HybridIndex, IndexStore

from conftest import CORPUS_DIR, FakeEmbedder


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return load_corpus(CORPUS_DIR)


@pytest.fixture(scope="module")
def units(documents: list[Document]) -> list[Unit]:
    return [u for d in documents for u in d.units]


@pytest.fixture(scope="module")
def index(documents: list[Document], tmp_path_factory: pytest.TempPathFactory) -> HybridIndex:
    return IndexStore(tmp_path_factory.mktemp("ix") / "fake").build(Chunker(220, 40).run(documents), FakeEmbedder(), "fp", {})


def test_every_sentence_has_a_vector_and_a_unit_ranks_by_its_best(units: list[Unit]) -> None:
    sentences = SentenceIndex(units, FakeEmbedder())
    assert len(sentences) == sum(len(u.sentences) for u in units)
    unit = units[20]
    vectors = sentences.vectors(unit)
    assert vectors is not None and vectors.shape == (len(unit.sentences), 256)
    target = unit.sentences[1]
    ranked = sentences.rank_units(FakeEmbedder().embed_queries([target.text])[0])
    assert ranked[0][0] == unit.unit_id and ranked[0][1] == pytest.approx(1.0, abs=1e-5)
    assert len(ranked) == len(units) and [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)


def test_vectors_are_read_from_disk_on_the_next_start_and_a_broken_file_is_rebuilt(units: list[Unit], tmp_path: Path) -> None:
    cache = tmp_path / "sentences.npz"
    first = SentenceIndex(units[:5], FakeEmbedder(), cache)
    assert first.computed and cache.is_file()
    embedder = FakeEmbedder()
    again = SentenceIndex(units[:5], embedder, cache)
    assert not again.computed and embedder.calls == 0
    assert np.array_equal(first.matrix, again.matrix)
    assert SentenceIndex(units[:6], FakeEmbedder(), cache).computed  # other sentences: not these vectors
    cache.write_bytes(b"not a zip")
    assert SentenceIndex(units[:5], FakeEmbedder(), cache).computed


def test_a_unit_the_index_was_not_built_with_has_no_vectors(units: list[Unit]) -> None:
    sentences = SentenceIndex(units[:3], FakeEmbedder())
    assert sentences.vectors(units[4]) is None
    assert sentences.vectors_of(units[0].unit_id, len(units[0].sentences) + 1) is None


def test_the_evidence_scorer_reuses_the_index_vectors(units: list[Unit], index: HybridIndex, documents: list[Document]) -> None:
    embedder = FakeEmbedder()
    sentences = SentenceIndex(units, embedder)
    retriever = Retriever(index, embedder, documents, sentences=sentences)
    hits = retriever.run("养老机构安全监管")
    calls = embedder.calls
    scored = SentenceScorer(embedder, index=sentences).run("养老机构安全监管", hits)
    assert scored and embedder.calls == calls + 1  # the question only
    assert SentenceScorer(embedder, index=sentences).precompute(units) == 0


def test_the_best_sentence_stage_moves_a_unit_by_its_weight(units: list[Unit], index: HybridIndex, documents: list[Document]) -> None:
    embedder = FakeEmbedder()
    sentences = SentenceIndex(units, embedder)
    plain = Retriever(index, embedder, documents)
    moved = 0
    for question in ["老旧小区改造和加装电梯怎么安排？", "家门口看病方便吗？", "夜间经济怎么发展？", "创业有没有贷款？", "河道治理怎么做？"]:
        base = [h.unit.unit_id for h in plain.run(question, k=8)]
        off = plain.with_options(sentences=sentences, sentence_weight=0.0).run(question, k=8)
        assert [h.unit.unit_id for h in off] == base
        best_by_sentence = sentences.rank_units(embedder.embed_queries([question])[0])[0][0]
        if best_by_sentence in base[1:]:  # the chunks rank another unit first
            heavy = plain.with_options(sentences=sentences, sentence_weight=50.0).run(question, k=8)
            assert heavy[0].unit.unit_id == best_by_sentence
            dense = plain.with_options(mode="dense", sentences=sentences, sentence_weight=50.0).run(question, k=8)
            assert [h.unit.unit_id for h in dense] == [h.unit.unit_id for h in plain.with_mode("dense").run(question, k=8)]
            moved += 1
    assert moved >= 1
    with pytest.raises(ConfigError, match="sentence_weight"):
        plain.with_options(sentence_weight=-1.0)


def test_a_named_article_is_marked_on_its_hit(index: HybridIndex, documents: list[Document]) -> None:
    hits = Retriever(index, FakeEmbedder(), documents).run("第24条的主要内容是什么？")
    assert hits[0].unit.number == 24 and hits[0].named
    assert not any(h.named for h in hits[1:])
