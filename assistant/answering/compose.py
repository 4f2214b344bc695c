"""Turning evidence into the Answer a user sees: the model's draft verified and
trimmed, or verified quotes, with the formal citation and the user's script.

Nothing here trusts the model: every shown sentence either carries a verified
citation or is short framing that asserts nothing checkable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from assistant.answering.citations import CitationAttacher, CitationVerifier, cited
from assistant.answering.evidence import MentionFinder, ReviewFinder, SentenceScorer
from assistant.answering.extractive import ExtractiveAnswerer
from assistant.answering.prompt import NOT_IN_PLAN_MARK, prompt_hits
from assistant.models import Answer, AnswerSentence, Citation, Document, Hit, Query, Sentence, Unit
from assistant.text import (
    CLOSERS,
    SENTENCE_END,
    split_answer,
    squeeze,
    to_simplified,
    to_traditional,
    without_article_references,
    written_amounts,
    written_numbers,
)

MAX_SENTENCES = {"resident": 4, "hotline": 6}  # a plain answer stays short; loops and lists are cut
ENGLISH_MATCH = 0.82  # cosine an English sentence needs to a plan sentence to count as its support

# Markers the model invents ("[1]") or copies from the prompt's headers ("[第二十四条 优化营商招商环境]",
# "[第四部分引言 …]"), also in full-width brackets.
_MARKERS = re.compile(r"\[\d+\]|【\d+】|[\[【]第[^\]】\n]{1,8}(?:条|部分引言)[^\]】\n]{0,30}[\]】]")
_MARKDOWN = re.compile(r"\*\*|__|^#+\s*|^\s*(?:[-*•]|\d+[.、)])\s+", re.MULTILINE)
# The model's own conclusions ("这表明……可能会……") are not the plan's words.
_INFERENCE = re.compile(r"[，,；;]\s*(这表明|这说明|由此可见|可见|这意味着|意味着|也就是说|看来|因此可以|所以可以)[^。！？!?\n]*")
# How a draft the model finished ends (a closing mark may follow the stop: 。” ）): not "搭建“1335”" or "包括：".
_FINISHED = re.compile(f"[{re.escape(SENTENCE_END)}.…][{re.escape(CLOSERS)}]*$")
_INFERENCE_SENTENCE = re.compile(r"^(这表明|这说明|由此可见|可见|这意味着|也就是说|看来|总之|总的来说|综上)")


def clean_generated(raw: str) -> str:
    """Drop citation markers the model invents, markdown, its own conclusions, repeated sentences, and
    questions (a small model restates the resident's question; a question asserts nothing to cite)."""
    text = _MARKDOWN.sub("", _MARKERS.sub("", raw)).strip()
    text = _INFERENCE.sub("", text)
    text = re.sub(r"\n{2,}", "\n", text)
    seen: set[str] = set()
    kept = []
    for sentence in split_answer(text):
        key = squeeze(sentence)
        if (key and key in seen) or _INFERENCE_SENTENCE.match(sentence) or sentence.rstrip().endswith(("?", "？")):
            continue
        seen.add(key)
        kept.append(sentence)
    joiner = " " if kept and all(x.isascii() for x in "".join(kept)[:40]) else ""
    return joiner.join(kept)


def finish_cut_sentence(text: str, units: Sequence[Unit]) -> str:
    """A draft cut at the token limit ends mid-sentence (of 425 stored drafts that ended by themselves, none
    ended so). When the cut sentence was copied from a sentence of ``units`` (the units shown to the model;
    none for an English draft), that sentence finishes it in the plan's words; otherwise, or when that
    repeats an earlier sentence (a loop cut short), it is dropped, unless it is all the draft says."""
    sentences = split_answer(text)
    if not sentences or _FINISHED.search(text.rstrip()):
        return text
    cut = sentences[-1]
    before = text[: text.rfind(cut)]
    end = _copied_until(squeeze(cut), [s.text for unit in units for s in unit.sentences])
    if end is not None:
        sentence, at = end
        finished = re.sub(r"[\s\W_]+$", "", cut) + sentence[at:]
        if squeeze(finished) not in {squeeze(s) for s in sentences[:-1]}:
            return before + finished
    return text if len(sentences) == 1 else before.rstrip()


def _copied_until(key: str, sentences: list[str], shortest: int = 8) -> tuple[str, int] | None:
    """The plan sentence the end of ``key`` (a squeezed cut sentence) was copied from, and where in it the
    copy stopped: the longest ending of ``key``, at least ``shortest`` characters, that a sentence holds
    (the model may have begun in its own words). None when no sentence, or more than one, holds it: a
    common phrase does not say which sentence the model was copying."""
    squeezed = [squeeze(s) for s in sentences]
    for size in range(len(key), shortest - 1, -1):
        tail = key[-size:]
        holders = [(sentence, flat.find(tail)) for sentence, flat in zip(sentences, squeezed, strict=True) if tail in flat]
        if len(holders) > 1:
            return None
        if holders:
            sentence, at = holders[0]
            return sentence, _position(sentence, at + size)
    return None


def _position(sentence: str, kept: int) -> int:
    """The index in ``sentence`` just after its ``kept``-th character that ``squeeze`` keeps."""
    seen = 0
    for i, ch in enumerate(sentence):
        seen += bool(squeeze(ch))
        if seen == kept:
            return i + 1
    return len(sentence)


# Checkable specifics: numbers (amounts, dates, phone numbers), web and mail addresses, Latin words.
_SPECIFIC = re.compile(r"\d[\d\-,.:%]*|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|[\w.+-]+@[\w-]+|[A-Za-z]{2,}")


def specifics(text: str) -> set[str]:
    return {m.group(0).strip(".,:-").lower() for m in _SPECIFIC.finditer(to_simplified(text))} - {""}


def figures(text: str) -> set[str]:
    """The specifics of ``text`` other than words: numbers and addresses."""
    return {f for f in specifics(text) if not f.isalpha()}


def harmless(sentence: str, english: bool = False) -> bool:
    """Framing text that asserts nothing checkable may stay uncited: short, no article
    reference, and no number, address or (in a Chinese answer) Latin word."""
    if len(sentence) > 16 or re.search(r"第.{1,3}条|article", sentence, re.IGNORECASE):
        return False
    return not (figures(sentence) if english else specifics(sentence))


# Of an English sentence's words found in the question. On the tuning halves' verified English answers,
# restatements scored 0.82-1.0 and sentences saying what the plan does 0.11-0.65: a narrow margin above.
ECHO_SHARE = 0.8


def echoes(sentence: str, question: str) -> bool:
    """True when nearly every word of an English ``sentence`` (three letters or more) is a word of ``question``
    and it states no specific the question lacks ("…5,000 beds by 2025." answers "how many beds…")."""
    if figures(sentence) - figures(question):
        return False
    words = _english_words(sentence)
    asked = set(_english_words(question))
    return bool(words) and sum(w in asked for w in words) / len(words) >= ECHO_SHARE


def _english_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3]


