"""``policy-qa bench``: the plain path and the prefix-state path side by side, in one run.

Each question goes through the whole answer flow (retrieval, answerability,
draft, verification) once per pass:

- ``old``: prefix states off (``create_chat_completion``; llama-cpp-python only
  reuses what the previous prompt shared with this one);
- ``states``: prefix states on, as found on disk (built where missing); other
  units' sentences evaluated after the restored state (the default path);
- ``states-saved``: the same again with a fresh process-like generator, so every
  state comes from disk (a later start);
- ``quotes``: prefix states on, other units' sentences copied from their units'
  states (``Quote``, setting ``prefix_cache_quotes``).

It prints time to excerpts, first token and full answer (p50/p95), decode
tokens/s, whether each draft is identical to the old path's, citation
precision/recall and refusals (``evaluation.answers.score_answers``) per pass,
and the states' disk and memory. ``--concurrency 1 4 8 --url`` adds the load
table of ``eval/load.py`` against a running ``policy-qa serve``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from assistant.config import PROJECT_ROOT, Settings
from assistant.evaluation.answers import score_answers
from assistant.evaluation.stats import percentile
from assistant.files import slug
from assistant.models import Question

DEFAULT_QUESTIONS = PROJECT_ROOT / "eval" / "dev_questions.jsonl"
PASSES = ("old", "states", "states-saved", "quotes")
Progress = Callable[[str], None]


def answerable(questions: Sequence[Question]) -> list[Question]:
    """The questions the plan answers (they have gold articles)."""
    return [q for q in questions if q.gold_articles]


def _states_dir(settings: Settings) -> Path:
    from assistant.generation.shipped_models import model_label

    return settings.cache_dir / "prefix-states" / slug(model_label(settings))


def _one_pass(settings: Settings, questions: Sequence[Question], label: str, progress: Progress) -> dict[str, Any]:
    from assistant.answering.pipeline import Assistant

    assistant = Assistant(settings.replace(prefix_warmup=False), progress=lambda _: None)
    assistant.warm_up()
    gen = assistant.resources.generator
    rows: list[dict[str, Any]] = []
    answers: dict[str, dict[str, Any]] = {}
    for i, q in enumerate(questions, 1):
        t0 = time.perf_counter()
        answer = assistant.ask(q.question, history=q.history)
        wall = (time.perf_counter() - t0) * 1000
        t = answer.timings_ms
        draft = answer.draft or ""
        tokens = _count_tokens(gen, draft)
        decode_ms = t.get("generation_ms", 0.0) - t.get("first_token_ms", 0.0)
        last = getattr(gen, "last", None)
        row = {
            "id": q.id,
            "excerpts_ms": t.get("excerpts_ms"),
            "first_token_ms": t.get("first_token_ms"),
            "total_ms": t.get("total_ms", wall),
            "draft_tokens": tokens,
            "tokens_per_s": (tokens - 1) / (decode_ms / 1000) if tokens > 1 and decode_ms > 0 else None,
            "prefix": getattr(last, "prefix", None),
            "prompt_tokens": getattr(last, "prompt_tokens", None),
            "prefix_tokens": getattr(last, "prefix_tokens", None),
            "quoted_tokens": getattr(last, "quoted_tokens", None),
            "draft": draft,
        }
        rows.append(row)
        answers[q.id] = answer.to_dict(question_id=q.id)
        progress(
            f"[{label} {i}/{len(questions)}] {q.id}: first token {row['first_token_ms'] or 0:.0f} ms, "
            f"total {row['total_ms']:.0f} ms, prefix {row['prefix']}"
        )
    stats: dict[str, int] = {}
    state_stats = getattr(gen, "state_stats", None)
    if callable(state_stats):
        stats = state_stats()
    if gen is not None:
        gen.close()
    quality = score_answers(list(questions), answers)["overall"]
    return {"label": label, "rows": rows, "states": stats, "quality": quality}


def _count_tokens(gen: Any, text: str) -> int:
    llm = getattr(gen, "_llm", None)
    if llm is None or not text:
        return len(text)
    return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def _summary(result: dict[str, Any], baseline: dict[str, Any] | None) -> dict[str, Any]:
    rows = result["rows"]

    def pct(key: str, p: float) -> float | None:
        return percentile([r[key] for r in rows if isinstance(r.get(key), int | float)], p)

    out: dict[str, Any] = {"label": result["label"]}
    for key in ("excerpts_ms", "first_token_ms", "total_ms", "tokens_per_s"):
        out[key] = {"p50": pct(key, 50), "p95": pct(key, 95)}
    out["prefix"] = {k: sum(r["prefix"] == k for r in rows) for k in sorted({str(r["prefix"]) for r in rows})}
    if baseline is not None:
        base = {r["id"]: r["draft"] for r in baseline["rows"]}
        out["identical_drafts"] = sum(r["draft"] == base.get(r["id"]) for r in rows)
        out["compared"] = len(rows)
    q = result["quality"]
    out["citation_precision"] = q.get("citation_precision")
    out["citation_recall"] = q.get("citation_recall")
    out["false_refusal_rate"] = q.get("false_refusal_rate")
    out["states"] = result["states"]
    return out


def run_bench(
    settings: Settings,
    questions: Sequence[Question],
    *,
    fresh_states: bool = False,
    progress: Progress = print,
) -> dict[str, Any]:
    """The four passes over ``questions``; a JSON-ready dict with per-question rows and summaries."""
    if fresh_states:
        shutil.rmtree(_states_dir(settings), ignore_errors=True)
    passes = [
        _one_pass(settings.replace(prefix_cache=False), questions, "old", progress),
        _one_pass(settings.replace(prefix_cache=True, prefix_cache_quotes=False), questions, "states", progress),
        _one_pass(settings.replace(prefix_cache=True, prefix_cache_quotes=False), questions, "states-saved", progress),
        _one_pass(settings.replace(prefix_cache=True, prefix_cache_quotes=True), questions, "quotes", progress),
    ]
    summaries = [_summary(p, None if p["label"] == "old" else passes[0]) for p in passes]
    return {
        "settings": {"backend": settings.backend, "llm_model": settings.llm_model, "threads": settings.threads},
        "questions": [q.id for q in questions],
        "summary": summaries,
        "passes": passes,
    }


def _s(ms: float | None) -> str:
    return "—" if ms is None else f"{ms / 1000:.2f}"


def _f(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def format_table(result: dict[str, Any]) -> str:
    head = (
        f"{'path':<10} {'excerpts p50':>12} {'1st tok p50':>11} {'p95':>6} {'answer p50':>10} {'p95':>6} "
        f"{'tok/s':>6} {'identical':>9} {'cit P':>6} {'cit R':>6} {'refused':>7}  prefix"
    )
    lines = [head, "-" * len(head)]
    for s in result["summary"]:
        ident = f"{s['identical_drafts']}/{s['compared']}" if "compared" in s else "—"
        lines.append(
            f"{s['label']:<10} {_s(s['excerpts_ms']['p50']):>12} {_s(s['first_token_ms']['p50']):>11} "
            f"{_s(s['first_token_ms']['p95']):>6} {_s(s['total_ms']['p50']):>10} {_s(s['total_ms']['p95']):>6} "
            f"{_f(s['tokens_per_s']['p50'], 1):>6} {ident:>9} {_f(s['citation_precision']):>6} "
            f"{_f(s['citation_recall']):>6} {_f(s['false_refusal_rate']):>7}  "
            + " ".join(f"{k}={v}" for k, v in s["prefix"].items())
        )
    states = result["summary"][-1].get("states") or {}
    if states:
        lines.append(
            f"prefix states: {states.get('disk_states', 0)} on disk ({states.get('disk_bytes', 0) / 2**20:.1f} MB), "
            f"{states.get('memory_states', 0)} in memory ({states.get('memory_bytes', 0) / 2**20:.1f} MB)"
        )
    lines.append("times in seconds; p50/p95 over the questions; 'identical' = draft text equal to the old path's")
    if "concurrency" in result:
        lines.append("")
        lines.append(result["concurrency_table"])
    return "\n".join(lines)


def write_chart(result: dict[str, Any], path: Path) -> str:
    """A PNG of first-token and full-answer p50/p95 per path; a message when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"chart skipped: matplotlib is not installed (pip install matplotlib), {path} not written"
    labels = [s["label"] for s in result["summary"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.2
    for j, (key, p) in enumerate(
        (("first_token_ms", "p50"), ("first_token_ms", "p95"), ("total_ms", "p50"), ("total_ms", "p95"))
    ):
        values = [(s[key][p] or 0) / 1000 for s in result["summary"]]
        ax.bar([i + (j - 1.5) * width for i in range(len(labels))], values, width, label=f"{key[:-3]} {p}")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("seconds")
    ax.set_title("policy-qa bench")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return f"chart written to {path}"


def run_concurrency(url: str, levels: Sequence[int], questions: Sequence[Question], seconds: float) -> dict[str, Any]:
    """eval/load.py's load test at each client count against a running ``policy-qa serve``."""
    from assistant.evaluation.scripts import eval_script  # the answering stack, only when a load test runs

    load = eval_script("load")
    url = load.loopback_url(url)
    pairs = [(q.question, "[]" if not q.history else _history_json(q)) for q in questions]
    rows = []
    for n in levels:
        level = load.run_level(url, n, pairs, seconds=seconds, max_requests=None, mode="resident", timeout=300)
        rows.append(level.summary())
    return {"rows": rows, "table": load.table(rows)}


def _history_json(q: Question) -> str:
    import json

    return json.dumps([t.to_dict() for t in q.history], ensure_ascii=False)
