"""Dialogue cues: does a question lean on the conversation before it?"""

from __future__ import annotations

import re

# Elliptical follow-ups: short, or opening with a discourse marker, or "X呢".
_MARKER = re.compile(
    r"^(那|那么|还有|另外|再问|然后|此外|那如果|如果是|具体|其中|分别|and|what about|how about)", re.IGNORECASE
)
TOPIC_NE = re.compile(r"^(?:那么|那|还有|另外|然后)?\s*(?P<topic>[^，,？?。！!]{1,16}?)\s*(?:这块|这方面|方面|这一块|的话)?\s*呢\s*[？?]?")
_PRONOUN = re.compile(r"(它|这个|这些|那个|那些|他们|其|上面|前面|刚才)")


def needs_context(question: str) -> bool:
    q = question.strip()
    return bool(_MARKER.search(q) or TOPIC_NE.search(q) or _PRONOUN.search(q) or len(q) <= 5)
