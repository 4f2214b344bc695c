"""The prompt: which retrieved text the model sees, and how it is asked to answer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from assistant.answering.evidence import ScoredSentence, SentenceScorer
from assistant.errors import GenerationError
from assistant.generation import Generator, Message, Quote
from assistant.models import Hit, Query, Sentence, Unit
from assistant.text import split_answer, squeeze

log = logging.getLogger(__name__)
NOT_IN_PLAN_MARK = "规划未提及"


def prompt_hits(hits: list[Hit]) -> list[Hit]:
    """The units shown to the model: the articles the question names by number if any ("第43条…" is
    answered from article 43), else the top one plus others close to it in score."""
    if not hits:
        return []
    named = [h for h in hits if h.named]
    if named:
        return named[:3]
    top = hits[0].score
    return [h for i, h in enumerate(hits[:3]) if i == 0 or h.score >= 0.6 * top]


PROMPT_TEMPLATE_VERSION = "5"  # bump when the layout below changes (saved prefix states are keyed by tokens anyway)
UNIT_MAX_CHARS = 3000  # the top unit is shown whole up to this (the plan's longest is ~1400 characters)
# Other units' best sentences go in the last message (read at ~2 s per 100 characters here before they were
# copied from their units' saved states, see secondary_quotes; the choices below date from then). Measured on
# the held-out tune half: the top unit is wrong for 12 of 60 answerable questions; ratio 0.6 puts the right
# unit in front of the model for 9 of them (secondaries on 31 of 60 questions), 0.9 for 5 (on 12), and
# sending them only for "where / how many places" questions cost citation recall 0.88 → 0.82. Ratio 0.7
# (P/R 0.894/0.884 vs 0.909/0.899) or a 140-character budget (0.894/0.891) saved under 0.3 s of first token.
SECONDARY_BUDGET = 240
SECONDARY_MIN_RATIO = 0.6  # another unit is quoted only if its best sentence scores this close to the top unit's


def system_prompt(plan_name: str = "") -> str:
    """The stable rules: the same for every question, mode and language (so its state can be reused)."""
    who = f"{plan_name}的问答助手" if plan_name else "规划文件的问答助手"
    return (
        f"你是{who}。居民的问题可能很口语，先理解他真正关心什么，再根据给出的规划原文回答，"
        "尽量沿用原文的说法，涉及几条就分别说明。不要编造原文没有的数字、金额、日期或办理流程。"
        f"只有原文和问题完全无关时，才回答“{NOT_IN_PLAN_MARK}”。"
    )


# After the unit, so it is the last thing the model reads before the question; in the cached prefix.
DEFAULT_STYLE = "回答要求：用通俗易懂的话，2到3句，直接说规划里有哪些相关的做法，尽量用原文的说法，不要复述问题。"
# The few uncached words after every question (15 tokens). Cut to 5 ("直接说规划的做法。", ~0.23 s less first
# token) quality moved both ways: dev P +0.015, fresh tune R -0.025, held-out tune P -0.028; with none, the
# model echoed the question.
ASK = "请根据上面的规划原文，直接说规划里有哪些相关的做法。"


def _style(language: str, mode: str) -> str:
    """What differs from the default style (kept short: it is evaluated with every question)."""
    if language == "en":
        return "Answer in English, 2-3 sentences, quoting the key original Chinese words in 「」."
    if mode == "hotline":
        return "请根据上面的规划原文，用正式、准确的书面语回答。"
    return ""


def prefix_messages(unit: Unit, plan_name: str = "") -> list[Message]:
    """The stable head of every prompt whose top unit is ``unit``: the rules and the unit's whole text,
    as the system message (a small model answers the question that follows directly, with no small
    talk). The generator saves the model's state after it and restores it for later questions."""
    source = f"规划原文：\n{header(unit)} {unit.text[:UNIT_MAX_CHARS]}"
    return [{"role": "system", "content": f"{system_prompt(plan_name)}\n\n{source}\n\n{DEFAULT_STYLE}"}]


def brief(hit: Hit, budget: int, scored: list[ScoredSentence]) -> list[str]:
    """A secondary unit in a few characters, as pieces of its own text (so that a backend can copy them
    from the unit's saved state, see ``Quote``): its best sentences (at most two) in reading order, or
    its best sentence cut to the budget."""
    own = [item.sentence for item in scored if item.sentence.unit.unit_id == hit.unit.unit_id]
    if not own:
        return [hit.unit.text[:budget]]
    picked: list[Sentence] = []
    used = 0
    for s in own:
        if len(picked) < 2 and used + len(s.text) <= budget:
            picked.append(s)
            used += len(s.text)
    if not picked:
        return [own[0].text[: max(1, budget)]]
    picked.sort(key=lambda s: s.start)
    return [s.text for s in picked]


def header(unit: Unit) -> str:
    """How a unit is introduced wherever the prompt shows it (also a piece of a ``Quote``). No space
    after it: the tokenizer joins a space to the next word, so a quote could not end at the bracket."""
    return f"[{unit.label} {unit.title}]"


