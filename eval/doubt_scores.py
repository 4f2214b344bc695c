"""The model's own doubt for stored answers: log P(its reply opens with "规划未提及") on the answer prompt
rebuilt for each stored draft, for answers that were given (not declined). A measurement, not a product stage.

    .venv/bin/python eval/doubt_scores.py --answers eval/results/audit_tune-A.jsonl \
        --out eval/results/audit_tune-doubt.jsonl

The product reads this number only for a draft none of whose sentences could be verified
(``AnswerabilityJudge.doubts``). This script reads it for every answered draft, verified or not, so that a
level for verified drafts can be chosen on tuning sets and checked on untouched ones. Each row holds the
id, whether the stored answer used the draft (``verified``: no fallback warning) and ``logprob``: null for an
English question (whose refusal is worded freely, as in the product) or when it could not be scored.
With ``--judge``, also ``judge_yes`` / ``judge_no``: log P("有") and log P("没有") when the answer request is
replaced by "上面的规划原文有没有直接回答这个问题？" (yes/no odds on the same cached prefix).
The prompt is rebuilt as ``Drafter.messages`` builds it, with the configured mode and model; a follow-up
the product searched with the previous turn too (not rewritten, or its rewrite only repeated the previous
question) is searched here without it, since the stored answer does not hold the conversation, so its prompt
may differ. ~1–3 s per answer here: the prompt's head is restored from the saved
prefix state and only the rest is evaluated. Needs the llama backend.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from assistant.answering.compose import UNVERIFIED_DRAFT_WARNING
from assistant.answering.pipeline import Assistant
from assistant.answering.prompt import NOT_IN_PLAN_MARK, Drafter
from assistant.errors import GenerationError
from assistant.evaluation.scripts import eval_script, llama_assistant
from assistant.generation import Message
from assistant.models import Query


def score(assistant: Assistant, row: dict, judge: bool = False) -> dict | None:
    """The doubt row for one stored answer, or None when it was declined or has no draft."""
    draft = row.get("draft") or ""
    if row["abstained"] or not draft:
        return None
    verified = UNVERIFIED_DRAFT_WARNING not in (row.get("warnings") or [])
    out = {"id": row["id"], "verified": verified, "logprob": None}
    if row["language"] == "en":
        return out
    generator = assistant.resources.generator
    settings = assistant.settings
    standalone = row["standalone_question"]
    query = Query(row["question"], standalone, row["language"], settings.mode, "")
    hits = assistant.retriever().run(standalone, k=settings.top_k)
    drafter = Drafter(generator, assistant.resources.scorer, settings.max_answer_tokens, plan_name=assistant.resources.plan_name)
    messages = drafter.messages(query, hits)
    try:
        out["logprob"] = generator.reply_logprob(messages, NOT_IN_PLAN_MARK)
        if judge:
            asked = judge_messages(messages)
            out["judge_yes"] = generator.reply_logprob(asked, JUDGE_YES)
            out["judge_no"] = generator.reply_logprob(asked, JUDGE_NO)
    except GenerationError as exc:
        print(f"{row['id']}: could not score ({exc})", file=sys.stderr)
    return out


# The model asked outright whether the text it was shown answers the question (yes/no odds on the same
# cached prefix as the answer prompt; only the request after the question differs).
JUDGE_ASK = "上面的规划原文有没有直接回答这个问题？只回答“有”或“没有”。"
JUDGE_YES, JUDGE_NO = "有", "没有"


def judge_messages(messages: list[Message]) -> list[Message]:
    """The answer prompt with its closing request replaced by the yes/no question."""
    last = messages[-1]["content"]
    head = last[: last.rindex("\n") + 1] if "\n" in last else last + "\n"
    return [*messages[:-1], {"role": "user", "content": head + JUDGE_ASK}]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--answers", type=Path, required=True, help="a policy-qa batch output")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--judge", action="store_true", help="also ask the model whether the text answers the question")
    args = ap.parse_args(argv)
    if not args.answers.is_file():
        print(f"error: no answers file at {args.answers}", file=sys.stderr)
        return 2
    rows = eval_script("replay_drafts").read_answers(args.answers)
    if isinstance(rows, str):
        print(f"error: {rows}", file=sys.stderr)
        return 2
    assistant, _, _ = llama_assistant()  # exits with the reason before anything is written
    start = time.perf_counter()
    scored = 0
    with args.out.open("w", encoding="utf-8") as fh:
        for row in rows:
            out = score(assistant, row, args.judge)
            if out is not None:
                scored += 1
                fh.write(json.dumps(out, ensure_ascii=False) + "\n")
    print(f"{scored} answer(s) scored in {time.perf_counter() - start:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
