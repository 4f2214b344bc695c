"""Question files: the dev-question JSONL schema (id, question, history, and for
scoring gold_articles, answer_points, kind), read into typed ``Question`` rows.
Bad lines are reported, not fatal; a file with no usable line is."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from assistant.errors import InvalidInputError
from assistant.models import ChatTurn, Question

log = logging.getLogger(__name__)
MAX_HISTORY_TURNS = 6
MAX_TURN_CHARS = 2000


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _parse_row(row: Any, n: int, seen: set[str]) -> Question | str:
    """A Question, or why the line is unusable."""
    if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row["question"].strip():
        return "needs an object with a non-empty 'question' string"
    if _has_surrogates(json.dumps(row, ensure_ascii=False)):
        # JSON "\udcff" escapes decode to lone surrogates: undecodable bytes, not text
        return "holds text that is not valid Unicode"
    qid = row.get("id", f"line-{n}")
    if not isinstance(qid, str) or not qid:
        return "'id' must be a non-empty string"
    if qid in seen:
        return f"duplicate id {qid!r}"
    gold = row.get("gold_articles", [])
    if not isinstance(gold, list) or not all(isinstance(g, int) and not isinstance(g, bool) for g in gold):
        return f"{qid}: 'gold_articles' must be a list of article numbers"
    history = row.get("history") or []
    if not isinstance(history, list) or not all(
        isinstance(t, dict) and t.get("role") in ("user", "assistant") and isinstance(t.get("content"), str)
        for t in history
    ):
        return f"{qid}: 'history' must be a list of {{role, content}} turns"
    points = row.get("answer_points") or []
    return Question(
        id=qid,
        question=row["question"],
        history=tuple(ChatTurn.parse_list(history, max_turns=MAX_HISTORY_TURNS, max_chars=MAX_TURN_CHARS)),
        gold_articles=tuple(gold),
        answer_points=tuple(str(p) for p in points) if isinstance(points, list) else (),
        kind=str(row.get("kind") or "unknown"),
    )


def read_questions(path: str | Path, problems: list[str] | None = None) -> list[Question]:
    """The usable questions of a JSONL file; each bad line is described in ``problems`` (and logged)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"questions file {path} does not exist")
    try:
        # utf-8-sig: a file saved with a BOM (Windows editors) keeps its first line
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"questions file {path} is not UTF-8 text") from exc
    except OSError as exc:
        raise InvalidInputError(f"cannot read questions file {path}: {exc.strerror or exc}") from exc
    found: list[str] = []
    out: list[Question] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            parsed = _parse_row(json.loads(line), n, seen)
        except json.JSONDecodeError as exc:
            parsed = f"not valid JSON ({exc.msg})"
        except ValueError:  # e.g. an integer of more than 4300 digits
            parsed = "holds a number too large to read"
        except RecursionError:
            parsed = "is nested too deeply"
        if isinstance(parsed, str):
            found.append(f"{path}:{n}: {parsed}")
            log.warning("skipped %s", found[-1])
            continue
        seen.add(parsed.id)
        out.append(parsed)
    if problems is not None:
        problems.extend(found)
    if not out:
        first = f"; first: {found[0]}" if found else ""
        raise InvalidInputError(f"questions file {path} holds no usable question ({len(found)} bad line(s){first})")
    return out
