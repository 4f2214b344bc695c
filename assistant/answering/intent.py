"""``IntentClassifier``: how likely a message is a question (A), an unrelated task (B)
or an attempt to change the assistant's rules (C), from labelled example messages.

The examples (``intent_examples.jsonl``) are generic messages a district's residents
might send, written without reference to this plan or any evaluation question. Each
is embedded once (cached on disk, keyed by the embedder and the examples), and a
multinomial logistic regression is fitted on the vectors at first use (well under a
second). A message then costs one query embedding instead of a model call, so the
guard asks the language model only when this classifier is unsure.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.errors import ConfigError
from assistant.retrieval.embedders import Embedder
from assistant.retrieval.vector_cache import cached_vectors
from assistant.text import to_simplified

EXAMPLES_FILE = Path(__file__).with_name("intent_examples.jsonl")
LABELS = ("A", "B", "C")  # question, task, instruction (the guard's classes)
_SCALE = 10.0  # cosines of a small model sit in a narrow band; scaled so the regression converges quickly
_EPOCHS = 400
_STEP = 0.5
_L2 = 1e-2


@dataclass(frozen=True)
class IntentScores:
    question: float  # P(A)
    task: float  # P(B)
    instruction: float  # P(C)

    @property
    def likeliest_refusal(self) -> str:
        """The guard's kind for the likelier non-question class."""
        return "injection" if self.instruction >= self.task else "off_topic"


def read_examples(path: Path) -> list[tuple[str, str]]:
    """(text, label) pairs; a malformed file is a ConfigError that names the line."""
    examples: list[tuple[str, str]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read intent examples {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, label = str(row["text"]), str(row["label"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}, line {number}: not an intent example ({exc})") from exc
        if label not in LABELS or not text.strip():
            raise ConfigError(f"{path}, line {number}: label must be one of {LABELS} with a text, got {label!r}")
        examples.append((to_simplified(text), label))
    if {label for _, label in examples} != set(LABELS):
        raise ConfigError(f"{path}: needs examples of every label {LABELS}")
    return examples


def fit_softmax(vectors: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by full-batch gradient descent (deterministic)."""
    targets = np.stack([(labels == c).astype(np.float32) for c in LABELS], axis=1)
    weights = np.zeros((vectors.shape[1], len(LABELS)), dtype=np.float32)
    bias = np.zeros(len(LABELS), dtype=np.float32)
    for _ in range(_EPOCHS):
        probs = _softmax(vectors @ weights + bias)
        grad = (probs - targets) / len(vectors)
        weights -= _STEP * (vectors.T @ grad + _L2 * weights)
        bias -= _STEP * grad.sum(axis=0)
    return weights, bias


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class IntentClassifier:
    def __init__(self, embedder: Embedder, *, examples: Path = EXAMPLES_FILE, cache_dir: Path | None = None) -> None:
        self.embedder = embedder
        self.examples_path = examples
        self.cache_dir = cache_dir
        self._model: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Embed the examples (or load their cached vectors) and fit; once."""
        with self._lock:
            if self._model is not None:
                return
            examples = read_examples(self.examples_path)
            texts = [t for t, _ in examples]
            key = hashlib.sha256("\x1f".join([self.embedder.model_id, *texts]).encode("utf-8")).hexdigest()
            cache = self.cache_dir / f"intent-{key[:16]}.npz" if self.cache_dir is not None else None
            shape = (len(texts), int(self.embedder.dim))
            vectors, _ = cached_vectors(cache, key, shape, lambda: self.embedder.embed_queries(texts), "intent-example")
            labels = np.array([label for _, label in examples])
            self._model = fit_softmax(vectors * _SCALE, labels)

    def run(self, message: str) -> IntentScores:
        self.load()
        assert self._model is not None
        weights, bias = self._model
        vector = np.asarray(self.embedder.embed_queries([to_simplified(message)]), dtype=np.float32)
        probs = _softmax(vector * _SCALE @ weights + bias)[0]
        return IntentScores(float(probs[0]), float(probs[1]), float(probs[2]))
