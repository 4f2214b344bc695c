"""Load the corpus: every ``*.txt`` plan in a folder with its ``<stem>.toml``
metadata sidecar, parsed into :class:`Document` objects.

Sidecar keys (all required, non-empty strings): doc_id, title, issuer, adopted,
published (ISO dates), source. Other keys (e.g. ``adopted_by``) are notes for
people and are ignored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
from pathlib import Path

from assistant.errors import CorpusError
from assistant.ingest.parser import PARSER_VERSION, PlanParser
from assistant.models import Document, DocumentMeta
from assistant.text import quoted_terms, register_terms

MAX_FILE_BYTES = 10 * 1024 * 1024  # a plan is ~70 KB; anything this big is the wrong file
SIDECAR_KEYS = ("doc_id", "title", "issuer", "adopted", "published", "source")
# Optional: how the assistant names the plan and its region to residents (default: the full title).
OPTIONAL_KEYS = ("short_title", "english_title", "region")
_DOC_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def _corpus_files(corpus_dir: Path) -> list[Path]:
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.exists():
        raise CorpusError(f"corpus folder {corpus_dir} does not exist")
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus folder {corpus_dir} is not a folder")
    files = sorted(p for p in corpus_dir.glob("*.txt") if p.is_file())
    if not files:
        raise CorpusError(f"corpus folder {corpus_dir} holds no plan texts (*.txt)")
    return files


def read_text(path: Path) -> str:
    """Read a plan file as UTF-8 text, or raise CorpusError naming it."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CorpusError(f"corpus file {path.name} is too large ({size} bytes > {MAX_FILE_BYTES})")
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"cannot read corpus file {path.name}: {exc.strerror or exc}") from exc
    if b"\x00" in data:
        raise CorpusError(f"corpus file {path.name} is binary, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"corpus file {path.name} is not UTF-8 text (byte {exc.start}); re-save it as UTF-8") from exc


def read_meta(sidecar: Path, filename: str) -> DocumentMeta:
    """Read and validate ``<stem>.toml`` for the plan file ``filename``."""
    if not sidecar.is_file():
        raise CorpusError(f"corpus file {filename} has no metadata sidecar {sidecar.name}")
    try:
        data = tomllib.loads(read_text(sidecar))
    except tomllib.TOMLDecodeError as exc:
        raise CorpusError(f"metadata sidecar {sidecar.name} is not valid TOML: {exc}") from exc
    values: dict[str, str] = {}
    for key in SIDECAR_KEYS:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise CorpusError(f"metadata sidecar {sidecar.name}: '{key}' must be a non-empty string, got {value!r}")
        values[key] = value.strip()
    for key in OPTIONAL_KEYS:
        value = data.get(key, "")
        if not isinstance(value, str):
            raise CorpusError(f"metadata sidecar {sidecar.name}: '{key}' must be a string, got {value!r}")
        values[key] = value.strip()
    if not _DOC_ID.fullmatch(values["doc_id"]):
        raise CorpusError(
            f"metadata sidecar {sidecar.name}: doc_id {values['doc_id']!r} must be lowercase letters, digits, '.', '_' or '-'"
        )
    for key in ("adopted", "published"):
        try:
            dt.date.fromisoformat(values[key])
        except ValueError as exc:
            raise CorpusError(
                f"metadata sidecar {sidecar.name}: '{key}' = {values[key]!r} is not an ISO date (YYYY-MM-DD)"
            ) from exc
    return DocumentMeta(filename=filename, **values)


def load_document(path: Path, parser: PlanParser | None = None) -> Document:
    """Parse one plan file with its sidecar."""
    path = Path(path)
    meta = read_meta(path.with_suffix(".toml"), path.name)
    return (parser or PlanParser()).run(read_text(path), meta)


def load_corpus(corpus_dir: Path, parser: PlanParser | None = None) -> list[Document]:
    """Every ``*.txt`` in ``corpus_dir`` (sorted by name), parsed with its sidecar."""
    parser = parser or PlanParser()
    docs: list[Document] = []
    seen: dict[str, str] = {}
    for path in _corpus_files(corpus_dir):
        doc = load_document(path, parser)
        if doc.doc_id in seen:
            raise CorpusError(f"corpus files {seen[doc.doc_id]} and {path.name} share doc_id {doc.doc_id!r}")
        seen[doc.doc_id] = path.name
        docs.append(doc)
        register_terms(quoted_terms(doc.source))  # the plan's coined terms stay whole in search
    return docs


def corpus_fingerprint(corpus_dir: Path) -> str:
    """sha256 over the parser version and every plan text and sidecar (names + bytes).

    The index manifest stores it; a different value means the index is stale.
    """
    files = _corpus_files(corpus_dir)
    files += sorted(p for p in Path(corpus_dir).glob("*.toml") if p.is_file())
    h = hashlib.sha256(f"parser={PARSER_VERSION}\n".encode())
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CorpusError(f"cannot read corpus file {path.name}: {exc.strerror or exc}") from exc
        h.update(f"{path.name}\n{len(data)}\n".encode())
        h.update(data)
    return h.hexdigest()
