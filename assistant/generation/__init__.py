"""Generation backends: one interface (``base``), one module per backend, a tiny factory.

The ``extractive`` backend has no language model at all: the answering stage
composes the answer from the retrieved sentences, so the factory returns None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assistant.generation.base import Generator, Message, Quote, check_request

if TYPE_CHECKING:
    from assistant.config import Settings

__all__ = ["Generator", "Message", "Quote", "check_request", "create_generator"]


def create_generator(settings: Settings) -> Generator | None:
    """The generator for ``settings.backend``; None for the extractive backend."""
    from assistant.errors import ConfigError

    if settings.backend == "extractive":
        return None
    if settings.backend == "llama":
        from assistant.generation.llama import LlamaGenerator

        return LlamaGenerator.from_settings(settings)
    if settings.backend == "transformers":
        from assistant.generation.transformers import TransformersGenerator

        return TransformersGenerator.from_settings(settings)
    if settings.backend == "openai":
        from assistant.generation.openai import OpenAIGenerator

        return OpenAIGenerator.from_settings(settings)
    raise ConfigError(f"setting 'backend' = {settings.backend!r} is not a known backend")
