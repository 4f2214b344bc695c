"""Residents' 👍/👎 on answers, kept in SQLite so staff can review what went wrong.

Durability: the database runs in WAL mode with ``synchronous=FULL`` and every
record is committed in its own transaction before ``add`` returns, so killing
the process (even with SIGKILL) never loses or half-writes a stored record.
(WAL with ``synchronous=NORMAL`` would survive a process kill too, but may lose
the last commits on a power cut; feedback volume is tiny, so the extra fsync per
record is worth it.) One connection is shared by the UI's worker threads behind
a lock; SQLite serialises writers anyway.

Bounds: when the app is reachable, anyone can click 👍/👎 in a loop. Each record
is size-limited (question and answer ``MAX_TEXT_CHARS``, reason
``MAX_REASON_CHARS``, citations ``MAX_CITATIONS_CHARS``) and a store holds at
most ``max_rows`` records (``MAX_ROWS`` by default: a typical record is 1-3 KB,
so a full store is tens of MB; the field limits cap the worst case near 2 GB).
When it is full, ``add`` refuses new records with a ``FeedbackStoreError``
instead of pruning old ones: a flood of clicks can then never erase the genuine
feedback already collected, and the operator sees the error (also logged) and
archives the store: ``policy-qa feedback export --out feedback.csv``, then move
the database file away; a fresh one is created on the next rating.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from assistant.errors import AssistantError, InvalidInputError
from assistant.models import Answer

Rating = Literal["up", "down"]
ExportFormat = Literal["csv", "jsonl"]

RATINGS: tuple[str, ...] = ("up", "down")
EXPORT_FORMATS: tuple[str, ...] = ("csv", "jsonl")
log = logging.getLogger(__name__)

MAX_REASON_CHARS = 2000
MAX_TEXT_CHARS = 8000  # question or answer; real ones are far shorter (questions stop at 2000)
MAX_CITATIONS_CHARS = 16_000
MAX_SHORT_CHARS = 100  # mode, backend
MAX_ROWS = 20_000
COLUMNS: tuple[str, ...] = (
    "id",
    "created_at",
    "rating",
    "reason",
    "mode",
    "backend",
    "question",
    "answer",
    "citations",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT    NOT NULL,
    rating     TEXT    NOT NULL CHECK (rating IN ('up', 'down')),
    reason     TEXT    NOT NULL DEFAULT '',
    mode       TEXT    NOT NULL DEFAULT '',
    backend    TEXT    NOT NULL DEFAULT '',
    question   TEXT    NOT NULL,
    answer     TEXT    NOT NULL,
    citations  TEXT    NOT NULL DEFAULT '[]'
)
"""

# Spreadsheet programs run cells that start with these as formulas; questions are
# typed by the public, so CSV cells get a leading apostrophe (OWASP "CSV injection").
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class FeedbackStoreError(AssistantError):
    """The feedback database cannot be opened, read or written."""


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    created_at: str  # ISO 8601, UTC
    rating: Rating
    reason: str
    mode: str
    backend: str
    question: str
    answer: str
    citations: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "rating": self.rating,
            "reason": self.reason,
            "mode": self.mode,
            "backend": self.backend,
            "question": self.question,
            "answer": self.answer,
            "citations": self.citations,
        }


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _checked_fields(
    question: str, answer: str, rating: str, citations: Sequence[dict[str, Any]], backend: str, mode: str, reason: str
) -> tuple[str, str]:
    """Validate a feedback row's fields (InvalidInputError naming the bad one); the reason and citations as stored."""
    if rating not in RATINGS:
        raise InvalidInputError(f"rating must be one of {', '.join(RATINGS)}, got {rating!r}")
    for name, value in (("question", question), ("answer", answer), ("backend", backend), ("mode", mode)):
        if not isinstance(value, str):
            raise InvalidInputError(f"feedback field '{name}' must be text, got {type(value).__name__}")
        limit = MAX_TEXT_CHARS if name in ("question", "answer") else MAX_SHORT_CHARS
        if len(value) > limit:
            raise InvalidInputError(f"feedback field '{name}' has {len(value)} characters; the limit is {limit}")
    reason = "" if reason is None else reason
    if not isinstance(reason, str):
        raise InvalidInputError(f"feedback reason must be text, got {type(reason).__name__}")
    reason = reason.strip()
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInputError(f"反馈原因太长（{len(reason)} 字），请精简到 {MAX_REASON_CHARS} 字以内")
    try:
        citations_json = json.dumps(list(citations), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"feedback citations are not JSON-serialisable: {exc}") from exc
    if len(citations_json) > MAX_CITATIONS_CHARS:
        raise InvalidInputError(
            f"feedback citations take {len(citations_json)} characters; the limit is {MAX_CITATIONS_CHARS}"
        )
    return reason, citations_json


