"""Answer evaluation: the scorer for citation accuracy, abstention and coverage.

Works on the machine interface (``policy-qa batch`` output lines), so answers
from any backend or from a running app can be scored the same way.

* citation precision: cited articles that are gold / cited articles (per
  answered, answerable question; a chapter-intro citation counts as not gold)
* citation recall: gold articles cited / gold articles (per answerable question,
  a refusal scores 0)
* abstention: share of unanswerable and of adversarial questions declined
* false refusals: share of answerable questions declined
* answer-point coverage: share of ``answer_points`` found in the answer text,
  and in the answer plus its quotes
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.errors import InvalidInputError
from assistant.evaluation.questions import read_questions
from assistant.evaluation.stats import percentile
from assistant.models import Question
from assistant.text import to_simplified

UNANSWERABLE_KINDS = ("unanswerable",)
ADVERSARIAL_KINDS = ("adversarial",)


def _norm(text: str) -> str:
    return re.sub(r"[\s\W_]+", "", to_simplified(text).lower())


def point_covered(point: str, text: str) -> bool:
    """An answer point counts when its characters appear together in the text, or
    when most of its bigrams do (wording may differ slightly)."""
    p, t = _norm(point), _norm(text)
    if not p:
        return True
    if p in t:
        return True
    grams = {p[i : i + 2] for i in range(len(p) - 1)}
    if not grams:
        return False
    return sum(g in t for g in grams) / len(grams) >= 0.7


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _score_one(q: Question, a: dict[str, Any] | None) -> dict[str, Any]:
    """One question's row: citations against gold, refusal, answer points, latency."""
    gold = set(q.gold_articles)
    row: dict[str, Any] = {"id": q.id, "kind": q.kind, "gold": sorted(gold), "missing": a is None}
    if a is None:
        return row
    cited = {c.get("article") for c in a.get("citations", [])}
    cited_articles = {c for c in cited if isinstance(c, int)}
    intro_cited = None in cited
    abstained = bool(a.get("abstained"))
    row.update({"cited": sorted(cited_articles), "intro_cited": intro_cited, "abstained": abstained})
    if not gold:
        row["declined"] = abstained
    else:
        row["false_refusal"] = abstained
        n_cited = len(cited_articles) + (1 if intro_cited else 0)
        if not abstained and n_cited:
            row["precision"] = len(cited_articles & gold) / n_cited
        row["recall"] = 0.0 if abstained else len(cited_articles & gold) / len(gold)
        if q.answer_points:
            text = a.get("answer", "")
            quotes = " ".join(c.get("quote", "") for c in a.get("citations", []))
            row["points_in_answer"] = _mean([float(point_covered(p, text)) for p in q.answer_points])
            row["points_in_answer_or_quotes"] = _mean([float(point_covered(p, f"{text} {quotes}")) for p in q.answer_points])
    timings = a.get("timings_ms") or {}
    for key in ("total_ms", "excerpts_ms", "first_token_ms"):
        if isinstance(timings.get(key), int | float):
            row[key] = float(timings[key])
    return row


def score_answers(questions: Sequence[Question], answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Score answers (keyed by question id) against the questions' gold data."""
    per_question = [_score_one(q, answers.get(q.id)) for q in questions]

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        answerable = [r for r in rows if r["gold"] and not r["missing"]]
        unanswerable = [r for r in rows if r["kind"] in UNANSWERABLE_KINDS and not r["missing"]]
        adversarial = [r for r in rows if r["kind"] in ADVERSARIAL_KINDS and not r["missing"]]
        return {
            "questions": len(rows),
            "answered_files_missing": sum(r["missing"] for r in rows),
            "citation_precision": _mean([r["precision"] for r in answerable if "precision" in r]),
            "citation_recall": _mean([r["recall"] for r in answerable]),
            "false_refusal_rate": _mean([float(r["false_refusal"]) for r in answerable]),
            "unanswerable_declined": _mean([float(r["declined"]) for r in unanswerable]),
            "adversarial_declined": _mean([float(r["declined"]) for r in adversarial]),
            "answer_points_in_answer": _mean([r["points_in_answer"] for r in answerable if "points_in_answer" in r]),
            "answer_points_in_answer_or_quotes": _mean(
                [r["points_in_answer_or_quotes"] for r in answerable if "points_in_answer_or_quotes" in r]
            ),
            "latency_ms": {
                key: {
                    "p50": percentile([r[key] for r in rows if key in r], 50),
                    "p95": percentile([r[key] for r in rows if key in r], 95),
                }
                for key in ("excerpts_ms", "first_token_ms", "total_ms")
            },
        }

    kinds = sorted({r["kind"] for r in per_question})
    return {
        "overall": summary(per_question),
        "by_kind": {k: summary([r for r in per_question if r["kind"] == k]) for k in kinds},
        "per_question": per_question,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_answer_table(result: dict[str, Any], label: str = "") -> str:
    cols = [
        ("n", "questions"),
        ("cite P", "citation_precision"),
        ("cite R", "citation_recall"),
        ("false refusal", "false_refusal_rate"),
        ("unans. declined", "unanswerable_declined"),
        ("advers. declined", "adversarial_declined"),
        ("points(ans)", "answer_points_in_answer"),
        ("points(+quotes)", "answer_points_in_answer_or_quotes"),
    ]
    header = f"{'':14}" + "".join(f"{c[0]:>17}" for c in cols)
    lines = [f"Answer evaluation {label}".rstrip(), header]
    rows = [("overall", result["overall"])] + list(result["by_kind"].items())
    for name, s in rows:
        lines.append(f"{name:14}" + "".join(f"{_fmt(s[c[1]]):>17}" for c in cols))
    lat = result["overall"]["latency_ms"]
    lines.append(
        "latency ms (p50/p95): "
        + ", ".join(f"{k.removesuffix('_ms')} {_fmt(v['p50'])}/{_fmt(v['p95'])}" for k, v in lat.items())
    )
    return "\n".join(lines)


def load_answers(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        raise InvalidInputError(f"answers file {path} does not exist")
    out: dict[str, dict[str, Any]] = {}
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"answers file {path} is not UTF-8 text") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}:{n} is not valid JSON ({exc.msg})") from exc
        if isinstance(row, dict) and "id" in row:
            out[str(row["id"])] = row
    return out


def run_answer_eval(
    settings: Settings,
    questions_path: Path,
    answers_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], str]:
    """Score given answers, or generate them with the configured backend first."""
    say = progress or (lambda _m: None)
    problems: list[str] = []
    questions = read_questions(questions_path, problems)
    for p in problems:
        say(f"skipped {p}")
    if answers_path is not None:
        answers = load_answers(answers_path)
        backend = "from file"
    else:
        from assistant.answering.pipeline import Assistant

        assistant = Assistant(settings, progress=say)
        assistant.warm_up()
        answers = {}
        for i, q in enumerate(questions, 1):
            t0 = time.perf_counter()
            try:
                a = assistant.ask(q.question, history=q.history)
            except InvalidInputError as exc:
                say(f"skipped {q.id}: {exc}")
                continue
            answers[q.id] = a.to_dict(question_id=q.id)
            say(f"[{i}/{len(questions)}] {q.id} {(time.perf_counter() - t0):.1f}s")
        backend = assistant.backend_name
    result = score_answers(questions, answers)
    result["backend"] = backend
    result["questions_file"] = str(questions_path)
    return result, format_answer_table(result, f"({backend}, {questions_path.name})")
