"""The answer flow, end to end: question → Answer with verified citations.

validate → decline injection / off-topic → rewrite follow-ups → retrieve →
(excerpts streamed) → judge answerability → generate from the retrieved text
only → attach and verify citations → convert to the user's script.

Everything a user sees comes from here; the CLI and the UI only render it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .citations import CitationAttacher, CitationVerifier, SourceSentence, citation_for, split_answer
from .config import Settings
from .embedders import Embedder, create_embedder
from .errors import AssistantError, GenerationError
from .extractive import ExtractiveAnswerer, ScoredSentence, SentenceScorer
from .generators import Generator, Message, create_generator
from .guard import AnswerabilityJudge, QuestionGuard, Verdict, explain_gap, validate_question
from .models import Answer, AnswerSentence, Citation, Document, Hit
from .retriever import Retriever
from .rewrite import FollowUpRewriter, QueryTranslator
from .text import detect_language, to_simplified, to_traditional

Progress = Callable[[str], None]

HOTLINE = "12345"
NOT_IN_PLAN_MARK = "规划未提及"
_MAX_SENTENCES = {"resident": 4, "hotline": 6}  # a plain answer stays short; loops and lists are cut
_EXCERPT_BUDGET = 800  # characters of plan text in the prompt: ~600 tokens, ~4 s of prompt on 2 cores


@dataclass
class StreamEvent:
    kind: Literal["status", "excerpts", "token", "answer"]
    text: str = ""
    hits: list[Hit] = field(default_factory=list)
    answer: Answer | None = None


def _quiet(_: str) -> None:
    return None


class Assistant:
    """Owns the corpus, index, embedder and generator; loads each lazily and once."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        generator: Generator | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.progress = progress or _quiet
        self._embedder = embedder
        self._generator = generator
        self._generator_loaded = generator is not None or settings.backend == "extractive"
        self._generator_error: str | None = None
        self._documents: list[Document] | None = None
        self._retrievers: dict[str, Retriever] = {}
        self._lock = threading.RLock()
        self.guard = QuestionGuard()
        self.judge = AnswerabilityJudge()
        self._scorer: SentenceScorer | None = None
        self.attacher = CitationAttacher()

    # ------------------------------------------------------------ resources

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = create_embedder(self.settings)
            return self._embedder

    @property
    def scorer(self) -> SentenceScorer:
        with self._lock:
            if self._scorer is None:
                self._scorer = SentenceScorer(self.embedder)
            return self._scorer

    @property
    def extractive(self) -> ExtractiveAnswerer:
        return ExtractiveAnswerer(scorer=self.scorer)

    @property
    def documents(self) -> list[Document]:
        with self._lock:
            if self._documents is None:
                from .corpus import load_corpus

                self._documents = load_corpus(self.settings.corpus_dir)
            return self._documents

    def retriever(self, mode: str | None = None) -> Retriever:
        """The retriever for a mode (hybrid/dense/bm25); the index is built or loaded once."""
        mode = mode or self.settings.retrieval_mode
        with self._lock:
            if mode not in self._retrievers:
                base = next(iter(self._retrievers.values()), None)
                if base is None:
                    r = Retriever.from_settings(
                        self.settings.replace(retrieval_mode=mode),
                        embedder=self.embedder,
                        documents=self.documents,
                        progress=self.progress,
                    )
                else:
                    r = base.with_mode(mode)
                self._retrievers[mode] = r
            return self._retrievers[mode]

    @property
    def generator(self) -> Generator | None:
        """The LLM, or None (extractive backend, or the LLM could not be loaded)."""
        with self._lock:
            if not self._generator_loaded:
                self._generator_loaded = True
                try:
                    self._generator = create_generator(self.settings)
                except AssistantError as exc:
                    self._generator_error = str(exc)
                    self.progress(f"语言模型不可用，改用摘录式回答: {exc}")
            return self._generator

    def warm_up(self) -> None:
        """Load everything now (the UI does this at start-up, with progress)."""
        self.progress("加载规划文本…")
        _ = self.documents
        self.progress("准备检索索引…")
        self.retriever()
        self.progress("准备句子级证据…")
        units = [u for d in self.documents for u in d.units]
        self.scorer.precompute(units, self.settings.cache_dir / f"sentences-{_slug(self.embedder.model_id)}.npz")
        gen = self.generator
        if gen is not None and hasattr(gen, "load"):
            self.progress("加载语言模型…")
            try:
                gen.load()
            except AssistantError as exc:
                self._generator = None
                self._generator_error = str(exc)
                self.progress(f"语言模型不可用，改用摘录式回答: {exc}")
        self.progress("就绪。")

    @property
    def backend_name(self) -> str:
        gen = self.generator
        return gen.name if gen is not None else "extractive"

    # ------------------------------------------------------------ public API

    def search(self, query: str, k: int = 10, mode: str = "hybrid") -> list[Hit]:
        query = validate_question(query, self.settings.max_question_chars)
        retriever = self.retriever(mode)
        hits: list[Hit] = retriever.run(query, k=k)
        return hits

    def ask(self, question: str, history: list[dict[str, str]] | None = None, mode: str | None = None) -> Answer:
        answer: Answer | None = None
        for event in self.stream(question, history, mode):
            if event.kind == "answer":
                answer = event.answer
        assert answer is not None
        return answer

    def stream(
        self, question: str, history: list[dict[str, str]] | None = None, mode: str | None = None
    ) -> Iterator[StreamEvent]:
        """Yield status, the cited excerpts (as soon as retrieval finishes), the
        generated text piece by piece, then the final Answer."""
        t0 = time.perf_counter()
        timings: dict[str, float] = {}

        def mark(name: str) -> None:
            timings[name] = (time.perf_counter() - t0) * 1000

        mode = mode or self.settings.mode
        if mode not in ("resident", "hotline"):
            from .errors import InvalidInputError

            raise InvalidInputError(f"mode {mode!r} is not one of resident, hotline")
        question = validate_question(question, self.settings.max_question_chars)
        history = _clean_history(history, self.settings.max_question_chars)
        language = detect_language(question)
        simplified = to_simplified(question)

        intent = self.guard.run(simplified)
        if intent.kind != "policy":
            mark("total_ms")
            yield StreamEvent("answer", answer=self._declined(question, language, intent.kind, timings))
            return

        yield StreamEvent("status", text="正在检索规划原文…")
        generator = self.generator
        standalone = FollowUpRewriter(generator).run(simplified, history)
        retr_history = history if standalone == simplified else None
        # The plan is Chinese: an English question is searched with a Chinese rendering.
        english_question = standalone if language == "en" else ""
        if english_question:
            standalone = QueryTranslator(generator).run(standalone)
        mark("rewrite_ms")
        hits = self.retriever().run(standalone, history=retr_history, k=self.settings.top_k)
        mark("retrieval_ms")
        yield StreamEvent("excerpts", hits=hits)
        mark("excerpts_ms")

        verdict = self.judge.run(f"{standalone} {english_question}".strip(), hits)
        if not verdict.answerable:
            answer = self._not_in_plan(question, standalone, language, verdict, hits, timings)
            mark("total_ms")
            answer.timings_ms = timings
            yield StreamEvent("answer", answer=answer)
            return

        warnings: list[str] = []
        answer_obj: Answer | None = None
        if generator is None:
            if self.settings.backend != "extractive":
                warnings.append(f"语言模型不可用，已改用摘录式回答（{self._generator_error}）")
        else:
            try:
                text_parts: list[str] = []
                for piece in self._generate(generator, english_question or standalone, hits, language, mode):
                    if "first_token_ms" not in timings:
                        mark("first_token_ms")
                    text_parts.append(piece)
                    yield StreamEvent("token", text=to_traditional(piece) if language == "zh-Hant" else piece)
                mark("generation_ms")
                draft = "".join(text_parts)
                answer_obj = self._from_generated(draft, question, standalone, language, mode, hits, generator.name)
                if answer_obj is None:
                    warnings.append("模型回答无法与原文核对，已改用原文摘录回答")
                    answer_obj = self._extractive_answer(question, standalone, language, mode, hits)
                answer_obj.draft = draft
            except GenerationError as exc:
                warnings.append(f"语言模型出错，已改用摘录式回答（{exc}）")
        if answer_obj is None:
            answer_obj = self._extractive_answer(question, standalone, language, mode, hits)
            if "first_token_ms" not in timings:
                mark("first_token_ms")
                yield StreamEvent("token", text=answer_obj.text)
        answer_obj.warnings.extend(warnings)
        answer_obj.hits = hits
        mark("total_ms")
        answer_obj.timings_ms = timings
        yield StreamEvent("answer", answer=answer_obj)

    # ------------------------------------------------------------ generation

    def _generate(
        self, generator: Generator, question: str, hits: list[Hit], language: str, mode: str
    ) -> Iterator[str]:
        shown = _prompt_hits(hits)
        messages = build_messages(question, shown, language, mode, self.scorer.run(question, shown))
        deadline = time.monotonic() + self.settings.generation_timeout_s
        text = ""
        stream = generator.stream(messages, max_tokens=self.settings.max_answer_tokens, temperature=0.0)
        try:
            for piece in stream:
                yield piece
                text += piece
                if time.monotonic() > deadline:
                    raise GenerationError(f"回答超时（超过 {self.settings.generation_timeout_s:g} 秒）")
                # Small models fall into loops: stop at the first repeated sentence
                # (it would be dropped anyway) instead of burning the token budget.
                if piece and piece[-1] in "。！？\n" and _repeats(text):
                    break
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def _from_generated(
        self,
        raw: str,
        question: str,
        standalone: str,
        language: str,
        mode: str,
        hits: list[Hit],
        backend: str,
    ) -> Answer | None:
        text = _clean_generated(raw)
        if not text:
            return None
        if NOT_IN_PLAN_MARK in text[:20] or text.lower().startswith("the plan does not"):
            # The model's judgement that the excerpts do not answer: abstain unless the
            # retrieval evidence is strong, in which case quoting beats refusing.
            top = hits[0] if hits else None
            if top is None or (top.dense_score or 0.0) < self.judge.min_dense + 0.04:
                return self._not_in_plan(
                    question, standalone, language, Verdict(False, "weak_evidence", top), hits, {}
                )
            return None
        simplified_text = to_simplified(text) if language == "zh-Hant" else text
        sentences, citations = self.attacher.run(simplified_text, _prompt_hits(hits), question=standalone)
        if language == "en":
            sentences, citations = self._english_support(sentences, citations, hits)
        sentences, citations = _verified(sentences, citations, self.documents)
        kept = [s for s in sentences if s.citation is not None or _harmless(s.text)]
        kept = kept[: _MAX_SENTENCES[mode]]
        used = {s.citation for s in kept if s.citation is not None}
        if len(used) < len(citations):  # renumber: keep only citations still shown
            remap = {old: new for new, old in enumerate(sorted(used))}
            citations = [citations[i] for i in sorted(used)]
            kept = [AnswerSentence(s.text, None if s.citation is None else remap[s.citation]) for s in kept]
        if not citations:
            return None
        kept, citations = self._ensure_top_unit(standalone, hits, language, kept, citations)
        shown = "".join(s.text if language != "en" else s.text + " " for s in kept).strip()
        if language == "zh-Hant":
            shown = to_traditional(shown)
            kept = [AnswerSentence(to_traditional(s.text), s.citation) for s in kept]
        return Answer(
            question=question,
            standalone_question=standalone,
            text=shown,
            abstained=False,
            citations=citations,
            backend=backend,
            language=language,
            sentences=kept,
            formal_citation=self.formal_citation(citations),
        )

    def _ensure_top_unit(
        self,
        question: str,
        hits: list[Hit],
        language: str,
        sentences: list[AnswerSentence],
        citations: list[Citation],
    ) -> tuple[list[AnswerSentence], list[Citation]]:
        """The best-matching unit is almost always the one a resident needs (recall@1
        ≈ 0.97 on the dev set); a small model sometimes answers from a neighbour
        instead. Then the top unit's best sentence is added, quoted and cited."""
        top = hits[0].unit
        if any(c.doc_id == top.doc_id and c.article == top.number and c.chapter == top.chapter for c in citations):
            return sentences, citations
        scored = self.scorer.run(question, [hits[0]])
        if not scored:
            return sentences, citations
        best = scored[0].sentence
        if language == "en":
            where = f"Article {top.number}" if top.number is not None else f"the intro of part {top.chapter}"
            line = f"The plan's {where} ({top.title}) says: 「{best.text}」"
        else:
            line = f"规划{top.label}（{top.title}）提出：“{best.text}”"
        extra, verified = _verified([AnswerSentence(line, 0)], [citation_for(best)], self.documents)
        if not verified:
            return sentences, citations
        # The best-matching unit leads; the model's sentences follow with their citations renumbered.
        shifted = [AnswerSentence(s.text, None if s.citation is None else s.citation + 1) for s in sentences]
        return [extra[0], *shifted], [*verified, *citations]

    def _english_support(
        self, sentences: list[AnswerSentence], citations: list[Citation], hits: list[Hit]
    ) -> tuple[list[AnswerSentence], list[Citation]]:
        """English sentences share no characters with the plan: match them by embedding
        (the plan's sentence vectors come from the scorer's cache)."""
        pending = [i for i, s in enumerate(sentences) if s.citation is None and len(s.text) > 20]
        if not pending:
            return sentences, citations
        candidates: list[SourceSentence] = []
        vectors = []
        for h in _prompt_hits(hits):
            unit_sents, unit_vecs = self.scorer.sentence_vectors(h.unit)
            candidates.extend(unit_sents)
            vectors.append(unit_vecs)
        if not candidates:
            return sentences, citations
        q = self.embedder.embed_queries([sentences[i].text for i in pending])
        sims = q @ np.concatenate(vectors).T
        out = list(sentences)
        cits = list(citations)
        for row, i in enumerate(pending):
            j = int(sims[row].argmax())
            if float(sims[row, j]) >= 0.82:
                cits.append(citation_for(candidates[j]))
                out[i] = AnswerSentence(sentences[i].text, len(cits) - 1)
        return out, cits

    # ------------------------------------------------------------ extractive

    def _extractive_answer(
        self, question: str, standalone: str, language: str, mode: str, hits: list[Hit]
    ) -> Answer:
        extract = self.extractive.run(standalone, hits)
        citations: list[Citation] = []
        sentences: list[AnswerSentence] = []
        by_unit: dict[str, list[SourceSentence]] = {}
        for s in extract.sentences:
            by_unit.setdefault(s.unit.unit_id, []).append(s)
        for group in by_unit.values():
            unit = group[0].unit
            quotes = "".join(s.text for s in group)
            if language == "en":
                intro = f"Article {unit.number} ({unit.title}) of the plan says: " if unit.number else (
                    f"The intro of part {unit.chapter} of the plan says: "
                )
                line = f"{intro}「{quotes}」"
            else:
                line = f"规划{unit.label}（{unit.title}）提出：“{quotes}”"
            for s in group:
                citations.append(citation_for(s))
            sentences.append(AnswerSentence(line, len(citations) - len(group)))
        sentences, citations = _verified(sentences, citations, self.documents)
        text = "\n".join(s.text for s in sentences)
        if language == "zh-Hant":
            text = to_traditional(text)
        return Answer(
            question=question,
            standalone_question=standalone,
            text=text,
            abstained=False,
            citations=citations,
            backend="extractive",
            language=language,
            sentences=sentences,
            formal_citation=self.formal_citation(citations),
        )

    # ------------------------------------------------------------ refusals

    def _declined(self, question: str, language: str, kind: str, timings: dict[str, float]) -> Answer:
        if language == "en":
            text = (
                "Sorry, I can only answer questions about the Yaohai District 14th Five-Year Plan proposals, "
                "and I don't follow instructions to change that."
                if kind == "injection"
                else "Sorry, that is outside what I can help with: I answer questions about the Yaohai District "
                "14th Five-Year Plan proposals (elderly care, schools, health care, housing, jobs, environment…)."
            )
        else:
            text = (
                "抱歉，我只回答与《瑶海区“十四五”规划建议》内容有关的问题，不能执行其他指令或透露系统设置。"
                if kind == "injection"
                else "抱歉，这个请求与规划内容无关。我只回答关于瑶海区“十四五”规划建议的问题，"
                "比如养老、教育、看病、老旧小区改造、就业社保、环境等。"
            )
            if language == "zh-Hant":
                text = to_traditional(text)
        return Answer(
            question=question,
            standalone_question=question,
            text=text,
            abstained=True,
            citations=[],
            backend="guard",
            language=language,
            reason=kind,
            timings_ms=timings,
        )

    def _not_in_plan(
        self,
        question: str,
        standalone: str,
        language: str,
        verdict: Verdict,
        hits: list[Hit],
        timings: dict[str, float],
    ) -> Answer:
        reason = verdict.reason or "weak_evidence"
        english = language == "en"
        gap = explain_gap(reason, english)
        citations: list[Citation] = []
        closest_line = ""
        if verdict.closest is not None:
            extract = self.extractive.run(standalone, [verdict.closest])
            if extract.sentences:
                best = extract.sentences[0]
                citations = CitationVerifier(self.documents).run([citation_for(best)])
                if citations:
                    u = best.unit
                    closest_line = (
                        f" The closest thing it does say is in Article {u.number} ({u.title}): 「{best.text}」"
                        if english
                        else f"与此最相关的是{u.label}（{u.title}）：“{best.text}”"
                    )
        if english:
            if reason == "article_missing":
                text = "The proposals have 43 articles; there is no such article."
            else:
                text = f"The plan does not say anything about {gap}."
            text += closest_line + f" For specific policies, call the {HOTLINE} government service hotline or ask the responsible district department."
        else:
            if reason == "article_missing":
                text = "《建议》共四十三条，没有您说的这一条。"
            elif reason == "weak_evidence":
                text = "规划（《建议》）中没有提到这方面的内容。"
            else:
                text = f"规划（《建议》）中没有提到{gap}。"
            text += closest_line
            text += f"如需了解具体政策，请拨打{HOTLINE}政务服务便民热线或咨询区相关部门。"
            if language == "zh-Hant":
                text = to_traditional(text)
        return Answer(
            question=question,
            standalone_question=standalone,
            text=text,
            abstained=True,
            citations=citations,
            backend="guard",
            language=language,
            reason=reason,
            sentences=[AnswerSentence(text, 0 if citations else None)],
            hits=hits,
            formal_citation=self.formal_citation(citations) if citations else "",
            timings_ms=timings,
        )

    # ------------------------------------------------------------ formatting

    def formal_citation(self, citations: list[Citation]) -> str:
        """依据：《中共合肥市瑶海区委关于…的建议》第十九条、第三十六条"""
        if not citations:
            return ""
        titles = {d.doc_id: d.meta.title for d in self.documents}
        parts: list[str] = []
        for c in citations:
            label = c.label if c.article is not None else f"第{c.chapter}部分"
            entry = f"《{titles.get(c.doc_id, c.doc_id)}》{label}"
            if entry not in parts:
                parts.append(entry)
        # Same document: name it once.
        doc_titles = {c.doc_id for c in citations}
        if len(doc_titles) == 1:
            title = titles.get(next(iter(doc_titles)), "")
            labels = [p.split("》", 1)[1] for p in parts]
            return f"依据：《{title}》" + "、".join(labels)
        return "依据：" + "；".join(parts)


