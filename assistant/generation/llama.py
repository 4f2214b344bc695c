"""Generation with llama.cpp (llama-cpp-python) from a GGUF file: the default,
CPU-friendly backend.

The model loads lazily, once, and a llama.cpp context is not re-entrant, so
replies are produced one at a time (a first-come-first-served slot; other users
wait, up to the timeout, and ``waiting`` says how many do). The chat template is
the one stored in the GGUF.

Prefix states (``prefix_cache=True``): a request's messages but the last are its
stable prefix (system prompt + one plan unit). The prefix, formatted with the
GGUF's chat template, is evaluated once; llama.cpp's state after it is saved
(``prefix_cache.PrefixStateStore``: memory, then disk) and restored before every
later request with the same prefix, so only the question is evaluated. The
prompt tokens are exactly those ``create_chat_completion`` would use, and the
completion runs through the same ``create_completion`` with the same sampling
settings, stop strings and end-of-turn criteria, so the output is the same.

Quotes (``generation.Quote``): other units' sentences in the last message are
text of those units' own prefixes. Their keys and values are copied from those
prefixes' saved states instead of being evaluated (``_insert_quotes``): the
state is loaded into sequence 1, the quoted cells are kept and shifted to
their place (llama.cpp re-applies RoPE for the shift), shared with sequence 0,
and the sequence is packed. Those cells were computed after the rules and their
own unit, not after the top unit: the output differs from evaluating the same
tokens (measured in the README). A quote whose unit has no saved state yet is
evaluated instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import ConfigError, GenerationError, InvalidInputError, MissingDependencyError, ModelError
from assistant.files import slug
from assistant.generation import Message, Quote, check_request
from assistant.generation.gguf import check_gguf
from assistant.generation.kv_splice import (
    SEQUENCES,
    Splice,
    copy_cells,
    load_sequence,
    pack,
    save_sequence,
    token_ranges,
    two_sequences,
)
from assistant.generation.prefix_cache import PrefixState, PrefixStateStore
from assistant.generation.shipped_models import model_label, resolve_model_path
from assistant.generation.slots import TicketLock

if TYPE_CHECKING:
    from assistant.config import Settings
    from assistant.generation.shipped_models import Progress

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class PromptPlan:
    """A request's prompt split at its stable prefix: ``full`` starts with ``prefix``; ``splices``
    are the parts of the rest copied from other prefixes' states (quotes), in order."""

    prefix: list[int]
    full: list[int]
    stop: list[str]
    stopping_criteria: Any
    splices: tuple[Splice, ...] = ()

    @property
    def cached(self) -> int:
        """How many of ``full``'s tokens are in the context once the prefix (and quotes) are in place:
        with quotes, all but the last token (see ``LlamaGenerator._insert_quotes``)."""
        return len(self.full) - 1 if self.splices else len(self.prefix)


