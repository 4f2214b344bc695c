"""What the assistant says when it does not answer from the plan: a declined
request (injection, off-topic), or a question the plan is silent on. The plan's
name and size come from the loaded documents, never from literals."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.answering.answerability import Verdict, explain_gap
from assistant.answering.compose import AnswerComposer
from assistant.models import Answer, AnswerSentence, Citation, Document, Hit, Query
from assistant.text import chinese_number, to_traditional

HOTLINE = "12345"


class Refusals:
    def __init__(self, documents: Sequence[Document], composer: AnswerComposer) -> None:
        self.composer = composer
        self.name = "、".join(f"《{d.meta.name}》" for d in documents)
        self.english_name = "; ".join(d.meta.english_title or d.meta.title for d in documents)
        self.article_count = max((len(d.articles) for d in documents), default=0)

    def declined(self, query: Query, kind: str) -> Answer:
        """An injection or off-topic request: say what the assistant does, nothing more."""
        if query.language == "en":
            text = (
                f"Sorry, I can only answer questions about {self.english_name}, and I don't follow instructions to change that."
                if kind == "injection"
                else f"Sorry, that is outside what I can help with: I answer questions about {self.english_name}."
            )
        else:
            text = (
                f"抱歉，我只回答与{self.name}内容有关的问题，不能执行其他指令或透露系统设置。"
                if kind == "injection"
                else f"抱歉，这个请求与规划内容无关。我只回答关于{self.name}的问题。"
            )
        return self._answer(query, text, kind, [], [], sentence=False)

    def not_in_plan(self, query: Query, verdict: Verdict, hits: list[Hit]) -> Answer:
        """Say the plan is silent, what it says that comes closest (if genuinely related), and 12345."""
        reason = verdict.reason or "weak_evidence"
        english = query.language == "en"
        closest = self.composer.closest(query, verdict.closest) if verdict.closest is not None else None
        if english:
            if reason == "article_missing":
                text = f"The proposals have {self.article_count} articles; there is no such article."
            else:
                text = f"The plan does not say anything about {explain_gap(reason, True)}."
            if closest is not None:
                u = closest.unit
                text += f" The closest thing it does say is in {u.english_label} ({u.title}): 「{closest.text}」"
            text += f" For specific policies, call the {HOTLINE} government service hotline or ask the responsible district department."
        else:
            if reason == "article_missing":
                text = f"《建议》共{chinese_number(self.article_count)}条，没有您说的这一条。"
            elif reason == "weak_evidence":
                text = "规划（《建议》）中没有提到这方面的内容。"
            else:
                text = f"规划（《建议》）中没有提到{explain_gap(reason)}。"
            if closest is not None:
                u = closest.unit
                text += f"与此最相关的是{u.label}（{u.title}）：“{closest.text}”"
            text += f"如需了解具体政策，请拨打{HOTLINE}政务服务便民热线或咨询区相关部门。"
        citations = [Citation.of(closest)] if closest is not None else []
        return self._answer(query, text, reason, citations, hits)

    def _answer(
        self, query: Query, text: str, reason: str, citations: list[Citation], hits: list[Hit], sentence: bool = True
    ) -> Answer:
        if query.language == "zh-Hant":
            text = to_traditional(text)
        return Answer(
            question=query.question,
            standalone_question=query.standalone,
            text=text,
            abstained=True,
            citations=citations,
            backend="guard",
            language=query.language,
            reason=reason,
            sentences=[AnswerSentence(text, citations[0] if citations else None)] if sentence else [],
            hits=hits,
            formal_citation=self.composer.formal.run(citations),
        )
