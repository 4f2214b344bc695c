"""Generation with Hugging Face transformers on CPU: a local model folder, or a
GGUF file (transformers dequantises it, so it needs about 4x the memory of
llama.cpp and runs about 2x slower; useful when llama.cpp cannot be installed).

Nothing is ever downloaded: hub names are refused and loading is offline.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import ConfigError, GenerationError, InvalidInputError, MissingDependencyError, ModelError
from assistant.generation import Message, check_request
from assistant.generation.gguf import check_gguf
from assistant.generation.shipped_models import model_label, resolve_model_path

if TYPE_CHECKING:
    from assistant.config import Settings
    from assistant.generation.shipped_models import Progress

_INSTALL = "pip install torch transformers gguf accelerate"


def _hold_back(text: str, stops: list[str]) -> int:
    """How many trailing characters of ``text`` could still grow into a stop string."""
    keep = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), keep, -1):
            if text.endswith(stop[:n]):
                keep = n
                break
    return keep


def cut_at_stop(pieces: Iterator[str], stops: list[str]) -> Iterator[str]:
    """Pass text pieces through, ending just before the first stop string.

    transformers stops *after* generating a stop string, so the tail that
    might be the start of one is held back until it is decided.
    """
    if not stops:
        yield from pieces
        return
    pending = ""
    for piece in pieces:
        pending += piece
        hits = [i for i in (pending.find(s) for s in stops) if i >= 0]
        if hits:
            if min(hits) > 0:
                yield pending[: min(hits)]
            return
        safe = len(pending) - _hold_back(pending, stops)
        if safe > 0:
            yield pending[:safe]
            pending = pending[safe:]
    if pending:
        yield pending


class TransformersGenerator:
    """Chat generation with transformers; loads lazily, once, and serves one reply at a time."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_threads: int | None = None,
        model_name: str | None = None,
        timeout_s: float = 90.0,
    ) -> None:
        path = Path(model_path).expanduser()
        if not path.exists():
            looks_like_hub = (
                isinstance(model_path, str) and model_path.count("/") == 1 and not model_path.startswith(".")
            )
            hint = " (hub names are refused: this assistant never downloads models)" if looks_like_hub else ""
            raise ModelError(f"model {str(model_path)!r} is not a local folder or GGUF file{hint}")
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise ModelError(f"model folder {path} has no config.json: not a Hugging Face model folder")
            self.folder, self.gguf_file = path, None
        else:
            check_gguf(path)  # a truncated or foreign file fails here, not deep inside transformers
            self.folder, self.gguf_file = path.parent, path.name
        if n_threads is not None and n_threads <= 0:
            raise ConfigError(f"transformers backend: n_threads must be positive, got {n_threads}")
        if timeout_s <= 0:
            raise ConfigError(f"transformers backend: timeout_s must be positive, got {timeout_s}")
        self.model_path = path
        self.model_name = model_name or (path.stem if self.gguf_file else path.name)
        self.n_threads = n_threads
        self.timeout_s = float(timeout_s)
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None

    @classmethod
    def from_settings(cls, settings: Settings, progress: Progress | None = None) -> TransformersGenerator:
        return cls(
            resolve_model_path(settings, progress),
            n_threads=settings.threads,
            model_name=model_label(settings),
            timeout_s=settings.generation_timeout_s,
        )

    @property
    def name(self) -> str:
        return f"transformers:{self.model_name}"

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Load tokenizer and weights (once; later calls return at once)."""
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            # Belt and braces with local_files_only: the hub client reads these at import time.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import torch
                import transformers
            except ImportError as exc:
                raise MissingDependencyError(
                    f"the transformers backend needs torch and transformers ({exc}). Fix: {_INSTALL}"
                ) from exc
            if self.gguf_file:
                try:  # transformers needs both to read a GGUF file
                    import accelerate  # noqa: F401
                    import gguf  # noqa: F401
                except ImportError as exc:
                    raise MissingDependencyError(
                        f"reading a GGUF model with transformers needs gguf and accelerate ({exc}). Fix: {_INSTALL}"
                    ) from exc
            if self.n_threads:
                torch.set_num_threads(self.n_threads)
            kwargs: dict[str, Any] = {"local_files_only": True}
            if self.gguf_file:
                kwargs["gguf_file"] = self.gguf_file
            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.folder), **kwargs)
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    str(self.folder), dtype=torch.float32, **kwargs
                )
            except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
                raise ModelError(
                    f"transformers cannot load model {self.model_path}: {' '.join(str(exc).split())[:300]}"
                ) from exc
            if not getattr(tokenizer, "chat_template", None):
                raise ModelError(f"model {self.model_path} has no chat template, so it cannot be used as a chat model")
            model.eval()
            self._tokenizer = tokenizer
            self._model = model

    def close(self) -> None:
        """Free the model's memory (it reloads on next use)."""
        with self._load_lock, self._generate_lock:
            self._model = None
            self._tokenizer = None

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        check_request(messages, max_tokens, temperature, stop)
        return cut_at_stop(self._generate(messages, max_tokens, temperature, stop or []), stop or [])

    def _generate_kwargs(
        self, inputs: Any, max_tokens: int, temperature: float, stop: list[str], streamer: Any, cancel: Any
    ) -> dict[str, Any]:
        import transformers

        tokenizer = self._tokenizer
        kwargs: dict[str, Any] = {
            **inputs,
            "max_new_tokens": max_tokens,
            "streamer": streamer,
            "stopping_criteria": transformers.StoppingCriteriaList([cancel]),
            "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
        }
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stop:
            kwargs.update(stop_strings=stop, tokenizer=tokenizer)
        return kwargs

    def _generate(self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str]) -> Iterator[str]:
        import queue

        import transformers

        self.load()
        if not self._generate_lock.acquire(timeout=self.timeout_s):
            raise GenerationError(f"the model was busy with other questions for {self.timeout_s:g}s; try again")
        try:
            tokenizer, model = self._tokenizer, self._model
            try:
                inputs = tokenizer.apply_chat_template(
                    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
                )
            except Exception as exc:  # template errors come from jinja2 with varied types
                raise InvalidInputError(f"cannot format the chat for this model: {exc}") from exc
            streamer = transformers.TextIteratorStreamer(
                tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=self.timeout_s
            )
            cancelled = threading.Event()
            failure: list[BaseException] = []

            class _Cancel(transformers.StoppingCriteria):
                # Lets an abandoned stream (client gone) stop the worker thread early.
                def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                    return cancelled.is_set()

            gen_kwargs = self._generate_kwargs(inputs, max_tokens, temperature, stop, streamer, _Cancel())
            def work() -> None:
                try:
                    model.generate(**gen_kwargs)
                except BaseException as exc:  # re-raised in the consumer thread below
                    failure.append(exc)
                    streamer.end()

            worker = threading.Thread(target=work, name="transformers-generate", daemon=True)
            worker.start()
            deadline = time.monotonic() + self.timeout_s
            try:
                for piece in streamer:
                    if piece:
                        yield piece
                    if time.monotonic() > deadline:
                        raise GenerationError(f"the model did not finish within {self.timeout_s:g}s")
            except queue.Empty:
                raise GenerationError(f"the model produced nothing for {self.timeout_s:g}s") from None
            finally:
                cancelled.set()
                worker.join()
            if failure:
                raise GenerationError(f"generation failed: {' '.join(str(failure[0]).split())[:300]}") from failure[0]
        finally:
            self._generate_lock.release()
