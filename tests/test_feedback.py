"""FeedbackStore: durable ratings, crash safety under SIGKILL, CSV/JSONL export."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from assistant.errors import InvalidInputError
from assistant.feedback import (
    COLUMNS,
    MAX_CITATIONS_CHARS,
    MAX_ROWS,
    MAX_TEXT_CHARS,
    FeedbackStore,
    FeedbackStoreError,
    export_feedback,
)
from assistant.models import Answer, Citation, Unit

ROOT = Path(__file__).resolve().parent.parent

CITE = {
    "doc_id": "yaohai-14th-fyp-proposals",
    "article": 19,
    "chapter": "五",
    "unit": "article",
    "title": "积极应对人口老龄化挑战",
    "quote": "推进医养结合",
    "start": 100,
    "end": 106,
}


def _add(store: FeedbackStore, i: int = 0, **kw: object) -> int:
    args: dict[str, object] = {
        "question": f"问题{i}：养老院能看病吗？",
        "answer": f"回答{i}：规划提出推进医养结合。",
        "citations": [CITE],
        "backend": "extractive",
        "mode": "resident",
        "rating": "up" if i % 2 == 0 else "down",
        "reason": "",
    }
    args.update(kw)
    return store.add(**args)  # type: ignore[arg-type]


def test_add_and_read_back(tmp_path: Path) -> None:
    with FeedbackStore(tmp_path / "sub" / "fb.sqlite3") as store:
        first = _add(store, 0)
        second = _add(store, 1, reason="  没回答补贴金额  ", mode="hotline")
        assert second > first
        recs = store.records()
    assert [r.id for r in recs] == [first, second]
    assert recs[0].rating == "up" and recs[1].rating == "down"
    assert recs[1].reason == "没回答补贴金额"  # stripped
    assert recs[1].mode == "hotline"
    assert recs[0].citations == [CITE]
    assert recs[0].question == "问题0：养老院能看病吗？"
    assert recs[0].created_at.endswith("Z") and recs[0].created_at[:4].isdigit()


def test_uses_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "fb.sqlite3"
    with FeedbackStore(db) as store:
        _add(store)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    finally:
        conn.close()


def test_add_answer_takes_fields_from_answer(tmp_path: Path) -> None:
    unit = Unit("d", "五", 19, "积极应对人口老龄化挑战", "推进医养结合", 1, 7)
    cit = Citation(unit, quote="推进医养结合", start=1, end=7)
    answer = Answer(
        question="老人看病？",
        standalone_question="老人看病？",
        text="规划提出推进医养结合。",
        abstained=False,
        citations=[cit],
        backend="extractive",
    )
    with FeedbackStore(tmp_path / "fb.sqlite3") as store:
        store.add_answer(answer, rating="down", mode="hotline", reason="太简略")
        (rec,) = store.records()
    assert rec.question == "老人看病？"
    assert rec.answer == "规划提出推进医养结合。"
    assert rec.backend == "extractive"
    assert rec.citations == [cit.to_dict()]
    assert (rec.rating, rec.mode, rec.reason) == ("down", "hotline", "太简略")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"rating": "meh"}, "rating"),
        ({"rating": 1}, "rating"),
        ({"reason": "长" * 5000}, "太长"),
        ({"question": b"bytes"}, "question"),
        ({"citations": [{"x": object()}]}, "JSON"),
    ],
)
def test_bad_input_raises_domain_error(tmp_path: Path, kw: dict[str, Any], message: str) -> None:
    with FeedbackStore(tmp_path / "fb.sqlite3") as store:
        with pytest.raises(InvalidInputError, match=message):
            _add(store, **kw)
        assert store.count() == 0


def test_odd_text_round_trips(tmp_path: Path) -> None:
    odd = '<script>alert(1)</script>\x00\n"引号",逗号\t=SUM(A1)'
    with FeedbackStore(tmp_path / "fb.sqlite3") as store:
        _add(store, question=odd, answer=odd, reason=odd[:50])
        (rec,) = store.records()
    assert rec.question == odd and rec.answer == odd


def test_corrupt_database_gives_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "fb.sqlite3"
    db.write_bytes(b"this is not sqlite at all" * 100)
    store = FeedbackStore(db)
    with pytest.raises(FeedbackStoreError, match="not a feedback database or is corrupt"):
        _add(store)


def test_directory_path_rejected(tmp_path: Path) -> None:
    with pytest.raises(FeedbackStoreError, match="directory"):
        FeedbackStore(tmp_path)


def test_concurrent_writers_from_threads(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    errors: list[BaseException] = []

    def work(base: int) -> None:
        try:
            for i in range(25):
                _add(store, base + i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n * 100,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.count() == 100
    assert len({r.id for r in store.records()}) == 100
    store.close()


def test_full_store_refuses_new_rows_and_keeps_the_old(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "fb.sqlite3"
    with FeedbackStore(db, max_rows=3) as store:
        ids = [_add(store, i) for i in range(3)]
        with pytest.raises(FeedbackStoreError, match="已满.*limit of 3 records"):
            _add(store, 3)
        assert "feedback store" in caplog.text and "is full" in caplog.text
        assert [r.id for r in store.records()] == ids  # nothing pruned, nothing added
    # The limit holds across connections (another worker process) too.
    with FeedbackStore(db, max_rows=3) as other, pytest.raises(FeedbackStoreError, match="已满"):
        _add(other, 4)
    with FeedbackStore(db, max_rows=4) as bigger:
        assert _add(bigger, 5) > ids[-1] and bigger.count() == 4


def test_default_store_is_bounded() -> None:
    assert FeedbackStore("x.sqlite3").max_rows == MAX_ROWS <= 100_000


@pytest.mark.parametrize("max_rows", [0, -1, 1.5, True, None])
def test_bad_max_rows_is_refused(max_rows: object) -> None:
    with pytest.raises(FeedbackStoreError, match="max_rows"):
        FeedbackStore("x.sqlite3", max_rows=max_rows)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"question": "问" * (MAX_TEXT_CHARS + 1)}, "'question' has"),
        ({"answer": "答" * (MAX_TEXT_CHARS + 1)}, "'answer' has"),
        ({"mode": "m" * 101}, "'mode' has"),
        ({"backend": "b" * 101}, "'backend' has"),
        ({"citations": [{"quote": "引" * MAX_CITATIONS_CHARS}]}, "citations take"),
    ],
)
def test_oversized_fields_are_refused(tmp_path: Path, kw: dict[str, Any], message: str) -> None:
    with FeedbackStore(tmp_path / "fb.sqlite3") as store:
        with pytest.raises(InvalidInputError, match=message):
            _add(store, **kw)
        assert store.count() == 0


def test_commits_are_durable_settings(tmp_path: Path) -> None:
    with FeedbackStore(tmp_path / "fb.sqlite3") as store:
        _add(store)
        conn = store._connect()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync on every commit


_WRITER = r"""
import sys
from assistant.feedback import FeedbackStore
store = FeedbackStore(sys.argv[1])
i = 0
while True:
    store.add(question=f"q{i}", answer="a" * 500 + str(i), citations=[{"article": i}],
              backend="extractive", mode="resident", rating="up", reason=f"r{i}")
    # Acknowledge only after add() returned: from here on the record must survive.
    print(i, flush=True)
    i += 1
