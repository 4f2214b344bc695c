"""eval/doubt_scores.py: the model's doubt is read for every answered draft, on the prompt that wrote it;
declined answers and answers without a draft are skipped, and an English one gets no score (as in the product)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.answering.compose import UNVERIFIED_DRAFT_WARNING
from assistant.answering.pipeline import Assistant
from assistant.answering.prompt import NOT_IN_PLAN_MARK
from assistant.config import load_settings
from assistant.evaluation.scripts import eval_script
from assistant.generation import Message

from conftest import FakeEmbedder, ScriptedGenerator

doubt_scores = eval_script("doubt_scores")
QUESTION = "区里的养老机构安全有什么要求？"


class DoubtfulGenerator(ScriptedGenerator):
    """Scores every reply opening at -3.5 and keeps the prompts it was asked about."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.scored: list[tuple[list[Message], str]] = []

    def reply_logprob(self, messages: list[Message], start: str) -> float:
        self.scored.append((messages, start))
        return {"有": -0.5, "没有": -2.0}.get(start, -3.5)


def _assistant(tmp_path: Path, generator: ScriptedGenerator) -> Assistant:
    settings = load_settings(None, env={}, index_dir=tmp_path / "index", backend="llama")
    return Assistant(settings, embedder=FakeEmbedder(), generator=generator)


def test_an_answered_draft_is_scored_on_the_prompt_that_wrote_it(tmp_path: Path) -> None:
    generator = DoubtfulGenerator("规划提出要加强养老机构安全监管，确保养老机构安全平稳运行。")
    assistant = _assistant(tmp_path, generator)
    row = assistant.ask(QUESTION).to_dict("q1")
    assert row["draft"] and not row["abstained"]
    generator.scored.clear()
    out = doubt_scores.score(assistant, row)
    assert out == {"id": "q1", "verified": True, "logprob": -3.5}
    ((messages, start),) = generator.scored
    assert start == NOT_IN_PLAN_MARK and messages == generator.calls[-1]  # the prompt that wrote the draft
    # a fallback answer (nothing in the draft verified) is marked as such
    fallback = {**row, "warnings": [UNVERIFIED_DRAFT_WARNING]}
    assert doubt_scores.score(assistant, fallback)["verified"] is False
    assert doubt_scores.score(assistant, {**row, "warnings": None})["verified"] is True


def test_declined_and_english_answers(tmp_path: Path) -> None:
    generator = DoubtfulGenerator("规划提出要加强养老机构安全监管。")
    assistant = _assistant(tmp_path, generator)
    row = assistant.ask(QUESTION).to_dict("q2")
    assert doubt_scores.score(assistant, {**row, "abstained": True}) is None
    assert doubt_scores.score(assistant, {**row, "draft": ""}) is None
    generator.scored.clear()
    assert doubt_scores.score(assistant, {**row, "language": "en"}) == {"id": "q2", "verified": True, "logprob": None}
    assert generator.scored == []


def test_bad_files_are_a_message_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.jsonl"
    assert doubt_scores.main(["--answers", str(tmp_path / "none.jsonl"), "--out", str(out)]) == 2
    assert "no answers file" in capsys.readouterr().err
    bad = tmp_path / "answers.jsonl"
    bad.write_text(json.dumps({"id": "q1"}) + "\n", encoding="utf-8")
    assert doubt_scores.main(["--answers", str(bad), "--out", str(out)]) == 2
    assert "line 1 is not a policy-qa answer" in capsys.readouterr().err and not out.exists()


def test_the_judge_asks_about_the_same_text_with_only_the_request_replaced(tmp_path: Path) -> None:
    generator = DoubtfulGenerator("规划提出要加强养老机构安全监管，确保养老机构安全平稳运行。")
    assistant = _assistant(tmp_path, generator)
    row = assistant.ask(QUESTION).to_dict("q3")
    generator.scored.clear()
    out = doubt_scores.score(assistant, row, judge=True)
    assert out is not None and (out["logprob"], out["judge_yes"], out["judge_no"]) == (-3.5, -0.5, -2.0)
    (answer_prompt, _), (judged, yes), (judged_again, no) = generator.scored
    assert (yes, no) == (doubt_scores.JUDGE_YES, doubt_scores.JUDGE_NO) and judged == judged_again
    assert judged[:-1] == answer_prompt[:-1]  # the rules and the unit: the same cached prefix
    asked, original = judged[-1]["content"], answer_prompt[-1]["content"]
    assert asked.endswith(doubt_scores.JUDGE_ASK) and QUESTION in asked
    assert asked.removesuffix(doubt_scores.JUDGE_ASK) == original[: original.rindex("\n") + 1]
