"""The answer flow, top to bottom: question → Answer with verified citations.

validate → guard (injection / off-topic) → rewrite follow-ups → retrieve (excerpts streamed) → judge
answerability → draft with the model from the retrieved text only → verify and compose → present in the user's script.

Each step is one object, injectable through the constructor; the CLI and the UI
only render what this yields.
"""

from __future__ import annotations

import logging
from collections.abc import Generator as Generator_
from collections.abc import Iterator, Sequence
from functools import cached_property

from assistant.answering.answerability import AnswerabilityJudge, Verdict
from assistant.answering.citations import CitationAttacher
from assistant.answering.compose import UNVERIFIED_DRAFT_WARNING, AnswerComposer, invented_numbers, says_not_in_plan
from assistant.answering.guard import QuestionGuard
from assistant.answering.prompt import Drafter
from assistant.answering.refusals import Refusals
from assistant.answering.resources import Progress, Resources
from assistant.answering.rewrite import FollowUpRewriter, QueryTranslator, last_user_turn, plan_names, search_request
from assistant.answering.timing import Timer
from assistant.config import MODES, Settings
from assistant.errors import GenerationError, InvalidInputError
from assistant.generation import Generator
from assistant.models import Answer, ChatTurn, Document, Hit, Query, StreamEvent
from assistant.retrieval.embedders import Embedder
from assistant.retrieval.retriever import Retriever
from assistant.text import detect_language, to_simplified, to_traditional, validate_question
from assistant.text.dialogue import needs_context

log = logging.getLogger(__name__)
MAX_HISTORY_TURNS = 6
History = Sequence[ChatTurn | dict[str, str]] | None  # untrusted: parsed leniently, checked before use