"""


def test_sigkill_never_loses_a_committed_record(tmp_path: Path) -> None:
    db = tmp_path / "fb.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    acked = -1
    for line in proc.stdout:
        acked = int(line)
        if acked >= 60:
            break
    # Kill it mid-stream: it is busy writing the next records right now.
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert acked >= 60

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    with FeedbackStore(db) as store:
        recs = store.records()
    ids = [int(r.question[1:]) for r in recs]
    # Every acknowledged record is there, in order, complete; at most a few more were committed
    # between the last acknowledgement we read and the kill.
    assert ids[: acked + 1] == list(range(acked + 1))
    assert ids == list(range(len(ids)))
    for r in recs:
        n = int(r.question[1:])
        assert r.answer == "a" * 500 + str(n)
        assert r.citations == [{"article": n}]
        assert r.reason == f"r{n}"


def test_export_csv_and_jsonl(tmp_path: Path) -> None:
    db = tmp_path / "fb.sqlite3"
    with FeedbackStore(db) as store:
        _add(store, 0, question='=HYPERLINK("http://x")', reason="公式")
        _add(store, 1, answer='含"引号",逗号\n和换行')
        n_csv = store.export(tmp_path / "out" / "fb.csv", fmt="csv")
        n_jsonl = store.export(tmp_path / "out" / "fb.jsonl", fmt="jsonl")
    assert n_csv == n_jsonl == 2

    raw = (tmp_path / "out" / "fb.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel detects UTF-8 Chinese
    with (tmp_path / "out" / "fb.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0].keys()) == list(COLUMNS)
    assert rows[0]["question"] == '\'=HYPERLINK("http://x")'  # neutralised formula
    assert rows[1]["answer"] == '含"引号",逗号\n和换行'
    assert json.loads(rows[1]["citations"]) == [CITE]
    assert rows[1]["rating"] == "down"

    lines = (tmp_path / "out" / "fb.jsonl").read_text(encoding="utf-8").splitlines()
    objs = [json.loads(line) for line in lines]
    assert [o["rating"] for o in objs] == ["up", "down"]
    assert objs[0]["question"] == '=HYPERLINK("http://x")'  # JSONL keeps the raw text
    assert objs[1]["citations"] == [CITE]
    assert set(objs[0]) == set(COLUMNS)
    # No temporary files left behind.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fb.csv", "fb.jsonl"]


def test_export_bad_format_and_missing_db(tmp_path: Path) -> None:
    with FeedbackStore(tmp_path / "fb.sqlite3") as store:
        _add(store)
        with pytest.raises(InvalidInputError, match="csv, jsonl"):
            store.export(tmp_path / "x.xml", fmt="xml")
        with pytest.raises(InvalidInputError, match="directory"):
            store.export(tmp_path, fmt="csv")
    with pytest.raises(FeedbackStoreError, match="no feedback database"):
        export_feedback(tmp_path / "missing.sqlite3", tmp_path / "x.csv")
    assert export_feedback(tmp_path / "fb.sqlite3", tmp_path / "x.jsonl", fmt="jsonl") == 1
