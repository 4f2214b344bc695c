"""OpenAI-compatible backend: SSE parsing, error mapping against a scripted loopback
server, and (slow) a real llama.cpp OpenAI server running the small shipped model."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from assistant.config import Settings, load_settings
from assistant.errors import BackendUnavailableError, ConfigError, GenerationError, InvalidInputError
from assistant.generation import create_generator
from assistant.generation.openai import OpenAIGenerator, iter_chat_deltas, iter_sse_data
from assistant.generation.shipped_models import ensure_model

from helpers_llm import CHINESE_PROMPT, SMALL_MODEL, free_port, has_cjk, llama_server

USER = [{"role": "user", "content": "你好"}]


def chunk(content: str | None = None, finish: str | None = None) -> str:
    delta = {} if content is None else {"content": content}
    return json.dumps(
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    )


# --- SSE parsing -------------------------------------------------------------------------------


def test_sse_events_are_split_on_blank_lines_and_multiline_data_joined() -> None:
    lines = [": keep-alive", "data: one", "", "event: x", "data:two", "data:  three", "", "id: 5", "", "data: last"]
    assert list(iter_sse_data(lines)) == ["one", "two\n three", "last"]


def test_sse_tolerates_crlf_line_ends() -> None:
    assert list(iter_sse_data(["data: a\r\n", "\r\n", "data: b\r\n"])) == ["a", "b"]


def test_chat_deltas_yield_content_and_stop_at_done() -> None:
    payloads = [chunk(""), chunk("合肥"), chunk(None), chunk("是省会"), chunk(None, "stop"), "[DONE]", chunk("after")]
    assert list(iter_chat_deltas(payloads, "u")) == ["合肥", "是省会"]


def test_chat_deltas_accept_a_finish_reason_without_done_and_usage_chunks() -> None:
    usage_only = json.dumps({"choices": [], "usage": {"total_tokens": 3}})
    assert list(iter_chat_deltas([chunk("a", "length"), usage_only], "u")) == ["a"]


@pytest.mark.parametrize(
    ("payloads", "message"),
    [
        (["not json"], "malformed stream from http://x: not JSON"),
        (["[1, 2]"], "expected a JSON object"),
        (['{"id": 1}'], "without 'choices'"),
        (['{"choices": [{"text": "a"}]}'], "without 'delta'"),
        (['{"error": {"message": "model crashed"}}'], "failed while answering: model crashed"),
        ([chunk("a")], "ended before the reply was finished"),
        ([], "ended before the reply was finished"),
    ],
)
def test_chat_deltas_reject_bad_streams(payloads: list[str], message: str) -> None:
    with pytest.raises(GenerationError, match=message):
        list(iter_chat_deltas(payloads, "http://x"))


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["", "localhost:8000", "ftp://host/v1", "http://"])
def test_bad_base_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="openai_base_url"):
        OpenAIGenerator(url, "m")


def test_from_settings_and_factory(tmp_path: Path) -> None:
    settings = load_settings(
        config_file=None,
        env={"POLICY_QA_OPENAI_API_KEY": "sk-secret"},
        backend="openai",
        openai_base_url="http://127.0.0.1:9/v1/",
        openai_model="qwen",
        cache_dir=tmp_path,
    )
    assert settings.openai_api_key == "sk-secret"
    gen = create_generator(settings)
    assert isinstance(gen, OpenAIGenerator)
    assert gen.name == "openai:qwen"
    assert gen.url == "http://127.0.0.1:9/v1/chat/completions"
    assert "sk-secret" not in repr(gen)


def test_invalid_request_arguments_fail_before_any_network() -> None:
    gen = OpenAIGenerator("http://127.0.0.1:9/v1", "m")
    with pytest.raises(InvalidInputError, match="at least one message"):
        gen.stream([], max_tokens=5)
    with pytest.raises(InvalidInputError, match="max_tokens"):
        gen.stream(USER, max_tokens=0)
    with pytest.raises(InvalidInputError, match="message 0"):
        gen.stream([{"role": "robot", "content": "x"}], max_tokens=5)


def test_closed_port_is_backend_unavailable_quickly() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    gen = OpenAIGenerator(url, "m", timeout_s=30)
    start = time.monotonic()
    with pytest.raises(BackendUnavailableError, match=f"cannot reach the OpenAI-compatible server at {url}"):
        list(gen.stream(USER, max_tokens=5))
    assert time.monotonic() - start < 3


# --- a scripted loopback server -------------------------------------------------------------------------

Script = Callable[[BaseHTTPRequestHandler, dict], None]


def sse(handler: BaseHTTPRequestHandler, events: list[str], delay: float = 0.0) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.end_headers()
    for event in events:
        handler.wfile.write(f"data: {event}\n\n".encode())
        handler.wfile.flush()
        time.sleep(delay)


def status(code: int, body: str) -> Script:
    def reply(handler: BaseHTTPRequestHandler, request: dict) -> None:
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body.encode())))
        handler.end_headers()
        handler.wfile.write(body.encode())

    return reply


class Stub:
    def __init__(self) -> None:
        self.script: Script = lambda h, r: sse(h, [chunk("好", "stop"), "[DONE]"])
        self.requests: list[tuple[dict, dict]] = []


@pytest.fixture
def stub() -> Iterator[tuple[Stub, str]]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append((dict(self.headers), body))
            if self.path != "/v1/chat/completions":
                status(404, '{"error": {"message": "no route"}}')(self, body)
                return
            state.script(self, body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_request_body_and_headers(stub: tuple[Stub, str]) -> None:
    state, url = stub
    gen = OpenAIGenerator(url, "local", api_key="sk-1")
    assert list(gen.stream(USER, max_tokens=7, temperature=0.3, stop=["\n\n"])) == ["好"]
    headers, body = state.requests[0]
    assert body == {
        "model": "local",
        "messages": USER,
        "max_tokens": 7,
        "temperature": 0.3,
        "stream": True,
        "stop": ["\n\n"],
    }
    assert headers["Authorization"] == "Bearer sk-1"
    assert list(OpenAIGenerator(url, "local").stream(USER, max_tokens=7)) == ["好"]
    assert "Authorization" not in state.requests[1][0]
    assert "stop" not in state.requests[1][1]


@pytest.mark.parametrize(
    ("code", "body", "error", "message"),
    [
        (404, '{"error": {"message": "model nope not found"}}', GenerationError, r"HTTP 404: model nope not found \(check"),
        (401, '{"error": "bad key"}', GenerationError, r"HTTP 401: bad key \(check setting 'openai_api_key'\)"),
        (500, "<html>Internal   Server\nError</html>", GenerationError, "HTTP 500: <html>Internal Server Error</html>"),
        (503, "loading model", BackendUnavailableError, "HTTP 503: loading model"),
    ],
)  # fmt: skip
def test_http_errors_name_the_url_and_status(
    stub: tuple[Stub, str], code: int, body: str, error: type[Exception], message: str
) -> None:
    state, url = stub
    state.script = status(code, body)
    with pytest.raises(error, match=message) as info:
        list(OpenAIGenerator(url, "m").stream(USER, max_tokens=5))
    assert f"{url}/chat/completions" in str(info.value)
    assert "\n" not in str(info.value)


def test_wrong_path_is_a_404_generation_error(stub: tuple[Stub, str]) -> None:
    _, url = stub
    with pytest.raises(GenerationError, match="HTTP 404: no route"):
        list(OpenAIGenerator(url.removesuffix("/v1"), "m").stream(USER, max_tokens=5))


def test_malformed_stream_from_server(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.script = lambda h, r: sse(h, [chunk("a"), "{oops"])
    gen = OpenAIGenerator(url, "m")
    pieces: list[str] = []
    with pytest.raises(GenerationError, match="malformed stream"):
        pieces.extend(gen.stream(USER, max_tokens=5))
    assert pieces == ["a"]


def test_stream_cut_short_by_the_server(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.script = lambda h, r: sse(h, [chunk("a"), chunk("b")])  # then the connection closes
    with pytest.raises(GenerationError, match="ended before the reply was finished"):
        list(OpenAIGenerator(url, "m").stream(USER, max_tokens=5))


def test_silent_server_times_out(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.script = lambda h, r: time.sleep(3)
    start = time.monotonic()
    with pytest.raises(GenerationError, match=r"did not answer within 0.5s"):
        list(OpenAIGenerator(url, "m", timeout_s=0.5).stream(USER, max_tokens=5))
    assert time.monotonic() - start < 2.5


def test_slow_trickle_hits_the_overall_deadline(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.script = lambda h, r: sse(h, [chunk(str(i)) for i in range(40)] + [chunk(None, "stop")], delay=0.05)
    with pytest.raises(GenerationError, match="did not finish within 0.6s"):
        list(OpenAIGenerator(url, "m", timeout_s=0.6).stream(USER, max_tokens=5))


def test_one_client_serves_concurrent_streams(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.script = lambda h, r: sse(h, [chunk(r["messages"][0]["content"]), chunk("!", "stop"), "[DONE]"], delay=0.05)
    gen = OpenAIGenerator(url, "m")
    results: dict[int, str] = {}

    def ask(i: int) -> None:
        results[i] = "".join(gen.stream([{"role": "user", "content": f"q{i}"}], max_tokens=5))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: f"q{i}!" for i in range(4)}


# --- a real OpenAI-compatible server (llama-cpp-python's) on loopback -------------------------------------


@pytest.fixture(scope="module")
def llama_openai_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = ensure_model(SMALL_MODEL, tmp_path_factory.getbasetemp() / "shipped-models")
    with llama_server(model) as base_url:
        yield base_url


@pytest.mark.slow
def test_real_server_streams_a_chinese_reply(llama_openai_server: str) -> None:
    gen = OpenAIGenerator.from_settings(
        Settings(backend="openai", openai_base_url=llama_openai_server, openai_model="local", generation_timeout_s=120)
    )
    pieces = list(gen.stream(CHINESE_PROMPT, max_tokens=12))
    assert len(pieces) >= 2  # streamed, not one blob
    assert has_cjk("".join(pieces))


@pytest.mark.slow
def test_real_server_honours_stop_and_max_tokens(llama_openai_server: str) -> None:
    gen = OpenAIGenerator(llama_openai_server, "local", timeout_s=120)
    counting = [{"role": "user", "content": "从1数到20，用英文逗号分隔，只输出数字。"}]
    text = "".join(gen.stream(counting, max_tokens=30, stop=["5"]))
    assert text.startswith("1") and "4" in text and "5" not in text
    short = list(gen.stream(counting, max_tokens=3))
    assert 1 <= len(short) <= 3
