"""Chinese numerals and article references: 19 ↔ 十九, "第十九条" / "article 19" → 19."""

from __future__ import annotations

import re
import unicodedata

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


_VALUES = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "〇": 0, "零": 0}
_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10_000, "亿": 100_000_000}


def chinese_to_int(s: str) -> int | None:
    """"43" → 43, 四十三 → 43, 三百 → 300, 千 → 1000, 两万 → 20000 (a simple reading; None when it does
    not parse)."""
    if s.isdigit():
        return int(s)
    total, section, current = 0, 0, 0
    for ch in s:
        if ch in _VALUES:
            current = _VALUES[ch]
        elif ch in ("万", "亿"):
            total = (total + section + current) * _UNITS[ch]
            section, current = 0, 0
        elif ch in _UNITS:
            section += (current or 1) * _UNITS[ch]
            current = 0
        else:
            return None
    return total + section + current


def referenced_articles(text: str) -> list[int]:
    """Article numbers a text names (第19条, 第十九条, article 19)."""
    out = []
    for m in _ARTICLE_REF.finditer(text):
        n = chinese_to_int(m.group(1) or m.group(2))
        if n is not None:
            out.append(n)
    return out


# Spans that name articles, however many ("第23、24条", "第二十三至二十五條", "Articles 19 and 36"), for text
# whose figures are checked: a reference is not a figure.
_ARTICLE_SPANS = re.compile(
    r"第[\s0-9一二三四五六七八九十百〇零、,，至到~～\-—]+[条條部章]"
    r"|\barts?\.\s*\d+|articles?\s+\d+(?:\s*(?:,|and|&|to|-|–)\s*\d+)*",
    re.IGNORECASE,
)
_CHINESE_RUN = re.compile(rf"[{''.join(_VALUES)}{''.join(_UNITS)}]+")
_DIGIT_BY_DIGIT = str.maketrans({ch: str(v) for ch, v in _VALUES.items()})


def without_article_references(text: str) -> str:
    return _ARTICLE_SPANS.sub(" ", text)


def written_numbers(text: str, *, chinese: bool = True, max_run: int = 6) -> set[str]:
    """Every number ``text`` writes, as digit strings: its digit runs (full-width ones too) and, with
    ``chinese``, its Chinese numerals read both digit by digit ("二〇三五" → "2035") and by value, every
    part of a run up to ``max_run`` characters included ("十四五" → "14", "千亿" → "1000"): generous, so that
    a draft that writes a shown figure in digits is never taken to have made it up."""
    text = unicodedata.normalize("NFKC", text)
    found = set(re.findall(r"\d+(?:\.\d+)?", text))
    for run in _CHINESE_RUN.findall(text) if chinese else []:
        for i in range(len(run)):
            for j in range(i + 1, min(len(run), i + max_run) + 1):
                part = run[i:j]
                if all(ch in _VALUES for ch in part):
                    found.add(part.translate(_DIGIT_BY_DIGIT))
                value = chinese_to_int(part)
                if value is not None:
                    found.add(str(value))
    return found


# A figure with its magnitude: "10亿", "3.5万", "千亿", "二十万".
_AMOUNT = re.compile(rf"(\d+(?:\.\d+)?|[{''.join(_VALUES)}十百千]+)\s*(万|亿)")


def written_amounts(text: str) -> dict[str, float]:
    """The figures ``text`` writes with a magnitude (万, 亿), each by its value: "10亿" and "十亿" are the
    same amount, and "10亿" is not the "10" of "十四五". A part of such a figure is not one."""
    text = unicodedata.normalize("NFKC", text)
    found: dict[str, float] = {}
    for m in _AMOUNT.finditer(text):
        figure, magnitude = m.group(1), m.group(2)
        value = float(figure) if figure[0].isdigit() else chinese_to_int(figure)
        if value is not None:
            found[m.group(0)] = round(value * _UNITS[magnitude], 2)
    return found
