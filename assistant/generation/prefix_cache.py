"""Saved llama.cpp states for stable prompt prefixes: a memory LRU in front of a disk folder.

A prompt is laid out so that a long, stable prefix (system prompt + one plan unit)
comes first and the question last. Evaluating the prefix costs seconds on two
cores; restoring its saved state costs milliseconds. This module only stores and
validates states; ``llama.py`` computes and restores them.

A state is keyed by sha256(model identity, state format / prompt template version,
prefix token ids), so a new model file, a new llama.cpp or a changed prompt never
meets an old state. Disk files carry a small header (magic, JSON manifest with the
key, model id, version, token count and payload sizes and sha256) and are
validated on load: a truncated, corrupt or foreign file is ignored (and replaced
when the state is rebuilt), never handed to llama.cpp. Files are written
atomically; when the folder is read-only or full, states are kept in memory only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAGIC = b"PQA-PREFIX-STATE\n"
STATE_FORMAT_VERSION = "2"  # 2: one sequence's state (llama_state_seq_*), not the whole context's
SUFFIX = ".state"
_LEN = struct.Struct("<I")


@dataclass(frozen=True)
class PrefixState:
    """A llama.cpp context's state right after evaluating ``tokens`` (and nothing else)."""

    tokens: tuple[int, ...]
    data: bytes

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def nbytes(self) -> int:
        return len(self.data) + 4 * len(self.tokens)


def state_key(model_id: str, template_version: str, tokens: Sequence[int]) -> str:
    """sha256 over the model identity, the template/format version and the prefix token ids."""
    h = hashlib.sha256()
    h.update(f"{model_id}\0{STATE_FORMAT_VERSION}\0{template_version}\0".encode())
    h.update(np.asarray(tokens, dtype="<i4").tobytes())
    return h.hexdigest()


class PrefixStateStore:
    """States by key: an LRU in memory (bounded in bytes), then a folder on disk (bounded in bytes).

    ``directory=None`` keeps states in memory only. Thread-safe.
    """

    def __init__(
        self,
        directory: Path | None,
        *,
        model_id: str,
        template_version: str = "",
        memory_bytes: int = 256 * 2**20,
        disk_bytes: int = 2 * 2**30,
    ) -> None:
        self.directory = directory
        self.model_id = model_id
        self.template_version = template_version
        self.memory_bytes = max(0, int(memory_bytes))
        self.disk_bytes = max(0, int(disk_bytes))
        self.disk_ok = directory is not None and self.disk_bytes > 0
        self._memory: OrderedDict[str, PrefixState] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.disk_hits = 0
        self.misses = 0

    def key(self, tokens: Sequence[int]) -> str:
        return state_key(self.model_id, self.template_version, tokens)

    # ------------------------------------------------------------------ lookup

    def get(self, key: str, tokens: Sequence[int] | None = None) -> PrefixState | None:
        """The state for ``key`` (memory first, then disk), or None. With ``tokens``, a state for
        other tokens (a hash collision or a tampered file) is refused."""
        with self._lock:
            state = self._memory.get(key)
            if state is not None:
                self._memory.move_to_end(key)
        if state is None:
            state = self._read(key)
            if state is not None:
                with self._lock:
                    self.disk_hits += 1
                    self._remember(key, state)
        if state is not None and tokens is not None and tuple(int(t) for t in tokens) != state.tokens:
            state = None
        with self._lock:
            if state is None:
                self.misses += 1
            else:
                self.hits += 1
        return state

    def contains(self, key: str) -> bool:
        with self._lock:
            if key in self._memory:
                return True
        return self.directory is not None and self._path(key).is_file()

    def put(self, key: str, state: PrefixState) -> None:
        """Keep ``state`` in memory and (best effort, atomically) on disk."""
        with self._lock:
            self._remember(key, state)
        self._write(key, state)

    def discard(self, key: str) -> None:
        """Forget a state that llama.cpp refused (memory and disk)."""
        with self._lock:
            self._memory.pop(key, None)
        if self.directory is not None:
            with contextlib.suppress(OSError):
                self._path(key).unlink(missing_ok=True)

    def stats(self) -> dict[str, int]:
        with self._lock:
            mem = sum(s.nbytes for s in self._memory.values())
            n_mem = len(self._memory)
            hits, disk_hits, misses = self.hits, self.disk_hits, self.misses
        files = self._files()
        return {
            "memory_states": n_mem,
            "memory_bytes": mem,
            "disk_states": len(files),
            "disk_bytes": sum(size for _, size, _ in files),
            "hits": hits,
            "disk_hits": disk_hits,
            "misses": misses,
        }

    # ------------------------------------------------------------------ memory

    def _remember(self, key: str, state: PrefixState) -> None:
        """Under the lock: insert and evict least recently used states beyond the byte budget."""
        if state.nbytes > self.memory_bytes:
            return
        self._memory[key] = state
        self._memory.move_to_end(key)
        total = sum(s.nbytes for s in self._memory.values())
        while total > self.memory_bytes and len(self._memory) > 1:
            _, old = self._memory.popitem(last=False)
            total -= old.nbytes

    # ------------------------------------------------------------------ disk

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{key}{SUFFIX}"

    def _files(self) -> list[tuple[Path, int, float]]:
        if self.directory is None or not self.directory.is_dir():
            return []
        out = []
        for p in self.directory.glob(f"*{SUFFIX}"):
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((p, st.st_size, st.st_mtime))
        return out

    def _read(self, key: str) -> PrefixState | None:
        if self.directory is None:
            return None
        path = self._path(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("prefix state %s unreadable (%s); rebuilding it", path.name, exc)
            return None
        state = decode(raw, key=key, model_id=self.model_id, template_version=self.template_version)
        if state is None:
            log.warning("prefix state %s is corrupt or foreign; ignoring it (it will be rebuilt)", path.name)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: the disk budget evicts by modification time
        return state

    def _write(self, key: str, state: PrefixState) -> None:
        if not self.disk_ok or self.directory is None:
            return
        blob = encode(state, key=key, model_id=self.model_id, template_version=self.template_version)
        tmp_name = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=self.directory)
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.replace(tmp_name, self._path(key))
            tmp_name = None
        except OSError as exc:
            self.disk_ok = False  # read-only or full: keep states in memory from now on
            log.warning("cannot save prefix states under %s (%s); keeping them in memory only", self.directory, exc)
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
        self._trim_disk()

    def _trim_disk(self) -> None:
        files = sorted(self._files(), key=lambda f: f[2])
        total = sum(size for _, size, _ in files)
        while files and total > self.disk_bytes:
            path, size, _ = files.pop(0)
            try:
                path.unlink()
            except OSError:
                break
            total -= size


