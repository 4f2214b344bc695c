import pytest

from assistant.answering.extractive import ExtractiveAnswerer
from assistant.ingest.corpus import load_corpus
from assistant.models import Document, Hit

from conftest import CORPUS_DIR


@pytest.fixture(scope="module")
def doc() -> Document:
    return load_corpus(CORPUS_DIR)[0]


def _hits(doc: Document, *numbers: int) -> list[Hit]:
    return [Hit(unit=doc.article(n), score=1.0 / (i + 1)) for i, n in enumerate(numbers)]  # type: ignore[arg-type]


def test_picks_the_sentence_that_answers(doc: Document) -> None:
    extract = ExtractiveAnswerer().run("老旧小区能不能加装电梯？", _hits(doc, 15, 19))
    assert extract.sentences, "expected at least one sentence"
    assert any("加装电梯" in s.text for s in extract.sentences)
    assert extract.sentences[0].unit.number == 15


def test_sentences_are_verbatim_and_bounded(doc: Document) -> None:
    extract = ExtractiveAnswerer(max_sentences=2).run("养老服务 助餐 助浴", _hits(doc, 19, 17, 15))
    assert 1 <= len(extract.sentences) <= 2
    for s in extract.sentences:
        assert doc.source[s.start : s.end] == s.text


def test_lower_ranked_units_need_comparable_support(doc: Document) -> None:
    # Article 43 says nothing about elderly care: it must not be quoted.
    extract = ExtractiveAnswerer().run("养老服务中心 助餐 助浴", _hits(doc, 19, 43))
    assert {s.unit.number for s in extract.sentences} == {19}


def test_no_hits_gives_no_sentences() -> None:
    assert ExtractiveAnswerer().run("养老", []).sentences == []


@pytest.mark.parametrize("kwargs", [{"max_sentences": 0}, {"max_units": 0}, {"relative_floor": 2.0}])
def test_bad_config_is_named(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ExtractiveAnswerer(**kwargs)  # type: ignore[arg-type]


def test_sentence_vectors_are_precomputed_once_and_cached(doc: Document, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from assistant.answering.extractive import SentenceScorer

    from conftest import FakeEmbedder

    cache = tmp_path / "sentences.npz"
    first = SentenceScorer(FakeEmbedder())
    assert first.precompute(doc.units, cache) > 400
    second_embedder = FakeEmbedder()
    second = SentenceScorer(second_embedder)
    assert second.precompute(doc.units, cache) == 0 and second_embedder.calls == 0
    hits = _hits(doc, 19)
    assert [s.sentence.text for s in first.run("养老机构安全", hits)] == [
        s.sentence.text for s in second.run("养老机构安全", hits)
    ]
    cache.write_bytes(b"garbage")  # a corrupt cache is rebuilt, not fatal
    assert SentenceScorer(FakeEmbedder()).precompute(doc.units, cache) > 400
