"""A GGUF header parser in pure Python, so a truncated or foreign file is rejected
with a clear message before it reaches llama.cpp's C code."""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import ModelError

GGUF_MAGIC = b"GGUF"

# ggml tensor type -> (elements per block, bytes per block), from gguf.constants.GGML_QUANT_SIZES.
_GGML_BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 40),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
    22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36), 41: (128, 18),
}  # fmt: skip

# GGUF metadata value type -> fixed byte width (8 = string and 9 = array are variable).
_SCALAR_WIDTH = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_SCALAR_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    version: int
    n_tensors: int
    architecture: str
    model_name: str
    has_chat_template: bool
    data_end: int  # bytes the file needs (end of the last tensor, or its start if its type is unknown)


class _Truncated(Exception):
    pass


class _Reader:
    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf
        self.pos = 0
        self.size = len(buf)

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.size:
            raise _Truncated
        self.pos = start + n
        return start

    def unpack(self, fmt: str, n: int) -> int | float | bool:
        value: int | float | bool = struct.unpack_from(fmt, self.buf, self.take(n))[0]
        return value

    def u32(self) -> int:
        return int(self.unpack("<I", 4))

    def u64(self) -> int:
        return int(self.unpack("<Q", 8))

    def string(self) -> bytes:
        n = self.u64()
        start = self.take(n)
        return self.buf[start : start + n]

    def skip_string(self) -> None:
        self.take(self.u64())

    def value(self, vtype: int, keep: bool) -> object:
        if vtype in _SCALAR_WIDTH:
            return self.unpack(_SCALAR_FMT[vtype], _SCALAR_WIDTH[vtype])
        if vtype == 8:
            if keep:
                return self.string().decode("utf-8", "replace")
            self.skip_string()
            return None
        if vtype == 9:
            etype, count = self.u32(), self.u64()
            if etype in _SCALAR_WIDTH:
                self.take(count * _SCALAR_WIDTH[etype])
            elif etype == 8:
                if count > self.size:
                    raise _Truncated
                for _ in range(count):
                    self.skip_string()
            else:  # nested arrays: legal but never used by real models
                for _ in range(count):
                    self.value(etype, keep=False)
            return None
        raise ValueError(f"unknown metadata value type {vtype}")


def check_gguf(path: str | Path) -> GGUFInfo:
    """Parse a GGUF file's header and tensor table; raise ModelError if it is not a complete GGUF.

    This reads only the header (a few MB, memory-mapped) and compares the file
    size with where the tensor table says the data ends, so truncated
    downloads are caught without reading the weights.
    """
    path = Path(path)
    if not path.is_file():
        what = "a folder, not a GGUF file" if path.is_dir() else "missing"
        raise ModelError(f"model file {path} is {what}")
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 24:
                raise ModelError(f"model file {path} is not a GGUF model ({size} bytes, too short)")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse_gguf(path, buf)
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc}") from exc


def _parse_gguf(path: Path, buf: mmap.mmap) -> GGUFInfo:
    if buf[:4] != GGUF_MAGIC:
        raise ModelError(f"model file {path} is not a GGUF model (starts with {bytes(buf[:4])!r}, expected b'GGUF')")
    r = _Reader(buf)
    r.take(4)
    try:
        version = r.u32()
        if version not in (2, 3):
            raise ModelError(f"model file {path} uses GGUF version {version}; only versions 2 and 3 are supported")
        n_tensors, n_kv = r.u64(), r.u64()
        if n_tensors > r.size or n_kv > r.size:
            raise ModelError(f"model file {path} has a corrupt GGUF header ({n_tensors} tensors, {n_kv} keys)")
        meta: dict[str, object] = {}
        wanted = {"general.architecture", "general.name", "general.alignment"}
        has_template = False
        for _ in range(n_kv):
            key = r.string().decode("utf-8", "replace")
            vtype = r.u32()
            value = r.value(vtype, keep=key in wanted)
            if key in wanted:
                meta[key] = value
            has_template = has_template or key == "tokenizer.chat_template"
        tensors: list[tuple[int, int | None]] = []  # (offset, byte size if the type is known)
        for _ in range(n_tensors):
            r.skip_string()
            n_dims = r.u32()
            if n_dims > 8:
                raise ModelError(f"model file {path} has a corrupt tensor table ({n_dims} dimensions)")
            elements = 1
            for _ in range(n_dims):
                elements *= r.u64()
            ttype, offset = r.u32(), r.u64()
            block = _GGML_BLOCKS.get(ttype)
            tensors.append((offset, None if block is None else elements // block[0] * block[1]))
        alignment = meta.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0:
            alignment = 32
        data_start = -(-r.pos // alignment) * alignment
    except _Truncated:
        raise ModelError(f"model file {path} is truncated: it ends inside the GGUF header") from None
    except ValueError as exc:
        raise ModelError(f"model file {path} has a corrupt GGUF header: {exc}") from None
    data_end = data_start
    for offset, nbytes in tensors:
        data_end = max(data_end, data_start + offset + (nbytes or 1))
    if data_end > r.size:
        raise ModelError(
            f"model file {path} is truncated: {r.size} bytes, but its tensors need {data_end} bytes "
            "(an interrupted copy or download?)"
        )
    return GGUFInfo(
        path=path,
        version=version,
        n_tensors=n_tensors,
        architecture=str(meta.get("general.architecture", "")),
        model_name=str(meta.get("general.name", "")),
        has_chat_template=has_template,
        data_end=data_end,
    )
