"""The persisted hybrid index: round trip, staleness, corruption, atomic writes."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import assistant.retrieval.store as index_mod
from assistant.config import Settings
from assistant.errors import IndexStoreError, ModelError
from assistant.ingest.chunker import Chunker
from assistant.ingest.corpus import load_corpus
from assistant.models import Chunk, Document
from assistant.retrieval.store import (
    CHUNKS_FILE,
    DENSE_FILE,
    MANIFEST,
    IndexCorruptError,
    IndexMissingError,
    IndexStaleError,
    IndexStore,
    documents_fingerprint,
    ensure_index,
    index_params,
    index_path,
)
from assistant.text import bm25_tokens

from conftest import CORPUS_DIR, FakeEmbedder
from helpers_fs import deny_writes


@pytest.fixture(scope="module")
def documents() -> list[Document]:
    return load_corpus(CORPUS_DIR)


@pytest.fixture(scope="module")
def chunks(documents: list[Document]) -> list[Chunk]:
    return Chunker(220, 40).run(documents)


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(index_dir=tmp_path / "index", **kw)  # type: ignore[arg-type]


class ExplodingEmbedder(FakeEmbedder):
    """Fails on the n-th passage batch, like a build interrupted half-way."""

    def __init__(self, fail_on_call: int) -> None:
        super().__init__()
        self.fail_on_call = fail_on_call

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if self.calls + 1 >= self.fail_on_call:
            raise ModelError("embedding failed half-way")
        return super().embed_passages(texts)


def test_build_and_load_round_trip(tmp_path: Path, chunks: list[Chunk], fake_embedder: FakeEmbedder) -> None:
    store = IndexStore(tmp_path / "ix")
    params = {"chunk_size": 220, "chunk_overlap": 40}
    messages: list[str] = []
    built = store.build(chunks, fake_embedder, "fp1", params, progress=messages.append)
    assert messages and str(len(chunks)) in messages[0]
    loaded = store.load("fp1", fake_embedder.model_id, params)
    assert loaded.chunks == chunks == built.chunks
    assert loaded.size == len(chunks) and loaded.dim == fake_embedder.dim
    m = loaded.manifest
    assert m["chunk_count"] == len(chunks) and m["fingerprint"] == "fp1" and m["dense_index"] == "flat"
    assert m["embedder"] == {"model_id": fake_embedder.model_id, "dim": fake_embedder.dim}
    assert m["params"] == params and m["built_at"] and m["build_seconds"] >= 0
    # a chunk's own vector finds it first, with cosine ~1
    target = 37
    vec = fake_embedder.embed_passages([chunks[target].embed_text])[0]
    (idx, score), *_ = loaded.dense_search(vec, 5)
    assert idx == target and score == pytest.approx(1.0, abs=1e-4)
    # BM25: a phrase from a chunk ranks that chunk's unit first, and only matching chunks come back
    hits = loaded.bm25_search(bm25_tokens("不动产投资信托基金"), 10)
    assert hits and chunks[hits[0][0]].article == 23
    assert all(s > 0 for _, s in hits) and [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert loaded.bm25_search(bm25_tokens("火星殖民飞船"), 10) == []
    assert loaded.bm25_search([], 10) == [] and loaded.dense_search(vec, 0) == []


def test_dense_search_rejects_a_vector_of_the_wrong_size(tmp_path: Path, chunks: list[Chunk]) -> None:
    ix = IndexStore(tmp_path / "ix").build(chunks[:10], FakeEmbedder(), "fp", {})
    with pytest.raises(ModelError, match="dimensions"):
        ix.dense_search(np.ones(17, dtype=np.float32), 3)


def test_empty_chunk_list_is_refused(tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    with pytest.raises(IndexStoreError, match="no chunks"):
        IndexStore(tmp_path / "ix").build([], fake_embedder, "fp", {})


def test_missing_index(tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError):
        IndexStore(tmp_path / "nothing").load()


def test_load_rejects_stale_indexes(tmp_path: Path, chunks: list[Chunk], fake_embedder: FakeEmbedder) -> None:
    store = IndexStore(tmp_path / "ix")
    store.build(chunks[:20], fake_embedder, "fp1", {"chunk_size": 220})
    with pytest.raises(IndexStaleError, match="corpus changed"):
        store.load("fp2", fake_embedder.model_id, {"chunk_size": 220})
    with pytest.raises(IndexStaleError, match="embedder"):
        store.load("fp1", "another-model", {"chunk_size": 220})
    with pytest.raises(IndexStaleError, match="chunk_size"):
        store.load("fp1", fake_embedder.model_id, {"chunk_size": 300})
    manifest = json.loads((store.index_dir / MANIFEST).read_text())
    manifest["format_version"] = 0
    (store.index_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexStaleError, match="format version"):
        store.load("fp1", fake_embedder.model_id, {"chunk_size": 220})


def _corrupt_truncate_faiss(d: Path) -> None:
    data = (d / DENSE_FILE).read_bytes()
    (d / DENSE_FILE).write_bytes(data[: len(data) // 2])


def _corrupt_manifest_json(d: Path) -> None:
    (d / MANIFEST).write_text('{"format_version": 1, "fingerp')


def _corrupt_chunks_json(d: Path) -> None:
    (d / CHUNKS_FILE).write_text("[{]")


def _corrupt_count(d: Path) -> None:
    m = json.loads((d / MANIFEST).read_text())
    m["chunk_count"] += 1
    (d / MANIFEST).write_text(json.dumps(m))


def _corrupt_missing_file(d: Path) -> None:
    (d / DENSE_FILE).unlink()


@pytest.mark.parametrize(
    ("corrupt", "pattern"),
    [
        (_corrupt_truncate_faiss, "checksum"),
        (_corrupt_manifest_json, "JSON"),
        (_corrupt_chunks_json, "checksum"),
        (_corrupt_count, "count mismatch"),
        (_corrupt_missing_file, "missing"),
    ],
)
def test_corrupt_index_is_detected_and_rebuilt(
    tmp_path: Path, documents: list[Document], fake_embedder: FakeEmbedder, corrupt: object, pattern: str
) -> None:
    settings = _settings(tmp_path)
    ensure_index(settings, documents, fake_embedder)
    where = index_path(settings.index_dir, fake_embedder)
    corrupt(where)  # type: ignore[operator]
    with pytest.raises(IndexCorruptError, match=pattern):
        IndexStore(where).load()
    messages: list[str] = []
    index, rebuilt = ensure_index(settings, documents, fake_embedder, progress=messages.append)
    assert rebuilt and index.size > 0
    assert any("损坏" in m and pattern.split()[0] in m for m in messages), messages
    assert ensure_index(settings, documents, fake_embedder)[1] is False  # healthy again


def test_unreadable_faiss_with_matching_checksum(
    tmp_path: Path, chunks: list[Chunk], fake_embedder: FakeEmbedder
) -> None:
    """Garbage that someone re-checksummed still fails with a clear IndexCorruptError."""
    store = IndexStore(tmp_path / "ix")
    store.build(chunks[:5], fake_embedder, "fp", {})
    (store.index_dir / DENSE_FILE).write_bytes(b"not a faiss index")
    m = json.loads((store.index_dir / MANIFEST).read_text())
    import hashlib

    m["files"][DENSE_FILE] = hashlib.sha256(b"not a faiss index").hexdigest()
    (store.index_dir / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(IndexCorruptError, match="FAISS"):
        store.load()


def test_ensure_index_reuses_then_rebuilds_when_stale(
    tmp_path: Path, documents: list[Document], fake_embedder: FakeEmbedder
) -> None:
    settings = _settings(tmp_path)
    index, rebuilt = ensure_index(settings, documents, fake_embedder)
    assert rebuilt
    calls = fake_embedder.calls
    index2, rebuilt2 = ensure_index(settings, documents, fake_embedder)
    assert not rebuilt2 and fake_embedder.calls == calls  # loaded, nothing re-embedded
    assert index2.chunks == index.chunks

    # chunk parameters changed
    messages: list[str] = []
    index3, rebuilt3 = ensure_index(settings.replace(chunk_size=300), documents, fake_embedder, messages.append)
    assert rebuilt3 and any("过期" in m for m in messages)
    assert max(len(c.text) for c in index3.chunks) > 220

    # corpus changed (same chunks, different source text)
    doc = documents[0]
    changed = [dataclasses.replace(doc, source=doc.source + "\n附记")]
    assert documents_fingerprint(changed) != documents_fingerprint(documents)
    assert ensure_index(settings.replace(chunk_size=300), changed, fake_embedder)[1]

    # force
    assert ensure_index(settings.replace(chunk_size=300), changed, fake_embedder, force=True)[1]


def test_each_embedder_gets_its_own_index(tmp_path: Path, documents: list[Document]) -> None:
    settings = _settings(tmp_path)
    (settings.index_dir).mkdir(parents=True)
    (settings.index_dir / "README.md").write_text("keep me")
    a, b = FakeEmbedder(256), FakeEmbedder(128)
    assert ensure_index(settings, documents, a)[0].dim == 256
    assert ensure_index(settings, documents, b)[0].dim == 128
    assert ensure_index(settings, documents, a)[1] is False  # switching back reuses the first
    assert index_path(settings.index_dir, a) != index_path(settings.index_dir, b)
    assert (settings.index_dir / "README.md").read_text() == "keep me"


def test_interrupted_build_keeps_the_old_index(tmp_path: Path, documents: list[Document]) -> None:
    settings = _settings(tmp_path)
    good = FakeEmbedder()
    ensure_index(settings, documents, good)
    where = index_path(settings.index_dir, good)
    before = (where / MANIFEST).read_bytes()

    bad = ExplodingEmbedder(fail_on_call=4)
    with pytest.raises(ModelError, match="half-way"):
        ensure_index(settings, documents, bad, force=True)
    assert (where / MANIFEST).read_bytes() == before
    assert IndexStore(where).load(documents_fingerprint(documents)).size > 0
    assert not [p for p in where.parent.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_failed_write_keeps_the_old_index(
    tmp_path: Path, chunks: list[Chunk], fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = IndexStore(tmp_path / "ix")
    store.build(chunks[:10], fake_embedder, "old", {})
    real_rename = os.rename

    def failing_rename(src: object, dst: object) -> None:
        if ".building-" in str(src):
            raise OSError(28, "No space left on device")
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(index_mod.os, "rename", failing_rename)
    with pytest.raises(IndexStoreError, match="No space left"):
        store.build(chunks[:20], fake_embedder, "new", {})
    monkeypatch.undo()
    assert store.load("old").size == 10
    assert not [p for p in (tmp_path).iterdir() if p.name.startswith(".")]


def test_crash_between_renames_is_recovered(tmp_path: Path, chunks: list[Chunk], fake_embedder: FakeEmbedder) -> None:
    store = IndexStore(tmp_path / "ix")
    store.build(chunks[:10], fake_embedder, "fp", {})
    os.rename(store.index_dir, tmp_path / ".ix.old-deadbeef")  # the state right after the first rename
    assert store.load("fp").size == 10
    assert store.index_dir.is_dir()


def test_large_corpora_use_hnsw(
    tmp_path: Path, chunks: list[Chunk], fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_mod, "HNSW_THRESHOLD", 50)
    store = IndexStore(tmp_path / "ix")
    store.build(chunks, fake_embedder, "fp", {})
    loaded = store.load("fp")
    assert loaded.manifest["dense_index"] == "hnsw" and hasattr(loaded.dense, "hnsw")
    vec = fake_embedder.embed_passages([chunks[60].embed_text])[0]
    assert loaded.dense_search(vec, 3)[0][0] == 60


def test_index_params_track_chunk_content(documents: list[Document], chunks: list[Chunk], tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    p1 = index_params(settings, chunks)
    p2 = index_params(settings, [*chunks[:-1], dataclasses.replace(chunks[-1], context="另一个标题")])
    assert p1["chunks_digest"] != p2["chunks_digest"]
    assert p1 == index_params(settings, Chunker(220, 40).run(documents))


def test_unusable_index_dir_is_a_clear_error(tmp_path: Path, documents: list[Document]) -> None:
    blocker = tmp_path / "index"
    blocker.write_text("a file where the index folder should be")
    with pytest.raises(IndexStoreError, match="cannot create the index folder"):
        ensure_index(Settings(index_dir=blocker), documents, FakeEmbedder())
    assert blocker.read_text().startswith("a file")


def test_read_only_index_folder_with_a_valid_index_loads(
    tmp_path: Path, documents: list[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    built, rebuilt = ensure_index(settings, documents, FakeEmbedder())
    assert rebuilt
    denied = deny_writes(monkeypatch, settings.index_dir)
    loaded, rebuilt = ensure_index(settings, documents, FakeEmbedder())
    assert not rebuilt and loaded.chunks == built.chunks
    assert denied.attempts == []


@pytest.mark.parametrize(
    ("code", "message"),
    [(errno.EROFS, "not writable. Fix: make it writable or set index_dir"), (errno.ENOSPC, "disk is full")],
    ids=["read-only", "full"],
)
def test_failed_index_write_is_a_clear_index_store_error(
    tmp_path: Path, documents: list[Document], monkeypatch: pytest.MonkeyPatch, code: int, message: str
) -> None:
    settings = _settings(tmp_path)
    settings.index_dir.mkdir()
    deny_writes(monkeypatch, settings.index_dir, code)
    with pytest.raises(IndexStoreError, match=f"cannot write the index to .*: {os.strerror(code)}; .*{message}"):
        ensure_index(settings, documents, FakeEmbedder())
    monkeypatch.undo()
    assert list(settings.index_dir.iterdir()) == []
