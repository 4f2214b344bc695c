"""Question structure: one question that asks about several things at once.

"规划对残疾孩子上学、残疾人就业分别有什么安排？" asks two questions that share a frame;
each part is searched on its own as well, so the article about each one reaches the
model even when the other part dominates the whole question's ranking."""

from __future__ import annotations

import re

# Asks for each of several things in turn ("分别", "各自"), not for a list in general.
_DISTRIBUTIVE = re.compile(r"分别|各自|各是|respectively", re.IGNORECASE)
_CLAUSE = re.compile(r"[，,。？?！!；;：:]")
_CONJUNCTION = re.compile(r"、|以及|和|与|及|跟")
# Where a coordinated phrase starts (after a preposition) and ends (before a locative or the question).
_LEFT_EDGE = re.compile(r".*(?:在|对于|对|关于|把|给|从|的)")
_RIGHT_EDGE = re.compile(r"(?:上|里|中|方面|这块|这方面)?(?:分别|各自|各是|都|有什么|是什么|怎么|如何|哪)")
MIN_HAN = 2  # a part is a phrase, not a label like “3”


def split_aspects(question: str) -> list[str]:
    """The question once per coordinated part ("A、B分别…" → "…A…", "…B…"), or [] when it does
    not ask about each of several things. Only the coordinated phrase changes; the frame stays."""
    if not _DISTRIBUTIVE.search(question):
        return []
    offset = 0
    for clause in _CLAUSE.split(question):
        for conj in _CONJUNCTION.finditer(clause):
            before, after = clause[: conj.start()], clause[conj.end() :]
            edge = _LEFT_EDGE.match(before)
            left = before[edge.end() :] if edge else before
            stop = _RIGHT_EDGE.search(after)
            right = after[: stop.start()] if stop else after
            if _han(left) >= MIN_HAN and _han(right) >= MIN_HAN:
                start = offset + conj.start() - len(left)
                end = offset + conj.end() + len(right)
                head, tail = question[:start], question[end:]
                return [head + left + tail, head + right + tail]
        offset += len(clause) + 1
    return []


def _han(text: str) -> int:
    return sum("\u4e00" <= c <= "\u9fff" for c in text)
