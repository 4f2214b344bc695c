"""Would decoding two questions at once pay on this machine? A measurement, not a serving path.

    .venv/bin/python eval/batching.py --questions eval/dev_questions.jsonl --limit 8 --sequences 2

It builds the real prompts of the first ``--limit`` answerable questions (retrieval, excerpts
and layout exactly as ``Drafter`` does), saves each top unit's prefix state once, then answers
them all twice with greedy decoding on one llama.cpp context:

* serial: one sequence at a time (restore its prefix state, evaluate the question, decode);
* batched: up to ``--sequences`` at once, continuously batched — each ``llama_decode`` call
  holds every active sequence's next token, and a sequence that starts joins with its whole
  question while the others decode.

It prints both wall times, their ratio (the throughput gain batching would give the model's
share of an answer) and how many outputs are token-identical. Needs the llama backend.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.evaluation.scripts import answerable_prompt_plans, llama_assistant
from assistant.generation.llama import import_llama_cpp

ROOT = Path(__file__).resolve().parent.parent
BATCH = 512


@dataclass
class Request:
    qid: str
    prefix: list[int]
    full: list[int]
    pending: list[int] = field(default_factory=list)
    pos: int = 0
    out: list[int] = field(default_factory=list)


class Context:
    """One llama.cpp context with ``sequences`` independent sequences (each its own KV cells)."""

    def __init__(self, llm: Any, sequences: int, n_ctx: int, threads: int) -> None:
        self.low = import_llama_cpp().llama_cpp
        params = self.low.llama_context_default_params()
        params.n_ctx = n_ctx * sequences
        params.n_batch = params.n_ubatch = BATCH
        params.n_threads = params.n_threads_batch = threads
        params.n_seq_max = sequences
        params.kv_unified = False  # the sequences share no prefix
        self.ctx = self.low.llama_init_from_model(llm.model, params)
        if not self.ctx:
            raise SystemExit("llama.cpp could not create a context with several sequences")
        self.memory = self.low.llama_get_memory(self.ctx)
        self.vocab = self.low.llama_model_get_vocab(llm.model)
        self.n_vocab = self.low.llama_vocab_n_tokens(self.vocab)
        self.batch = self.low.llama_batch_init(BATCH + sequences, 0, 1)
        self.states: dict[tuple[int, ...], bytes] = {}

    def close(self) -> None:
        self.low.llama_batch_free(self.batch)
        self.low.llama_free(self.ctx)

    def decode(self, items: list[tuple[int, int, int, bool]]) -> None:
        """items: (token, position, sequence, wants logits)."""
        b = self.batch
        b.n_tokens = len(items)
        for i, (token, pos, seq, logits) in enumerate(items):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, int(logits)
            b.seq_id[i][0] = seq
        if self.low.llama_decode(self.ctx, b) != 0:
            raise SystemExit("llama_decode failed")

    def greedy(self, index: int) -> int:
        logits = np.ctypeslib.as_array(self.low.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
        return int(np.argmax(logits))

    def clear(self, seq: int) -> None:
        self.low.llama_memory_seq_rm(self.memory, seq, -1, -1)

    def save(self, prefix: list[int]) -> None:
        """The state of ``prefix`` in sequence 0, kept in memory (as the product keeps its states)."""
        self.clear(0)
        for start in range(0, len(prefix), BATCH):
            self.decode([(t, start + j, 0, False) for j, t in enumerate(prefix[start : start + BATCH])])
        size = self.low.llama_state_seq_get_size(self.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        written = self.low.llama_state_seq_get_data(self.ctx, buf, size, 0)
        self.states[tuple(prefix)] = ctypes.string_at(buf, written)
        self.clear(0)

    def restore(self, prefix: list[int], seq: int) -> None:
        data = self.states[tuple(prefix)]
        self.clear(seq)
        buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if self.low.llama_state_seq_set_data(self.ctx, buf, len(data), seq) != len(data):
            raise SystemExit("llama_state_seq_set_data failed")

    def run(self, requests: list[Request], sequences: int, max_tokens: int) -> tuple[dict[str, list[int]], float]:
        """Answer every request, at most ``sequences`` at a time; returns the tokens and the wall time."""
        queue = list(requests)
        active: dict[int, Request] = {}
        started = time.perf_counter()
        while queue or active:
            for seq in range(sequences):
                if seq not in active and queue:
                    r = queue.pop(0)
                    self.restore(r.prefix, seq)
                    r.pending, r.pos, r.out = r.full[len(r.prefix) :], len(r.prefix), []
                    active[seq] = r
            items: list[tuple[int, int, int, bool]] = []
            last: list[tuple[int, int]] = []
            for seq, r in active.items():
                items += [(t, r.pos + j, seq, j == len(r.pending) - 1) for j, t in enumerate(r.pending)]
                r.pos += len(r.pending)
                last.append((seq, len(items) - 1))
            self.decode(items)
            for seq, index in last:
                r = active[seq]
                token = self.greedy(index)
                if self.low.llama_vocab_is_eog(self.vocab, token) or len(r.out) >= max_tokens:
                    del active[seq]
                    self.clear(seq)
                else:
                    r.out.append(token)
                    r.pending = [token]
        return {r.qid: list(r.out) for r in requests}, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=Path, default=ROOT / "eval" / "dev_questions.jsonl")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--sequences", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    assistant, settings, generator = llama_assistant()
    plans = answerable_prompt_plans(assistant, generator, args.questions, args.limit)
    requests = [Request(qid, plan.prefix, plan.full) for qid, plan in plans]

    ctx = Context(generator.model, args.sequences, settings.llm_context, settings.threads)
    for r in requests:
        if tuple(r.prefix) not in ctx.states:
            ctx.save(r.prefix)
    try:
        serial, serial_s = ctx.run(requests, 1, settings.max_answer_tokens)
        batched, batched_s = ctx.run(requests, args.sequences, settings.max_answer_tokens)
    finally:
        ctx.close()
    result = {
        "questions": [r.qid for r in requests],
        "sequences": args.sequences,
        "threads": settings.threads,
        "question_tokens": sum(len(r.full) - len(r.prefix) for r in requests),
        "answer_tokens": sum(len(v) for v in serial.values()),
        "serial_s": round(serial_s, 2),
        "batched_s": round(batched_s, 2),
        "throughput_ratio": round(serial_s / batched_s, 3),
        "identical": sum(serial[k] == batched[k] for k in serial),
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
