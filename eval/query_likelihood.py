"""Would the shipped model's own reading rerank units, or tell when the plan is silent? Query likelihood,
side by side with the hybrid retriever.

    .venv/bin/python eval/query_likelihood.py --questions eval/audit_tune.jsonl eval/probe_tune.jsonl \
        --out eval/results/query_likelihood.json

For every question without history (adversarial ones skipped) and each of its top ``--k`` units: restore
the unit's saved prefix state (the answer prompt's own head: rules + the unit) and score the question's
tokens as the user turn that follows, log P(question | unit), averaged over its tokens. The same question
is scored after the rules alone (no unit). Reports R@1 over answerable questions for the hybrid order and
for the order by that score, and how well the best unit's gain over no unit (a pointwise mutual
information) separates answerable from unanswerable questions (AUC, and the share declined at a few
thresholds). A measurement, not a product stage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from assistant.answering.prompt import prefix_messages, system_prompt
from assistant.evaluation.questions import read_questions
from assistant.evaluation.scripts import llama_assistant
from assistant.generation import Message
from assistant.generation.llama import LlamaGenerator, import_llama_cpp, next_token_logprob

ROOT = Path(__file__).resolve().parent.parent
USER_HEAD = "<|im_start|>user\n问题："  # how the answer prompt's user turn opens (Qwen chat template)


def token_logprobs(generator: LlamaGenerator, prefix: list[Message], text: str) -> list[float]:
    """log P of each token of ``text`` after the ``prefix`` messages (their saved state, built if missing)
    and the user turn's opening, in one llama_decode that asks for those positions' logits."""
    llm = generator.model
    low = import_llama_cpp().llama_cpp
    generator.restore_prefix(prefix)
    head = list(llm.tokenize(USER_HEAD.encode("utf-8"), add_bos=False, special=True))
    wanted = list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))
    tokens = head + wanted
    start = llm.n_tokens
    batch = low.llama_batch_init(len(tokens), 0, 1)
    try:
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = start + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i >= len(head) - 1  # each position predicts the next token
        batch.n_tokens = len(tokens)
        if low.llama_decode(llm.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        out = [next_token_logprob(llm, tokens[i + 1], i) for i in range(len(head) - 1, len(tokens) - 1)]
    finally:
        low.llama_batch_free(batch)
        llm.reset()  # the context no longer matches input_ids: the next request restores a state
    return out


def auc(positive: list[float], negative: list[float]) -> float:
    """P(a random positive scores above a random negative), ties half."""
    if not positive or not negative:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def summarise(rows: list[dict[str, Any]], thresholds: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)) -> dict[str, Any]:
    answerable = [r for r in rows if r["gold"]]
    unanswerable = [r for r in rows if not r["gold"]]

    def first(r: dict[str, Any], key: str) -> bool:
        units = sorted(r["units"], key=lambda u: -u[key]) if key != "rank" else r["units"]
        return bool(units) and units[0]["article"] in r["gold"]

    def gain(r: dict[str, Any]) -> float:
        return max((u["mean_logprob"] for u in r["units"]), default=r["no_unit"]) - r["no_unit"]

    pos = [gain(r) for r in answerable]
    neg = [gain(r) for r in unanswerable]
    return {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "r_at_1_hybrid": sum(first(r, "rank") for r in answerable) / max(1, len(answerable)),
        "r_at_1_query_likelihood": sum(first(r, "mean_logprob") for r in answerable) / max(1, len(answerable)),
        "gain_auc": auc(pos, neg),
        "declined_at": {
            f"{t:g}": {"unanswerable": sum(g < t for g in neg), "answerable": sum(g < t for g in pos)} for t in thresholds
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=Path, nargs="+", default=[ROOT / "eval" / "audit_tune.jsonl"])
    ap.add_argument("-k", type=int, default=4, help="units per question, from the hybrid retriever")
    ap.add_argument("--limit", type=int, default=0, help="only the first N questions of each file")
    ap.add_argument("--out", type=Path, help="write the rows and the summary as JSON here")
    args = ap.parse_args(argv)
    if args.k < 1:
        ap.error(f"-k must be >= 1, got {args.k}")
    assistant, _, generator = llama_assistant()
    plan = assistant.resources.plan_name
    no_unit: list[Message] = [{"role": "system", "content": f"{system_prompt(plan)}\n\n规划原文：\n（无）"}]
    rows = []
    for path in args.questions:
        for n, q in enumerate(read_questions(path)):
            if args.limit and n >= args.limit:
                break
            if q.history or q.kind == "adversarial":
                continue
            hits = assistant.retriever().run(q.question, k=args.k)
            means = [float(np.mean(token_logprobs(generator, prefix_messages(h.unit, plan), q.question))) for h in hits]
            units = [{"article": h.unit.number, "score": h.score, "mean_logprob": m} for h, m in zip(hits, means, strict=True)]
            base = float(np.mean(token_logprobs(generator, no_unit, q.question)))
            rows.append({"id": q.id, "kind": q.kind, "gold": list(q.gold_articles), "no_unit": base, "units": units})
            print(f"{q.id}: best gain {max(means, default=base) - base:+.2f}", file=sys.stderr)
    summary = summarise(rows)
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "rows": rows}, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