class Assistant:
    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        generator: Generator | None = None,
        progress: Progress | None = None,
        guard: QuestionGuard | None = None,
        judge: AnswerabilityJudge | None = None,
        attacher: CitationAttacher | None = None,
    ) -> None:
        self.settings = settings
        self.resources = Resources(settings, embedder=embedder, generator=generator, progress=progress)
        self._guard = guard
        self._judge = judge
        self.attacher = attacher or CitationAttacher()

    # The resources, by name, for callers that search or browse.
    @property
    def documents(self) -> list[Document]:
        return self.resources.documents

    def retriever(self, mode: str | None = None) -> Retriever:
        return self.resources.retriever(mode)

    @property
    def guard(self) -> QuestionGuard:
        if self._guard is None:  # labelled example messages decide most questions without a model call
            self._guard = QuestionGuard(classifier=self.resources.intents)
        return self._guard

    @property
    def judge(self) -> AnswerabilityJudge:
        if self._judge is None:  # the plan itself says what it mentions and how many articles it has
            self._judge = AnswerabilityJudge(self.documents)
        return self._judge

    def warm_up(self) -> None:
        self.resources.warm_up()

    @property
    def backend_name(self) -> str:
        return self.resources.generator.name if self.resources.generator is not None else "extractive"

    @cached_property
    def composer(self) -> AnswerComposer:
        return AnswerComposer(self.documents, self.resources.scorer, attacher=self.attacher)

    @cached_property
    def refusals(self) -> Refusals:
        return Refusals(self.documents, self.composer)

    def search(self, query: str, k: int = 10, mode: str = "hybrid") -> list[Hit]:
        query = validate_question(query, self.settings.max_question_chars)
        return self.retriever(mode).run(query, k=k)

    def ask(self, question: str, history: History = None, mode: str | None = None) -> Answer:
        answer = list(self.stream(question, history, mode))[-1].answer
        assert answer is not None
        return answer

    def stream(self, question: str, history: History = None, mode: str | None = None) -> Iterator[StreamEvent]:
        """Yield status, the cited excerpts, the draft piece by piece, then the final Answer."""
        timer = Timer()
        mode = mode or self.settings.mode
        if mode not in MODES:
            raise InvalidInputError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        question = validate_question(question, self.settings.max_question_chars)
        turns = ChatTurn.parse_list(history, max_turns=MAX_HISTORY_TURNS, max_chars=self.settings.max_question_chars)
        language = detect_language(question)
        simplified = to_simplified(question)
        refusals = self.refusals

        generator = self.resources.generator
        # An elliptical follow-up ("中医这块呢？") is classified once it is rewritten into a whole question.
        elliptical = bool(turns) and needs_context(simplified)
        intent = self.guard.cues(simplified) if elliptical else self.guard.run(simplified, generator, self.resources.plan_text)
        if intent.kind != "policy":
            answer = refusals.declined(Query(question, question, language, mode), intent.kind)
            yield self._final(answer, [], timer)
            return

        yield StreamEvent("status", text="正在检索规划原文…")
        # Rewrite and retrieval read the conversation in the plan's script (a traditional turn was copied as is).
        turns = self.guard.trusted([ChatTurn(t.role, to_simplified(t.content)) for t in turns])
        standalone = FollowUpRewriter().run(simplified, turns)
        english = standalone if language == "en" else ""
        if english:  # the plan is Chinese: an English question is searched with a Chinese rendering
            standalone = QueryTranslator(generator, names=plan_names(self.documents)).run(standalone)
        if standalone != simplified:
            # What the rewrite carried in from the conversation is checked for instructions; an elliptical
            # follow-up to an accepted question is not re-judged as a task.
            if elliptical and not english:
                intent = self.guard.run(standalone, generator, self.resources.plan_text)
            else:
                intent = self.guard.cues(standalone)
            if intent.kind == "injection" or (intent.kind == "off_topic" and not elliptical):
                refusal = refusals.declined(Query(question, standalone, language, mode), intent.kind)
                yield self._final(refusal, [], timer)
                return
        standalone, context = search_request(simplified, standalone, turns) if not english else (standalone, [])
        query = Query(question, standalone, language, mode, english, last_user_turn(context) or "")
        timer.mark("rewrite_ms")
        hits = self.retriever().run(standalone, history=context, k=self.settings.top_k)
        timer.mark("retrieval_ms")
        yield StreamEvent("excerpts", hits=hits)
        timer.mark("excerpts_ms")

        evidence = [s.sentence for s in self.resources.scorer.run(standalone, hits[:2])]
        verdict = self.judge.run(f"{standalone} {english}".strip(), hits, evidence)
        if not verdict.answerable:
            yield self._final(refusals.not_in_plan(query, verdict, hits), hits, timer)
            return

        answer = yield from self._answer(generator, query, hits, verdict, refusals, timer)
        yield self._final(answer, hits, timer)

    def _answer(
        self,
        generator: Generator | None,
        query: Query,
        hits: list[Hit],
        verdict: Verdict,
        refusals: Refusals,
        timer: Timer,
    ) -> Generator_[StreamEvent, None, Answer]:
        """The model's draft streamed as it comes, then verified; verified quotes when there is no model,
        it fails, or nothing it wrote can be verified."""
        warnings: list[str] = []
        answer: Answer | None = None
        if generator is not None:
            try:
                draft_parts: list[str] = []
                drafter = Drafter(generator, self.resources.scorer, self.settings.max_answer_tokens, plan_name=self.resources.plan_name)
                for piece in drafter.run(query, hits):
                    timer.first("first_token_ms")
                    draft_parts.append(piece)
                    yield StreamEvent("token", text=to_traditional(piece) if query.language == "zh-Hant" else piece)
                timer.mark("generation_ms")
                answer = self._from_draft("".join(draft_parts), query, hits, verdict, refusals, drafter, warnings)
            except GenerationError as exc:
                log.warning("generation failed, answering with quotes: %s", exc)
                warnings.append("语言模型暂时出错，已改用规划原文摘录回答。")
        elif self.settings.backend != "extractive":
            log.warning("no language model (%s), answering with quotes", self.resources.generator_error)
            warnings.append("语言模型暂不可用，已改用规划原文摘录回答。")
        if answer is None:
            answer = self.composer.extractive(query, hits)
            if "first_token_ms" not in timer.ms:
                timer.mark("first_token_ms")
                yield StreamEvent("token", text=answer.text)
        answer.warnings.extend(warnings)
        return answer

    def _from_draft(
        self, draft: str, query: Query, hits: list[Hit], verdict: Verdict, refusals: Refusals, drafter: Drafter, warnings: list[str]
    ) -> Answer:
        # The model read the text and found no answer: evidence of silence (a lookup is answered by retrieval).
        silent = self.judge.believes_model(verdict, hits) if says_not_in_plan(draft.strip()) else None
        answer = None if silent else self.composer.from_draft(draft, query, hits, drafter.generator.name, lead_with_top=verdict.lookup)
        unverified = silent is None and answer is None
        if unverified:  # nothing it wrote is in the plan: did it make up a figure, or think of saying the plan is silent?
            made_up = bool(invented_numbers(draft, query, hits))  # then the model's odds need not be read (~0.15 s)
            silent = self.judge.doubts(verdict, hits, None if made_up else drafter.silence_logprob(), made_up)
            answer = None if silent else self.composer.extractive(query, hits)
        silent = silent if answer is None else self.judge.unmet(verdict, answer.citations, hits)  # a date for "when"…
        if silent is not None:
            answer = refusals.not_in_plan(query, silent, hits)
        elif unverified:
            warnings.append(UNVERIFIED_DRAFT_WARNING)
        assert answer is not None
        answer.draft = draft
        return answer

    @staticmethod
    def _final(answer: Answer, hits: list[Hit], timer: Timer) -> StreamEvent:
        answer.hits = hits or answer.hits
        timer.mark("total_ms")
        answer.timings_ms = timer.ms
        return StreamEvent("answer", answer=answer)
