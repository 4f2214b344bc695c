"""The one check every question passes at the edge (CLI, UI, API) before anything else."""

from __future__ import annotations

import re
import unicodedata

from assistant.errors import InvalidInputError

_CONTROL_OK = {"\n", "\t", "\r"}


def validate_question(question: object, max_chars: int) -> str:
    """Return the question stripped and whitespace-normalised, or raise InvalidInputError."""
    if isinstance(question, bytes | bytearray):
        try:
            question = bytes(question).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError("问题不是有效的 UTF-8 文本 (the question is not valid UTF-8 text).") from exc
    if not isinstance(question, str):
        raise InvalidInputError(f"问题必须是文本 (the question must be text, got {type(question).__name__}).")
    text = question.strip()
    if not text:
        raise InvalidInputError("问题为空，请输入您想了解的内容 (the question is empty).")
    if len(text) > max_chars:
        raise InvalidInputError(
            f"问题太长（{len(text)} 字），请精简到 {max_chars} 字以内 "
            f"(the question has {len(text)} characters; the limit is {max_chars})."
        )
    # Lone surrogates are how Python carries undecodable bytes: never valid text.
    if "\x00" in text or any(unicodedata.category(ch) == "Cs" for ch in text):
        raise InvalidInputError("问题包含无法识别的二进制字符，请输入文字 (the question contains binary data).")
    bad = sum(
        1
        for ch in text
        if (unicodedata.category(ch) in ("Cc", "Co", "Cn") and ch not in _CONTROL_OK) or ch == "\ufffd"
    )
    if bad >= 3 or bad / len(text) > 0.05:
        raise InvalidInputError("问题包含无法识别的二进制字符，请输入文字 (the question contains binary data).")
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cc" or ch in _CONTROL_OK)
    return re.sub(r"\s+", " ", text).strip()
