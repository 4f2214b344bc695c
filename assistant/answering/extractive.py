"""The no-LLM answerer: the best supporting sentences of the retrieved units,
quoted verbatim. Instant, always available, and the fallback when the language
model fails, times out or writes nothing verifiable."""

from __future__ import annotations

from dataclasses import dataclass

from assistant.answering.evidence import SentenceScorer
from assistant.models import Hit, Sentence


@dataclass(frozen=True)
class Extract:
    sentences: list[Sentence]  # in reading order, grouped by unit


class ExtractiveAnswerer:
    """Pick up to ``max_sentences`` sentences from the top ``max_units`` hits.

    Further sentences must come within ``relative_floor`` of the best score, and
    within ``other_unit_floor`` when they come from another unit, so an unrelated
    unit is not quoted just because it was retrieved.
    """

    def __init__(
        self,
        max_sentences: int = 3,
        max_units: int = 3,
        relative_floor: float = 0.6,
        other_unit_floor: float = 0.85,
        scorer: SentenceScorer | None = None,
    ) -> None:
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be >= 1, got {max_sentences}")
        if max_units < 1:
            raise ValueError(f"max_units must be >= 1, got {max_units}")
        for name, value in (("relative_floor", relative_floor), ("other_unit_floor", other_unit_floor)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.other_unit_floor = other_unit_floor
        self.max_sentences = max_sentences
        self.max_units = max_units
        self.relative_floor = relative_floor
        self.scorer = scorer or SentenceScorer()

    def run(self, question: str, hits: list[Hit]) -> Extract:
        scored = self.scorer.run(question, hits[: self.max_units])
        if not scored:
            return Extract([])
        top_score = scored[0].score
        chosen = [scored[0]]
        for item in scored[1:]:
            if len(chosen) >= self.max_sentences:
                break
            floor = self.relative_floor if item.rank == scored[0].rank else self.other_unit_floor
            if item.score > 0 and item.score >= floor * top_score:
                chosen.append(item)
        # Reading order: by hit rank, then position in the plan.
        chosen.sort(key=lambda x: (x.rank, x.sentence.start))
        return Extract([c.sentence for c in chosen])