def secondary_hits(shown: list[Hit], scored: list[ScoredSentence] | None, several: bool = False) -> list[Hit]:
    """The units after the top one worth their prompt tokens: with sentence scores, those whose
    best sentence scores at least SECONDARY_MIN_RATIO of the top unit's best; without, all of them. A
    question about each of several things (``several``: the retriever marked a part's unit) keeps them
    all: the sentences are scored against the whole question, which one part dominates."""
    if len(shown) < 2 or not scored or several:
        return shown[1:]
    best: dict[str, float] = {}
    for item in scored:
        uid = item.sentence.unit.unit_id
        best[uid] = max(best.get(uid, item.score), item.score)
    top = best.get(shown[0].unit.unit_id, 0.0)
    return [h for h in shown[1:] if best.get(h.unit.unit_id, 0.0) >= SECONDARY_MIN_RATIO * top]


def secondary_quotes(
    shown: list[Hit], scored: list[ScoredSentence] | None = None, plan_name: str = "", *, several: bool = False
) -> list[Quote]:
    """The other units' best sentences that go in the last message (``shown``: ``prompt_hits``), each
    unit's as a ``Quote`` of its own prefix (the text a question whose top unit it is would be cached with)."""
    secondary = secondary_hits(shown, scored, several=several)
    if not secondary:
        return []
    per = SECONDARY_BUDGET // len(secondary)
    return [
        Quote(prefix_messages(h.unit, plan_name), (header(h.unit), *brief(h, per, scored or []))) for h in secondary
    ]


def build_messages(
    question: str,
    hits: list[Hit],
    language: str,
    mode: str,
    scored: list[ScoredSentence] | None = None,
    plan_name: str = "",
) -> list[Message]:
    """The prompt's messages (see ``build_prompt``)."""
    return build_prompt(question, hits, language, mode, scored, plan_name)[0]


def build_prompt(
    question: str,
    hits: list[Hit],
    language: str,
    mode: str,
    scored: list[ScoredSentence] | None = None,
    plan_name: str = "",
    *,
    previous: str = "",
) -> tuple[list[Message], list[Quote]]:
    """[system: the rules + the top unit whole + the default style, user: other units' best sentences (if
    any, back to back: see ``secondary_quotes``) + the question (after the question it follows, ``previous``,
    if any) + a few words (or a style that differs from the default)]. Everything but the last message is
    the same for every question on the same top unit."""
    shown = prompt_hits(hits)
    if not shown:
        head: list[Message] = [{"role": "system", "content": system_prompt(plan_name)}]
    else:
        head = prefix_messages(shown[0].unit, plan_name)
    last = ""
    quotes = secondary_quotes(shown, scored, plan_name, several=any(h.aspect for h in hits))
    if quotes:
        last = "其他相关原文（节选）：\n" + "".join(quote.text for quote in quotes) + "\n\n"
    style = _style(language, mode)
    if previous:  # as its own line: joined into the question, the model answered the previous one instead
        last += f"上一问：{previous}\n"
    last += f"问题：{question}\n{style or ASK}"
    return [*head, {"role": "user", "content": last}], quotes


def repeats(text: str) -> bool:
    """True when the last complete sentence already appeared earlier (a small model's loop)."""
    sentences = [x for x in (squeeze(s) for s in split_answer(text)) if len(x) >= 6]
    return len(sentences) >= 2 and sentences[-1] in sentences[:-1]


class Drafter:
    """The model's draft for a question, streamed. It stops at the first repeated
    sentence (a small model's loop would be dropped anyway); the backend owns the deadline."""

    def __init__(self, generator: Generator, scorer: SentenceScorer, max_tokens: int, *, plan_name: str = "") -> None:
        self.generator = generator
        self.scorer = scorer
        self.max_tokens = max_tokens
        self.plan_name = plan_name  # e.g. Document.meta.name, for the system prompt
        self.sent: list[Message] | None = None  # the last prompt ``run`` sent, and in which language
        self.sent_language = ""
        self.sent_quotes: dict[str, Any] = {}  # {"quotes": [...]} for a backend that takes them

    def messages(self, query: Query, hits: list[Hit]) -> list[Message]:
        """The prompt ``run`` sends for ``query``."""
        return self.prompt(query, hits)[0]

    def prompt(self, query: Query, hits: list[Hit]) -> tuple[list[Message], list[Quote]]:
        """The prompt ``run`` sends for ``query``, and the other units' sentences it quotes."""
        shown = prompt_hits(hits)
        question = query.english or query.standalone
        scored = self.scorer.run(question, shown)
        return build_prompt(question, shown, query.language, query.mode, scored, self.plan_name, previous=query.previous)

    def run(self, query: Query, hits: list[Hit]) -> Iterator[str]:
        messages, quotes = self.prompt(query, hits)
        self.sent = messages
        self.sent_language = query.language
        # Only a backend that says so takes quotes (copies their text from saved states).
        self.sent_quotes = {"quotes": quotes} if quotes and getattr(self.generator, "takes_quotes", False) else {}
        stream = self.generator.stream(messages, max_tokens=self.max_tokens, temperature=0.0, **self.sent_quotes)
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

    def silence_logprob(self) -> float | None:
        """log P(the model's reply to the last prompt opens with "规划未提及"): its own doubt, read from the
        context that just wrote the draft. None when the backend cannot score a reply, or for an English
        reply (whose refusal is worded freely)."""
        score = getattr(self.generator, "reply_logprob", None)
        if score is None or self.sent is None or self.sent_language == "en":
            return None
        try:
            value = score(self.sent, NOT_IN_PLAN_MARK, **self.sent_quotes)
        except GenerationError as exc:  # a missing signal, not a failed answer: the draft stands
            log.warning("could not score the model's doubt: %s", exc)
            return None
        return value if isinstance(value, float) else None