def encode(state: PrefixState, *, key: str, model_id: str, template_version: str) -> bytes:
    tokens = np.asarray(state.tokens, dtype="<i4").tobytes()
    manifest = {
        "key": key,
        "model_id": model_id,
        "format": STATE_FORMAT_VERSION,
        "template_version": template_version,
        "n_tokens": state.n_tokens,
        "tokens_bytes": len(tokens),
        "state_bytes": len(state.data),
        "sha256": hashlib.sha256(tokens + state.data).hexdigest(),
    }
    head = json.dumps(manifest, sort_keys=True).encode()
    return MAGIC + _LEN.pack(len(head)) + head + tokens + state.data


def decode(raw: bytes, *, key: str, model_id: str, template_version: str) -> PrefixState | None:
    """The state in a file's bytes, or None unless every header field and the checksum match."""
    if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + _LEN.size:
        return None
    pos = len(MAGIC)
    (head_len,) = _LEN.unpack_from(raw, pos)
    pos += _LEN.size
    if head_len > 64 * 1024 or pos + head_len > len(raw):
        return None
    try:
        manifest = json.loads(raw[pos : pos + head_len])
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    pos += head_len
    if not isinstance(manifest, dict):
        return None
    expected = {"key": key, "model_id": model_id, "format": STATE_FORMAT_VERSION, "template_version": template_version}
    if any(manifest.get(k) != v for k, v in expected.items()):
        return None
    n_tokens, tokens_bytes, state_bytes = (manifest.get(k) for k in ("n_tokens", "tokens_bytes", "state_bytes"))
    if not all(isinstance(v, int) and v >= 0 for v in (n_tokens, tokens_bytes, state_bytes)):
        return None
    assert isinstance(n_tokens, int) and isinstance(tokens_bytes, int) and isinstance(state_bytes, int)
    if tokens_bytes != 4 * n_tokens or pos + tokens_bytes + state_bytes != len(raw) or state_bytes == 0:
        return None
    payload = raw[pos:]
    if hashlib.sha256(payload).hexdigest() != manifest.get("sha256"):
        return None
    tokens = tuple(int(t) for t in np.frombuffer(payload[:tokens_bytes], dtype="<i4"))
    if state_key(model_id, template_version, tokens) != key:
        return None
    return PrefixState(tokens=tokens, data=bytes(payload[tokens_bytes:]))
