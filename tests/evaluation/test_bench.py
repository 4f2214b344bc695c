"""policy-qa bench: summaries, the side-by-side table, the chart fallback and the CLI's argument checks
(the real run needs the model: see the slow test in tests/generation/test_prefix_cache.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assistant.cli import main
from assistant.evaluation.bench import _summary, answerable, format_table, write_chart
from assistant.models import Question


def _pass(label: str, first: list[float], drafts: list[str], prefix: str) -> dict[str, Any]:
    rows = [
        {
            "id": f"q{i}",
            "excerpts_ms": 100.0,
            "first_token_ms": f,
            "total_ms": f + 3000,
            "tokens_per_s": 12.0,
            "prefix": prefix,
            "draft": d,
        }
        for i, (f, d) in enumerate(zip(first, drafts, strict=True))
    ]
    quality = {"citation_precision": 0.9, "citation_recall": 0.8, "false_refusal_rate": 0.0}
    return {"label": label, "rows": rows, "states": {"disk_states": 2, "disk_bytes": 3 * 2**20}, "quality": quality}


def test_table_compares_paths_side_by_side(tmp_path: Path) -> None:
    old = _pass("old", [9000.0, 11000.0], ["甲", "乙"], "off")
    new = _pass("new-saved", [800.0, 1200.0], ["甲", "丙"], "restored")
    result = {"summary": [_summary(old, None), _summary(new, old)]}
    assert result["summary"][1]["identical_drafts"] == 1
    assert result["summary"][1]["first_token_ms"]["p50"] == 1000.0
    table = format_table(result)
    assert "old" in table and "new-saved" in table and "1/2" in table and "restored=2" in table
    assert "2 on disk (3.0 MB)" in table
    message = write_chart(result, tmp_path / "chart.png")
    assert message == f"chart written to {tmp_path / 'chart.png'}"
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")  # matplotlib is a dependency


def test_only_answerable_questions_are_benchmarked() -> None:
    qs = [Question(id="a", question="x", gold_articles=(19,)), Question(id="b", question="y", gold_articles=())]
    assert [q.id for q in answerable(qs)] == ["a"]


def test_bench_needs_the_llama_backend_and_a_positive_limit(capsys: Any) -> None:
    assert main(["bench", "--limit", "0"]) != 0
    assert "--limit" in capsys.readouterr().err
