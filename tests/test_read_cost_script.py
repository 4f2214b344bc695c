"""eval/read_cost.py: it times what it says, for every size asked, with the real small model."""

from __future__ import annotations

import json
import time

import pytest

from assistant.evaluation.scripts import eval_script

from helpers_llm import SMALL_MODEL

read_cost = eval_script("read_cost")


@pytest.mark.slow
def test_one_row_per_size_asked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.setenv("POLICY_QA_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "shipped-models"))  # assembled once
    assert read_cost.main(["--tokens", "8", "1", "8", "--context", "64", "--repeats", "1", "--llm-model", SMALL_MODEL]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["context"] == 64 and [r["tokens"] for r in report["rows"]] == [1, 8]
    assert all(r["ms"] > 0 and r["ms_per_token"] == round(r["ms"] / r["tokens"], 1) for r in report["rows"])


class RecordingModel:
    """Stands in for llama_cpp.Llama: records calls; reading the n tokens after the context takes n ms."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def reset(self) -> None:
        self.calls.append(("reset", 0))

    def eval(self, tokens: list[int]) -> None:
        self.calls.append(("eval", len(tokens)))
        if tokens and tokens[0] >= 1000:  # the text after the context
            time.sleep(len(tokens) / 1000)


def test_each_size_is_read_after_the_context_from_a_reset_and_timed_alone() -> None:
    model = RecordingModel()
    rows = read_cost.read_cost(model, list(range(5)), list(range(1000, 1100)), [3, 40], repeats=2)
    assert model.calls == [("reset", 0), ("eval", 5), ("eval", 3)] * 2 + [("reset", 0), ("eval", 5), ("eval", 40)] * 2
    assert [r["tokens"] for r in rows] == [3, 40]
    assert 3 <= rows[0]["ms"] < 40 <= rows[1]["ms"]  # the context's read is not timed, the text's is


def test_sizes_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert read_cost.main(["--tokens", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
