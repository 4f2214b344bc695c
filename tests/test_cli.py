"""The command line, in process: every command on good input, and bad input to
every command → one ``error: …`` line on stderr, a non-zero exit, no traceback.

The embedder is conftest's FakeEmbedder (patched in wherever ``create_embedder``
is looked up) and answers come from the extractive backend, so nothing here
loads a model. The real-model subprocess runs are in test_cli_slow.py.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from assistant.cli import build_parser, main
from assistant.config import load_settings
from assistant.feedback import FeedbackStore
from assistant.ingest.corpus import load_corpus
from assistant.retrieval.embedders import create_embedder as real_create_embedder
from assistant.retrieval.store import IndexStore, ensure_index, index_path

from conftest import CORPUS_DIR, DEV_QUESTIONS, PLAN_FILE, ROOT, FakeEmbedder

ELDERLY_Q = "我家老人想住养老院，区里有什么打算？"
PLAN_NAME = PLAN_FILE.name
SIDECAR_NAME = PLAN_FILE.with_suffix(".toml").name

# The machine interface (README "Machine interface").
HIT_KEYS = {"doc_id", "article", "chapter", "unit", "title", "score", "dense_score", "bm25_score"}
ANSWER_KEYS = {
    "question",
    "standalone_question",
    "answer",
    "abstained",
    "reason",
    "language",
    "citations",
    "sentences",
    "draft",
    "formal_citation",
    "backend",
    "timings_ms",
    "warnings",
}
CITATION_KEYS = {"doc_id", "article", "chapter", "unit", "title", "quote", "start", "end"}

# Modules that look ``create_embedder`` up by name: each gets the fake.
_EMBEDDER_LOOKUPS = (
    "assistant.retrieval.embedders",
    "assistant.answering.resources",
    "assistant.retrieval.retriever",
    "assistant.retrieval.store",
    "assistant.evaluation.retrieval",
    "assistant.evaluation.answers",
)


# ---------------------------------------------------------------- running the CLI


@dataclass
class Result:
    rc: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    capsys.readouterr()
    rc = main(list(argv))
    out, err = capsys.readouterr()
    res = Result(rc, out, err)
    assert "Traceback" not in out and "Traceback" not in err, res
    return res


def assert_ok(res: Result) -> None:
    assert res.rc == 0, res
    assert not [line for line in res.err.splitlines() if line.startswith("error")], res


def assert_one_line_error(res: Result, *mentions: str, code: int | None = None) -> str:
    """Non-zero exit; exactly one stderr line mentions an error, and it is a clear one."""
    assert res.rc != 0, res
    if code is not None:
        assert res.rc == code, res
    lines = [line for line in res.err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, res.err
    line = lines[0]
    assert line.startswith("error: "), line
    # "unexpected X" is the CLI's last-resort catch: a bug somewhere below, not a clear message
    assert "unexpected" not in line, line
    assert "Traceback" not in line
    for m in mentions:
        assert m in line, (m, line)
    assert res.out == "", res.out
    return line


# ---------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No settings leak in from the caller; feedback and caches go to tmp; no model backend."""
    for name in list(os.environ):
        if name.startswith("POLICY_QA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("POLICY_QA_FEEDBACK_DB", str(tmp_path / "feedback.sqlite3"))
    monkeypatch.setenv("POLICY_QA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("POLICY_QA_BACKEND", "extractive")  # safety net: never load an LLM here
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # no ./policy-qa.toml from the caller's directory
    return tmp_path


@pytest.fixture(autouse=True)
def fake_embedder_factory(monkeypatch: pytest.MonkeyPatch) -> list[FakeEmbedder]:
    made: list[FakeEmbedder] = []

    def factory(settings: Any) -> FakeEmbedder:
        emb = FakeEmbedder()
        made.append(emb)
        return emb

    for name in _EMBEDDER_LOOKUPS:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(mod, "create_embedder"):
            monkeypatch.setattr(mod, "create_embedder", factory)
    return made


@pytest.fixture(scope="module")
def shared_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the real corpus built once with the fake embedder; tests only read it."""
    index_dir = tmp_path_factory.mktemp("shared-index")
    no_settings = index_dir.parent / "empty-settings.toml"
    no_settings.write_text("", encoding="utf-8")  # defaults only, whatever ./policy-qa.toml says
    settings = load_settings(no_settings, env={}, index_dir=index_dir)
    ensure_index(settings, load_corpus(CORPUS_DIR), FakeEmbedder())
    return index_dir


@pytest.fixture
def own_index(shared_index: Path, tmp_path: Path) -> Path:
    """A private copy of the shared index, for tests that damage it."""
    dst = tmp_path / "index"
    shutil.copytree(shared_index, dst)
    return dst


def fake_index_files(index_dir: Path) -> Path:
    return index_path(index_dir, FakeEmbedder())


def assert_index_sound(index_dir: Path) -> None:
    """The index under index_dir loads with every checksum and count consistent."""
    idx = IndexStore(fake_index_files(index_dir)).load()
    assert idx.size > 100


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "corpus"
    dst.mkdir()
    shutil.copy(PLAN_FILE, dst / PLAN_NAME)
    shutil.copy(PLAN_FILE.with_suffix(".toml"), dst / SIDECAR_NAME)
    return dst


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def good_questions(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "good.jsonl",
        [
            {"id": "q-elderly", "question": ELDERLY_Q, "gold_articles": [19], "kind": "colloquial"},
            {"id": "q-school", "question": "区里要新建哪些学校？", "gold_articles": [16], "kind": "colloquial"},
        ],
    )


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens there now: connections are refused at once


def check_citation(c: dict[str, Any], plan_text: str) -> None:
    assert set(c) == CITATION_KEYS
    assert c["doc_id"] == "yaohai-14th-fyp"
    assert c["unit"] in ("article", "chapter_intro")
    assert (c["article"] is None) == (c["unit"] == "chapter_intro")
    assert 0 <= c["start"] < c["end"] <= len(plan_text)
    assert plan_text[c["start"] : c["end"]] == c["quote"]


def check_answer(a: dict[str, Any], plan_text: str) -> None:
    for c in a["citations"]:
        check_citation(c, plan_text)
    for s in a["sentences"]:
        assert set(s) == {"text", "citation"}
        assert s["citation"] is None or 0 <= s["citation"] < len(a["citations"])
    assert isinstance(a["abstained"], bool)
    assert a["language"] in ("zh-Hans", "zh-Hant", "en")
    assert all(isinstance(v, int | float) for v in a["timings_ms"].values())
    assert isinstance(a["warnings"], list)


def check_hit(h: dict[str, Any]) -> None:
    assert set(h) == HIT_KEYS
    assert h["doc_id"] == "yaohai-14th-fyp"
    if h["unit"] == "article":
        assert isinstance(h["article"], int) and 1 <= h["article"] <= 43
    else:
        assert h["unit"] == "chapter_intro" and h["article"] is None
    assert isinstance(h["chapter"], str) and h["chapter"]
    assert isinstance(h["title"], str) and h["title"]
    assert isinstance(h["score"], float) and h["score"] > 0


# ================================================================ good input


def test_console_script_and_module_entry_points() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    module, func = scripts["policy-qa"].split(":")
    assert getattr(importlib.import_module(module), func) is main
    assert (ROOT / "assistant" / "__main__.py").read_text(encoding="utf-8").count("main()") == 1


def test_python_m_assistant_runs_and_fails_in_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICY_QA_")}
    ok = subprocess.run(
        [sys.executable, "-m", "assistant", "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0 and "search" in ok.stdout and ok.stderr == ""
    bad = subprocess.run(
        [sys.executable, "-m", "assistant", "search", "-k", "abc", "养老"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: ") and "-k" in bad.stderr
    # real undecodable bytes in argv (Python hands them over as surrogate escapes)
    raw = subprocess.run(
        [sys.executable, "-m", "assistant", "ask", b"\xff\xfe\xfd"], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert raw.returncode == 2 and raw.stdout == b""
    err = raw.stderr.decode("utf-8", "replace")
    assert err.count("\n") == 1 and err.startswith("error: ") and "UTF-8" in err


def test_outline_text(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "outline")
    assert_ok(res)
    lines = res.out.splitlines()
    assert lines[0].startswith("《中共合肥市瑶海区委关于制定") and lines[0].endswith("建议》")
    chapters = [m.group(1) for line in lines if (m := re.match(r"^([一二三四五六七八九十]+)、\S", line))]
    assert chapters == ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一"]
    numbers = [int(m.group(1)) for line in lines if (m := re.match(r"^ {4}(\d+)\. \S", line))]
    assert numbers == list(range(1, 44))
    assert sum(1 for line in lines if line.startswith("    （引言）")) == 9
    assert "    19. 积极应对人口老龄化挑战" in lines


def test_outline_json_offsets_match_the_source(capsys: pytest.CaptureFixture[str], plan_text: str) -> None:
    res = run_cli(capsys, "outline", "--json")
    assert_ok(res)
    docs = json.loads(res.out)
    assert len(docs) == 1
    doc = docs[0]
    assert doc["doc_id"] == "yaohai-14th-fyp" and doc["filename"] == PLAN_NAME
    assert [c["numeral"] for c in doc["chapters"]][-1] == "十一" and len(doc["chapters"]) == 11
    articles = [a for c in doc["chapters"] for a in c["articles"]]
    assert [a["number"] for a in articles] == list(range(1, 44))
    intros = {c["numeral"]: c["intro"] for c in doc["chapters"] if c["intro"] is not None}
    assert sorted(intros, key=[c["numeral"] for c in doc["chapters"]].index) == [
        "三", "四", "五", "六", "七", "八", "九", "十", "十一"
    ]  # fmt: skip
    for unit in [*articles, *intros.values()]:
        assert unit["text"].strip()
        assert plan_text[unit["start"] : unit["end"]] == unit["text"]
    assert next(a for a in articles if a["number"] == 19)["title"] == "积极应对人口老龄化挑战"


def test_index_builds_then_is_up_to_date_then_force(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fake_embedder_factory: list[FakeEmbedder]
) -> None:
    index_dir = tmp_path / "idx"
    res = run_cli(capsys, "--index-dir", str(index_dir), "index")
    assert_ok(res)
    assert res.out.startswith("index built: ")
    assert re.search(r"1 document\(s\), 52 units, \d+ chunks, embedder fake-ngram-256", res.out), res.out
    assert_index_sound(index_dir)
    manifest = json.loads((fake_index_files(index_dir) / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["embedder"]["model_id"] == "fake-ngram-256"

    calls_before = sum(e.calls for e in fake_embedder_factory)
    res = run_cli(capsys, "--index-dir", str(index_dir), "index")
    assert_ok(res)
    assert res.out.startswith("index up to date: ")
    assert sum(e.calls for e in fake_embedder_factory) == calls_before  # nothing re-embedded

    res = run_cli(capsys, "--index-dir", str(index_dir), "index", "--force")
    assert_ok(res)
    assert res.out.startswith("index built: ")
    assert sum(e.calls for e in fake_embedder_factory) > calls_before


def test_index_corpus_flag_and_env_index_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, corpus_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLICY_QA_INDEX_DIR", str(tmp_path / "env-idx"))
    res = run_cli(capsys, "index", "--corpus", str(corpus_copy))
    assert_ok(res)
    assert str(tmp_path / "env-idx") in res.out
    assert_index_sound(tmp_path / "env-idx")
    # the global flag wins over the environment
    res = run_cli(capsys, "--index-dir", str(tmp_path / "flag-idx"), "--corpus", str(corpus_copy), "index")
    assert_ok(res)
    assert_index_sound(tmp_path / "flag-idx")


def test_search_text(capsys: pytest.CaptureFixture[str], shared_index: Path) -> None:
    res = run_cli(capsys, "--index-dir", str(shared_index), "search", "养老院", "-k", "3")
    assert_ok(res)
    ranked = re.findall(r"^(\d+)\. (第\S+条|第\S+部分引言) ", res.out, flags=re.MULTILINE)
    assert [int(r) for r, _ in ranked] == [1, 2, 3]
    assert "第十九条" in [label for _, label in ranked]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_search_json_schema(capsys: pytest.CaptureFixture[str], shared_index: Path, mode: str) -> None:
    res = run_cli(capsys, "--index-dir", str(shared_index), "search", "养老服务体系", "-k", "4", "--mode", mode, "--json")
    assert_ok(res)
    data = json.loads(res.out)  # stdout is only the JSON: progress goes elsewhere
    assert set(data) == {"query", "mode", "hits"}
    assert data["query"] == "养老服务体系" and data["mode"] == mode
    hits = data["hits"]
    assert len(hits) == 4
    for h in hits:
        check_hit(h)
        if mode == "dense":
            assert h["bm25_score"] is None and isinstance(h["dense_score"], float)
        if mode == "bm25":
            assert h["dense_score"] is None and isinstance(h["bm25_score"], float)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert 19 in [h["article"] for h in hits]


def test_search_questions_jsonl(capsys: pytest.CaptureFixture[str], shared_index: Path, tmp_path: Path) -> None:
    qfile = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"id": "a", "question": "养老院"},
            "{not json",
            {"id": "b", "question": "那高中呢？", "history": [{"role": "user", "content": "幼儿园有什么规划？"}]},
            {"id": "c", "question": "   "},
            ["not", "an", "object"],
            {"question": "垃圾分类"},  # no id: gets one from its line number
        ],
    )
    out = tmp_path / "out" / "hits.jsonl"
    res = run_cli(capsys, "--index-dir", str(shared_index), "search", "--questions", str(qfile), "--jsonl", str(out), "-k", "3")
    assert_ok(res)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in lines] == ["a", "b", "line-6"]
    for row in lines:
        assert set(row) == {"id", "hits"}
        assert len(row["hits"]) == 3
        for h in row["hits"]:
            check_hit(h)
    # the empty question (line 4) is reported where the file is read, like the other bad lines
    assert "q.jsonl:2" in res.err and "q.jsonl:4" in res.err and "q.jsonl:5" in res.err
    assert "wrote 3 result line(s)" in res.err
    assert not list(out.parent.glob("*.tmp"))


def test_search_dev_questions_one_line_each(capsys: pytest.CaptureFixture[str], shared_index: Path, tmp_path: Path) -> None:
    out = tmp_path / "dev-hits.jsonl"
    res = run_cli(
        capsys, "--index-dir", str(shared_index), "search", "--questions", str(DEV_QUESTIONS), "--jsonl", str(out)
    )
    assert_ok(res)
    dev_ids = [json.loads(line)["id"] for line in DEV_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    skipped = re.findall(r"^skipped (\S+):", res.err, flags=re.MULTILINE)
    assert [r["id"] for r in got] == [i for i in dev_ids if i not in skipped]  # file order, one line each
    assert len(got) >= len(dev_ids) - 3  # only questions the guard rejects as input are skipped
    assert all(len(r["hits"]) == 5 for r in got)


def test_ask_json_schema(capsys: pytest.CaptureFixture[str], shared_index: Path, plan_text: str) -> None:
    res = run_cli(capsys, "--index-dir", str(shared_index), "ask", ELDERLY_Q, "--backend", "extractive", "--json")
    assert_ok(res)
    a = json.loads(res.out)
    assert set(a) == ANSWER_KEYS  # README's object; "id" only where there is a question id (batch)
    check_answer(a, plan_text)
    assert a["question"] == ELDERLY_Q
    assert a["abstained"] is False and a["reason"] is None
    assert a["backend"] == "extractive" and a["language"] == "zh-Hans"
    assert a["citations"] and 19 in {c["article"] for c in a["citations"]}
    assert a["formal_citation"].startswith("依据：《中共合肥市瑶海区委关于制定") and "第十九条" in a["formal_citation"]
    assert {"total_ms", "excerpts_ms"} <= set(a["timings_ms"])


def test_ask_text_prints_answer_once_with_citations(capsys: pytest.CaptureFixture[str], shared_index: Path) -> None:
    res = run_cli(capsys, "--index-dir", str(shared_index), "ask", ELDERLY_Q, "--backend", "extractive")
    assert_ok(res)
    first = res.out.splitlines()[0]
    assert first.startswith("规划第十九条（积极应对人口老龄化挑战）提出：“")
    assert res.out.count(first) == 1 and "----" not in res.out  # the extractive answer is not printed twice
    assert re.search(r"^  \[1\] 第十九条 积极应对人口老龄化挑战：“.+”$", res.out, flags=re.MULTILINE)
    assert res.out.rstrip().splitlines()[-1].startswith("依据：《")


@pytest.mark.parametrize("mode", ["resident", "hotline"])
def test_ask_modes(capsys: pytest.CaptureFixture[str], shared_index: Path, plan_text: str, mode: str) -> None:
    res = run_cli(
        capsys, "--index-dir", str(shared_index), "ask", "老旧小区改造有什么计划？", "--mode", mode, "--json"
    )
    assert_ok(res)
    check_answer(json.loads(res.out), plan_text)


def test_ask_off_topic_is_declined_not_an_error(capsys: pytest.CaptureFixture[str], shared_index: Path) -> None:
    res = run_cli(capsys, "--index-dir", str(shared_index), "ask", "帮我写一首关于春天的七言绝句", "--json")
    assert_ok(res)
    a = json.loads(res.out)
    assert a["abstained"] is True and a["reason"] == "off_topic" and a["citations"] == []


def test_ask_with_history_file(
    capsys: pytest.CaptureFixture[str], shared_index: Path, tmp_path: Path, plan_text: str
) -> None:
    hist = tmp_path / "turns.json"
    hist.write_text(
        json.dumps(
            [
                {"role": "user", "content": "幼儿园有什么规划？"},
                {"role": "assistant", "content": "第十六条提出要增加学前教育资源。"},
                "a stray string",  # malformed turns are ignored, not fatal
                {"role": "robot", "content": "x"},
            ],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    res = run_cli(
        capsys, "--index-dir", str(shared_index), "ask", "那高中呢？", "--history", str(hist), "--backend", "extractive", "--json"
    )
    assert_ok(res)
    a = json.loads(res.out)
    check_answer(a, plan_text)
    assert a["question"] == "那高中呢？"
    assert a["standalone_question"]


def test_batch_reports_and_skips_a_bad_line(
    capsys: pytest.CaptureFixture[str], shared_index: Path, tmp_path: Path, plan_text: str
) -> None:
    qfile = write_jsonl(
        tmp_path / "batch.jsonl",
        [
            {"id": "b-1", "question": ELDERLY_Q},
            '{"id": "b-bad", "question": ',
            {"id": "b-2", "question": "那高中呢？", "history": [{"role": "user", "content": "幼儿园有什么规划？"}]},
            {"id": "b-empty", "question": ""},
            {"id": "b-3", "question": "写一首诗"},
        ],
    )
    out = tmp_path / "answers" / "a.jsonl"
    res = run_cli(
        capsys, "--index-dir", str(shared_index), "batch", "--questions", str(qfile), "--out", str(out), "--backend", "extractive"
    )
    assert_ok(res)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["b-1", "b-2", "b-3"]
    for r in rows:
        assert set(r) == ANSWER_KEYS | {"id"}
        check_answer(r, plan_text)
    assert 19 in {c["article"] for c in rows[0]["citations"]}
    assert rows[2]["abstained"] is True
    assert "batch.jsonl:2" in res.err and "not valid JSON" in res.err
    assert "batch.jsonl:4" in res.err  # b-empty: an empty question is a bad line
    assert "wrote 3 answer(s)" in res.err
    assert res.out == ""


@pytest.fixture
def empty_feedback_db(cli_env: Path) -> Path:
    db = Path(os.environ["POLICY_QA_FEEDBACK_DB"])
    with FeedbackStore(db) as store:
        assert store.count() == 0  # creates the (empty) database
    return db


def test_feedback_export_empty_db(capsys: pytest.CaptureFixture[str], tmp_path: Path, empty_feedback_db: Path) -> None:
    out_csv = tmp_path / "fb.csv"
    res = run_cli(capsys, "feedback", "export", "--out", str(out_csv))
    assert_ok(res)
    assert "exported 0 feedback record(s)" in res.out
    with out_csv.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == 1 and "rating" in rows[0] and "question" in rows[0]

    out_jsonl = tmp_path / "fb.jsonl"
    res = run_cli(capsys, "feedback", "export", "--out", str(out_jsonl))
    assert_ok(res)
    assert out_jsonl.read_text(encoding="utf-8") == ""
    res = run_cli(capsys, "feedback", "export", "--out", str(tmp_path / "fb.txt"), "--format", "jsonl")
    assert_ok(res)


def test_feedback_export_without_a_database(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    res = run_cli(capsys, "feedback", "export", "--out", str(tmp_path / "fb.csv"))
    assert_one_line_error(res, "feedback", code=1)
    assert not (tmp_path / "fb.csv").exists()


def test_eval_retrieval_only_writes_figures(
    capsys: pytest.CaptureFixture[str], shared_index: Path, tmp_path: Path
) -> None:
    out = tmp_path / "figs" / "retrieval.json"
    res = run_cli(
        capsys, "--index-dir", str(shared_index), "eval", "--retrieval-only", "--questions", str(DEV_QUESTIONS),
        "-k", "10", "--out", str(out),
    )  # fmt: skip
    assert_ok(res)
    assert re.search(r"^hybrid\s+\d+\s+0\.\d{3}", res.out, flags=re.MULTILINE)  # the table
    figures = json.loads(out.read_text(encoding="utf-8"))
    dev = [json.loads(line) for line in DEV_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert figures["questions"] == sum(1 for q in dev if q["gold_articles"])  # only answerable ones are scored
    assert figures["k_values"] == [1, 3, 10]
    assert set(figures["modes"]) == {"hybrid", "dense", "bm25"}
    for s in figures["modes"].values():
        assert 0.0 <= s["recall@1"] <= s["recall@3"] <= s["recall@10"] <= 1.0
        assert 0.0 <= s["mrr"] <= 1.0
    recalls = [v for k, v in _walk(figures) if k.startswith("recall@")]
    assert recalls and all(0.0 <= v <= 1.0 for v in recalls)
    # even the fake embedder with BM25 finds most gold articles: the scorer is wired to real hits
    assert figures["modes"]["bm25"]["recall@10"] > 0.5


def _walk(obj: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k), v
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def test_eval_answers_from_batch_file(
    capsys: pytest.CaptureFixture[str], shared_index: Path, tmp_path: Path, good_questions: Path
) -> None:
    answers = tmp_path / "answers.jsonl"
    assert_ok(
        run_cli(
            capsys, "--index-dir", str(shared_index), "batch", "--questions", str(good_questions), "--out", str(answers)
        )
    )
    out = tmp_path / "answer-figs.json"
    res = run_cli(
        capsys, "--index-dir", str(shared_index), "eval", "--questions", str(good_questions), "--answers", str(answers),
        "--out", str(out),
    )  # fmt: skip
    assert_ok(res)
    figures = json.loads(out.read_text(encoding="utf-8"))
    overall = figures["overall"]
    assert overall["questions"] == 2 and overall["answered_files_missing"] == 0
    assert 0.0 <= overall["citation_recall"] <= 1.0
    assert "overall" in res.out


def test_eval_generates_answers_with_extractive_backend(
    capsys: pytest.CaptureFixture[str], shared_index: Path, tmp_path: Path, good_questions: Path
) -> None:
    out = tmp_path / "gen-figs.json"
    res = run_cli(
        capsys, "--index-dir", str(shared_index), "eval", "--questions", str(good_questions), "--backend", "extractive",
        "--out", str(out),
    )  # fmt: skip
    assert_ok(res)
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["backend"] == "extractive"
    assert figures["overall"]["questions"] == 2 and figures["overall"]["answered_files_missing"] == 0


@pytest.fixture
def fake_launch(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    ui_server = importlib.import_module("ui.server")
    calls: list[Any] = []

    def launch(app: Any, settings: Any, **kwargs: Any) -> None:
        calls.append(settings)

    monkeypatch.setattr(ui_server, "launch", launch)
    return calls


def test_serve_warms_up_and_launches_with_the_flags(
    capsys: pytest.CaptureFixture[str], shared_index: Path, fake_launch: list[Any]
) -> None:
    res = run_cli(capsys, "--index-dir", str(shared_index), "serve", "--host", "127.0.0.1", "--port", "7999")
    assert_ok(res)
    assert len(fake_launch) == 1
    settings = fake_launch[0]
    assert settings.port == 7999 and settings.host == "127.0.0.1" and settings.backend == "extractive"
    assert "7999" in res.err  # progress: where to open it


def test_openai_backend_unreachable_falls_back(
    capsys: pytest.CaptureFixture[str], shared_index: Path, monkeypatch: pytest.MonkeyPatch, plan_text: str
) -> None:
    port = closed_port()
    monkeypatch.setenv("POLICY_QA_OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("POLICY_QA_GENERATION_TIMEOUT_S", "10")
    res = run_cli(capsys, "--index-dir", str(shared_index), "ask", ELDERLY_Q, "--backend", "openai", "--json")
    assert_ok(res)
    a = json.loads(res.out)
    check_answer(a, plan_text)
    assert a["abstained"] is False and a["citations"]
    assert a["backend"] == "extractive"
    # Residents get a plain sentence; the server address goes to the operator's log (stderr), not the answer.
    assert a["warnings"] and not any(f"127.0.0.1:{port}" in w for w in a["warnings"]), a["warnings"]
    assert f"127.0.0.1:{port}" in res.err

    res = run_cli(capsys, "--index-dir", str(shared_index), "ask", ELDERLY_Q, "--backend", "openai")
    assert_ok(res)
    assert "依据：《" in res.out
    assert re.search(r"^note: ", res.err, flags=re.MULTILINE)


# ================================================================ bad input


BAD_QUERIES = {
    "empty": "",
    "whitespace": " \t\n\u3000 ",
    "huge": "养" * 100_000,
    "surrogate-escaped-bytes": "\udcff\udcfe",
    "mostly-binary": "\udcff\udcfe\udc80养老",
    "one-undecodable-byte": ELDERLY_Q * 2 + "\udcff",
    "control-bytes": "\x00\x01\x02\x03\x04",
}

QUERY_COMMANDS: dict[str, Callable[[str], list[str]]] = {
    "search": lambda q: ["search", q],
    "search-json": lambda q: ["search", q, "--json"],
    "search-bm25": lambda q: ["search", q, "--mode", "bm25", "-k", "2"],
    "ask": lambda q: ["ask", q, "--backend", "extractive"],
    "ask-json": lambda q: ["ask", q, "--backend", "extractive", "--json"],
    "ask-hotline": lambda q: ["ask", q, "--mode", "hotline"],
}


@pytest.mark.parametrize("query", BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
@pytest.mark.parametrize("command", QUERY_COMMANDS.values(), ids=QUERY_COMMANDS.keys())
def test_bad_query(
    capsys: pytest.CaptureFixture[str], shared_index: Path, command: Callable[[str], list[str]], query: str
) -> None:
    res = run_cli(capsys, "--index-dir", str(shared_index), *command(query))
    assert_one_line_error(res, code=2)
    assert len(res.err) < 500  # a 100,000-character question is not echoed back


def test_search_needs_a_query_or_a_questions_file(capsys: pytest.CaptureFixture[str], shared_index: Path) -> None:
    assert_one_line_error(run_cli(capsys, "--index-dir", str(shared_index), "search"), "--questions", code=2)
    assert_one_line_error(
        run_cli(capsys, "--index-dir", str(shared_index), "search", "--questions", str(DEV_QUESTIONS)), "--jsonl", code=2
    )


def _qfile_commands(q: str, out: str) -> dict[str, list[str]]:
    return {
        "batch": ["batch", "--questions", q, "--out", out, "--backend", "extractive"],
        "search": ["search", "--questions", q, "--jsonl", out],
        "eval-retrieval": ["eval", "--retrieval-only", "--questions", q, "--out", out],
        "eval": ["eval", "--questions", q, "--backend", "extractive", "--out", out],
    }


QFILE_COMMANDS = list(_qfile_commands("Q", "O"))


def _make_bad_qfile(kind: str, tmp_path: Path) -> str:
    p = tmp_path / "questions.jsonl"
    if kind == "missing":
        return str(tmp_path / "no-such-file.jsonl")
    if kind == "undecodable-name":
        return str(tmp_path / "\udcff\udcfe.jsonl")
    if kind == "directory":
        p.mkdir()
    elif kind == "random-bytes":
        rng = random.Random(7)
        p.write_bytes(b"\xff\xfe\x00" + bytes(rng.randrange(256) for _ in range(4000)))
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "only-bad-lines":
        p.write_text('{not json\n[1, 2]\n"a string"\n{"id": "x"}\n{"question": 42}\n\n', encoding="utf-8")
    elif kind == "escaped-surrogates":
        p.write_text('{"id": "s", "question": "\\udcff\\udcfe"}\n', encoding="utf-8")
    else:  # pragma: no cover
        raise AssertionError(kind)
    return str(p)


BAD_QFILES = ["missing", "undecodable-name", "directory", "random-bytes", "empty", "only-bad-lines", "escaped-surrogates"]


@pytest.mark.parametrize("kind", BAD_QFILES)
@pytest.mark.parametrize("command", QFILE_COMMANDS)
def test_bad_questions_file(
    capsys: pytest.CaptureFixture[str], shared_index: Path, tmp_path: Path, command: str, kind: str
) -> None:
    qfile = _make_bad_qfile(kind, tmp_path)
    out = tmp_path / "result.out"
    argv = _qfile_commands(qfile, str(out))[command]
    res = run_cli(capsys, "--index-dir", str(shared_index), *argv)
    assert_one_line_error(res)
    assert not out.exists() or command == "batch"  # nothing half-written claims success
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("command", ["batch", "search"])
def test_questions_that_are_all_unusable(
    capsys: pytest.CaptureFixture[str], shared_index: Path, tmp_path: Path, command: str
) -> None:
    qfile = write_jsonl(tmp_path / "q.jsonl", [{"id": "e", "question": " "}, {"id": "h", "question": "养" * 5000}])
    argv = _qfile_commands(str(qfile), str(tmp_path / "o.jsonl"))[command]
    res = run_cli(capsys, "--index-dir", str(shared_index), *argv)
    assert_one_line_error(res, str(qfile))
    assert "q.jsonl:1" in res.err and "skipped h" in res.err


def test_questions_file_with_bom_and_bad_gold(
    capsys: pytest.CaptureFixture[str], shared_index: Path, tmp_path: Path
) -> None:
    qfile = tmp_path / "bom.jsonl"
    rows = [{"id": "a", "question": "养老院", "gold_articles": [19]}, {"id": "g", "question": "学校", "gold_articles": 16}]
    qfile.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8-sig")
    out = tmp_path / "hits.jsonl"
    res = run_cli(capsys, "--index-dir", str(shared_index), "search", "--questions", str(qfile), "--jsonl", str(out))
    assert_ok(res)
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == ["a"]
    assert "bom.jsonl:2" in res.err and "gold_articles" in res.err
    res = run_cli(capsys, "--index-dir", str(shared_index), "eval", "--questions", str(qfile), "--backend", "extractive")
    assert_ok(res)


# ---------------------------------------------------------------- history files


def _bad_history(kind: str, tmp_path: Path) -> str:
    p = tmp_path / "history.json"
    if kind == "missing":
        return str(tmp_path / "nope.json")
    if kind == "not-json":
        p.write_text("[{role: user}", encoding="utf-8")
    elif kind == "not-a-list":
        p.write_text('{"role": "user", "content": "幼儿园"}', encoding="utf-8")
    elif kind == "binary":
        p.write_bytes(b"\xff\xfe\x00\x01binary")
    elif kind == "directory":
        p.mkdir()
    elif kind == "escaped-surrogates":
        p.write_text('[{"role": "user", "content": "\\udcff\\udcfe"}]', encoding="utf-8")
    elif kind == "empty-file":
        p.write_bytes(b"")
    else:  # pragma: no cover
        raise AssertionError(kind)
    return str(p)


@pytest.mark.parametrize(
    "kind", ["missing", "not-json", "not-a-list", "binary", "directory", "escaped-surrogates", "empty-file"]
)
@pytest.mark.parametrize("as_json", [False, True])
def test_bad_history_file(
    capsys: pytest.CaptureFixture[str], shared_index: Path, tmp_path: Path, kind: str, as_json: bool
) -> None:
    hist = _bad_history(kind, tmp_path)
    argv = ["ask", ELDERLY_Q, "--history", hist, "--backend", "extractive"] + (["--json"] if as_json else [])
    res = run_cli(capsys, "--index-dir", str(shared_index), *argv)
    line = assert_one_line_error(res, code=2)
    assert "history" in line


# ---------------------------------------------------------------- corpus


def _bad_corpus(kind: str, tmp_path: Path) -> str:
    d = tmp_path / "bad-corpus"
    if kind == "missing":
        return str(tmp_path / "no-such-corpus")
    if kind == "a-file":
        d.write_text("not a folder", encoding="utf-8")
        return str(d)
    d.mkdir()
    if kind == "empty":
        return str(d)
    if kind == "binary-plan":
        (d / PLAN_NAME).write_bytes(b"\x00\x01\xff" * 100)
        shutil.copy(PLAN_FILE.with_suffix(".toml"), d / SIDECAR_NAME)
    elif kind == "no-sidecar":
        shutil.copy(PLAN_FILE, d / PLAN_NAME)
    elif kind == "garbage-sidecar":
        shutil.copy(PLAN_FILE, d / PLAN_NAME)
        (d / SIDECAR_NAME).write_text("doc_id = [unterminated", encoding="utf-8")
    elif kind == "not-a-plan":
        (d / PLAN_NAME).write_text("这只是一段普通的文字，没有章节，也没有条目。\n" * 20, encoding="utf-8")
        shutil.copy(PLAN_FILE.with_suffix(".toml"), d / SIDECAR_NAME)
    else:  # pragma: no cover
        raise AssertionError(kind)
    return str(d)


def _corpus_commands(tmp_path: Path, good_questions: Path) -> dict[str, list[str]]:
    return {
        "index": ["index"],
        "outline": ["outline"],
        "outline-json": ["outline", "--json"],
        "search": ["search", "养老院"],
        "search-questions": ["search", "--questions", str(good_questions), "--jsonl", str(tmp_path / "h.jsonl")],
        "ask": ["ask", ELDERLY_Q, "--backend", "extractive"],
        "batch": ["batch", "--questions", str(good_questions), "--out", str(tmp_path / "a.jsonl"), "--backend", "extractive"],
        "eval-retrieval": ["eval", "--retrieval-only", "--questions", str(good_questions)],
        "eval": ["eval", "--questions", str(good_questions), "--backend", "extractive"],
        "serve": ["serve", "--port", "7998"],
    }


CORPUS_COMMANDS = ["index", "outline", "outline-json", "search", "search-questions", "ask", "batch", "eval-retrieval", "eval", "serve"]
BAD_CORPORA = ["missing", "a-file", "empty", "binary-plan", "no-sidecar", "garbage-sidecar", "not-a-plan"]


@pytest.mark.parametrize("kind", BAD_CORPORA)
@pytest.mark.parametrize("command", CORPUS_COMMANDS)
def test_bad_corpus(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    good_questions: Path,
    fake_launch: list[Any],
    command: str,
    kind: str,
) -> None:
    corpus = _bad_corpus(kind, tmp_path)
    argv = _corpus_commands(tmp_path, good_questions)[command]
    res = run_cli(capsys, "--corpus", corpus, "--index-dir", str(tmp_path / "idx"), *argv)
    line = assert_one_line_error(res, code=1)
    assert "corpus" in line or PLAN_NAME in line or SIDECAR_NAME in line, line
    assert fake_launch == []


def test_index_subcommand_corpus_flag_is_checked_too(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    res = run_cli(capsys, "--index-dir", str(tmp_path / "idx"), "index", "--corpus", str(tmp_path / "missing"))
    assert_one_line_error(res, "does not exist", code=1)


# ---------------------------------------------------------------- corrupt and stale index


def _damage(index_dir: Path, kind: str) -> None:
    files = fake_index_files(index_dir)
    if kind == "garbage-manifest":
        (files / "manifest.json").write_text("this is not json {", encoding="utf-8")
    elif kind == "manifest-not-object":
        (files / "manifest.json").write_text("[1, 2, 3]", encoding="utf-8")
    elif kind == "truncated-dense":
        with (files / "dense.faiss").open("r+b") as fh:
            fh.truncate(100)
    elif kind == "garbage-chunks":
        (files / "chunks.json").write_bytes(b"\x00\xff garbage")
    elif kind == "missing-chunks":
        (files / "chunks.json").unlink()
    elif kind == "all-random":
        rng = random.Random(3)
        for f in files.iterdir():
            f.write_bytes(bytes(rng.randrange(256) for _ in range(300)))
    elif kind == "dir-is-a-file":
        shutil.rmtree(files)
        files.write_bytes(b"\x00" * 64)
    elif kind == "manifest-lies":
        m = json.loads((files / "manifest.json").read_text(encoding="utf-8"))
        m["chunk_count"] = 3
        m["embedder"]["dim"] = "many"
        (files / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    else:  # pragma: no cover
        raise AssertionError(kind)


DAMAGE = ["garbage-manifest", "manifest-not-object", "truncated-dense", "garbage-chunks", "missing-chunks", "all-random",
          "dir-is-a-file", "manifest-lies"]  # fmt: skip


@pytest.mark.parametrize("kind", DAMAGE)
def test_corrupt_index_is_rebuilt_by_search(capsys: pytest.CaptureFixture[str], own_index: Path, kind: str) -> None:
    _damage(own_index, kind)
    res = run_cli(capsys, "--index-dir", str(own_index), "search", "养老院", "-k", "3")
    assert_ok(res)
    assert "第十九条" in res.out
    assert "重建" in res.err or "构建" in res.err  # says it is rebuilding
    assert_index_sound(own_index)


@pytest.mark.parametrize("kind", ["garbage-manifest", "truncated-dense", "all-random"])
def test_corrupt_index_is_rebuilt_by_index(capsys: pytest.CaptureFixture[str], own_index: Path, kind: str) -> None:
    _damage(own_index, kind)
    res = run_cli(capsys, "--index-dir", str(own_index), "index")
    assert_ok(res)
    assert res.out.startswith("index built: ")
    assert "重建" in res.err
    assert_index_sound(own_index)
    assert run_cli(capsys, "--index-dir", str(own_index), "index").out.startswith("index up to date: ")


@pytest.mark.parametrize(
    "command",
    ["search-json", "ask", "ask-json", "batch", "search-questions", "eval-retrieval", "eval", "serve"],
)
def test_corrupt_index_every_command(
    capsys: pytest.CaptureFixture[str],
    own_index: Path,
    tmp_path: Path,
    good_questions: Path,
    fake_launch: list[Any],
    command: str,
) -> None:
    _damage(own_index, "all-random")
    argv = {
        "search-json": ["search", "养老院", "--json"],
        "ask": ["ask", ELDERLY_Q, "--backend", "extractive"],
        "ask-json": ["ask", ELDERLY_Q, "--backend", "extractive", "--json"],
        "batch": ["batch", "--questions", str(good_questions), "--out", str(tmp_path / "a.jsonl"), "--backend", "extractive"],
        "search-questions": ["search", "--questions", str(good_questions), "--jsonl", str(tmp_path / "h.jsonl")],
        "eval-retrieval": ["eval", "--retrieval-only", "--questions", str(good_questions)],
        "eval": ["eval", "--questions", str(good_questions), "--backend", "extractive"],
        "serve": ["serve"],
    }[command]
    res = run_cli(capsys, "--index-dir", str(own_index), *argv)
    assert_ok(res)
    if command.endswith("json"):
        json.loads(res.out)  # stdout stays pure JSON while rebuilding
    assert_index_sound(own_index)


def test_index_dir_that_cannot_be_created(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    res = run_cli(capsys, "--index-dir", str(blocker / "sub"), "search", "养老院")
    assert_one_line_error(res, "index", code=1)


def test_stale_index_rebuilds_after_the_corpus_changes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, corpus_copy: Path
) -> None:
    index_dir = tmp_path / "idx"
    base = ["--corpus", str(corpus_copy), "--index-dir", str(index_dir)]
    assert run_cli(capsys, *base, "index").out.startswith("index built: ")

    plan = corpus_copy / PLAN_NAME
    os.utime(plan, (1_000_000_000, 1_000_000_000))  # touched only: same text, nothing to rebuild
    res = run_cli(capsys, *base, "index")
    assert res.out.startswith("index up to date: ")

    text = plan.read_text(encoding="utf-8")
    old = "建设一个区级智慧养老服务平台"
    assert text.count(old) == 1
    plan.write_text(text.replace(old, "建设一个区级银发驿站服务平台"), encoding="utf-8")
    res = run_cli(capsys, *base, "search", "银发驿站", "--mode", "bm25", "-k", "1")
    assert_ok(res)
    assert "过期" in res.err  # says why it rebuilds
    assert res.out.startswith("1. 第十九条 ")
    assert run_cli(capsys, *base, "index").out.startswith("index up to date: ")


# ---------------------------------------------------------------- settings


@pytest.fixture
def every_command(
    tmp_path: Path, good_questions: Path, shared_index: Path, empty_feedback_db: Path
) -> dict[str, list[str]]:
    """Each command with good arguments; the backend comes from the environment (extractive)."""
    return {
        "index": ["index"],
        "outline": ["outline"],
        "search": ["search", "养老院"],
        "search-questions": ["search", "--questions", str(good_questions), "--jsonl", str(tmp_path / "h.jsonl")],
        "ask": ["ask", ELDERLY_Q],
        "batch": ["batch", "--questions", str(good_questions), "--out", str(tmp_path / "a.jsonl")],
        "eval-retrieval": ["eval", "--retrieval-only", "--questions", str(good_questions)],
        "eval": ["eval", "--questions", str(good_questions)],
        "serve": ["serve"],
        "feedback": ["feedback", "export", "--out", str(tmp_path / "fb.csv")],
    }


COMMANDS = ["index", "outline", "search", "search-questions", "ask", "batch", "eval-retrieval", "eval", "serve", "feedback"]


def _config_problem(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str]:
    """(extra global flags, a word the error line must contain)."""
    cfg = tmp_path / "policy-qa.toml"
    if kind == "unknown-key":
        cfg.write_text('backend = "extractive"\ntemprature = 0.2\n', encoding="utf-8")
        return ["--config", str(cfg)], "temprature"
    if kind == "bad-value-in-file":
        cfg.write_text('top_k = "many"\n', encoding="utf-8")
        return ["--config", str(cfg)], "top_k"
    if kind == "not-toml":
        cfg.write_text("top_k = \n[[[", encoding="utf-8")
        return ["--config", str(cfg)], "TOML"
    if kind == "binary-config":
        cfg.write_bytes(b"\xff\xfe\x00\x00")
        return ["--config", str(cfg)], "TOML"
    if kind == "missing-config":
        return ["--config", str(tmp_path / "nope.toml")], "does not exist"
    if kind == "env-config-missing":
        monkeypatch.setenv("POLICY_QA_CONFIG", str(tmp_path / "nope.toml"))
        return [], "does not exist"
    if kind == "top_k=abc":
        monkeypatch.setenv("POLICY_QA_TOP_K", "abc")
        return [], "top_k"
    if kind == "backend=gpt9":
        monkeypatch.setenv("POLICY_QA_BACKEND", "gpt9")
        return [], "gpt9"
    if kind == "port=0":
        monkeypatch.setenv("POLICY_QA_PORT", "0")
        return [], "port"
    if kind == "overlap>size":
        monkeypatch.setenv("POLICY_QA_CHUNK_OVERLAP", "500")
        return [], "chunk_overlap"
    if kind == "timeout=nan-ish":
        monkeypatch.setenv("POLICY_QA_GENERATION_TIMEOUT_S", "soon")
        return [], "generation_timeout_s"
    if kind == "config-in-cwd":
        Path("policy-qa.toml").write_text("bogus = 1\n", encoding="utf-8")
        return [], "bogus"
    raise AssertionError(kind)  # pragma: no cover


CONFIG_PROBLEMS = ["unknown-key", "bad-value-in-file", "not-toml", "binary-config", "missing-config",
                   "env-config-missing", "top_k=abc", "backend=gpt9", "port=0", "overlap>size", "timeout=nan-ish",
                   "config-in-cwd"]  # fmt: skip


@pytest.mark.parametrize("problem", CONFIG_PROBLEMS)
@pytest.mark.parametrize("command", COMMANDS)
def test_bad_settings(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    every_command: dict[str, list[str]],
    shared_index: Path,
    fake_launch: list[Any],
    command: str,
    problem: str,
) -> None:
    flags, word = _config_problem(problem, tmp_path, monkeypatch)
    res = run_cli(capsys, *flags, "--index-dir", str(shared_index), *every_command[command])
    assert_one_line_error(res, word, code=2)
    assert fake_launch == []


def test_every_command_runs_with_good_settings(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    every_command: dict[str, list[str]],
    shared_index: Path,
    fake_launch: list[Any],
) -> None:
    """The control for test_bad_settings: the same argument lists succeed."""
    cfg = tmp_path / "ok.toml"
    cfg.write_text('backend = "extractive"\ntop_k = 4\nmode = "hotline"\n', encoding="utf-8")
    for command in COMMANDS:
        res = run_cli(capsys, "--config", str(cfg), "--index-dir", str(shared_index), *every_command[command])
        assert_ok(res)
    assert len(fake_launch) == 1


def test_sentence_transformers_embedder_needs_a_local_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the real factory here: it must refuse before loading anything
    for name in _EMBEDDER_LOOKUPS:
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "create_embedder"):
            monkeypatch.setattr(mod, "create_embedder", real_create_embedder)
    idx = str(tmp_path / "idx")
    st = ["--embedder", "sentence-transformers"]
    res = run_cli(capsys, *st, "--index-dir", idx, "search", "养老院")
    assert_one_line_error(res, "embedder_model", code=2)
    res = run_cli(capsys, *st, "--embedder-model", str(tmp_path / "no-model"), "--index-dir", idx, "index")
    assert_one_line_error(res, "embedder_model", code=2)
    empty = tmp_path / "empty-model"
    empty.mkdir()
    res = run_cli(capsys, *st, "--embedder-model", str(empty), "--index-dir", idx, "search", "养老院", "--json")
    assert_one_line_error(res, "config.json")


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "-k", "0", "养老院"],
        ["search", "-k", "-3", "养老院"],
        ["search", "-k", "0", "--questions", str(DEV_QUESTIONS), "--jsonl", "out.jsonl"],
        ["eval", "--retrieval-only", "-k", "0", "--questions", str(DEV_QUESTIONS)],
        ["search", "-k", "abc", "养老院"],
        ["search", "--mode", "fuzzy", "养老院"],
        ["ask", ELDERLY_Q, "--backend", "gpt9"],
        ["ask", ELDERLY_Q, "--mode", "poetry"],
        ["ask"],
        ["batch", "--questions", str(DEV_QUESTIONS)],
        ["eval"],
        ["serve", "--port", "http"],
        ["serve", "--port", "0"],
        ["feedback"],
        ["feedback", "export"],
        ["feedback", "import", "--out", "x"],
        ["feedback", "export", "--out", "x.csv", "--format", "xlsx"],
        ["outline", "--yaml"],
        ["frobnicate"],
        [],
        ["--embedder", "word2vec", "outline"],
        ["--index-dir"],
    ],
    ids=lambda a: " ".join(a) or "no-args",
)
def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], shared_index: Path, fake_launch: list[Any], argv: list[str]
) -> None:
    flags = [] if argv[:1] == ["--index-dir"] else ["--index-dir", str(shared_index)]
    res = run_cli(capsys, *flags, *argv)
    assert_one_line_error(res, code=2)
    assert "usage:" not in res.err
    assert fake_launch == []


def test_huge_k_is_fine(capsys: pytest.CaptureFixture[str], shared_index: Path) -> None:
    res = run_cli(capsys, "--index-dir", str(shared_index), "search", "养老院", "-k", "100000", "--json")
    assert_ok(res)
    hits = json.loads(res.out)["hits"]
    assert 10 < len(hits) <= 52  # every unit at most once


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    res = run_cli(capsys, "--help")
    assert res.rc == 0 and "policy-qa" in res.out
    for sub in ("index", "outline", "search", "ask", "batch", "eval", "serve", "feedback"):
        assert sub in res.out
    assert build_parser().prog == "policy-qa"


# ---------------------------------------------------------------- output files


@pytest.mark.parametrize("command", ["batch", "search-questions", "eval-retrieval", "eval", "feedback"])
def test_output_path_is_a_directory(
    capsys: pytest.CaptureFixture[str],
    shared_index: Path,
    tmp_path: Path,
    good_questions: Path,
    empty_feedback_db: Path,
    command: str,
) -> None:
    out_dir = tmp_path / "a-dir"
    out_dir.mkdir()
    argv = {
        "batch": ["batch", "--questions", str(good_questions), "--out", str(out_dir)],
        "search-questions": ["search", "--questions", str(good_questions), "--jsonl", str(out_dir)],
        "eval-retrieval": ["eval", "--retrieval-only", "--questions", str(good_questions), "--out", str(out_dir)],
        "eval": ["eval", "--questions", str(good_questions), "--out", str(out_dir)],
        "feedback": ["feedback", "export", "--out", str(out_dir)],
    }[command]
    res = run_cli(capsys, "--index-dir", str(shared_index), *argv)
    assert_one_line_error(res, "directory", code=2)
    assert list(out_dir.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


@pytest.mark.parametrize("kind", ["garbage-file", "directory"])
def test_feedback_db_unusable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    db = tmp_path / "fb-bad"
    if kind == "directory":
        db.mkdir()
    else:
        db.write_bytes(b"this is not sqlite" * 100)
    monkeypatch.setenv("POLICY_QA_FEEDBACK_DB", str(db))
    res = run_cli(capsys, "feedback", "export", "--out", str(tmp_path / "fb.csv"))
    assert_one_line_error(res, "feedback", code=1)
    assert not (tmp_path / "fb.csv").exists()


@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "binary",
        "not-json",
    ],
)
def test_eval_bad_answers_file(
    capsys: pytest.CaptureFixture[str], shared_index: Path, tmp_path: Path, good_questions: Path, kind: str
) -> None:
    answers = tmp_path / "answers.jsonl"
    if kind == "binary":
        answers.write_bytes(b"\xe2\x28\xa1\x00\xff" * 50)
    elif kind == "not-json":
        answers.write_text('{"id": "q-elderly", \n', encoding="utf-8")
    res = run_cli(
        capsys, "--index-dir", str(shared_index), "eval", "--questions", str(good_questions), "--answers", str(answers)
    )
    assert_one_line_error(res, "answers", code=2)


def test_batch_openai_unreachable_still_answers(
    capsys: pytest.CaptureFixture[str], shared_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    good_questions: Path, plan_text: str,
) -> None:  # fmt: skip
    port = closed_port()
    monkeypatch.setenv("POLICY_QA_OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    out = tmp_path / "answers.jsonl"
    res = run_cli(
        capsys, "--index-dir", str(shared_index), "batch", "--questions", str(good_questions), "--out", str(out),
        "--backend", "openai",
    )  # fmt: skip
    assert_ok(res)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["q-elderly", "q-school"]
    for r in rows:
        check_answer(r, plan_text)
        assert r["backend"] == "extractive" and r["warnings"]
