"""Generation through any OpenAI-compatible chat endpoint (vLLM, llama.cpp's
server, Ollama, ...), streamed as server-sent events over httpx.

Every failure becomes a one-line domain error that names the URL: the server
cannot be reached (BackendUnavailableError), or it answered with an HTTP
error, a malformed stream, or too slowly (GenerationError).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from assistant.errors import BackendUnavailableError, ConfigError, GenerationError, MissingDependencyError
from assistant.generation import Message, check_request

if TYPE_CHECKING:
    import httpx

    from assistant.config import Settings

_ERROR_BODY_CHARS = 300


def iter_sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The ``data`` payload of each server-sent event in ``lines``.

    Follows the SSE rules that matter here: an event ends at a blank line,
    several ``data:`` lines in one event are joined with newlines, lines
    starting with ``:`` are comments (keep-alives), other fields are ignored.
    """
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def iter_chat_deltas(payloads: Iterable[str], url: str) -> Iterator[str]:
    """Text pieces from OpenAI ``chat.completion.chunk`` payloads; stops at ``[DONE]``.

    Raises GenerationError for a payload that is not a chunk, an error object
    sent mid-stream, or a stream that ends before the reply is finished.
    """
    finished = False
    for payload in payloads:
        if payload.strip() == "[DONE]":
            return
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise GenerationError(f"malformed stream from {url}: not JSON: {payload[:80]!r}") from None
        if not isinstance(chunk, dict):
            raise GenerationError(f"malformed stream from {url}: expected a JSON object, got {payload[:80]!r}")
        if "error" in chunk:
            raise GenerationError(f"server at {url} failed while answering: {_error_text(chunk['error'])}")
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise GenerationError(f"malformed stream from {url}: chunk without 'choices': {payload[:80]!r}")
        if not choices:  # e.g. a final usage-only chunk
            continue
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            raise GenerationError(f"malformed stream from {url}: choice without 'delta': {payload[:80]!r}")
        content = delta.get("content")
        if isinstance(content, str) and content:
            yield content
        if choice.get("finish_reason"):
            finished = True
    if not finished:
        raise GenerationError(f"stream from {url} ended before the reply was finished")


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        error = error.get("message", error)
    return " ".join(str(error).split())[:_ERROR_BODY_CHARS]


def _check_base_url(base_url: str) -> str:
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"setting 'openai_base_url' = {base_url!r} must be an http:// or https:// URL")
    return base_url.strip().rstrip("/")


class OpenAIGenerator:
    """Streams chat completions from ``<base_url>/chat/completions``."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout_s: float = 90.0,
        *,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.base_url = _check_base_url(base_url)
        if not model.strip():
            raise ConfigError("setting 'openai_model' must not be empty")
        if timeout_s <= 0 or connect_timeout_s <= 0:
            raise ConfigError(f"timeouts must be positive, got timeout_s={timeout_s!r}, connect={connect_timeout_s!r}")
        self.model = model.strip()
        self.url = f"{self.base_url}/chat/completions"
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = min(float(connect_timeout_s), self.timeout_s)
        self._api_key = api_key
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIGenerator:
        return cls(
            settings.openai_base_url,
            settings.openai_model,
            settings.openai_api_key,
            settings.generation_timeout_s,
        )

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    def __repr__(self) -> str:  # never shows the API key
        return f"OpenAIGenerator(url={self.url!r}, model={self.model!r})"

    def load(self) -> None:
        """Nothing to load: the model lives on the server. The client is made on first use."""
        self._http()

    def _http(self) -> httpx.Client:
        with self._client_lock:
            return self._client or self._new_client()

    def _new_client(self) -> httpx.Client:
        try:
            import httpx
        except ImportError as exc:
            raise MissingDependencyError(f"the openai backend needs httpx ({exc}). Fix: pip install httpx") from exc
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        # httpx.Client is thread-safe, so one client (one connection pool) serves all users.
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s),
        )
        return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        check_request(messages, max_tokens, temperature, stop)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
        }
        if stop:
            body["stop"] = stop
        return self._stream(body)

    def _stream(self, body: dict[str, Any]) -> Iterator[str]:
        import httpx

        client = self._http()
        deadline = time.monotonic() + self.timeout_s
        try:
            with client.stream("POST", self.url, json=body) as response:
                if response.status_code >= 400:
                    raise self._http_error(response)
                yield from iter_chat_deltas(iter_sse_data(self._lines(response, deadline)), self.url)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                raise BackendUnavailableError(
                    f"cannot reach the OpenAI-compatible server at {self.url}: connection timed out"
                ) from exc
            raise GenerationError(f"server at {self.url} did not answer within {self.timeout_s:g}s") from exc
        except httpx.ConnectError as exc:
            raise BackendUnavailableError(
                f"cannot reach the OpenAI-compatible server at {self.url} ({_one_line(exc)}); "
                "start it or fix setting 'openai_base_url'"
            ) from exc
        except httpx.HTTPError as exc:  # connection dropped, bad protocol, ...
            raise BackendUnavailableError(f"lost the connection to {self.url}: {_one_line(exc)}") from exc

    def _lines(self, response: httpx.Response, deadline: float) -> Iterator[str]:
        # httpx's read timeout is per chunk; this bounds the whole reply (keep-alives included).
        for line in response.iter_lines():
            if time.monotonic() > deadline:
                raise GenerationError(f"server at {self.url} did not finish within {self.timeout_s:g}s")
            yield line

    def _http_error(self, response: httpx.Response) -> GenerationError:
        try:
            response.read()
            text = response.text
            try:
                detail = _error_text(json.loads(text).get("error", text))
            except (ValueError, AttributeError):
                detail = _error_text(text)
        except Exception:  # the body is only decoration for the message
            detail = ""
        message = f"server at {self.url} answered HTTP {response.status_code}" + (f": {detail}" if detail else "")
        if response.status_code in (502, 503, 504):
            return BackendUnavailableError(message)
        if response.status_code in (401, 403):
            message += " (check setting 'openai_api_key')"
        elif response.status_code == 404:
            message += " (check settings 'openai_base_url' and 'openai_model')"
        return GenerationError(message)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