class FeedbackStore:
    """Append-only store of ratings. ``add`` returns only after the record is durable."""

    def __init__(self, db_path: str | Path, *, max_rows: int = MAX_ROWS) -> None:
        if not isinstance(db_path, str | Path) or not str(db_path).strip():
            raise FeedbackStoreError(f"feedback database path must be a non-empty path, got {db_path!r}")
        if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows <= 0:
            raise FeedbackStoreError(f"feedback max_rows must be a positive integer, got {max_rows!r}")
        self.max_rows = max_rows
        self.db_path = Path(db_path).expanduser()
        if self.db_path.is_dir():
            raise FeedbackStoreError(f"feedback database path {self.db_path} is a directory, not a file")
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    # ------------------------------------------------------------ connection

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per record.
            conn = sqlite3.connect(str(self.db_path), timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise FeedbackStoreError(
                f"cannot open feedback database {self.db_path}: {exc}. "
                "Move the file away (it is not a feedback database or is corrupt) or set feedback_db to another path."
            ) from exc
        except OSError as exc:
            raise FeedbackStoreError(f"cannot create feedback database {self.db_path}: {exc}") from exc
        self._conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ writing

    def add(
        self,
        *,
        question: str,
        answer: str,
        rating: str,
        citations: Sequence[dict[str, Any]] = (),
        backend: str = "",
        mode: str = "",
        reason: str = "",
    ) -> int:
        """Store one rating and return its id (committed before returning)."""
        reason, citations_json = _checked_fields(question, answer, rating, citations, backend, mode, reason)
        row = (_utc_now(), rating, reason, mode, backend, question, answer, citations_json)
        with self._lock:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                # Counted inside the write transaction: other processes cannot overshoot the limit.
                stored = int(conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])
                if stored >= self.max_rows:
                    conn.execute("ROLLBACK")
                    log.warning(
                        "feedback store %s is full (%d records, limit %d): new ratings are refused. "
                        "Export it (policy-qa feedback export) and move the database file away.",
                        self.db_path,
                        stored,
                        self.max_rows,
                    )
                    raise FeedbackStoreError(
                        f"反馈记录已满（{self.max_rows} 条），暂时无法保存新的评价 "
                        f"(the feedback store holds its limit of {self.max_rows} records; "
                        "an operator must export and archive it)."
                    )
                cur = conn.execute(
                    "INSERT INTO feedback (created_at, rating, reason, mode, backend, question, answer, citations)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise FeedbackStoreError(f"cannot write feedback to {self.db_path}: {exc}") from exc
            return int(cur.lastrowid or 0)

    def add_answer(self, answer: Answer, *, rating: str, mode: str = "", reason: str = "") -> int:
        """Store a rating of ``answer`` (question, text, citations and backend taken from it)."""
        return self.add(
            question=answer.question,
            answer=answer.text,
            citations=[c.to_dict() for c in answer.citations],
            backend=answer.backend,
            mode=mode,
            rating=rating,
            reason=reason,
        )

    # ------------------------------------------------------------ reading

    def count(self) -> int:
        with self._lock:
            conn = self._connect()
            try:
                return int(conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])
            except sqlite3.Error as exc:
                raise FeedbackStoreError(f"cannot read feedback from {self.db_path}: {exc}") from exc

    def iter_records(self) -> Iterator[FeedbackRecord]:
        """All records, oldest first (materialised under the lock, then yielded)."""
        with self._lock:
            conn = self._connect()
            try:
                rows = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY id").fetchall()
            except sqlite3.Error as exc:
                raise FeedbackStoreError(f"cannot read feedback from {self.db_path}: {exc}") from exc
        for row in rows:
            try:
                citations = json.loads(row[8])
            except json.JSONDecodeError:
                citations = []
            yield FeedbackRecord(
                id=row[0],
                created_at=row[1],
                rating=row[2],
                reason=row[3],
                mode=row[4],
                backend=row[5],
                question=row[6],
                answer=row[7],
                citations=citations if isinstance(citations, list) else [],
            )

    def records(self) -> list[FeedbackRecord]:
        return list(self.iter_records())

    # ------------------------------------------------------------ export

    def export(self, path: str | Path, fmt: str = "csv") -> int:
        """Write every record to ``path`` as CSV (UTF-8 with BOM, opens in Excel) or JSON Lines.

        The file is written to a temporary name and renamed, so a reader never sees
        half an export. Returns the number of records written.
        """
        if fmt not in EXPORT_FORMATS:
            raise InvalidInputError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
        out = Path(path).expanduser()
        if out.is_dir():
            raise InvalidInputError(f"export path {out} is a directory; give a file name")
        records = self.records()
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        except OSError as exc:
            raise FeedbackStoreError(f"cannot write export {out}: {exc}") from exc
        try:
            if fmt == "csv":
                with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as fh:
                    writer = csv.writer(fh)
                    writer.writerow(COLUMNS)
                    for rec in records:
                        d = rec.to_dict()
                        d["citations"] = json.dumps(rec.citations, ensure_ascii=False)
                        writer.writerow([_csv_cell(d[c]) for c in COLUMNS])
            else:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    for rec in records:
                        fh.write(json.dumps(rec.to_dict(), ensure_ascii=False) + "\n")
            os.replace(tmp_name, out)
        except OSError as exc:
            Path(tmp_name).unlink(missing_ok=True)
            raise FeedbackStoreError(f"cannot write export {out}: {exc}") from exc
        return len(records)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def export_feedback(db_path: str | Path, out_path: str | Path, fmt: str = "csv") -> int:
    """``policy-qa feedback export``: copy every stored record to ``out_path``; returns the count."""
    db = Path(db_path).expanduser()
    if not db.is_file():
        raise FeedbackStoreError(f"no feedback database at {db} (nothing has been rated yet, or feedback_db differs)")
    with FeedbackStore(db) as store:
        return store.export(out_path, fmt=fmt)
