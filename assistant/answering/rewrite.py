"""Follow-up questions → standalone questions, before retrieval, without a model call.

"那高中呢？" after "区里对幼儿园有什么规划？" → "区里对高中有什么规划？": a rule swaps the new topic
into the previous question's frame, or else puts the previous question in front. A "rewrite" that
only holds the previous question is not searched as one (``search_request``): the follow-up is
searched as asked, with the conversation mixed in, and the prompt shows the previous question beside it.
The model's own rewrite (one short call) was measured against this on the follow-up set: the same
citations or worse, and ~2 s more before the first word of every follow-up (eval/README.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.generation import Generator
from assistant.models import ChatTurn, Document
from assistant.text import squeeze, to_simplified
from assistant.text.dialogue import TOPIC_NE, needs_context

_FRAME = re.compile(r"(?P<head>^.*?(?:对|关于|在))(?P<slot>[^，,？?。]{1,16}?)(?P<tail>(?:有|是|怎么|如何|方面|的|提|讲|说|上).*)$")



def last_user_turn(history: Sequence[ChatTurn]) -> str | None:
    for turn in reversed(history):
        if turn.role == "user" and turn.content.strip():
            return turn.content.strip()
    return None


def rule_rewrite(question: str, previous: str) -> str:
    """Rewrite without a model: swap the topic into the previous question's frame."""
    q = to_simplified(question.strip())
    prev = to_simplified(previous.strip())
    m = TOPIC_NE.search(q)
    if m:
        topic = m.group("topic").strip()
        rest = q[m.end() :].strip()
        frame = _FRAME.match(prev)
        if frame and topic:
            rewritten = f"{frame.group('head')}{topic}{frame.group('tail')}"
            return f"{rewritten}{rest}" if rest else rewritten
        return f"{topic}：{prev}{rest}"
    return f"{prev} {q}"


class FollowUpRewriter:
    """Turn a follow-up into a standalone question using the conversation history."""

    def run(self, question: str, history: Sequence[ChatTurn]) -> str:
        previous = last_user_turn(history)
        if previous is None or not needs_context(question):
            return question
        return rule_rewrite(question, previous)


def search_request(question: str, standalone: str, history: Sequence[ChatTurn]) -> tuple[str, Sequence[ChatTurn]]:
    """The question to search and answer, and the conversation retrieval mixes in at a lower weight: the
    rewrite alone; or the question as asked, with the conversation, when it was not rewritten, or when the
    "rewrite" holds the previous question whole, put in front of the follow-up ("停车难有解决办法吗？那路上堵车
    怎么缓解？") or instead of it, so the earlier topic would weigh as much as the new one or more. After a bare
    "X呢？" the previous question is the frame it needs ("教育方面呢？"), so the joined text stays. A genuine
    rewrite that happens to hold a very short previous question is searched like an unrewritten follow-up."""
    if standalone == question:
        return question, history
    previous = last_user_turn(history)
    if previous and _words(previous) in _words(standalone) and not TOPIC_NE.search(question):
        return question, history
    return standalone, []


def _words(text: str) -> str:
    return squeeze(to_simplified(text))


def plan_names(documents: Sequence[Document]) -> str:
    """How the plan and its region are named in both languages, from the corpus metadata. Without it the
    small model transliterates "Yaohai" (雅鸽区, 《雅鸽提案》), which the judge then takes for another place
    or document. Of the 18 English messages in dev and the tune halves, 7 name the district or the plan:
    without these names all 7 were transliterated (雅鸽, 雅霍亚, 雅浩里…); with them none was (瑶海区,
    规划建议, or the name left out), and a lookup was no longer refused as "another document"."""
    names = []
    for d in documents:
        meta = d.meta
        english = f"（{meta.english_title}）" if meta.english_title else ""
        region = f"，地区是{meta.region}" if meta.region else ""
        names.append(f"规划指{meta.name}{english}{region}。")
    return "".join(names)


class QueryTranslator:
    """English questions → a Chinese search query, so BM25 and the Chinese plan text
    can match (the answer is still written in English). Needs a language model;
    without one the English question is searched as is (dense retrieval is multilingual).
    ``names``: ``plan_names`` of the corpus, so the plan's own names are rendered as the plan writes them."""

    def __init__(self, generator: Generator | None, max_tokens: int = 60, *, names: str = "") -> None:
        self.generator = generator
        self.max_tokens = max_tokens
        self.names = names

    def run(self, question: str) -> str:
        if self.generator is None:
            return question
        messages = [
            {"role": "system", "content": "把用户的英文问题翻译成简洁的中文问题。只输出中文译文。" + self.names},
            {"role": "user", "content": "Will the district build more public libraries?"},
            {"role": "assistant", "content": "区里会建设更多公共图书馆吗？"},
            {"role": "user", "content": question},
        ]
        try:
            out = "".join(self.generator.stream(messages, max_tokens=self.max_tokens, stop=["\n"])).strip()
        except Exception:  # noqa: BLE001 - translation only helps retrieval; never fatal
            return question
        han = sum(1 for ch in out if "\u4e00" <= ch <= "\u9fff")
        if han < 4 or len(out) > 120:
            return question
        return out
