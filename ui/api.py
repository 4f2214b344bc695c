"""The ``/ask`` machine interface: argument parsing and the API function (no layout, no rendering).

What an API client sees is ``Answer.to_dict()`` or ``{"error": message}``. An error message is
either the input check's own sentence (``InvalidInputError``: it says what to fix) or one plain
sentence; the details of anything else (paths, URLs, command lines, server replies) go to the log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import gradio as gr

from assistant.config import Settings
from assistant.errors import InvalidInputError
from assistant.generation.slots import TicketLock
from assistant.models import ChatTurn
from ui.limits import BUSY_MESSAGE, FAILED_MESSAGE, SessionLimit, session_of
from ui.render import MODES

if TYPE_CHECKING:
    from assistant.answering.pipeline import Assistant

log = logging.getLogger(__name__)


def parse_history(history_json: str) -> list[ChatTurn]:
    """history_json → ChatTurns; InvalidInputError with a clear message for anything malformed."""
    if history_json is None or (isinstance(history_json, str) and not history_json.strip()):
        return []
    if not isinstance(history_json, str):
        raise InvalidInputError("history_json must be a JSON string")
    try:
        data = json.loads(history_json)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"history_json is not valid JSON: {exc.msg} (position {exc.pos})") from exc
    if not isinstance(data, list):
        raise InvalidInputError('history_json must be a JSON list of {"role", "content"} objects')
    out: list[ChatTurn] = []
    for i, turn in enumerate(data):
        if (
            not isinstance(turn, dict)
            or turn.get("role") not in ("user", "assistant")
            or not isinstance(turn.get("content"), str)
        ):
            raise InvalidInputError(f'history_json item {i} must be {{"role": "user"|"assistant", "content": str}}')
        out.append(ChatTurn(turn["role"], turn["content"]))
    return out


def parse_mode(mode: str | None, default: str) -> str:
    if mode is None or (isinstance(mode, str) and not mode.strip()):
        return default
    aliases = {"居民": "resident", "热线": "hotline"}
    value = aliases.get(str(mode).strip(), str(mode).strip().lower())
    if value not in MODES:
        raise InvalidInputError(f"mode {mode!r} is not one of resident, hotline")
    return value


def ask_api(
    assistant: Assistant,
    settings: Settings,
    slot: TicketLock | None = None,
    sessions: SessionLimit | None = None,
) -> Callable[..., dict]:
    """The ``/ask`` API function (its signature is what API clients see); it waits its turn in ``slot``."""
    slot = slot or TicketLock()
    sessions = sessions or SessionLimit()

    def ask(question: str, history_json: str = "[]", mode: str = "resident", request: gr.Request | None = None) -> dict:
        """Answer one question: Answer.to_dict(), or {"error": message}.

        The message is the input check's sentence for bad input, else one plain sentence (details are
        logged). ``answer`` holds only verified sentences; ``draft`` is the model's raw, UNVERIFIED
        text (it may contain numbers, links or claims that are not in the plan): never show it as
        the plan's answer.
        """
        with sessions.enter(session_of(request)) as admitted:
            if not admitted:
                return {"error": BUSY_MESSAGE}
            try:
                history = parse_history(history_json)
                parsed_mode = parse_mode(mode, settings.mode)
                with slot.hold():
                    answer = assistant.ask(question, history, parsed_mode)
            except InvalidInputError as exc:
                return {"error": str(exc)}
            except Exception:
                log.exception("API /ask failed")
                return {"error": FAILED_MESSAGE}
        return answer.to_dict()

    return ask
