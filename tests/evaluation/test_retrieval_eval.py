"""Retrieval metrics on hand-checked rankings, question loading, the table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from assistant.errors import InvalidInputError
from assistant.evaluation.questions import read_questions as load_questions
from assistant.evaluation.retrieval import evaluate_retrieval, format_table, misses
from assistant.ingest.chunker import Chunker
from assistant.ingest.corpus import load_corpus
from assistant.models import ChatTurn, Hit, Question, Unit
from assistant.retrieval.retriever import Retriever
from assistant.retrieval.store import IndexStore

from conftest import CORPUS_DIR, DEV_QUESTIONS, FakeEmbedder


def _unit(n: int | None) -> Unit:
    return Unit("d", "一", n, f"t{n}", "x", 0, 1)


class ScriptedRetriever:
    """Returns fixed rankings of article numbers, per question."""

    def __init__(self, rankings: dict[str, list[int | None]]) -> None:
        self.rankings = rankings
        self.seen_history: list[Any] = []

    def run(self, question: str, history: Sequence[dict[str, Any]] | None = None, *, k: int | None = None) -> list[Hit]:
        self.seen_history.append(history)
        ranked = self.rankings[question][: k or 5]
        return [Hit(unit=_unit(n), score=1.0 / (i + 1)) for i, n in enumerate(ranked)]


QUESTIONS: list[Question] = [
    Question("a", "qa", gold_articles=(5,), kind="fact"),
    Question("b", "qb", gold_articles=(7, 9), kind="multi"),
    Question("c", "qc", history=(ChatTurn("user", "x"),), gold_articles=(3,), kind="fact"),
    Question("d", "qd", kind="unanswerable"),
]
RANKINGS: dict[str, list[int | None]] = {
    "qa": [5, 1, 2, 3, 4, 6],  # rank 1
    "qb": [None, 9, 1, 2, 3, 7],  # first gold at 2, second gold at 6 (outside top 5)
    "qc": [1, 2, 4, 6, 8, 10, 11, 12, 13, 14, 15],  # never
    "qd": [1],
}


def test_metrics_match_hand_computation() -> None:
    r = ScriptedRetriever(RANKINGS)
    result = evaluate_retrieval(QUESTIONS, {"hybrid": r})  # type: ignore[dict-item]
    s = result["modes"]["hybrid"]
    assert result["questions"] == 3 and s["n"] == 3  # the unanswerable one is not scored
    assert s["recall@1"] == pytest.approx(1 / 3)
    assert s["recall@3"] == pytest.approx(2 / 3)
    assert s["recall@5"] == pytest.approx(2 / 3)
    assert s["all_gold_recall@5"] == pytest.approx(1 / 3)  # b's second gold is at rank 6
    assert s["mrr"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert s["by_kind"]["fact"]["n"] == 2 and s["by_kind"]["fact"]["recall@1"] == pytest.approx(0.5)
    assert s["by_kind"]["multi"]["mrr"] == pytest.approx(0.5)
    assert s["latency_ms_p50"] >= 0 and s["latency_ms_p95"] >= s["latency_ms_p50"]
    assert [row["id"] for row in misses(result, "hybrid")] == ["b", "c"]
    # history is passed through
    assert r.seen_history == [(), (), (ChatTurn("user", "x"),)]


def test_format_table_lists_modes_and_kinds() -> None:
    result = evaluate_retrieval(
        QUESTIONS,
        {"hybrid": ScriptedRetriever(RANKINGS), "bm25": ScriptedRetriever(RANKINGS)},  # type: ignore[dict-item]
    )
    table = format_table(result)
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["mode", "n", "R@1", "R@3"]
    assert any(line.startswith("hybrid ") and "0.333" in line and "0.500" in line for line in lines)
    assert any(line.startswith("bm25 / multi") for line in lines)


def test_bad_k_values() -> None:
    with pytest.raises(ValueError):
        evaluate_retrieval(QUESTIONS, {}, k_values=(0, 5))


def test_load_questions_skips_and_reports_bad_lines(tmp_path: Path) -> None:
    good = {"id": "x1", "question": "养老？", "gold_articles": [19], "kind": "fact", "history": []}
    lines = [
        json.dumps(good, ensure_ascii=False),
        "",
        "{not json",
        json.dumps([1, 2]),
        json.dumps({**good, "id": "x1"}),  # duplicate
        json.dumps({**good, "id": "x2", "question": "  "}),
        json.dumps({**good, "id": "x3", "gold_articles": "19"}),
        json.dumps({**good, "id": "x4", "history": [{"role": "user"}]}),
        json.dumps({"id": "x5", "question": "最简单的一行"}),
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    problems: list[str] = []
    qs = load_questions(path, problems)
    assert [q.id for q in qs] == ["x1", "x5"]
    assert qs[1].gold_articles == () and qs[1].history == () and qs[1].kind == "unknown"
    assert len(problems) == 6
    assert all(p.startswith(f"{path}:") for p in problems)
    assert any("duplicate" in p for p in problems) and any("not valid JSON" in p for p in problems)


def test_load_questions_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_questions(tmp_path / "missing.jsonl")
    bad = tmp_path / "bin.jsonl"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidInputError, match="UTF-8"):
        load_questions(bad)


def test_dev_questions_load_cleanly() -> None:
    problems: list[str] = []
    qs = load_questions(DEV_QUESTIONS, problems)
    assert problems == [] and len(qs) >= 30
    assert any(q.history for q in qs) and any(not q.gold_articles for q in qs)


def test_end_to_end_with_fake_embedder(tmp_path: Path) -> None:
    documents = load_corpus(CORPUS_DIR)
    index = IndexStore(tmp_path / "ix").build(Chunker().run(documents), FakeEmbedder(), "fp", {})
    base = Retriever(index, FakeEmbedder(), documents)
    qs = load_questions(DEV_QUESTIONS)
    result = evaluate_retrieval(qs, {m: base.with_mode(m) for m in ("hybrid", "dense", "bm25")})
    assert set(result["modes"]) == {"hybrid", "dense", "bm25"}
    for s in result["modes"].values():
        assert 0.0 <= s["recall@1"] <= s["recall@3"] <= s["recall@5"] <= 1.0
        assert s["all_gold_recall@5"] <= s["recall@5"]
        assert 0.0 <= s["mrr"] <= 1.0
    # BM25 alone is a real baseline on this plan: far better than chance (5/52 units)
    assert result["modes"]["bm25"]["recall@5"] > 0.6


def test_percentile_is_shared_and_handles_no_data() -> None:
    from assistant.evaluation.stats import percentile

    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5) and percentile(values, 100) == 100.0
    assert percentile([], 50) is None
