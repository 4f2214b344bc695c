"""What reading n tokens after a saved context costs here: the floor under time to first token.

    .venv/bin/python eval/read_cost.py --tokens 1 10 20 40 80 160 --context 300 --repeats 2

For each n, the model evaluates a ``--context``-token text (as a restored prefix would leave it), then n
tokens of plan text after it, timed; the best of ``--repeats`` runs. Prints one row per n (milliseconds and
per token) and the rows as JSON. Everything a question's prompt puts after the restored state (the chat
template, the question, the request to answer, other articles' sentences) is read at these rates. A
measurement, not a product stage. Needs the llama backend.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from assistant.config import load_settings
from assistant.errors import AssistantError
from assistant.generation.llama import LlamaGenerator
from assistant.ingest.corpus import load_corpus


def read_cost(llm: Any, context: list[int], text: list[int], sizes: list[int], repeats: int) -> list[dict]:
    """One row per size: the best time to evaluate that many tokens of ``text`` after ``context``."""
    rows = []
    for n in sizes:
        best = float("inf")
        for _ in range(repeats):
            llm.reset()
            llm.eval(context)
            started = time.perf_counter()
            llm.eval(text[:n])
            best = min(best, time.perf_counter() - started)
        ms = round(best * 1000, 1)
        rows.append({"tokens": n, "ms": ms, "ms_per_token": round(ms / n, 1)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[1, 10, 20, 40, 80, 160])
    parser.add_argument("--context", type=int, default=300, help="tokens already in the context")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--llm-model", dest="llm_model")
    args = parser.parse_args(argv)
    if min(args.tokens) < 1 or args.context < 1 or args.repeats < 1:
        print("error: --tokens, --context and --repeats must be positive", file=sys.stderr)
        return 2
    try:
        settings = load_settings(backend="llama", llm_model=args.llm_model)
        plan = "".join(d.source for d in load_corpus(settings.corpus_dir))  # the configured corpus, as indexed
        generator = LlamaGenerator.from_settings(settings)
        generator.load()
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        llm = generator.model
        tokens = list(llm.tokenize(plan.encode("utf-8"), add_bos=False))
        context, text = tokens[: args.context], tokens[args.context :]
        room = min(llm.n_ctx(), len(tokens))
        if args.context + max(args.tokens) >= room:
            print(f"error: --context plus the largest --tokens must stay under {room}", file=sys.stderr)
            return 2
        rows = read_cost(llm, context, text, sorted(set(args.tokens)), args.repeats)
    except (OSError, RuntimeError, ValueError) as exc:  # llama.cpp reports its failures as these
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        generator.close()
    for row in rows:
        print(f"{row['tokens']:>5} tokens  {row['ms']:>8.1f} ms  {row['ms_per_token']:>6.1f} ms/token")
    print(json.dumps({"context": args.context, "threads": generator.n_threads, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
