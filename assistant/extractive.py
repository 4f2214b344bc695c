"""The no-LLM answerer: the best supporting sentences of the retrieved units,
quoted verbatim. Instant, always available, and the fallback when the language
model fails or times out."""

from __future__ import annotations

from dataclasses import dataclass

from .citations import SourceSentence, unit_sentences
from .models import Hit
from .text import bm25_tokens


@dataclass(frozen=True)
class Extract:
    sentences: list[SourceSentence]  # in reading order, grouped by unit


class ExtractiveAnswerer:
    """Pick up to ``max_sentences`` sentences from the top ``max_units`` hits.

    A sentence scores by the question terms it contains (longer terms weigh
    more), plus a bonus when it lies in the hit's best-matching chunk. Sentences
    from lower-ranked units must come within ``relative_floor`` of the best score.
    """

    def __init__(self, max_sentences: int = 3, max_units: int = 3, relative_floor: float = 0.6) -> None:
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be >= 1, got {max_sentences}")
        if max_units < 1:
            raise ValueError(f"max_units must be >= 1, got {max_units}")
        if not 0.0 <= relative_floor <= 1.0:
            raise ValueError(f"relative_floor must be in [0, 1], got {relative_floor}")
        self.max_sentences = max_sentences
        self.max_units = max_units
        self.relative_floor = relative_floor

    def run(self, question: str, hits: list[Hit]) -> Extract:
        terms = {t for t in bm25_tokens(question) if len(t) >= 2 or not t.isascii()}
        scored: list[tuple[float, int, SourceSentence]] = []
        for rank, hit in enumerate(hits[: self.max_units]):
            best_chunk = hit.chunks[0] if hit.chunks else None
            for sentence in unit_sentences(hit.unit):
                overlap = sum(len(t) for t in terms if t in sentence.text)
                in_best_chunk = best_chunk is not None and best_chunk.start <= sentence.start < best_chunk.end
                score = overlap + (1.5 if in_best_chunk else 0.0) - 0.5 * rank
                scored.append((score, rank, sentence))
        if not scored:
            return Extract([])
        scored.sort(key=lambda x: (-x[0], x[1], x[2].start))
        top_score = scored[0][0]
        chosen = [scored[0]]
        for item in scored[1:]:
            if len(chosen) >= self.max_sentences:
                break
            if item[0] > 0 and item[0] >= self.relative_floor * top_score:
                chosen.append(item)
        # Reading order: by hit rank, then position in the plan.
        chosen.sort(key=lambda x: (x[1], x[2].start))
        return Extract([c[2] for c in chosen])
