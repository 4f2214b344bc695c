"""Keys and values of one saved prompt copied into another (llama.cpp, one context, two sequences).

A prompt may quote text that another prompt's saved prefix already holds (``generation.Quote``).
The quoted tokens' cells are taken from that prefix's saved state instead of being evaluated:
the state is loaded into sequence 1, the cells outside the quoted ranges are dropped, the rest
are shifted to their place in the prompt (llama.cpp re-applies RoPE for a shift at the next
decode) and shared with sequence 0. ``llama.LlamaGenerator`` decides when; this module finds
the quoted tokens (``token_ranges``), opens a context with two sequences and moves cells.
"""

from __future__ import annotations

import bisect
import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# Sequence 0 is the prompt; sequence 1 holds a quoted prefix's state while its cells are copied.
SEQUENCES = 2
_CONTEXT_PATCH_LOCK = threading.Lock()


@contextmanager
def two_sequences(llama_cpp: Any) -> Iterator[None]:
    """Contexts created inside have two sequences over one shared cache (kv_unified), so a cell
    copied between them costs nothing. ``Llama`` takes no n_seq_max: it reads
    ``llama_context_default_params()`` once in __init__, which is wrapped meanwhile."""
    low = llama_cpp.llama_cpp
    with _CONTEXT_PATCH_LOCK:
        original = low.llama_context_default_params

        def default_params() -> Any:
            params = original()
            params.n_seq_max = SEQUENCES
            params.kv_unified = True
            return params

        low.llama_context_default_params = default_params
        try:
            yield
        finally:
            low.llama_context_default_params = original


def token_ranges(llm: Any, tokens: list[int], text: str, pieces: tuple[str, ...]) -> tuple[tuple[int, int], ...] | None:
    """For each piece (in order, each found after the previous one), the range of ``tokens`` (the
    tokenized ``text``) that spells it, give or take whitespace next to it (a unit's last "。" is one
    token with the line break after it). None when a piece is not in ``text``, shares a token with a
    neighbouring character (it would bring that character along), or the tokens do not spell ``text``
    byte for byte."""
    bounds = [0]
    for t in tokens:
        bounds.append(bounds[-1] + len(llm.detokenize([t], special=True)))
    raw = text.encode("utf-8")
    if bounds[-1] != len(raw):
        return None
    ranges: list[tuple[int, int]] = []
    search = 0
    for piece in pieces:
        found = raw.find(piece.encode("utf-8"), search) if piece else -1
        if found < 0:
            return None
        end = found + len(piece.encode("utf-8"))
        first = bisect.bisect_right(bounds, found) - 1  # the token holding the piece's first byte
        last = bisect.bisect_left(bounds, end)  # the tokens up to the one holding its last byte
        if raw[bounds[first] : found].strip() or raw[end : bounds[last]].strip():
            return None
        if ranges and first < ranges[-1][1]:
            return None
        ranges.append((first, last))
        search = end
    return tuple(ranges)


@dataclass(frozen=True)
class Splice:
    """Tokens of a prompt taken from another prefix's saved state: ``source[a:b]`` for each range in
    ``ranges``, back to back from position ``start`` of the prompt."""

    source: tuple[int, ...]
    ranges: tuple[tuple[int, int], ...]
    start: int

    @property
    def tokens(self) -> list[int]:
        return [t for a, b in self.ranges for t in self.source[a:b]]


def save_sequence(low: Any, ctx: Any, seq: int) -> bytes:
    """The keys and values of ``seq``'s cells (llama.cpp's per-sequence state)."""
    size = int(low.llama_state_seq_get_size(ctx, seq))
    buf = (ctypes.c_uint8 * size)()
    written = int(low.llama_state_seq_get_data(ctx, buf, size, seq))
    if written <= 0 or written > size:
        raise RuntimeError("llama_state_seq_get_data failed")
    return ctypes.string_at(buf, written)


def load_sequence(low: Any, ctx: Any, data: bytes, seq: int) -> None:
    """Replace ``seq``'s cells with a saved sequence state (placed in one free run of cells)."""
    buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    if int(low.llama_state_seq_set_data(ctx, buf, len(data), seq)) != len(data):
        raise RuntimeError("llama_state_seq_set_data failed")


def copy_cells(low: Any, ctx: Any, data: bytes, splice: Splice) -> None:
    """Give sequence 0 the cells of ``splice``'s ranges from the saved state ``data`` (of
    ``splice.source``), at positions ``splice.start`` onwards. The kept cells are first lifted above
    every position in use, so that setting one range down never lands on a cell of another."""
    memory = low.llama_get_memory(ctx)
    lift = splice.start + len(splice.source) + sum(b - a for a, b in splice.ranges)
    load_sequence(low, ctx, data, 1)
    kept = 0
    for a, b in splice.ranges:
        low.llama_memory_seq_rm(memory, 1, kept, a)
        kept = b
    low.llama_memory_seq_rm(memory, 1, kept, -1)
    low.llama_memory_seq_add(memory, 1, -1, -1, lift)
    pos = splice.start
    for a, b in splice.ranges:
        low.llama_memory_seq_add(memory, 1, a + lift, b + lift, pos - a - lift)
        low.llama_memory_seq_cp(memory, 1, 0, pos, pos + b - a)
        pos += b - a
    low.llama_memory_seq_rm(memory, 1, -1, -1)


def pack(low: Any, ctx: Any) -> None:
    """Move sequence 0's cells into one run from the first cell. Copied cells lie where their source
    state was loaded, with gaps; attention spans every cell up to the last one in use (decoding was
    ~10 % slower). Shifts must have been applied first (by a decode): a saved state does not keep them."""
    packed = save_sequence(low, ctx, 0)
    low.llama_memory_clear(low.llama_get_memory(ctx), True)
    load_sequence(low, ctx, packed, 0)
