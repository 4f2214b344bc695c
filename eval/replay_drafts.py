"""Recompose stored answers from their stored drafts with the current code: a change to verification,
citation or composition measured in a minute per set, without the model.

    .venv/bin/python eval/replay_drafts.py --answers eval/results/audit_tune-A.jsonl \
        --out eval/results/audit_tune-replay.jsonl
    .venv/bin/policy-qa eval --questions eval/audit_tune.jsonl --answers eval/results/audit_tune-replay.jsonl

``--max-tokens N`` first cuts every draft to its first N tokens (the shipped model's tokenizer): nearly always
the draft a ``max_answer_tokens`` of N would have stopped at: greedy decoding writes the same tokens up to
there, and the draft's text tokenizes back into them but for rare merges.

For every stored answer with a model draft: retrieve again for its stored standalone question, judge it
again, and compose the answer from the same draft (``Assistant._from_draft``); a question the judge now
declines before drafting gets the refusal the pipeline would give. Answers without a draft (declined before
drafting, or by the guard) are kept as stored: a question the judge would now answer needs a batch run. The model's doubt
(``reply_logprob``) is not recomputed: a draft that stays unverifiable is declined exactly when it was. A stored
decline does not say which signal declined it (the model's doubt or a made-up figure), so a change to the
made-up-figure rule is measured by replaying a run made without that rule.
A follow-up the product searched with its conversation is searched here without it (the stored answer does
not hold the conversation). Prints every answer whose citations or decision changed. Drafts are deterministic (greedy decoding, the
same prompt), so this is what a batch run would give while the prompt and retrieval stay the same.
A measurement, not a product stage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Protocol

from assistant.answering.compose import says_not_in_plan
from assistant.answering.pipeline import Assistant
from assistant.config import Settings, load_settings
from assistant.errors import MissingDependencyError, ModelError
from assistant.generation.llama import import_llama_cpp
from assistant.generation.shipped_models import resolve_model_path
from assistant.models import Query
from assistant.text import to_simplified


class _Stored:
    """Stands in for the drafter that wrote the stored draft."""

    class generator:  # noqa: N801 - mirrors Drafter.generator
        name = "llama:replayed"

    def __init__(self, doubted: bool) -> None:
        self.doubted = doubted

    def silence_logprob(self) -> float:
        return 0.0 if self.doubted else -99.0


def replay(assistant: Assistant, row: dict) -> dict:
    draft = row.get("draft") or ""
    if not draft:
        return row
    language, standalone = row["language"], row["standalone_question"]
    english = to_simplified(row["question"]) if language == "en" else ""
    query = Query(row["question"], standalone, language, "resident", english)
    hits = assistant.retriever().run(standalone, k=assistant.settings.top_k)
    evidence = [s.sentence for s in assistant.resources.scorer.run(standalone, hits[:2])]
    verdict = assistant.judge.run(f"{standalone} {english}".strip(), hits, evidence)
    if not verdict.answerable:  # now declined before drafting: the refusal the pipeline would give
        if row["abstained"]:
            return row
        refusal = assistant.refusals.not_in_plan(query, verdict, hits)
        refusal.hits = hits
        return {**refusal.to_dict(question_id=row["id"]), "timings_ms": row.get("timings_ms", {})}
    doubted = row["abstained"] and row.get("reason") == "weak_evidence" and not says_not_in_plan(draft.strip())
    warnings: list[str] = []
    answer = assistant._from_draft(draft, query, hits, verdict, assistant.refusals, _Stored(doubted), warnings)  # type: ignore[arg-type]
    answer.warnings.extend(warnings)
    answer.hits = hits
    out = answer.to_dict(question_id=row["id"])
    out["timings_ms"] = row.get("timings_ms", {})
    return out


class Tokenizer(Protocol):
    def tokenize(self, text: bytes, add_bos: bool = ..., special: bool = ...) -> list[int]: ...
    def detokenize(self, tokens: list[int]) -> bytes: ...


def cut_draft(row: dict, max_tokens: int, tokenizer: Tokenizer) -> dict:
    """``row`` with its draft cut to its first ``max_tokens`` tokens (unchanged when shorter)."""
    tokens = tokenizer.tokenize((row.get("draft") or "").encode("utf-8"), add_bos=False)
    if len(tokens) <= max_tokens:
        return row
    return {**row, "draft": tokenizer.detokenize(tokens[:max_tokens]).decode("utf-8", errors="ignore")}


def shipped_tokenizer(settings: Settings) -> Tokenizer:
    """The shipped model's tokenizer alone (no weights are loaded)."""
    llama_cpp = import_llama_cpp()
    tokenizer: Tokenizer = llama_cpp.Llama(str(resolve_model_path(settings)), vocab_only=True, verbose=False)
    return tokenizer


_NEEDED = ("id", "question", "standalone_question", "language", "citations", "abstained")


def read_answers(path: Path) -> list[dict] | str:
    """The answer objects of a batch output, or what is wrong with the file (line by line)."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            return f"{path} line {number} is not JSON ({exc.msg})"
        missing = [k for k in _NEEDED if not isinstance(row, dict) or k not in row]
        if missing:
            return f"{path} line {number} is not a policy-qa answer (missing {', '.join(missing)})"
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--answers", type=Path, required=True, help="a policy-qa batch output")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max-tokens", type=int, default=0, help="cut every draft to its first N tokens first (0: no cut)")
    args = ap.parse_args(argv)
    if args.max_tokens < 0:
        print(f"error: --max-tokens must be 0 (no cut) or more, got {args.max_tokens}", file=sys.stderr)
        return 2
    if not args.answers.is_file():
        print(f"error: no answers file at {args.answers}", file=sys.stderr)
        return 2
    rows = read_answers(args.answers)
    if isinstance(rows, str):  # checked before anything is written
        print(f"error: {rows}", file=sys.stderr)
        return 2
    assistant = Assistant(load_settings(None, backend="extractive"))
    if args.max_tokens:
        try:
            tokenizer = shipped_tokenizer(load_settings(None))
        except (ModelError, MissingDependencyError, ValueError) as exc:
            print(f"error: could not load the model's tokenizer for --max-tokens: {exc}", file=sys.stderr)
            return 2
        rows = [cut_draft(row, args.max_tokens, tokenizer) for row in rows]
    changed = 0
    with args.out.open("w", encoding="utf-8") as fh:
        for row in rows:
            new = replay(assistant, row)
            before = ([c["article"] for c in row["citations"]], row["abstained"])
            after = ([c["article"] for c in new["citations"]], new["abstained"])
            if before != after:
                changed += 1
                print(f"{row['id']}: {before} -> {after}")
            fh.write(json.dumps(new, ensure_ascii=False) + "\n")
    print(f"{changed} answer(s) changed; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
