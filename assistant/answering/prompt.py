"""The prompt: which retrieved text the model sees, and how it is asked to answer."""

from __future__ import annotations

from collections.abc import Iterator

from assistant.answering.evidence import ScoredSentence, SentenceScorer
from assistant.generation import Generator, Message
from assistant.models import Hit, Query
from assistant.text import split_answer, squeeze

NOT_IN_PLAN_MARK = "规划未提及"
EXCERPT_BUDGET = 800  # characters of plan text in the prompt: ~600 tokens, ~4 s of prompt on 2 cores


def prompt_hits(hits: list[Hit]) -> list[Hit]:
    """The units shown to the model: the top one, plus others close to it in score."""
    if not hits:
        return []
    top = hits[0].score
    return [h for i, h in enumerate(hits[:3]) if i == 0 or h.score >= 0.6 * top]


def excerpt(hit: Hit, budget: int, scored: list[ScoredSentence]) -> str:
    """The unit's text, or for a long unit its most relevant sentences in reading order, within budget."""
    text = hit.unit.text
    if len(text) <= budget:
        return text
    picked = []
    used = 0
    for item in scored:
        s = item.sentence
        if s.unit.unit_id != hit.unit.unit_id or used + len(s.text) > budget:
            continue
        picked.append(s)
        used += len(s.text)
    if not picked:
        return text[:budget]
    picked.sort(key=lambda s: s.start)
    out = picked[0].text
    for prev, cur in zip(picked, picked[1:], strict=False):
        gap = hit.unit.text[prev.end - hit.unit.start : cur.start - hit.unit.start]
        out += ("" if not gap.strip() else "……") + cur.text
    return out


def _system_prompt(language: str, mode: str) -> str:
    style = (
        "用正式、准确的书面语，尽量沿用原文表述，3句以内。"
        if mode == "hotline"
        else "用通俗易懂、亲切的话，2到3句，先直接回答。"
    )
    lang_rule = (
        "Answer in English, 2-3 sentences, and quote the key original Chinese words in 「」."
        if language == "en"
        else style
    )
    return (
        "你是瑶海区“十四五”规划建议的问答助手。居民的问题可能很口语，先理解他真正关心什么，再根据给出的规划原文回答，"
        "尽量沿用原文的说法，涉及几条就分别说明。不要编造原文没有的数字、金额、日期或办理流程。"
        f"只有原文和问题完全无关时，才回答“{NOT_IN_PLAN_MARK}”。" + lang_rule
    )


def build_messages(
    question: str, hits: list[Hit], language: str, mode: str, scored: list[ScoredSentence] | None = None
) -> list[Message]:
    shown = prompt_hits(hits)
    budget = EXCERPT_BUDGET // max(1, len(shown))
    blocks = [f"[{h.unit.label} {h.unit.title}] {excerpt(h, budget, scored or [])}" for h in shown]
    user = "规划原文：\n" + "\n".join(blocks) + f"\n\n问题：{question}"
    return [{"role": "system", "content": _system_prompt(language, mode)}, {"role": "user", "content": user}]


def repeats(text: str) -> bool:
    """True when the last complete sentence already appeared earlier (a small model's loop)."""
    sentences = [x for x in (squeeze(s) for s in split_answer(text)) if len(x) >= 6]
    return len(sentences) >= 2 and sentences[-1] in sentences[:-1]


class Drafter:
    """The model's draft for a question, streamed. It stops at the first repeated
    sentence (a small model's loop would be dropped anyway); the backend owns the deadline."""

    def __init__(self, generator: Generator, scorer: SentenceScorer, max_tokens: int) -> None:
        self.generator = generator
        self.scorer = scorer
        self.max_tokens = max_tokens

    def run(self, query: Query, hits: list[Hit]) -> Iterator[str]:
        shown = prompt_hits(hits)
        question = query.english or query.standalone
        messages = build_messages(question, shown, query.language, query.mode, self.scorer.run(question, shown))
        stream = self.generator.stream(messages, max_tokens=self.max_tokens, temperature=0.0)
        text = ""
        try:
            for piece in stream:
                yield piece
                text += piece
                if piece and piece[-1] in "。！？\n" and repeats(text):
                    break
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
