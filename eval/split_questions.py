"""Split a question file into a tuning half and an untouched test half, stratified by kind.

    python eval/split_questions.py eval/heldout_questions.jsonl --seed 7

writes eval/heldout_tune.jsonl and eval/heldout_test.jsonl next to the input. Tune on the first;
report the second without looking at its failures while tuning."""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("questions", type=Path)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_kind[row.get("kind", "unknown")].append(row)
    rng = random.Random(args.seed)
    tune, test = [], []
    for kind in sorted(by_kind):
        group = by_kind[kind]
        rng.shuffle(group)
        half = len(group) // 2
        tune += group[:half]
        test += group[half:]
    stem = args.questions.stem.replace("_questions", "")
    for name, part in (("tune", tune), ("test", test)):
        out = args.questions.with_name(f"{stem}_{name}.jsonl")
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sorted(part, key=lambda r: r["id"])), encoding="utf-8")
        print(f"{out}: {len(part)} questions")


if __name__ == "__main__":
    main()