def grounded(sentence: AnswerSentence) -> AnswerSentence:
    """A cited sentence keeps its citation only if every specific it states (a number,
    an address, a name in Latin letters) is in the cited unit: nothing shown may come
    from the question or the model alone."""
    if sentence.citation is None:
        return sentence
    missing = figures(sentence.text) - specifics(sentence.citation.unit.text)
    return AnswerSentence(sentence.text, None) if missing else sentence


def invented_numbers(draft: str, query: Query, hits: list[Hit]) -> list[str]:
    """The numbers in ``draft`` that occur in neither the question (as asked or rewritten) nor the units
    shown to the model (``prompt_hits``, their whole text): "一个年级有24个班", "进出口额为10亿美元" when the
    plan gives no such figure. A figure the plan writes in Chinese numerals counts as shown in digits
    ("二〇三五" → 2035, "千亿" → 1000), a part of a shown number counts as shown ("1335" holds "13"), but an
    amount with a magnitude ("10亿", "十亿") only by its value, and an article number ("第23条", "Articles 19
    and 36") is a reference, not a figure."""
    shown_text = " ".join([query.question, query.standalone, *(h.unit.text for h in prompt_hits(hits))])
    seen = written_numbers(shown_text)
    draft = without_article_references(clean_generated(draft))
    stated = written_numbers(draft, chinese=False)
    made_up = {n for n in stated if not any(n in shown for shown in seen)}
    # an amount is shown only with its magnitude: "10亿" is not the "十" of "十四五" (nor part of "2010")
    amounts = set(written_amounts(shown_text).values())
    made_up |= {figure for figure, value in written_amounts(draft).items() if value not in amounts}
    return sorted(made_up)


