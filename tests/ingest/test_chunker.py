"""Chunker invariants over the real plan and synthetic units."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from assistant.errors import ConfigError
from assistant.ingest.chunker import Chunker
from assistant.ingest.corpus import load_corpus
from assistant.models import Chapter, Chunk, Document, DocumentMeta, Unit

from conftest import CORPUS_DIR

SENTENCE_PUNCT = "。！？；;，,"


@pytest.fixture(scope="module")
def doc() -> Document:
    return load_corpus(CORPUS_DIR)[0]


def _by_unit(chunks: list[Chunk]) -> dict[str, list[Chunk]]:
    out: dict[str, list[Chunk]] = defaultdict(list)
    for c in chunks:
        out[c.unit_id].append(c)
    return out


def _check_invariants(doc: Document, chunks: list[Chunk], chunk_size: int) -> None:
    units = {u.unit_id: u for u in doc.units}
    grouped = _by_unit(chunks)
    assert set(grouped) == set(units), "every unit has chunks, and only units do"
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    for unit_id, unit_chunks in grouped.items():
        unit = units[unit_id]
        covered = [False] * len(unit.text)
        for i, c in enumerate(unit_chunks):
            assert c.chunk_id == f"{unit_id}:{i}"
            assert doc.source[c.start : c.end] == c.text  # exact offsets
            assert unit.start <= c.start < c.end <= unit.end  # never crosses the unit
            assert 0 < len(c.text) <= chunk_size
            assert c.text == c.text.strip()
            assert (c.doc_id, c.chapter, c.article, c.unit) == (unit.doc_id, unit.chapter, unit.number, unit.kind)
            for k in range(c.start - unit.start, c.end - unit.start):
                covered[k] = True
        missed = "".join(ch for ch, hit in zip(unit.text, covered, strict=True) if not hit)
        assert not missed.strip(), (unit_id, missed)  # only whitespace between chunks may be left out
        starts = [c.start for c in unit_chunks]
        assert starts == sorted(set(starts))


def test_real_plan_invariants(doc: Document) -> None:
    chunks = Chunker().run([doc])
    _check_invariants(doc, chunks, 220)
    # short articles are one chunk, long ones several
    grouped = _by_unit(chunks)
    assert len(grouped["yaohai-14th-fyp#article-43"]) == 1
    assert len(grouped["yaohai-14th-fyp#article-1"]) >= 6


@pytest.mark.parametrize(("size", "overlap"), [(80, 0), (120, 30), (500, 100), (2000, 0)])
def test_invariants_hold_for_other_sizes(doc: Document, size: int, overlap: int) -> None:
    _check_invariants(doc, Chunker(size, overlap).run([doc]), size)


def test_chunks_end_at_sentence_punctuation(doc: Document) -> None:
    """keep_separator="end": a chunk ends with its 。 rather than the next one starting with it."""
    chunks = Chunker().run([doc])
    assert not any(c.text[0] in "。；;，," for c in chunks)
    units = {u.unit_id: u for u in doc.units}
    inner = [c for c in chunks if c.end < units[c.unit_id].end]  # not the unit's last chunk
    ending = [c for c in inner if c.text[-1] in SENTENCE_PUNCT]
    assert len(ending) >= 0.95 * len(inner)


def test_overlap(doc: Document) -> None:
    def overlapping(chunks: list[Chunk]) -> int:
        return sum(1 for a, b in zip(chunks, chunks[1:], strict=False) if a.unit_id == b.unit_id and b.start < a.end)

    assert overlapping(Chunker(220, 40).run([doc])) > 10
    assert overlapping(Chunker(220, 0).run([doc])) == 0


def test_context(doc: Document) -> None:
    chunks = Chunker().run([doc])
    first = {c.unit_id: c for c in reversed(chunks)}
    a19 = first["yaohai-14th-fyp#article-19"]
    assert a19.context == "五、以城市更新提升城市品质,全面增进人民福祉 第十九条 积极应对人口老龄化挑战"
    intro = first["yaohai-14th-fyp#chapter-四"]
    assert intro.context.startswith("四、以产业链高级化推进产业转型升级")
    assert intro.context.endswith("第四部分引言")
    assert intro.article is None and intro.unit == "chapter_intro"
    assert a19.embed_text == f"{a19.context}\n{a19.text}"


def _synthetic(text_body: str) -> Document:
    meta = DocumentMeta("syn", "t", "i", "2020-01-01", "2020-01-02", "s", "syn.txt")
    prefix = "一、总则\r\n\r\n1. "
    source = prefix + text_body + "\r\n"
    body = text_body.rstrip()
    start = len(prefix)
    art = Unit("syn", "一", 1, "标题", body, start, start + len(body))
    chapter = Chapter("syn", "一", 1, "总则", 0, len(source), None, (art,))
    return Document(meta, source, None, (chapter,), "")


def test_unpunctuated_and_crlf_text() -> None:
    # no separators at all → character splits; CRLF paragraph breaks inside the unit
    body = "标题。" + "数" * 130 + "\r\n\r\n——" + "字" * 70 + "。\r\n\r\n——尾。"
    doc = _synthetic(body)
    chunks = Chunker(50, 10).run([doc])
    _check_invariants(doc, chunks, 50)
    assert not any("\r" in c.text[:1] + c.text[-1:] for c in chunks)


@pytest.mark.parametrize("seed", range(40))
def test_random_repetitive_text(seed: int) -> None:
    """Repetitive text with every kind of separator: offsets must still be exact."""
    rng = random.Random(seed)
    alphabet = ["数", "字", "数字", "。", "，", ",", "；", "\n", "\r\n\r\n", "——", " ", "\u00a0"]
    body = "标题。" + "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400))) + "尾。"
    size = rng.randint(5, 120)
    overlap = rng.randint(0, size - 1)
    doc = _synthetic(body)
    _check_invariants(doc, Chunker(size, overlap).run([doc]), size)


def test_no_documents() -> None:
    assert Chunker().run([]) == []


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"chunk_size": 0}, "0"),
        ({"chunk_size": -5}, "-5"),
        ({"chunk_size": True}, "True"),
        ({"chunk_size": "220"}, "'220'"),
        ({"chunk_size": 10**6}, "1000000"),
        ({"chunk_overlap": -1}, "-1"),
        ({"chunk_size": 100, "chunk_overlap": 100}, "100"),
        ({"chunk_overlap": 1.5}, "1.5"),
    ],
)
def test_parameters_are_validated(kwargs: dict[str, object], bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        Chunker(**kwargs)  # type: ignore[arg-type]
    assert bad in str(info.value)
    assert next(iter(kwargs)) in str(info.value) or "chunk_overlap" in str(info.value)
