"""What the answer flow needs loaded: the plan, the index, the embedder, the
sentence vectors and the language model. Each loads lazily, once, under a lock."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from assistant.answering.evidence import SentenceScorer
from assistant.answering.intent import IntentClassifier
from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.generation import Generator, create_generator
from assistant.models import Document
from assistant.retrieval.embedders import Embedder, RecentQueries, create_embedder
from assistant.retrieval.retriever import Retriever, sentence_cache
from assistant.text import load_pos_tagger

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
WARMUP_IDLE_POLL_S = 0.5  # the background warm-up waits this long while users are being answered


def _quiet(_: str) -> None:
    return None


class Resources:
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
        self.generator_error: str | None = None
        self._documents: list[Document] | None = None
        self._retrievers: dict[str, Retriever] = {}
        self._scorer: SentenceScorer | None = None
        self._intents: IntentClassifier | None = None
        self._plan_text: str | None = None
        self._lock = threading.RLock()
        self._warmup: tuple[int, int] | None = None  # (units done, units) while the background warm-up runs
        self._warmup_thread: threading.Thread | None = None

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = create_embedder(self.settings)
            if not isinstance(self._embedder, RecentQueries):
                self._embedder = RecentQueries(self._embedder)
            return self._embedder

    @property
    def scorer(self) -> SentenceScorer:
        with self._lock:
            if self._scorer is None:
                self._scorer = SentenceScorer(self.embedder, index=self.retriever().sentences)
            return self._scorer

    @property
    def intents(self) -> IntentClassifier:
        with self._lock:
            if self._intents is None:
                self._intents = IntentClassifier(self.embedder, cache_dir=self.settings.cache_dir)
            return self._intents

    @property
    def documents(self) -> list[Document]:
        with self._lock:
            if self._documents is None:
                from assistant.ingest.corpus import load_corpus

                self._documents = load_corpus(self.settings.corpus_dir)
            return self._documents

    @property
    def plan_text(self) -> str:
        with self._lock:
            if self._plan_text is None:
                self._plan_text = "\n".join(d.source for d in self.documents)
            return self._plan_text

    @property
    def plan_name(self) -> str:
        return "、".join(d.meta.name for d in self.documents)

    def retriever(self, mode: str | None = None) -> Retriever:
        """The retriever for a mode (hybrid/dense/bm25); the index is built or loaded once."""
        mode = mode or self.settings.retrieval_mode
        with self._lock:
            if mode not in self._retrievers:
                base = next(iter(self._retrievers.values()), None)
                self._retrievers[mode] = (
                    base.with_mode(mode)
                    if base is not None
                    else Retriever.from_settings(
                        self.settings.replace(retrieval_mode=mode),
                        embedder=self.embedder,
                        documents=self.documents,
                        progress=self.progress,
                    )
                )
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
                    self._generator_failed(exc)
            return self._generator

    def _generator_failed(self, exc: AssistantError) -> None:
        self._generator = None
        self.generator_error = str(exc)
        self.progress(f"语言模型不可用，改用摘录式回答: {exc}")

    def warm_up(self) -> None:
        """Load everything now (the UI does this at start-up, with progress)."""
        self.progress("加载规划文本…")
        units = [u for d in self.documents for u in d.units]
        self.progress("准备检索索引…")
        self.retriever()
        self.progress("准备句子级证据…")
        self.scorer.precompute(units, sentence_cache(self.settings, self.embedder))  # the retriever's, unless BM25 only
        self.progress("准备问题分类…")
        try:
            self.intents.load()
        except AssistantError as exc:  # the guard falls back to the model and its cues
            log.warning("intent examples unavailable: %s", exc)
        load_pos_tagger()  # the answerability check tags place names: ~1.4 s, paid here, not by the first question
        generator = self.generator
        if generator is not None:
            self.progress("加载语言模型…")
            try:
                generator.load()
            except AssistantError as exc:
                with self._lock:
                    self._generator_failed(exc)
        self.progress("就绪。")

    def prefix_warmup(self) -> tuple[int, int] | None:
        """(done, total) while prefix states are being built in the background; None otherwise."""
        return self._warmup

    def start_prefix_warmup(self) -> bool:
        """Build the model's saved prefix state for every plan unit in a background thread (``serve``
        calls this after ``warm_up``). It only works while no user waits for the model, one unit at a
        time, so it never blocks start-up; units already saved are skipped in milliseconds. False when
        there is nothing to do (setting off, no llama model)."""
        generator = self.generator
        warm = getattr(generator, "warm_prefix", None)
        if not (self.settings.prefix_warmup and self.settings.prefix_cache and callable(warm)):
            return False
        with self._lock:
            if self._warmup_thread is not None:
                return True
            from assistant.answering.prompt import prefix_messages

            plan = self.documents[0].meta.name if self.documents else ""
            units = [u for d in self.documents for u in d.units]
            self._warmup = (0, len(units))

            def run() -> None:
                built = 0
                started = time.perf_counter()
                try:
                    for i, unit in enumerate(units):
                        while getattr(generator, "waiting", 0) or getattr(generator, "busy", False):
                            time.sleep(WARMUP_IDLE_POLL_S)  # users first
                        if warm(prefix_messages(unit, plan)) == "built":
                            built += 1
                        self._warmup = (i + 1, len(units))
                except AssistantError as exc:
                    log.warning("prefix warm-up stopped: %s", exc)
                finally:
                    self._warmup = None
                self.progress(f"预热完成：{built} 条新建，用时 {time.perf_counter() - started:.0f} 秒。")

            self._warmup_thread = threading.Thread(target=run, name="prefix-warmup", daemon=True)
            self._warmup_thread.start()
        self.progress(f"正在后台预热 {len(units)} 条规划条款（不影响提问）…")
        return True
