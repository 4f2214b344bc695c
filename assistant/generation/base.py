"""The generation interface every backend implements, and the request checks they share.

A backend turns chat messages into a stream of text pieces. It knows nothing
about citations: those are attached and verified by the answering stage.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from assistant.errors import InvalidInputError

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": ...}


@dataclass(frozen=True)
class Quote:
    """Text in a request's last message copied from another prompt's stable prefix: ``pieces`` are
    substrings of ``source[-1]["content"]``, and the last message holds them back to back (``text``).
    A backend that saves prefix states may copy their keys and values from ``source``'s saved state
    instead of evaluating them; any other backend reads the last message as it is."""

    source: list[Message]
    pieces: tuple[str, ...]

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@runtime_checkable
class Generator(Protocol):
    @property
    def name(self) -> str:
        """Backend id shown in answers, e.g. 'llama:qwen2.5-coder-1.5b'."""
        ...

    def load(self) -> None:
        """Load the model now (idempotent). Raises ModelError / BackendUnavailableError."""
        ...

    def close(self) -> None:
        """Free what ``load`` took; the next call loads again."""
        ...

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """Yield the reply piece by piece. Raises GenerationError / BackendUnavailableError."""
        ...


ROLES = ("system", "user", "assistant")


def check_request(messages: list[Message], max_tokens: int, temperature: float, stop: list[str] | None) -> None:
    """Validate ``stream()`` arguments the same way for every backend (InvalidInputError naming the bad value)."""
    if not isinstance(messages, list) or not messages:
        raise InvalidInputError("a chat request needs at least one message")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES or not isinstance(msg.get("content"), str):
            raise InvalidInputError(
                f"message {i} must be {{'role': one of {', '.join(ROLES)}, 'content': str}}, got {msg!r:.80}"
            )
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens <= 0:
        raise InvalidInputError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0.0 <= temperature <= 2.0:
        raise InvalidInputError(f"temperature must be between 0 and 2, got {temperature!r}")
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop)):
        raise InvalidInputError(f"stop must be a list of non-empty strings, got {stop!r}")
