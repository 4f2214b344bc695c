"""Shared fixtures. The fake embedder makes unit tests instant and deterministic:
it hashes character unigrams and bigrams into a fixed-size vector, so texts that
share characters are close, much like a crude lexical model."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = ROOT / "corpus"
PLAN_FILE = CORPUS_DIR / "yaohai-14th-five-year-plan-proposals.txt"
DEV_QUESTIONS = ROOT / "eval" / "dev_questions.jsonl"


class FakeEmbedder:
    """Deterministic bag-of-character-n-grams embedder (no model, no downloads)."""

    def __init__(self, dim: int = 256) -> None:
        self._dim = dim
        self.calls = 0

    @property
    def model_id(self) -> str:
        return f"fake-ngram-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            grams = list(text) + [text[i : i + 2] for i in range(len(text) - 1)]
            for g in grams:
                h = int.from_bytes(hashlib.blake2b(g.encode("utf-8"), digest_size=4).digest(), "little")
                out[row, h % self._dim] += 1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
        return out

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture(scope="session")
def plan_text() -> str:
    return PLAN_FILE.read_text(encoding="utf-8")


class ScriptedGenerator:
    """A deterministic fake language model: replies with a fixed text in 3-character
    pieces (or raises), recording every request. Implements the Generator protocol."""

    def __init__(self, reply: str = "", error: Exception | None = None) -> None:
        self.reply = reply
        self.error = error
        self.calls: list[list[dict[str, str]]] = []
        self.kwargs: list[dict[str, Any]] = []  # what else each request passed (quotes, for a backend that takes them)
        self.loaded = False

    @property
    def name(self) -> str:
        return "scripted"

    def load(self) -> None:
        self.loaded = True

    def close(self) -> None:
        self.loaded = False

    def stream(self, messages, *, max_tokens, temperature=0.0, stop=None, **kwargs) -> Iterator[str]:  # type: ignore[no-untyped-def]
        self.calls.append(messages)
        self.kwargs.append(kwargs)
        if self.error is not None:
            raise self.error
        for i in range(0, len(self.reply), 3):
            yield self.reply[i : i + 3]