# Shown with a fallback answer; evaluation scripts find such answers by it.
UNVERIFIED_DRAFT_WARNING = "模型的回答无法与规划原文逐句核对，已改用原文摘录回答。"


def says_not_in_plan(text: str) -> bool:
    return NOT_IN_PLAN_MARK in text[:20] or text.lower().startswith("the plan does not")


def quote_line(unit: Unit, quotes: str, english: bool) -> str:
    """「规划第十九条（…）提出：“…”」, the way a quote is introduced to a reader."""
    if english:
        return f"{unit.english_label.capitalize()} ({unit.title}) of the plan says: 「{quotes}」"
    return f"规划{unit.label}（{unit.title}）提出：“{quotes}”"


class FormalCitation:
    """依据：《中共合肥市瑶海区委关于…的建议》第十九条、第三十六条 — for hotline staff to read out."""

    def __init__(self, documents: Sequence[Document]) -> None:
        self.titles = {d.doc_id: d.meta.title for d in documents}

    def run(self, citations: Sequence[Citation]) -> str:
        if not citations:
            return ""
        by_doc: dict[str, list[str]] = {}
        for c in citations:
            label = c.label if c.article is not None else f"第{c.chapter}部分"
            labels = by_doc.setdefault(c.doc_id, [])
            if label not in labels:
                labels.append(label)
        parts = [f"《{self.titles.get(doc_id, doc_id)}》" + "、".join(labels) for doc_id, labels in by_doc.items()]
        return "依据：" + "；".join(parts)


_PAUSE = re.compile(r"[，,、：:]")
_HEADING_CHARS = 12  # a plan's run-in headings ("做实系统。", "加强劳动就业保障。") are one short clause


def with_what_it_heads(sentence: Sentence) -> Sentence:
    """A run-in heading says only what the next sentence is about: quoted alone ("做实系统。") it tells a
    resident nothing, so it is quoted together with the sentence that follows it in its unit (one span of
    the plan's text); any other sentence is returned as it is."""
    if len(sentence.text) > _HEADING_CHARS or _PAUSE.search(sentence.text):
        return sentence
    following = [s for s in sentence.unit.sentences if s.start == sentence.end]
    if not following:
        return sentence
    return Sentence(sentence.unit, sentence.start, following[0].end, sentence.text + following[0].text)


