"""eval/load.py: loopback only, and real figures from a real Gradio ``/ask`` endpoint."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from assistant.evaluation.scripts import eval_script

load = eval_script("load")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:7860", "http://127.0.0.2:80/", "http://[::1]:7860", "http://localhost:7911"]
)
def test_loopback_urls_are_accepted(url: str) -> None:
    assert load.loopback_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com:7860",
        "http://10.0.0.1:7860",
        "http://0.0.0.0:7860",
        "http://127.0.0.1.nip.io:7860",
        "http://localhost.evil.cn:7860",
        "ftp://127.0.0.1/",
        "127.0.0.1:7860",
        "http://user@192.168.1.1:7860",
    ],
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(SystemExit, match="error"):
        load.loopback_url(url)


def test_table_shows_empty_levels() -> None:
    row = {"clients": 4, "requests": 0, "errors": 0, "p50_s": None, "p95_s": None, "max_s": None, "throughput_rps": 0.0}
    assert "  4" in load.table([row])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_drives_a_gradio_ask_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gr = pytest.importorskip("gradio")
    pytest.importorskip("gradio_client")

    def ask(question: str, history_json: str = "[]", mode: str = "resident") -> dict:
        if question == "boom":
            return {"error": "bad question"}
        return {"text": question, "abstained": mode == "hotline", "history": json.loads(history_json)}

    with gr.Blocks(analytics_enabled=False) as app:
        gr.api(ask, api_name="ask")
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        questions = tmp_path / "q.jsonl"
        questions.write_text(
            '{"id": "a", "question": "养老", "history": [{"role": "user", "content": "你好"}]}\n'
            '{"id": "b", "question": "boom"}\n',
            encoding="utf-8",
        )
        out = tmp_path / "figures.json"
        argv = ["--url", f"http://127.0.0.1:{port}", "--clients", "1", "2", "--seconds", "30", "--requests", "6"]
        rc = load.main([*argv, "--questions", str(questions), "--mode", "hotline", "--out", str(out)])
    finally:
        app.close()
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert rc == 1  # "boom" answers {"error": ...}: errors make the run fail
    assert [lv["clients"] for lv in figures["levels"]] == [1, 2]
    for level in figures["levels"]:
        assert level["requests"] == 6 and level["errors"] == 3 and level["abstained"] == 3
        assert 0 < level["p50_s"] <= level["p95_s"] <= level["max_s"]
        assert level["throughput_rps"] > 0
        assert level["error_samples"] == ["error reply: bad question"]
    printed = capsys.readouterr().out
    assert "answers/s" in printed
    assert json.JSONDecoder().raw_decode(printed[printed.index("{") :])[0] == figures
