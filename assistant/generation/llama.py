"""Generation with llama.cpp (llama-cpp-python) from a GGUF file: the default,
CPU-friendly backend.

The model loads lazily, once, and a llama.cpp context is not re-entrant, so
replies are produced one at a time (a lock; other users wait, up to the
timeout). The chat template is the one stored in the GGUF.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import ConfigError, GenerationError, MissingDependencyError, ModelError
from assistant.generation import Message, check_request
from assistant.generation.gguf import check_gguf
from assistant.generation.shipped_models import model_label, resolve_model_path

if TYPE_CHECKING:
    from assistant.config import Settings
    from assistant.generation.shipped_models import Progress

_INSTALL = "pip install llama-cpp-python==0.3.36"
_PATCH_LOCK = threading.Lock()


def import_llama_cpp() -> Any:
    """Import llama_cpp with weight repacking disabled (see ``disable_weight_repacking``)."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingDependencyError(f"the llama backend needs llama-cpp-python ({exc}). Fix: {_INSTALL}") from exc
    except (OSError, RuntimeError) as exc:  # the package is there but its shared library cannot be loaded
        raise MissingDependencyError(f"llama-cpp-python is installed but broken ({exc}). Fix: {_INSTALL}") from exc
    disable_weight_repacking(llama_cpp)
    return llama_cpp


def disable_weight_repacking(llama_cpp: Any) -> None:
    """Make every model this process loads use ``use_extra_bufts = False``.

    With the default (True) llama.cpp repacks Q4 weights into a layout whose
    kernels die with SIGILL on some x86 CPUs (measured here: "Illegal
    instruction" on the first token). llama-cpp-python 0.3.36 has no argument
    for it, but ``Llama`` (and its OpenAI server) build their model params by
    calling ``llama_cpp.llama_cpp.llama_model_default_params()``, so we wrap
    that function once. Costs nothing on CPUs that were fine: repacking only
    speeds up some kernels.
    """
    low = llama_cpp.llama_cpp
    with _PATCH_LOCK:
        original = low.llama_model_default_params
        if getattr(original, "_no_extra_bufts", False):
            return

        def default_params() -> Any:
            params = original()
            params.use_extra_bufts = False
            return params

        default_params._no_extra_bufts = True  # type: ignore[attr-defined]
        low.llama_model_default_params = default_params


class LlamaGenerator:
    """Chat generation with llama.cpp from a local GGUF file."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_threads: int = 2,
        n_ctx: int = 4096,
        n_batch: int = 512,
        model_name: str | None = None,
        timeout_s: float = 90.0,
        seed: int = 42,
    ) -> None:
        for label, value in (("n_threads", n_threads), ("n_ctx", n_ctx), ("n_batch", n_batch)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"llama backend: {label} must be a positive integer, got {value!r}")
        if timeout_s <= 0:
            raise ConfigError(f"llama backend: timeout_s must be positive, got {timeout_s!r}")
        self.model_path = Path(model_path).expanduser()
        self.model_name = model_name or self.model_path.stem
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.timeout_s = float(timeout_s)
        self.seed = seed
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()
        self._llm: Any = None

    @classmethod
    def from_settings(cls, settings: Settings, progress: Progress | None = None) -> LlamaGenerator:
        """Assembles the shipped model on first use (``progress`` reports bytes copied)."""
        return cls(
            resolve_model_path(settings, progress),
            n_threads=settings.threads,
            n_ctx=settings.llm_context,
            model_name=model_label(settings),
            timeout_s=settings.generation_timeout_s,
        )

    @property
    def name(self) -> str:
        return f"llama:{self.model_name}"

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def load(self) -> None:
        """Load the model (once; later calls return at once). Raises ModelError."""
        if self._llm is not None:
            return
        with self._load_lock:
            if self._llm is not None:
                return
            # Checked in Python first: a truncated or foreign file must never reach the C loader.
            check_gguf(self.model_path)
            llama_cpp = import_llama_cpp()
            try:
                llm = llama_cpp.Llama(
                    model_path=str(self.model_path),
                    n_ctx=self.n_ctx,
                    n_batch=min(self.n_batch, self.n_ctx),
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    seed=self.seed,
                    verbose=False,
                )
            except (ValueError, RuntimeError, OSError) as exc:
                raise ModelError(f"llama.cpp cannot load model {self.model_path}: {exc}") from exc
            if llm.model_params.use_extra_bufts:  # the patch did not take: generating would crash
                llm.close()
                raise ModelError("llama.cpp weight repacking could not be disabled; refusing to run the model")
            self._llm = llm

    def close(self) -> None:
        """Free the model's memory (it reloads on next use)."""
        with self._load_lock, self._generate_lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        check_request(messages, max_tokens, temperature, stop)
        return self._generate(messages, max_tokens, temperature, stop or [])

    def _generate(self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str]) -> Iterator[str]:
        self.load()
        if not self._generate_lock.acquire(timeout=self.timeout_s):
            raise GenerationError(f"the model was busy with other questions for {self.timeout_s:g}s; try again")
        chunks: Any = None
        try:
            llm = self._llm
            if llm is None:  # closed while we waited
                raise GenerationError("the model was unloaded; try again")
            deadline = time.monotonic() + self.timeout_s
            try:
                chunks = llm.create_chat_completion(
                    messages=messages,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stop=stop,
                    stream=True,
                )
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
                    if time.monotonic() > deadline:
                        raise GenerationError(f"the model did not finish within {self.timeout_s:g}s")
            except ValueError as exc:
                # llama-cpp-python raises ValueError for a prompt longer than the context.
                if "context window" in str(exc):
                    raise GenerationError(
                        f"the question and its passages are too long for the model ({exc}); "
                        "ask a shorter question or raise setting 'llm_context'"
                    ) from exc
                raise GenerationError(f"llama.cpp failed: {exc}") from exc
            except (RuntimeError, KeyError, IndexError, TypeError) as exc:
                raise GenerationError(f"llama.cpp failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if chunks is not None:
                chunks.close()  # finishes llama-cpp-python's own generator while we still hold the lock
            self._generate_lock.release()