class AnswerComposer:
    """Build the shown Answer from a draft (verified sentence by sentence) or from quotes."""

    def __init__(
        self,
        documents: Sequence[Document],
        scorer: SentenceScorer,
        *,
        attacher: CitationAttacher | None = None,
        extractive: ExtractiveAnswerer | None = None,
    ) -> None:
        self.verifier = CitationVerifier(documents)
        self.formal = FormalCitation(documents)
        self.scorer = scorer
        self.attacher = attacher or CitationAttacher()
        self.extractive_answerer = extractive or ExtractiveAnswerer(scorer=scorer)
        units = [u for d in documents for u in d.units]
        self.mentions = MentionFinder(units)
        previous = [p for d in documents for p in d.meta.previous_periods]
        self.review = ReviewFinder(units, previous, [p for d in documents for p in d.meta.periods])

    def from_draft(
        self, draft: str, query: Query, hits: list[Hit], backend: str, *, lead_with_top: bool = False
    ) -> Answer | None:
        """The draft's verified sentences, or None when nothing in it can be verified.
        ``lead_with_top``: a lookup ("出自哪一条？") is answered by retrieval, so the best-matching
        unit leads even when the model wrote about another."""
        text = clean_generated(draft)
        if not text:
            return None
        simplified = to_simplified(text) if query.language == "zh-Hant" else text
        shown = prompt_hits(hits)
        # An English draft is not in the plan's words: a sentence of it cut short cannot be finished from them.
        simplified = finish_cut_sentence(simplified, [] if query.language == "en" else [h.unit for h in shown])
        sentences = self.attacher.run(simplified, shown, question=query.standalone)
        if query.language == "en":
            sentences = self._english_support(sentences, hits, query.english or query.question)
        sentences = [grounded(s) for s in self.verifier.sentences(sentences)]
        english = query.language == "en"
        kept = [s for s in sentences if s.citation is not None or harmless(s.text, english)][: MAX_SENTENCES[query.mode]]
        if not cited(kept):
            return None
        if lead_with_top:
            kept = self._ensure_top_unit(query, hits, kept)
        kept += self._other_mentions(query, hits, kept)
        return self._answer(query, [*kept, *self._other_parts(query, hits, kept)], backend)

    def extractive(self, query: Query, hits: list[Hit]) -> Answer:
        """Verified quotes of the best sentences, grouped by unit. They come from the units the model is
        shown (``prompt_hits``), so a question naming "第43条" is not answered from another article."""
        extract = self.extractive_answerer.run(query.standalone, prompt_hits(hits))
        by_unit: dict[str, list[Sentence]] = {}
        for s in extract.sentences:
            by_unit.setdefault(s.unit.unit_id, []).append(s)
        sentences = []
        for group in by_unit.values():
            line = quote_line(group[0].unit, "".join(s.text for s in group), query.language == "en")
            sentences.append(AnswerSentence(line, Citation.of(group[0])))
        sentences = [s for s in self.verifier.sentences(sentences) if s.citation is not None]
        sentences += self._other_mentions(query, hits, sentences)
        sentences += self._other_parts(query, hits, sentences)
        answer = self._answer(query, sentences, "extractive", joiner="\n")
        # Every quoted sentence is a citation of its own (hotline staff see each one).
        answer.citations = self.verifier.run([*(Citation.of(s) for s in extract.sentences), *answer.citations])
        answer.citations = list(dict.fromkeys(answer.citations))
        return answer

    def _other_mentions(self, query: Query, hits: list[Hit], sentences: list[AnswerSentence]) -> list[AnswerSentence]:
        """A question about where the plan mentions something cites every place it does. "A、B分别…"
        (the retriever marked its parts' units) asks about each part instead: see ``_other_parts``. A
        question about what was achieved and what comes next also cites the plan's review of its topic,
        whether or not it names several parts ("…的成绩和下一步分别是什么")."""
        found = [] if any(h.aspect for h in hits) else self.mentions.run(query.standalone)
        review = self.review.run(query.standalone)
        found += [with_what_it_heads(review)] if review is not None else []
        cited_units = {s.citation.unit.unit_id for s in sentences if s.citation is not None}
        extra = []
        for m in found:
            if m.unit.unit_id not in cited_units:
                cited_units.add(m.unit.unit_id)
                extra.append(AnswerSentence(quote_line(m.unit, m.text, query.language == "en"), Citation.of(m)))
        return [s for s in self.verifier.sentences(extra) if s.citation is not None]

    def _other_parts(self, query: Query, hits: list[Hit], sentences: list[AnswerSentence]) -> list[AnswerSentence]:
        """A question about each of several things ("A、B分别…") cites each: a part whose own best unit
        the answer does not cite yet gets that unit's sentence closest to the part (a small model tends
        to answer every part from the unit in front of it)."""
        cited_units = {s.citation.unit.unit_id for s in sentences if s.citation is not None}
        extra = []
        for hit in hits:
            if hit.aspect is None or hit.unit.unit_id in cited_units:
                continue
            best = self.scorer.run(hit.aspect, [hit])
            if best:
                sentence = best[0].sentence
                extra.append(AnswerSentence(quote_line(sentence.unit, sentence.text, query.language == "en"), Citation.of(sentence)))
        return [s for s in self.verifier.sentences(extra) if s.citation is not None]

    def closest(self, query: Query, hit: Hit) -> Sentence | None:
        """The sentence of ``hit`` that comes closest to the question (for a 'not in the plan' answer), with
        the sentence it heads if it is a run-in heading."""
        extract = self.extractive_answerer.run(query.standalone, [hit])
        if not extract.sentences:
            return None
        best = with_what_it_heads(extract.sentences[0])
        return best if self.verifier.problem(Citation.of(best)) is None else None

    def _answer(self, query: Query, sentences: list[AnswerSentence], backend: str, joiner: str = "") -> Answer:
        if query.language == "en":
            shown = " ".join(s.text for s in sentences).strip()
        else:
            shown = (joiner or "").join(s.text for s in sentences)
        if query.language == "zh-Hant":
            shown = to_traditional(shown)
            sentences = [AnswerSentence(to_traditional(s.text), s.citation) for s in sentences]
        citations = cited(sentences)
        return Answer(
            question=query.question,
            standalone_question=query.standalone,
            text=shown,
            abstained=False,
            citations=citations,
            backend=backend,
            language=query.language,
            sentences=sentences,
            formal_citation=self.formal.run(citations),
        )

    def _ensure_top_unit(self, query: Query, hits: list[Hit], sentences: list[AnswerSentence]) -> list[AnswerSentence]:
        """The best-matching unit leads the answer when the model answered only from a neighbour."""
        top = hits[0].unit
        if any(s.citation is not None and s.citation.unit.unit_id == top.unit_id for s in sentences):
            return sentences
        scored = self.scorer.run(query.standalone, [hits[0]])
        if not scored:
            return sentences
        best = scored[0].sentence
        if query.language == "en":
            line = f"The plan's {top.english_label} ({top.title}) says: 「{best.text}」"
        else:
            line = f"规划{top.label}（{top.title}）提出：“{best.text}”"
        extra = self.verifier.sentences([AnswerSentence(line, Citation.of(best))])
        return [*extra, *sentences] if extra[0].citation is not None else sentences

    def _english_support(self, sentences: list[AnswerSentence], hits: list[Hit], question: str) -> list[AnswerSentence]:
        """English sentences share no characters with the plan: match them by embedding
        (the plan's sentence vectors come from the scorer's cache). A sentence made of the question's own
        words ("The district will help people like you.") is close to whatever the question retrieved, so
        similarity cannot check it: it stays uncited, like an echo of a Chinese question."""
        pending = [
            i
            for i, s in enumerate(sentences)
            if s.citation is None and len(s.text) > 20 and not echoes(s.text, question)
        ]
        if not pending or self.scorer.embedder is None:
            return sentences
        candidates: list[Sentence] = []
        vectors = []
        for h in prompt_hits(hits):
            unit_sents, unit_vecs = self.scorer.sentence_vectors(h.unit)
            candidates.extend(unit_sents)
            vectors.append(unit_vecs)
        if not candidates:
            return sentences
        q = self.scorer.embedder.embed_queries([sentences[i].text for i in pending])
        sims = q @ np.concatenate(vectors).T
        out = list(sentences)
        for row, i in enumerate(pending):
            j = int(sims[row].argmax())
            if float(sims[row, j]) >= ENGLISH_MATCH:
                out[i] = AnswerSentence(sentences[i].text, Citation.of(candidates[j]))
        return out
