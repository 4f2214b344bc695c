"""The Gradio chat app: a thin face over ``assistant`` (all answering logic lives there)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import build_app, launch, serve

__all__ = ["build_app", "launch", "serve"]


def __getattr__(name: str) -> Any:
    # Importing gradio takes seconds; only pay for it when the UI is actually used.
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