# ---------------------------------------------------------------- helpers


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def _clean_history(history: object, max_chars: int) -> list[dict[str, str]]:
    """Keep well-formed turns only; a bad history never breaks a question."""
    if not isinstance(history, list):
        return []
    out = []
    for turn in history[-6:]:
        if isinstance(turn, dict) and turn.get("role") in ("user", "assistant"):
            content = turn.get("content")
            if isinstance(content, str) and content.strip():
                out.append({"role": str(turn["role"]), "content": content.strip()[:max_chars]})
    return out


def _prompt_hits(hits: list[Hit]) -> list[Hit]:
    """The units shown to the model: the top one, plus others close to it in score."""
    if not hits:
        return []
    top = hits[0].score
    return [h for i, h in enumerate(hits[:3]) if i == 0 or h.score >= 0.6 * top]


def _excerpt(hit: Hit, budget: int, scored: list[ScoredSentence]) -> str:
    text = hit.unit.text
    if len(text) <= budget:
        return text
    # A long article: its most relevant sentences, in reading order, within budget.
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


def build_messages(
    question: str, hits: list[Hit], language: str, mode: str, scored: list[ScoredSentence] | None = None
) -> list[Message]:
    shown = _prompt_hits(hits)
    budget = _EXCERPT_BUDGET // max(1, len(shown))
    blocks = [f"[{h.unit.label} {h.unit.title}] {_excerpt(h, budget, scored or [])}" for h in shown]
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
    system = (
        "你是瑶海区“十四五”规划建议的问答助手。居民的问题可能很口语，先理解他真正关心什么，再根据给出的规划原文回答，"
        "尽量沿用原文的说法，涉及几条就分别说明。不要编造原文没有的数字、金额、日期或办理流程。"
        f"只有原文和问题完全无关时，才回答“{NOT_IN_PLAN_MARK}”。" + lang_rule
    )
    user = "规划原文：\n" + "\n".join(blocks) + f"\n\n问题：{question}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


