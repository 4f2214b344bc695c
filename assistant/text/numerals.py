"""Chinese numerals and article references: 19 ↔ 十九, "第十九条" / "article 19" → 19."""

from __future__ import annotations

import re

CHINESE_NUMERALS = "零一二三四五六七八九十"


def chinese_number(n: int) -> str:
    """1 → 一, 19 → 十九, 43 → 四十三 (enough for article and chapter numbers)."""
    if n < 0 or n >= 100:
        raise ValueError(f"chinese_number supports 0..99, got {n}")
    if n < 10:
        return CHINESE_NUMERALS[n]
    tens, ones = divmod(n, 10)
    head = "" if tens == 1 else CHINESE_NUMERALS[tens]
    return head + "十" + (CHINESE_NUMERALS[ones] if ones else "")


_ARTICLE_REF = re.compile(r"第\s*([0-9]+|[一二三四五六七八九十百]+)\s*条|article\s+(\d+)", re.IGNORECASE)


def chinese_to_int(s: str) -> int | None:
    if s.isdigit():
        return int(s)
    digits = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
    total, current = 0, 0
    for ch in s:
        if ch in digits:
            current = digits[ch]
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        elif ch == "百":
            total += (current or 1) * 100
            current = 0
        else:
            return None
    return total + current


def referenced_articles(text: str) -> list[int]:
    """Article numbers a text names (第19条, 第十九条, article 19)."""
    out = []
    for m in _ARTICLE_REF.finditer(text):
        n = chinese_to_int(m.group(1) or m.group(2))
        if n is not None:
            out.append(n)
    return out
