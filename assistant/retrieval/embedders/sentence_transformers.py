"""Any sentence-transformers model from a LOCAL folder.

Hub names are refused on purpose: the assistant must run offline and must never
download weights at run time. The model loads lazily, once, on the CPU.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import ConfigError, InvalidInputError, MissingDependencyError, ModelError

PIP_HINT = "pip install sentence-transformers torch"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.onnx")

ProgressFn = Callable[[int, int], None]


class SentenceTransformerEmbedder:
    """Embeddings from a sentence-transformers model folder (L2-normalised float32).

    Query/passage prompts: explicit ``query_prefix`` / ``passage_prefix`` win
    (e.g. ``"query: "`` / ``"passage: "`` for an E5 folder); otherwise the
    prompts saved in the folder's sentence-transformers config are used, if any.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        batch_size: int = 16,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        device: str = "cpu",
    ) -> None:
        raw = str(model_path).strip()
        if not raw:
            raise ConfigError("setting 'embedder_model' is empty: give a local sentence-transformers model folder")
        path = Path(raw).expanduser()
        if not path.exists():
            raise ConfigError(
                f"setting 'embedder_model' = {raw!r} must be a local model folder, and it does not exist. "
                "Model hub names are never downloaded (the assistant runs offline): download the model "
                "once, then point embedder_model at its folder."
            )
        if not path.is_dir():
            raise ConfigError(f"setting 'embedder_model' = {raw!r} is a file; it must be a model folder")
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise ModelError(f"{path} is not a sentence-transformers/transformers model folder (no config.json)")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.path = path.resolve()
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.device = device
        self._model: Any = None
        self._dim: int | None = None
        self._model_id = self._make_id()
        self._lock = threading.Lock()

    def _make_id(self) -> str:
        """Folder name + a digest of its config and weight sizes: a changed model forces a rebuild."""
        h = hashlib.sha256()
        for name in ("config.json", "modules.json", "config_sentence_transformers.json", *_WEIGHT_FILES):
            f = self.path / name
            if f.is_file():
                h.update(name.encode())
                h.update(str(f.stat().st_size).encode() if name in _WEIGHT_FILES else f.read_bytes())
        h.update(f"{self.query_prefix!r}|{self.passage_prefix!r}".encode())
        return f"st:{self.path.name}:{h.hexdigest()[:12]}"

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._load()
        assert self._dim is not None
        return self._dim

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is not None:
                return self._model
            # Belt and braces: even a local folder may name remote files in its config.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise MissingDependencyError(
                    f"the sentence-transformers embedder needs 'sentence-transformers' and 'torch' ({exc}). Fix: {PIP_HINT}"
                ) from exc
            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
                pass
            st_log = logging.getLogger("sentence_transformers")
            old_level = st_log.level
            # "No sentence-transformers model found, creating mean pooling" is expected for plain BERT folders.
            st_log.setLevel(logging.ERROR)
            try:
                model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise ModelError(f"could not load the embedding model from {self.path}: {exc}") from exc
            finally:
                st_log.setLevel(old_level)
            getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            dim = getter()
            if not dim:
                raise ModelError(f"the model in {self.path} does not report an embedding dimension")
            self._dim = int(dim)
            self._model = model
            return model

    def _encode(self, texts: Sequence[str], is_query: bool, progress: ProgressFn | None) -> np.ndarray:
        if isinstance(texts, str):
            raise InvalidInputError("embed_* expects a list of texts, not a single string")
        items = list(texts)
        for t in items:
            if not isinstance(t, str):
                raise InvalidInputError(f"cannot embed a {type(t).__name__}; texts must be strings")
        model = self._load()
        assert self._dim is not None
        out = np.empty((len(items), self._dim), dtype=np.float32)
        if not items:
            return out
        prefix = self.query_prefix if is_query else self.passage_prefix
        total = len(items)
        for start in range(0, total, self.batch_size):
            batch = items[start : start + self.batch_size]
            kwargs: dict[str, Any] = {
                "batch_size": self.batch_size,
                "normalize_embeddings": True,
                "convert_to_numpy": True,
                "show_progress_bar": False,
            }
            try:
                if prefix is not None:
                    vecs = model.encode([prefix + t for t in batch], **kwargs)
                else:
                    # encode_query/encode_document apply the folder's saved prompts (sentence-transformers >= 5).
                    fn = getattr(model, "encode_query" if is_query else "encode_document", None) or model.encode
                    vecs = fn(batch, **kwargs)
            except RuntimeError as exc:
                raise ModelError(f"the embedding model in {self.path} failed: {exc}") from exc
            out[start : start + len(batch)] = np.asarray(vecs, dtype=np.float32)
            if progress is not None:
                progress(start + len(batch), total)
        if not np.all(np.isfinite(out)):
            raise ModelError(f"the embedding model in {self.path} produced non-finite vectors")
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, True, None)

    def embed_passages(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        return self._encode(texts, False, progress)
