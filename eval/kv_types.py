"""Would a quantised KV cache or flash attention pay here? f16 against f16 with flash attention and
q8_0 (which needs flash attention), side by side.

    .venv/bin/python eval/kv_types.py --questions eval/dev_questions.jsonl --limit 8

For the real prompts of the first ``--limit`` answerable questions (built as ``Drafter`` does) and
each KV type: evaluate the cached prefix, note the saved state's size, restore it, then time the
first token of a greedy answer that evaluates only the question. Prints the state size and the
first-token p50 per type, and how many answers are token-identical to f16's. A measurement, not a
setting: the product keeps f16.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from assistant.evaluation.scripts import answerable_prompt_plans, llama_assistant
from assistant.generation.llama import PromptPlan, import_llama_cpp, save_context_state

ROOT = Path(__file__).resolve().parent.parent
GGML_TYPE_Q8_0 = 8
KV_TYPES = {"f16": {}, "f16+flash": {"flash_attn": True}, "q8_0": {"type_k": GGML_TYPE_Q8_0, "type_v": GGML_TYPE_Q8_0, "flash_attn": True}}


def measure(
    path: str, n_ctx: int, threads: int, options: dict, plans: list[tuple[str, PromptPlan]], max_tokens: int
) -> dict:
    llama_cpp = import_llama_cpp()
    llm = llama_cpp.Llama(
        model_path=path,
        n_ctx=n_ctx,
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        seed=42,
        verbose=False,
        **options,
    )
    vocab = llama_cpp.llama_cpp.llama_model_get_vocab(llm.model)
    sizes, firsts, outputs = [], [], {}
    try:
        for qid, plan in plans:
            llm.reset()
            llm.eval(plan.prefix)
            sizes.append(len(save_context_state(llm)))
            state = llm.save_state()
            llm.reset()
            llm.load_state(state)
            started = time.perf_counter()
            tokens: list[int] = []
            for token in llm.generate(plan.full, temp=0.0, reset=True):  # prefix match: only the question is evaluated
                if not tokens:
                    firsts.append(time.perf_counter() - started)
                if llama_cpp.llama_cpp.llama_vocab_is_eog(vocab, token) or len(tokens) >= max_tokens:
                    break
                tokens.append(token)
            outputs[qid] = tokens
    finally:
        llm.close()
    return {
        "state_mb_p50": round(statistics.median(sizes) / 2**20, 1),
        "first_token_s_p50": round(statistics.median(firsts), 3),
        "outputs": outputs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=Path, default=ROOT / "eval" / "dev_questions.jsonl")
    parser.add_argument("--limit", type=int, default=8)
    args = parser.parse_args(argv)
    assistant, settings, generator = llama_assistant()
    plans = answerable_prompt_plans(assistant, generator, args.questions, args.limit)
    path = str(generator.model_path)
    generator.close()  # one model in memory at a time
    results = {
        name: measure(path, settings.llm_context, settings.threads, options, plans, settings.max_answer_tokens)
        for name, options in KV_TYPES.items()
    }
    base = results["f16"]["outputs"]
    report = {
        name: {
            "state_mb_p50": r["state_mb_p50"],
            "first_token_s_p50": r["first_token_s_p50"],
            "identical_to_f16": sum(r["outputs"][k] == base[k] for k in base),
        }
        for name, r in results.items()
    }
    print(json.dumps({"questions": [qid for qid, _ in plans], **report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