@dataclass
class RequestStats:
    """What the last request cost: ``prefix`` is off (plain path), live (the context already held
    it), restored (from a saved state), built (evaluated and saved) or short (not worth a state)."""

    prefix: str = "off"
    prompt_tokens: int = 0
    prefix_tokens: int = 0
    prefix_ms: float = 0.0  # putting the prefix in place (with quotes: up to the prompt's last token)
    quoted_tokens: int = 0  # copied from other prefixes' states (not counting quotes evaluated for want of one)


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
        prefix_cache: bool = False,
        quotes_from_states: bool = False,
        state_dir: Path | None = None,
        min_prefix_tokens: int = 64,
        state_memory_mb: int = 256,
        state_disk_mb: int = 2048,
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
        self.prefix_cache = prefix_cache
        self.quotes_from_states = quotes_from_states
        self.state_dir = state_dir
        self.min_prefix_tokens = max(1, min_prefix_tokens)
        self.state_memory_mb = state_memory_mb
        self.state_disk_mb = state_disk_mb
        self.store: PrefixStateStore | None = None
        self.last = RequestStats()
        self._load_lock = threading.Lock()
        self._slot = TicketLock()
        self._llm: Any = None
        self._formatters: tuple[Any, Any] | None = None  # (with, without) the generation prompt
        self._can_shift = False  # llama.cpp can move cells to other positions (quotes need it)
        self._copied_from: int | None = None  # the context's first cell copied from another state

    @classmethod
    def from_settings(cls, settings: Settings, progress: Progress | None = None) -> LlamaGenerator:
        """Assembles the shipped model on first use (``progress`` reports bytes copied)."""
        label = model_label(settings)
        return cls(
            resolve_model_path(settings, progress),
            n_threads=settings.threads,
            n_ctx=settings.llm_context,
            model_name=label,
            timeout_s=settings.generation_timeout_s,
            prefix_cache=settings.prefix_cache,
            quotes_from_states=settings.prefix_cache_quotes,
            state_dir=settings.cache_dir / "prefix-states" / slug(label),
            min_prefix_tokens=settings.prefix_cache_min_tokens,
            state_memory_mb=settings.prefix_cache_memory_mb,
            state_disk_mb=settings.prefix_cache_disk_mb,
        )

    @property
    def name(self) -> str:
        return f"llama:{self.model_name}"

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    @property
    def waiting(self) -> int:
        """Requests waiting for the model (not counting the one it is working on)."""
        return self._slot.waiting

    @property
    def busy(self) -> bool:
        return self._slot.busy

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
                with two_sequences(llama_cpp):
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
            self._formatters = _chat_formatters(llama_cpp, llm)  # also for reply_logprob without states
            low = llama_cpp.llama_cpp
            self._can_shift = bool(low.llama_memory_can_shift(low.llama_get_memory(llm.ctx)))
            if self.prefix_cache:
                if self._formatters is None:
                    log.info("prefix states off: %s has no GGUF chat template in use", self.model_path.name)
                elif self.store is None:
                    self.store = PrefixStateStore(
                        self.state_dir,
                        model_id=self._model_id(llama_cpp),
                        memory_bytes=self.state_memory_mb * 2**20,
                        disk_bytes=self.state_disk_mb * 2**20,
                    )
            self._llm = llm

    def _model_id(self, llama_cpp: Any) -> str:
        """What a saved state depends on besides its tokens: the model file, llama.cpp, the context shape."""
        st = self.model_path.stat()
        return (
            f"{self.model_path.resolve()}|{st.st_size}|{st.st_mtime_ns}|llama-cpp-python {llama_cpp.__version__}"
            f"|n_ctx {self.n_ctx}|f16 kv|{SEQUENCES} sequences"
        )

    def close(self) -> None:
        """Free the model's memory (it reloads on next use)."""
        with self._load_lock, self._slot.hold():
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    @property
    def takes_quotes(self) -> bool:
        """Whether ``stream`` copies quoted text from saved states (see ``Quote``)."""
        return self.prefix_cache and self.quotes_from_states

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        quotes: list[Quote] | None = None,
    ) -> Iterator[str]:
        check_request(messages, max_tokens, temperature, stop)
        return self._generate(messages, max_tokens, temperature, stop or [], quotes or [])

    @contextmanager
    def _turn(self) -> Iterator[Any]:
        """The loaded model, held for one short job after the requests queued before it."""
        with self._slot.hold(self.timeout_s) as got:
            if not got:
                raise GenerationError(f"the model was busy with other questions for {self.timeout_s:g}s")
            if self._llm is None:
                raise GenerationError("the model was unloaded")
            yield self._llm

    def warm_prefix(self, messages: list[Message]) -> str:
        """Make sure the state for ``messages`` as a prefix is saved (they are the messages a later
        request sends before its last one). Returns cached, built, short or off. Waits its turn."""
        check_request(messages, 1, 0.0, None)
        self.load()
        if not self.prefix_cache or self._formatters is None or self.store is None:
            return "off"
        with self._turn() as llm:
            prefix = self._tokens(llm, self._formatters[1](messages=messages).prompt)
            if len(prefix) < self.min_prefix_tokens or len(prefix) >= self.n_ctx:
                return "short"
            if self.store.contains(self.store.key(prefix)):
                return "cached"
            try:
                self._build(llm, prefix)
            except (RuntimeError, ValueError) as exc:
                llm.reset()
                raise GenerationError(f"llama.cpp failed: {exc}") from exc
            return "built"

    @property
    def model(self) -> Any:
        """The loaded ``llama_cpp.Llama`` (loads it), for measurements that drive llama.cpp directly."""
        self.load()
        return self._llm

    def prompt_plan(self, messages: list[Message]) -> PromptPlan | None:
        """The tokens a request for ``messages`` would evaluate, split at its cached prefix (None on
        the plain path). Evaluates nothing."""
        check_request(messages, 1, 0.0, None)
        self.load()
        with self._turn() as llm:
            return self._plan(llm, messages, 1)

    def restore_prefix(self, messages: list[Message]) -> int:
        """Put the context exactly at the end of ``messages`` as a cached prefix (restored, or built and
        saved) and return its token count, for measurements that drive llama.cpp directly after it
        (``model``). Raises GenerationError when prefix states are off."""
        check_request(messages, 1, 0.0, None)
        self.load()
        if not self.prefix_cache or self._formatters is None or self.store is None:
            raise GenerationError("prefix states are off (setting 'prefix_cache', or no GGUF chat template)")
        with self._turn() as llm:
            prefix = self._tokens(llm, self._formatters[1](messages=messages).prompt)
            if not self._prepare(llm, PromptPlan(prefix, [*prefix, 0], [], None)):
                raise GenerationError("llama.cpp refused the prefix state")
            llm.n_tokens = len(prefix)
            # A live context may hold tokens after the prefix: drop them from the KV cache too.
            low = import_llama_cpp().llama_cpp
            low.llama_memory_seq_rm(low.llama_get_memory(llm.ctx), -1, len(prefix), -1)
            return len(prefix)

    def reply_logprob(self, messages: list[Message], start: str, quotes: list[Quote] | None = None) -> float | None:
        """log P(the greedy reply to ``messages`` begins with ``start``): how much the model itself
        weighed that opening. Right after ``stream`` on the same messages the context still holds their
        prompt, so only ``start``'s tokens are evaluated (~50 ms each here). None without a GGUF chat
        template (the prompt could not be formatted exactly as ``stream`` formats it)."""
        check_request(messages, 1, 0.0, None)
        if not isinstance(start, str) or not start:
            raise InvalidInputError(f"start must be a non-empty string, got {start!r}")
        self.load()
        if self._formatters is None:
            return None
        with self._turn() as llm:
            stats = self.last  # a lookup, not a request: the last request's figures stay
            plan = self._plan(llm, messages, 1, quotes or [])
            self.last = stats
            full = plan.full if plan is not None else self._tokens(llm, self._formatters[0](messages=messages).prompt)
            wanted = list(llm.tokenize(start.encode("utf-8"), add_bos=False, special=False))
            if len(full) + len(wanted) >= self.n_ctx:
                return None
            try:
                return self._logprob(llm, plan, full, wanted)
            except (RuntimeError, ValueError) as exc:
                llm.reset()
                raise GenerationError(f"llama.cpp failed: {exc}") from exc

    def _logprob(self, llm: Any, plan: PromptPlan | None, full: list[int], wanted: list[int]) -> float:
        """Put the context just before the prompt's last token, then evaluate it and ``wanted`` but
        the last, summing each next token's log-probability."""
        head = len(full) - 1
        if self._copied_from is not None and (plan is None or not plan.splices):
            llm.n_tokens = min(llm.n_tokens, self._copied_from)  # see _prepare
        if not (llm.n_tokens >= head and list(llm.input_ids[:head]) == full[:head]):
            stats = self.last
            prepared = plan is not None and self._prepare(llm, plan)
            self.last = stats
            if prepared:
                assert plan is not None
                llm.n_tokens = plan.cached
            else:
                llm.reset()
            llm.eval(full[llm.n_tokens : head])
        llm.n_tokens = head  # eval drops whatever the context held after this
        total = 0.0
        for before, token in zip([full[-1], *wanted[:-1]], wanted, strict=True):
            llm.eval([before])
            total += next_token_logprob(llm, token)
        return total

    def state_stats(self) -> dict[str, int]:
        """Saved prefix states: counts and bytes in memory and on disk, hits and misses."""
        return self.store.stats() if self.store is not None else {}

    def _generate(
        self, messages: list[Message], max_tokens: int, temperature: float, stop: list[str], quotes: list[Quote]
    ) -> Iterator[str]:
        self.load()
        if not self._slot.acquire(timeout=self.timeout_s):
            raise GenerationError(f"the model was busy with other questions for {self.timeout_s:g}s; try again")
        chunks: Any = None
        try:
            llm = self._llm
            if llm is None:  # closed while we waited
                raise GenerationError("the model was unloaded; try again")
            deadline = time.monotonic() + self.timeout_s
            try:
                plan = self._plan(llm, messages, max_tokens, quotes)
                if plan is not None and self._prepare(llm, plan):
                    chunks = llm.create_completion(
                        prompt=plan.full,
                        max_tokens=max_tokens,
                        temperature=temperature,
                        stop=[*stop, *plan.stop],
                        stopping_criteria=plan.stopping_criteria,
                        stream=True,
                    )
                    pieces = (chunk["choices"][0].get("text") for chunk in chunks)
                else:
                    chunks = llm.create_chat_completion(
                        messages=messages,
                        max_tokens=max_tokens,
                        temperature=temperature,
                        stop=stop,
                        stream=True,
                    )
                    pieces = (chunk["choices"][0]["delta"].get("content") for chunk in chunks)
                for piece in pieces:
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
            self._slot.release()

    # ------------------------------------------------------------------ prefix states

    @staticmethod
    def _tokens(llm: Any, prompt: str) -> list[int]:
        # As llama-cpp-python's chat handler does for a template that adds its own special tokens.
        return list(llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

    def _plan(
        self, llm: Any, messages: list[Message], max_tokens: int, quotes: list[Quote] | None = None
    ) -> PromptPlan | None:
        """The prompt split at its prefix, or None for the plain path (cache off, prefix too short)."""
        self.last = RequestStats()
        if not self.prefix_cache or self._formatters is None or len(messages) < 2:
            return None
        with_prompt, without = self._formatters
        result = with_prompt(messages=messages)
        full = self._tokens(llm, result.prompt)
        prefix = self._tokens(llm, without(messages=messages[:-1]).prompt)
        self.last = RequestStats("short", len(full), len(prefix))
        if (
            len(prefix) < self.min_prefix_tokens
            or len(full) <= len(prefix)
            or full[: len(prefix)] != prefix
            or len(full) >= self.n_ctx  # the plain path reports it as too long
        ):
            return None
        stop = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
        spliced = self._splice(llm, result.prompt, prefix, quotes) if quotes and self._can_shift else None
        if spliced is not None:
            full, splices = spliced
            return PromptPlan(prefix, full, stop, result.stopping_criteria, splices)
        return PromptPlan(prefix, full, stop, result.stopping_criteria)

    def _splice(
        self, llm: Any, prompt: str, prefix: list[int], quotes: list[Quote]
    ) -> tuple[list[int], tuple[Splice, ...]] | None:
        """The prompt's tokens with each quote's text taken from its source prefix's tokens (so that
        they can be copied from its state), or None when a quote cannot be placed (then the prompt is
        tokenized as it is)."""
        assert self._formatters is not None
        text = "".join(q.text for q in quotes)
        at = prompt.rfind(text) if text else -1
        if at < 0:
            return None
        before = self._tokens(llm, prompt[:at])
        if before[: len(prefix)] != prefix or len(before) <= len(prefix):
            return None
        full = list(before)
        splices = []
        for quote in quotes:
            source_text = self._formatters[1](messages=quote.source).prompt
            source = self._tokens(llm, source_text)
            ranges = token_ranges(llm, source, source_text, quote.pieces)
            if ranges is None:
                return None
            splice = Splice(tuple(source), ranges, len(full))
            full += splice.tokens
            splices.append(splice)
        after = self._tokens(llm, prompt[at + len(text) :])
        # Each source state is loaded whole next to the cells in use before its cells are picked; at least
        # two tokens must follow the last quote (evaluating them applies the shifts before packing).
        if len(full) + len(after) + sum(len(s.source) for s in splices) >= self.n_ctx or len(after) < 2:
            return None
        return full + after, tuple(splices)

    def _prepare(self, llm: Any, plan: PromptPlan) -> bool:
        """Put the context at the end of ``plan.prefix`` (already there, restored, or built and saved),
        and with quotes up to the prompt's last token (``plan.cached``). False (context reset, plain
        path) if llama.cpp refused."""
        assert self.store is not None
        started = time.perf_counter()
        prefix = plan.prefix
        n = len(prefix)
        if self._copied_from is not None:
            # Copied cells are not what evaluating their tokens here gives: no later prompt may match them.
            llm.n_tokens = min(llm.n_tokens, self._copied_from)
        if llm.n_tokens >= n and list(llm.input_ids[:n]) == prefix:
            how = "live"  # create_completion's own prefix match keeps it
        else:
            key = self.store.key(prefix)
            state = self.store.get(key, prefix)
            how = "restored"
            self._copied_from = None  # the context is replaced
            if state is not None:
                try:
                    _restore(llm, state)
                except RuntimeError as exc:
                    log.warning("llama.cpp refused a saved prefix state (%s); rebuilding it", exc)
                    self.store.discard(key)
                    llm.reset()
                    state = None
            if state is None:
                how = "built"
                try:
                    self._build(llm, prefix)
                except RuntimeError as exc:
                    log.warning("could not save a prefix state (%s); using the plain path", exc)
                    llm.reset()
                    self.last = RequestStats("off", len(plan.full), n)
                    return False
        try:
            quoted = self._insert_quotes(llm, plan) if plan.splices else 0
        except RuntimeError as exc:
            log.warning("could not copy quoted text from saved states (%s); using the plain path", exc)
            low = import_llama_cpp().llama_cpp
            low.llama_memory_clear(low.llama_get_memory(llm.ctx), True)  # both sequences
            llm.reset()
            self._copied_from = None
            self.last = RequestStats("off", len(plan.full), n)
            return False
        self.last = RequestStats(how, len(plan.full), n, (time.perf_counter() - started) * 1000, quoted)
        return True

    def _insert_quotes(self, llm: Any, plan: PromptPlan) -> int:
        """Continue the context after the prefix up to the prompt's last token: the text between quotes
        is evaluated, each quote's tokens are copied from its source's saved state (sequence 1, moved
        into place, then shared with sequence 0), or evaluated when that state is not saved yet.
        Returns how many tokens were copied."""
        assert self.store is not None
        low = import_llama_cpp().llama_cpp
        llm.n_tokens = len(plan.prefix)  # a live context may hold another question after the prefix
        self._copied_from = None
        copied = 0
        for splice in plan.splices:
            llm.eval(plan.full[llm.n_tokens : splice.start])
            tokens = splice.tokens
            state = self.store.get(self.store.key(splice.source), splice.source)
            if state is None:
                llm.eval(tokens)
                continue
            copy_cells(low, llm.ctx, state.data, splice)
            pos = splice.start + len(tokens)
            llm.input_ids[splice.start : pos] = tokens
            llm.n_tokens = pos
            copied += len(tokens)
            if self._copied_from is None:
                self._copied_from = splice.start
        # Evaluating the rest but its last token applies the shifts, which packing needs.
        llm.eval(plan.full[llm.n_tokens : plan.cached])
        if copied:
            pack(low, llm.ctx)
        llm._requires_eval = True
        return copied

    def _build(self, llm: Any, prefix: list[int]) -> None:
        """Evaluate ``prefix`` from an empty context and save the state (memory + disk)."""
        assert self.store is not None
        llm.reset()
        self._copied_from = None
        llm.eval(prefix)
        self.store.put(self.store.key(prefix), PrefixState(tuple(prefix), save_context_state(llm)))


def _chat_formatters(llama_cpp: Any, llm: Any) -> tuple[Any, Any] | None:
    """The GGUF chat template as create_chat_completion uses it (with and without the generation
    prompt), or None when the model uses another chat format (then prefix states are off)."""
    template = llm.metadata.get("tokenizer.chat_template")
    if not template or llm.chat_format != "chat_template.default" or llm.chat_handler is not None:
        return None
    model = llm._model
    eos_id, bos_id = model.token_eos(), model.token_bos()
    eos = model.token_get_text(eos_id) if eos_id != -1 else ""
    bos = model.token_get_text(bos_id) if bos_id != -1 else ""
    fmt = llama_cpp.llama_chat_format.Jinja2ChatFormatter
    return (
        fmt(template=template, eos_token=eos, bos_token=bos, stop_token_ids=[eos_id]),
        fmt(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=False),
    )


def next_token_logprob(llm: Any, token: int, output: int | None = None) -> float:
    """log P(``token``) by the logits llama.cpp holds for the last evaluated token, or for batch output
    ``output`` of the last decode that asked for several."""
    import numpy as np

    low = import_llama_cpp().llama_cpp
    ptr = low.llama_get_logits(llm.ctx) if output is None else low.llama_get_logits_ith(llm.ctx, output)
    row = np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)
    top = row.max()
    return float(row[token] - top - np.log(np.exp(row - top).sum()))


def save_context_state(llm: Any) -> bytes:
    """The keys and values of sequence 0's evaluated tokens (llama.cpp's per-sequence state: it can be
    restored into either sequence, see ``kv_splice.copy_cells``)."""
    return save_sequence(import_llama_cpp().llama_cpp, llm.ctx, 0)


def _restore(llm: Any, state: PrefixState) -> None:
    low = import_llama_cpp().llama_cpp
    low.llama_memory_clear(low.llama_get_memory(llm.ctx), True)
    load_sequence(low, llm.ctx, state.data, 0)
    llm.input_ids[: state.n_tokens] = state.tokens
    llm.n_tokens = state.n_tokens
    llm._requires_eval = True  # the logits are not live: the next decode refreshes them
