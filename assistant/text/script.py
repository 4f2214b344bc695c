"""Script and language: simplified ↔ traditional Chinese, and a cheap language guess."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal

from assistant.errors import require

Language = Literal["zh-Hans", "zh-Hant", "en"]


@lru_cache(maxsize=2)
def _converter(config: str) -> Any:
    opencc = require("opencc", "pip install opencc-python-reimplemented==0.1.7")
    return opencc.OpenCC(config)  # type: ignore[attr-defined]


def to_simplified(text: str) -> str:
    """Traditional → simplified Chinese (other text passes through unchanged)."""
    return str(_converter("t2s").convert(text)) if text else text


def to_traditional(text: str) -> str:
    """Simplified → traditional Chinese (other text passes through unchanged)."""
    return str(_converter("s2t").convert(text)) if text else text


def is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


def detect_language(text: str) -> Language:
    """Guess zh-Hans, zh-Hant or en.

    English when Latin letters clearly outnumber Han characters; traditional when
    converting to simplified changes at least 10% of the Han characters (a few
    characters are identical in both scripts, and a handful of traditional ones
    legitimately survive in simplified text, so a single change is not enough
    in a long text).
    """
    # Markup and code (e.g. a pasted "<script>") say nothing about the reader's language.
    text = re.sub(r"<[^>]{0,200}>", " ", text)
    han = [ch for ch in text if is_han(ch)]
    latin_words = len(re.findall(r"[A-Za-z]{2,}", text))
    if not han:
        return "en" if latin_words else "zh-Hans"
    # A word is worth about two Han characters; acronyms like REITs or G60 stay Chinese.
    if latin_words * 2 > len(han):
        return "en"
    han_text = "".join(han)
    simplified = to_simplified(han_text)
    changed = sum(1 for a, b in zip(han_text, simplified, strict=False) if a != b)
    if changed and changed >= max(1, 0.1 * len(han)):
        return "zh-Hant"
    return "zh-Hans"
