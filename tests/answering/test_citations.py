from dataclasses import replace

import pytest

from assistant.answering.citations import CitationAttacher, CitationVerifier, cited
from assistant.ingest.corpus import load_corpus
from assistant.models import Citation, Document, Hit
from assistant.text import split_answer

from conftest import CORPUS_DIR


@pytest.fixture(scope="module")
def doc() -> Document:
    return load_corpus(CORPUS_DIR)[0]


def _hits(doc: Document, *numbers: int) -> list[Hit]:
    out = []
    for n in numbers:
        a = doc.article(n)
        assert a is not None
        out.append(Hit(unit=a, score=1.0 / (len(out) + 1)))
    return out


def test_unit_sentences_are_exact_source_slices(doc: Document) -> None:
    for unit in doc.units:
        for s in unit.sentences:
            assert doc.source[s.start : s.end] == s.text
            assert unit.start <= s.start < s.end <= unit.end


def test_paraphrase_is_attached_to_its_article(doc: Document) -> None:
    answer = "规划提出要加强养老机构安全监管。另外还会为符合条件的老旧小区申请人加装电梯。"
    sentences = CitationAttacher().run(answer, _hits(doc, 19, 15, 17))
    assert [s.citation.article for s in sentences if s.citation is not None] == [19, 15]
    verifier = CitationVerifier([doc])
    assert all(verifier.problem(c) is None for c in cited(sentences))


def test_unsupported_sentence_is_not_cited(doc: Document) -> None:
    answer = "政府将为每户老楼加装电梯补贴十五万元现金。"
    sentences = CitationAttacher().run(answer, _hits(doc, 15))
    assert sentences[0].citation is None and cited(sentences) == []


def test_sentence_naming_a_different_article_is_not_verified(doc: Document) -> None:
    # The words come from article 19, but the sentence claims article 44.
    answer = "第四十四条规定：加强养老机构安全监管。"
    sentences = CitationAttacher().run(answer, _hits(doc, 19))
    assert sentences[0].citation is None


def test_verifier_catches_fabricated_quote_and_article(doc: Document) -> None:
    verifier = CitationVerifier([doc])
    good = Citation.of(doc.article(19).sentences[0])  # type: ignore[arg-type]
    assert verifier.problem(good) is None
    assert "quote" in str(verifier.problem(replace(good, quote="每户补贴五万元。")))
    invented = replace(good, unit=replace(good.unit, number=44))
    assert "does not exist" in str(verifier.problem(invented))
    shifted = replace(good, start=good.start + 1, end=good.end + 1)
    assert verifier.problem(shifted) is not None
    assert "outside" in str(verifier.problem(replace(good, unit=doc.article(1))))
    assert "unknown document" in str(verifier.problem(replace(good, unit=replace(good.unit, doc_id="nope"))))
    assert verifier.run([good, invented]) == [good]


def test_split_answer_handles_both_languages() -> None:
    assert split_answer("第一句。第二句！Third one. Fourth?") == ["第一句。", "第二句！", "Third one.", "Fourth?"]


def test_invented_clause_riding_on_a_quote_is_not_cited(doc: Document) -> None:
    answer = "规划提出加强养老机构安全监管，政府还将全额出资新建三十座地铁站和跨海大桥。"
    sentences = CitationAttacher().run(answer, _hits(doc, 19))
    assert sentences[0].citation is None and cited(sentences) == []


def test_framing_that_echoes_the_question_is_fine(doc: Document) -> None:
    answer = "区里对养老院安全有以下要求：加强养老机构安全监管和服务质量提升，确保养老机构安全平稳运行。"
    sentences = CitationAttacher().run(answer, _hits(doc, 19), question="区里对养老院安全有什么要求？")
    assert sentences[0].citation is not None
