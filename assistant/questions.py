"""Question files: the dev-question JSONL schema (id, question, history, and for
scoring gold_articles, answer_points, kind). Bad lines are reported, not fatal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import InvalidInputError


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def read_question_rows(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a JSONL file; bad lines are reported, not fatal (a file with no usable row is)."""
    if not path.is_file():
        raise InvalidInputError(f"questions file {path} does not exist")
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        # utf-8-sig: a file saved with a BOM (Windows editors) keeps its first line
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"questions file {path} is not UTF-8 text") from exc
    except OSError as exc:
        raise InvalidInputError(f"cannot read questions file {path}: {exc.strerror or exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{n}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(row, dict) or not isinstance(row.get("question"), str):
            problems.append(f"{path}:{n}: needs an object with a 'question' string")
            continue
        if _has_surrogates(json.dumps(row, ensure_ascii=False)):
            # JSON "\udcff" escapes decode to lone surrogates: undecodable bytes, not text
            problems.append(f"{path}:{n}: holds text that is not valid Unicode")
            continue
        gold = row.get("gold_articles", [])
        if not isinstance(gold, list) or not all(isinstance(g, int) and not isinstance(g, bool) for g in gold):
            problems.append(f"{path}:{n}: 'gold_articles' must be a list of article numbers")
            continue
        row.setdefault("id", f"line-{n}")
        if not isinstance(row.get("history", []), list):
            problems.append(f"{path}:{n}: 'history' must be a list; ignored")
            row["history"] = []
        rows.append(row)
    if not rows:
        first = f"; first: {problems[0]}" if problems else ""
        raise InvalidInputError(f"questions file {path} holds no usable question ({len(problems)} bad line(s){first})")
    return rows, problems