_MARKERS = re.compile(r"\[\d+\]|【\d+】")


_MARKDOWN = re.compile(r"\*\*|__|^#+\s*|^\s*(?:[-*•]|\d+[.、)])\s+", re.MULTILINE)


def _norm_sentence(sentence: str) -> str:
    return re.sub(r"[\s\W_]+", "", sentence)


def _repeats(text: str) -> bool:
    """True when the last complete sentence already appeared earlier."""
    sentences = [_norm_sentence(x) for x in split_answer(text)]
    sentences = [x for x in sentences if len(x) >= 6]
    return len(sentences) >= 2 and sentences[-1] in sentences[:-1]


# The model's own conclusions ("这表明……可能会……") are not the plan's words.
_INFERENCE = re.compile(r"[，,；;]\s*(这表明|这说明|由此可见|可见|这意味着|意味着|也就是说|看来|因此可以|所以可以)[^。！？!?\n]*")
_INFERENCE_SENTENCE = re.compile(r"^(这表明|这说明|由此可见|可见|这意味着|也就是说|看来|总之|总的来说|综上)")


def _clean_generated(raw: str) -> str:
    """Drop citation markers the model invents, markdown, its own conclusions, and repeated sentences."""
    text = _MARKDOWN.sub("", _MARKERS.sub("", raw)).strip()
    text = _INFERENCE.sub("", text)
    text = re.sub(r"\n{2,}", "\n", text)
    seen: set[str] = set()
    kept = []
    for sentence in split_answer(text):
        key = _norm_sentence(sentence)
        if (key and key in seen) or _INFERENCE_SENTENCE.match(sentence):
            continue
        seen.add(key)
        kept.append(sentence)
    joiner = " " if kept and all(x.isascii() for x in "".join(kept)[:40]) else ""
    return joiner.join(kept)


def _harmless(sentence: str) -> bool:
    """Framing text that asserts nothing checkable may stay uncited."""
    return len(sentence) <= 16 and not re.search(r"\d|第.{1,3}条|article", sentence, re.IGNORECASE)


def _verified(
    sentences: list[AnswerSentence], citations: list[Citation], documents: list[Document]
) -> tuple[list[AnswerSentence], list[Citation]]:
    """Drop citations that fail verification and renumber; their sentences lose the citation."""
    verifier = CitationVerifier(documents)
    keep: dict[int, int] = {}
    out: list[Citation] = []
    for i, c in enumerate(citations):
        if verifier.problem(c) is None:
            keep[i] = len(out)
            out.append(c)
    fixed = [
        AnswerSentence(s.text, keep.get(s.citation) if s.citation is not None else None) for s in sentences
    ]
    return fixed, out


__all__ = ["Assistant", "StreamEvent", "build_messages", "split_answer"]
