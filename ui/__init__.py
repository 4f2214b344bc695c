"""The Gradio chat app: a thin face over ``assistant`` (all answering logic lives there).

``render`` makes the HTML (no gradio), ``app`` lays out the page and handles its
events, ``server`` serves it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# Gradio reads these when it is imported, and every gradio import here comes after
# this package's __init__: no analytics, no hub calls, ever.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

if TYPE_CHECKING:
    from .app import build_app
    from .server import launch, serve

__all__ = ["build_app", "launch", "serve"]
_HOME = {"build_app": "app", "launch": "server", "serve": "server"}


def __getattr__(name: str) -> Any:
    # Importing gradio takes seconds; only pay for it when the UI is actually used.
    if name in _HOME:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(name)
