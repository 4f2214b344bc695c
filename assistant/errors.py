"""Domain errors. Raised deep inside; turned into one-line user messages only at
the edges (CLI, UI). Every message says what went wrong and, where possible,
how to fix it."""

from __future__ import annotations


class AssistantError(Exception):
    """Base class: ``str(err)`` is a message fit to show a user."""

    exit_code = 1


class ConfigError(AssistantError):
    """A setting has a bad value (the message names the setting and the value)."""

    exit_code = 2


class InvalidInputError(AssistantError):
    """A question or input file the assistant cannot use (empty, binary, too long)."""

    exit_code = 2


class CorpusError(AssistantError):
    """The corpus is missing, unreadable, or does not parse into chapters/articles."""


class IndexStoreError(AssistantError):
    """The index is missing or corrupt (the caller may rebuild it)."""


class MissingDependencyError(AssistantError):
    """An optional package is not installed; the message says how to install it."""


class ModelError(AssistantError):
    """A model file is missing, truncated, has the wrong checksum, or failed to load."""


class GenerationError(AssistantError):
    """The language model failed or timed out while answering."""


class BackendUnavailableError(GenerationError):
    """A generation backend cannot be reached (e.g. an OpenAI-compatible server is down)."""


def require(module: str, extra_hint: str) -> object:
    """Import an optional module or raise a MissingDependencyError saying how to fix it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"Python package '{module}' is not installed ({exc}). Fix: {extra_hint}"
        ) from exc
