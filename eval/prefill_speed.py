"""How fast does this CPU read a prompt, per weight layout? The shipped GGUF as it is, with llama.cpp's
weight repacking on (the product turns it off: it crashed with SIGILL on some x86 CPUs), and copies
requantised to Q8_0 and Q4_0 (each with and without repacking). One subprocess per variant, so a crash
is reported, not fatal.

    .venv/bin/python eval/prefill_speed.py --tokens 320

Each variant evaluates the same ``--tokens`` tokens of the plan twice from an empty context (prompt
tokens per second, the better of two), then decodes 40 tokens greedily after its first 200 (tokens
per second). The requantised copies are written under ``--work`` and deleted afterwards. A
measurement, not a setting: the product ships the Q4_K_M file with repacking off.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FTYPES = {"Q8_0": 7, "Q4_0": 2}

QUANTIZE = r"""
import sys
import llama_cpp
params = llama_cpp.llama_cpp.llama_model_quantize_default_params()
params.nthread, params.ftype, params.allow_requantize = 2, int(sys.argv[3]), True
sys.exit(llama_cpp.llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), params))
"""

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[5])
from assistant.generation.llama import disable_weight_repacking
import llama_cpp
path, repack, n, text_file = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
if not repack:
    disable_weight_repacking(llama_cpp)
llm = llama_cpp.Llama(path, n_ctx=2048, n_threads=2, n_threads_batch=2, verbose=False)
tokens = llm.tokenize(open(text_file, encoding="utf-8").read().encode("utf-8"), add_bos=False)[:n]
best = 0.0
for _ in range(2):
    llm.reset()
    started = time.perf_counter()
    llm.eval(tokens)
    best = max(best, len(tokens) / (time.perf_counter() - started))
out, first = [], None
for token in llm.generate(tokens[:200], reset=True, temp=0.0):
    out.append(token)
    first = first or time.perf_counter()
    if len(out) >= 40:
        break
print(json.dumps({"prefill_tokens_per_s": round(best, 1), "decode_tokens_per_s": round(39 / (time.perf_counter() - first), 1),
                  "text": llm.detokenize(out).decode("utf-8", "ignore")[:60]}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(Path.home() / ".cache/policy-qa/models/qwen2.5-coder-1.5b.gguf"))
    parser.add_argument("--tokens", type=int, default=320)
    parser.add_argument("--work", default=tempfile.gettempdir(), help="where the requantised copies are written")
    args = parser.parse_args()
    model = Path(args.model)
    if not model.is_file():
        print(f"no model at {model}: run ./scripts/start once (it installs the shipped model)", file=sys.stderr)
        return 2
    plan = next((ROOT / "corpus").glob("*.txt"))
    variants: list[tuple[str, Path, bool]] = [("Q4_K_M", model, False), ("Q4_K_M repacked", model, True)]
    made: list[Path] = []
    for name, ftype in FTYPES.items():
        target = Path(args.work) / f"prefill-speed-{name}.gguf"
        # In a subprocess: llama.cpp prints every tensor it converts.
        run = subprocess.run([sys.executable, "-c", QUANTIZE, str(model), str(target), str(ftype)], capture_output=True, timeout=600)
        if run.returncode != 0:
            print(f"could not requantise to {name}", file=sys.stderr)
            continue
        made.append(target)
        variants += [(name, target, False), (f"{name} repacked", target, True)]
    results = {}
    try:
        for name, path, repack in variants:
            run = subprocess.run(
                [sys.executable, "-c", CHILD, str(path), "1" if repack else "0", str(args.tokens), str(plan), str(ROOT)],
                capture_output=True, text=True, timeout=600,
            )
            lines = run.stdout.strip().splitlines()
            results[name] = json.loads(lines[-1]) if run.returncode == 0 and lines else {"failed": f"exit {run.returncode}"}
            print(f"{name:18} {results[name]}", flush=True)
    finally:
        for path in made:
            path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
