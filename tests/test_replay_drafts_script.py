"""eval/replay_drafts.py: a stored answer recomposed from its draft with the same code is the same answer; a
draft the current code treats differently gives the answer the pipeline would give (no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.answering.pipeline import Assistant
from assistant.config import load_settings
from assistant.evaluation.scripts import eval_script

from conftest import FakeEmbedder, ScriptedGenerator

replay_drafts = eval_script("replay_drafts")
QUESTION = "区里的养老机构安全有什么要求？"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("index")


def _assistant(index_dir: Path, reply: str | None = None) -> Assistant:
    backend = "extractive" if reply is None else "llama"
    settings = load_settings(None, env={}, index_dir=index_dir, backend=backend)
    return Assistant(settings, embedder=FakeEmbedder(), generator=None if reply is None else ScriptedGenerator(reply))


def _cited(row: dict) -> list[tuple[int | None, str]]:
    return [(c["article"], c["quote"]) for c in row["citations"]]


def test_a_stored_answer_replays_to_the_same_answer(index_dir: Path) -> None:
    row = _assistant(index_dir, "规划提出要加强养老机构安全监管，确保养老机构安全平稳运行。").ask(QUESTION).to_dict("q1")
    assert row["draft"] and row["citations"]
    again = replay_drafts.replay(_assistant(index_dir), row)
    assert _cited(again) == _cited(row) and again["abstained"] == row["abstained"] and again["answer"] == row["answer"]


def test_a_changed_draft_gets_the_answer_the_pipeline_gives(index_dir: Path) -> None:
    made_up = "区里的养老机构共有3800张床位，每年新增500张。"
    stored = _assistant(index_dir, "规划提出要加强养老机构安全监管，确保养老机构安全平稳运行。").ask(QUESTION).to_dict("q2")
    live = _assistant(index_dir, made_up).ask(QUESTION).to_dict("q2")
    replayed = replay_drafts.replay(_assistant(index_dir), {**stored, "draft": made_up})
    assert live["abstained"] and replayed["abstained"] and replayed["reason"] == live["reason"]


def test_an_answer_without_a_draft_is_kept(index_dir: Path) -> None:
    row = {"id": "q3", "question": "你好", "draft": "", "citations": [], "abstained": True, "backend": "guard"}
    assert replay_drafts.replay(_assistant(index_dir), row) is row


def test_a_missing_answers_file_is_a_message_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert replay_drafts.main(["--answers", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "out.jsonl")]) == 2
    assert "no answers file" in capsys.readouterr().err


def test_a_malformed_answers_file_is_named_and_nothing_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "answers.jsonl"
    out = tmp_path / "out.jsonl"
    bad.write_text('{"id": "q1"}\n', encoding="utf-8")
    assert replay_drafts.main(["--answers", str(bad), "--out", str(out)]) == 2
    assert "line 1 is not a policy-qa answer" in capsys.readouterr().err and not out.exists()
    bad.write_text("not json\n", encoding="utf-8")
    assert replay_drafts.main(["--answers", str(bad), "--out", str(out)]) == 2
    assert "line 1 is not JSON" in capsys.readouterr().err and not out.exists()


class _CharTokenizer:
    """One token per character: enough to check where a draft is cut."""

    def tokenize(self, text: bytes, add_bos: bool = False, special: bool = False) -> list[int]:
        return [ord(ch) for ch in text.decode("utf-8")]

    def detokenize(self, tokens: list[int]) -> bytes:
        return "".join(chr(t) for t in tokens).encode("utf-8")


def test_a_draft_cut_at_the_token_limit_is_replayed_as_the_pipeline_would_finish_it(index_dir: Path) -> None:
    draft = "规划提出要加强养老机构安全监管和服务质量提升，确保养老机构安全平稳运行。"  # the plan's words
    row = _assistant(index_dir, draft).ask(QUESTION).to_dict("q5")
    assert replay_drafts.cut_draft(row, 100, _CharTokenizer()) is row  # shorter than the limit: as it is
    cut = replay_drafts.cut_draft(row, 26, _CharTokenizer())
    assert cut["draft"] == draft[:26]
    live = _assistant(index_dir, draft[:26]).ask(QUESTION).to_dict("q5")
    replayed = replay_drafts.replay(_assistant(index_dir), cut)
    assert replayed["answer"] == live["answer"] and _cited(replayed) == _cited(live)
    assert "平稳运行" in replayed["answer"]  # the cut sentence was finished from the plan, as live


def test_a_negative_token_limit_is_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answers = tmp_path / "a.jsonl"
    answers.write_text("", encoding="utf-8")
    assert replay_drafts.main(["--answers", str(answers), "--out", str(tmp_path / "o.jsonl"), "--max-tokens", "-1"]) == 2
    assert "--max-tokens" in capsys.readouterr().err and not (tmp_path / "o.jsonl").exists()
