"""Evidence: the sentence-vector cache (a damaged file is rebuilt, writes are atomic and durable,
a read-only or full cache folder never stops start-up) and the places a phrase is mentioned."""

from __future__ import annotations

import errno
import io
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import assistant.files as files_mod
from assistant.answering.evidence import MentionFinder, ReviewFinder, SentenceScorer, asks_done_then_next
from assistant.ingest.corpus import load_corpus
from assistant.models import Document, Hit

from conftest import CORPUS_DIR, FakeEmbedder
from helpers_fs import deny_writes


@pytest.fixture(scope="module")
def doc() -> Document:
    return load_corpus(CORPUS_DIR)[0]


@pytest.fixture(scope="module")
def good_cache(doc: Document, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("cache") / "sentences.npz"
    SentenceScorer(FakeEmbedder()).precompute(doc.units, path)
    return path.read_bytes()


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda good: b"",
    "truncated-half": lambda good: good[: len(good) // 2],
    "truncated-tail": lambda good: good[:-10],
    "header-only": lambda good: good[:30],
    "garbage": lambda good: b"garbage" * 100,
    "flipped-bytes": lambda good: good[:200] + bytes(b ^ 0xFF for b in good[200:400]) + good[400:],
    "bare-npy": lambda good: _npy(np.zeros((3, 3), dtype=np.float32)),
    "pickled-object": lambda good: _npz(key=np.array([{"a": 1}], dtype=object), vectors=np.zeros((1, 1))),
    "missing-member": lambda good: _npz(key=np.array("x")),
    "wrong-shape": lambda good: _npz(key=np.array("x"), vectors=np.zeros(7, dtype=np.float32)),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_cache_is_rebuilt_not_fatal(
    doc: Document, good_cache: bytes, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "sentences.npz"
    cache.write_bytes(DAMAGE[damage](good_cache))
    with caplog.at_level(logging.WARNING, logger="assistant.answering.evidence"):
        embedded = SentenceScorer(FakeEmbedder()).precompute(doc.units, cache)
    assert embedded > 400  # treated as missing: computed afresh
    # ... and repaired on disk: the next start loads it without embedding anything.
    again = FakeEmbedder()
    assert SentenceScorer(again).precompute(doc.units, cache) == 0 and again.calls == 0


def test_cache_of_matching_key_but_wrong_width_is_rebuilt(doc: Document, tmp_path: Path) -> None:
    cache = tmp_path / "sentences.npz"
    SentenceScorer(FakeEmbedder(dim=64)).precompute(doc.units, cache)
    with np.load(cache) as data:  # same key, vectors of another width: not ours to trust
        key, rows = data["key"], data["vectors"].shape[0]
    cache.write_bytes(_npz(key=key, vectors=np.zeros((rows, 3), dtype=np.float32)))
    assert SentenceScorer(FakeEmbedder(dim=64)).precompute(doc.units, cache) == rows


def test_cache_write_is_atomic_and_fsynced(doc: Document, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = files_mod.os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(files_mod.os, "fsync", fsync)
    cache = tmp_path / "cache" / "sentences.npz"
    SentenceScorer(FakeEmbedder()).precompute(doc.units, cache)
    assert synced, "the cache file was not fsynced"
    assert [p.name for p in cache.parent.iterdir()] == ["sentences.npz"], "temporary file left behind"


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC], ids=["read-only", "full"])
def test_unwritable_cache_folder_keeps_vectors_in_memory(
    doc: Document, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, code: int
) -> None:
    folder = tmp_path / "cache"
    folder.mkdir()
    denied = deny_writes(monkeypatch, folder, code)
    embedder = FakeEmbedder()
    scorer = SentenceScorer(embedder)
    with caplog.at_level(logging.WARNING, logger="assistant.answering.evidence"):
        assert scorer.precompute(doc.units, folder / "sentences.npz") > 400
    assert denied.attempts, "expected the cache write to be attempted"
    assert "keeping the vectors in memory" in caplog.text
    monkeypatch.undo()
    assert not list(folder.iterdir())
    # The in-memory vectors serve questions without embedding any sentence again.
    calls = embedder.calls
    hits = [Hit(unit=doc.article(19), score=1.0)]  # type: ignore[arg-type]
    assert scorer.run("养老机构安全", hits)
    assert embedder.calls == calls + 1  # the question only


def test_read_only_folder_with_a_good_cache_loads_it(
    doc: Document, good_cache: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "sentences.npz"
    cache.write_bytes(good_cache)
    denied = deny_writes(monkeypatch, tmp_path)
    assert SentenceScorer(FakeEmbedder()).precompute(doc.units, cache) == 0
    assert denied.attempts == []


def _units_with(doc: Document, phrase: str) -> list[str]:
    return [u.unit_id for u in doc.units if phrase in u.text]


def test_every_place_a_rare_phrase_is_mentioned(doc: Document) -> None:
    finder = MentionFinder(list(doc.units))
    # a phrase the plan uses in two to four units, found from the plan itself
    phrase = next(p for p in ("智慧养老", "垃圾分类", "工业遗产", "河长制") if 2 <= len(_units_with(doc, p)) <= 4)
    found = finder.run(f"{phrase}在规划里哪几处提到了？")
    assert [s.unit.unit_id for s in found] == _units_with(doc, phrase)
    assert all(phrase in s.text for s in found)
    assert finder.run(f"{phrase}是什么意思？") == []  # not a question about several places


def test_a_count_of_things_in_the_world_is_not_a_question_about_places_in_the_plan(doc: Document) -> None:
    """"几处 / 几次" ask where the plan says something only next to a word for saying or for the text."""
    finder = MentionFinder(list(doc.units))
    phrase = next(p for p in ("智慧养老", "垃圾分类", "工业遗产") if 2 <= len(_units_with(doc, p)) <= 4)
    for asked in ("{}出现过几次？", "{}在哪几处提到了？", "文中有几处写了{}？", "规划里哪几处有{}？"):
        assert finder.run(asked.format(phrase)) != [], asked
    for counted in ("全区有几处{}的示范点？", "{}的事我们问了好几次，有人管吗？", "规划建设几处{}中心？", "{}出现了好几次问题怎么办？"):
        assert finder.run(counted.format(phrase)) == [], counted


def test_a_common_phrase_is_narrowed_to_sentences_on_the_asked_topic(doc: Document) -> None:
    finder = MentionFinder(list(doc.units), max_units=4)
    assert len(_units_with(doc, "养老机构")) > 4
    found = finder.run("养老机构的安全问题，规划在哪几处提到了？")
    assert 2 <= len(found) <= 4
    assert all("养老机构" in s.text and "安全" in s.text for s in found)


@pytest.fixture(scope="module")
def review(doc: Document) -> ReviewFinder:
    return ReviewFinder(doc.units, doc.meta.previous_periods, doc.meta.periods)


def test_the_review_is_the_units_that_name_the_period_before_the_plan(doc: Document, review: ReviewFinder) -> None:
    assert doc.meta.periods == ("十四五",) and doc.meta.previous_periods == ("十三五",)
    assert review.review and all("十三五" in u.text for u in review.review)
    assert {u.number for u in review.review} < {u.number for u in doc.units}


@pytest.mark.parametrize(
    ("question", "holds"),
    [
        ("路网方面过去取得了什么成绩，接下来还要怎么完善？", "路网体系基本成型"),
        ("市民中心这些年有什么进展，以后还会怎么用？", "市民中心建成开放"),
        # the topic shortened by whole words until the review holds it ("综治中心建设" → "综治中心")
        ("綜治中心建設過去有什麼成效？今後還要怎麼做？", "综治中心建成运营"),
    ],
)
def test_a_question_about_results_and_next_steps_finds_the_review_of_its_topic(
    review: ReviewFinder, question: str, holds: str
) -> None:
    assert asks_done_then_next(question)
    found = review.run(question)
    assert found is not None and holds in found.text
    assert found.unit in review.review


@pytest.mark.parametrize(
    "question",
    [
        "规划对路网建设有什么安排？",  # asks only what comes next
        "以后路网会怎么完善？之前已经修了很多路。",  # the next steps first: not a question about results
        "“十三五”和“十四五”的发展阶段有什么不同？",  # the periods' names alone frame a change
        "2025年之前还要新建几所学校？",  # "之前" after a date points forward
        "科技创新要取得哪些突破，未来怎么推进？",  # "取得" can point forward too
    ],
)
def test_a_question_that_does_not_ask_for_results_then_next_steps_is_not_sent_to_the_review(
    review: ReviewFinder, question: str
) -> None:
    assert not asks_done_then_next(question)
    assert review.run(question) is None


def test_a_question_naming_the_previous_period_then_the_plans_asks_for_both(review: ReviewFinder) -> None:
    """No word for "next" ("计划" is not one), but "十三五 … 十四五" with a word for what was done asks for both."""
    question = "市民中心“十三五”时有什么进展？“十四五”又有什么计划？"
    assert not asks_done_then_next(question) and review.names_then_and_now(question)
    found = review.run(question)
    assert found is not None and "市民中心" in found.text and found.unit in review.review
    assert not review.names_then_and_now("市民中心“十四五”有什么计划？“十三五”时有什么进展？")  # plans first


def test_a_verb_alone_is_no_topic(review: ReviewFinder) -> None:
    # asks for results, then next steps; but "建成" is only a verb, and the review names no school
    assert asks_done_then_next("已经建成的学校还会扩建吗？")
    assert review.run("已经建成的学校还会扩建吗？") is None


def test_a_plan_without_a_previous_period_has_no_review(doc: Document) -> None:
    assert ReviewFinder(doc.units, (), doc.meta.periods).run("路网方面过去取得了什么成绩，接下来还要怎么完善？") is None
