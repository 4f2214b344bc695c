"""Would document expansion help retrieval here? Resident questions written by the shipped model for each
unit, searched beside the chunks, measured on question files.

    .venv/bin/python eval/expansion.py --questions eval/dev_questions.jsonl eval/heldout_tune.jsonl

For every unit the llama backend restores the unit's saved prefix state (the answer prompt's system
message: the rules and the unit's whole text) and asks for ``--per-unit`` questions a resident could ask
that the text answers (greedy, so a rerun writes the same). They are kept in ``--cache`` (one JSON line
per unit, keyed by the unit's text and the model) and only missing or stale units are generated again.

Retrieval is then scored (article recall@1/3/5, MRR) for the product's hybrid retriever and, for each
``--weights`` w, the same retriever with one more stage fused in: the units ranked by their best pseudo
question's cosine to the question (each unit's rank r adds w / (rrf_k + r), as the other stages do). A
measurement, not a setting: the product does not expand documents (see eval/README.md for the figures).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.evaluation.questions import read_questions
from assistant.evaluation.retrieval import evaluate_retrieval
from assistant.models import ChatTurn, Hit, Unit
from assistant.retrieval.embedders import Embedder
from assistant.retrieval.retriever import Retriever
from assistant.text import to_simplified

ROOT = Path(__file__).resolve().parent.parent
ASK = "请根据上面的规划原文，写出{n}个本区居民可能会用日常口语提出、并且能用这段原文回答的问题。每行一个问题，不要编号，不要回答。"
MIN_QUESTION_CHARS = 4
_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.、)）]|[（(]\d+[)）])\s*")


def parse_questions(text: str, limit: int) -> list[str]:
    """The model's reply as questions: one per line, list markers removed, short lines and repeats dropped."""
    out: list[str] = []
    for line in text.splitlines():
        question = _NUMBERING.sub("", line).strip()
        if len(question) >= MIN_QUESTION_CHARS and question not in out:
            out.append(question)
    return out[:limit]


def unit_key(unit: Unit, model: str, per_unit: int) -> str:
    """What a cached line must match: the unit's text, the model, the prompt."""
    return hashlib.sha256("\x1f".join([unit.unit_id, unit.text, model, ASK, str(per_unit)]).encode("utf-8")).hexdigest()


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """Cached lines by unit id; unreadable lines are skipped (they are generated again)."""
    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            out[str(row["unit_id"])] = {"key": str(row["key"]), "questions": [str(q) for q in row["questions"]]}
        except (ValueError, KeyError, TypeError):
            continue
    return out


def generate(units: Sequence[Unit], cache: Path, per_unit: int) -> dict[str, list[str]]:
    """Pseudo questions per unit id, from the cache or written now by the llama backend (loaded only
    when a unit needs it)."""
    from assistant.answering.prompt import prefix_messages
    from assistant.config import load_settings
    from assistant.evaluation.scripts import llama_assistant

    model = load_settings(backend="llama").llm_model
    cached = read_cache(cache)
    loaded: Any = None
    out: dict[str, list[str]] = {}
    for unit in units:
        key = unit_key(unit, model, per_unit)
        row = cached.get(unit.unit_id)
        if row is None or row["key"] != key:
            if loaded is None:
                loaded = llama_assistant()
            assistant, _, generator = loaded
            started = time.perf_counter()
            messages = [*prefix_messages(unit, assistant.resources.plan_name), {"role": "user", "content": ASK.format(n=per_unit)}]
            reply = "".join(generator.stream(messages, max_tokens=40 * per_unit))
            row = {"key": key, "questions": parse_questions(reply, per_unit)}
            print(f"{unit.label}: {len(row['questions'])} questions, {time.perf_counter() - started:.1f} s", file=sys.stderr)
            cache.parent.mkdir(parents=True, exist_ok=True)
            with cache.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"unit_id": unit.unit_id, **row}, ensure_ascii=False) + "\n")
        out[unit.unit_id] = row["questions"]
    return out


class ExpandedRetriever:
    """``base`` plus one stage: units ranked by their best pseudo question's cosine to the question."""

    def __init__(self, base: Retriever, embedder: Embedder, expansions: dict[str, list[str]], weight: float) -> None:
        self.base = base
        self.embedder = embedder
        self.weight = weight
        self.owners = [uid for uid, questions in expansions.items() for _ in questions]
        texts = [q for questions in expansions.values() for q in questions]
        # Questions against questions: both sides are embedded as queries.
        self.vectors = np.asarray(embedder.embed_queries(texts), dtype=np.float32) if texts else np.zeros((0, 1))

    def run(self, question: str, history: Sequence[ChatTurn | dict[str, Any]] | None = None, k: int = 5) -> list[Hit]:
        hits = self.base.run(question, history=history, k=len(self.base.units))
        if not len(self.owners):
            return hits[:k]
        score = {h.unit.unit_id: h.score for h in hits}
        vec = np.asarray(self.embedder.embed_queries([to_simplified(question)]), dtype=np.float32)[0]
        ranked: list[str] = []
        for i in np.argsort(-(self.vectors @ vec), kind="stable"):
            if self.owners[i] not in ranked:
                ranked.append(self.owners[i])
        for rank, uid in enumerate(ranked, start=1):
            score[uid] = score.get(uid, 0.0) + self.weight / (self.base.rrf_k + rank)
        by_id = {h.unit.unit_id: h for h in hits}
        order = sorted(by_id, key=lambda uid: -score[uid])
        return [by_id[uid] for uid in order[:k]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", nargs="+", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=ROOT / "eval" / "results" / "expansions.jsonl")
    parser.add_argument("--per-unit", type=int, default=8)
    parser.add_argument("--weights", nargs="+", type=float, default=[0.5, 1.0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.per_unit < 1 or any(w <= 0 for w in args.weights):
        parser.error("--per-unit and --weights must be positive")

    from assistant.config import load_settings

    base = Retriever.from_settings(load_settings(backend="extractive"))
    assert base.embedder is not None
    units = list(base.units.values())
    expansions = generate(units, args.cache, args.per_unit)
    retrievers: dict[str, Any] = {"hybrid": base}
    for w in args.weights:
        retrievers[f"+expansion w={w:g}"] = ExpandedRetriever(base, base.embedder, expansions, w)
    report: dict[str, Any] = {"pseudo_questions": sum(map(len, expansions.values())), "sets": {}}
    for path in args.questions:
        result = evaluate_retrieval(read_questions(path), retrievers)
        rows = {name: {key: m[key] for key in ("recall@1", "recall@3", "recall@5", "mrr")} for name, m in result["modes"].items()}
        report["sets"][str(path)] = {"questions": result["questions"], "modes": rows}
        print(f"{path} ({result['questions']} answerable)")
        for name, m in rows.items():
            print(f"  {name:20s} R@1 {m['recall@1']:.3f}  R@3 {m['recall@3']:.3f}  R@5 {m['recall@5']:.3f}  MRR {m['mrr']:.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
