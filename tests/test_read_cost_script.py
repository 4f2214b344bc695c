"""eval/read_cost.py: it times what it says, for every size asked, with the real small model."""

from __future__ import annotations

import json

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


def test_sizes_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert read_cost.main(["--tokens", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
