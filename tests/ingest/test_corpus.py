"""Corpus loading: sidecar metadata, file checks, fingerprint."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import assistant.ingest.corpus as corpus
from assistant.errors import CorpusError
from assistant.ingest.corpus import corpus_fingerprint, load_corpus

from conftest import CORPUS_DIR, PLAN_FILE

STEM = PLAN_FILE.stem


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """A private copy of the shipped corpus that a test may damage."""
    dst = tmp_path / "corpus"
    dst.mkdir()
    for name in (f"{STEM}.txt", f"{STEM}.toml"):
        shutil.copy(CORPUS_DIR / name, dst / name)
    return dst


def test_load_shipped_corpus() -> None:
    docs = load_corpus(CORPUS_DIR)
    assert len(docs) == 1
    doc = docs[0]
    meta = doc.meta
    assert meta.doc_id == "yaohai-14th-fyp"
    assert meta.title == "中共合肥市瑶海区委关于制定国民经济和社会发展第十四个五年规划和二〇三五年远景目标的建议"
    assert meta.issuer == "中共合肥市瑶海区委员会"
    assert (meta.adopted, meta.published) == ("2020-12-30", "2021-07-14")
    assert "瑶海区" in meta.source
    assert meta.filename == PLAN_FILE.name
    assert len(doc.articles) == 43
    for unit in doc.units:
        assert unit.doc_id == meta.doc_id
        assert unit.unit_id.startswith(f"{meta.doc_id}#")
    assert len({u.unit_id for u in doc.units}) == len(doc.units)


def test_more_documents_load_in_name_order(corpus_copy: Path) -> None:
    other = corpus_copy / "another-plan.txt"
    shutil.copy(corpus_copy / f"{STEM}.txt", other)
    sidecar = (corpus_copy / f"{STEM}.toml").read_text(encoding="utf-8")
    (corpus_copy / "another-plan.toml").write_text(
        sidecar.replace('doc_id = "yaohai-14th-fyp"', 'doc_id = "another"'), encoding="utf-8"
    )
    docs = load_corpus(corpus_copy)
    assert [d.doc_id for d in docs] == ["another", "yaohai-14th-fyp"]
    assert docs[0].articles[0].unit_id == "another#article-1"


def test_utf8_bom_is_accepted(corpus_copy: Path) -> None:
    plan = corpus_copy / f"{STEM}.txt"
    plan.write_bytes(b"\xef\xbb\xbf" + plan.read_bytes())
    doc = load_corpus(corpus_copy)[0]
    assert not doc.source.startswith("\ufeff")
    assert len(doc.articles) == 43


def _expect_error(corpus_dir: Path, pattern: str) -> str:
    with pytest.raises(CorpusError, match=pattern) as info:
        load_corpus(corpus_dir)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_folder(tmp_path: Path) -> None:
    assert "nope" in _expect_error(tmp_path / "nope", "does not exist")


def test_file_instead_of_folder(corpus_copy: Path) -> None:
    _expect_error(corpus_copy / f"{STEM}.txt", "not a folder")


def test_empty_folder(tmp_path: Path) -> None:
    _expect_error(tmp_path, r"no plan texts")


def test_missing_sidecar(corpus_copy: Path) -> None:
    (corpus_copy / f"{STEM}.toml").unlink()
    message = _expect_error(corpus_copy, "no metadata sidecar")
    assert f"{STEM}.txt" in message


def test_binary_file(corpus_copy: Path) -> None:
    (corpus_copy / "scan.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (corpus_copy / "scan.toml").write_text((corpus_copy / f"{STEM}.toml").read_text(encoding="utf-8"), encoding="utf-8")
    assert "scan.txt" in _expect_error(corpus_copy, "binary")


def test_non_utf8_file(corpus_copy: Path) -> None:
    plan = corpus_copy / f"{STEM}.txt"
    plan.write_bytes(plan.read_text(encoding="utf-8").encode("gb18030"))
    assert f"{STEM}.txt" in _expect_error(corpus_copy, "not UTF-8")


def test_boilerplate_only_file(corpus_copy: Path) -> None:
    (corpus_copy / f"{STEM}.txt").write_text(
        "返回首页\n\n    首页 > 瑶海区\n\n    扫一扫在手机打开当前页\n", encoding="utf-8"
    )
    assert f"{STEM}.txt" in _expect_error(corpus_copy, "no chapter headings")


def test_empty_file(corpus_copy: Path) -> None:
    (corpus_copy / f"{STEM}.txt").write_bytes(b"")
    _expect_error(corpus_copy, "empty")


def test_too_large_file(corpus_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus, "MAX_FILE_BYTES", 1000)
    _expect_error(corpus_copy, "too large")


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        ('doc_id = "yaohai-14th-fyp"', 'doc_id = "Yaohai FYP"', "doc_id"),
        ('doc_id = "yaohai-14th-fyp"', "", "'doc_id' must be a non-empty string"),
        ('issuer = "中共合肥市瑶海区委员会"', 'issuer = ""', "'issuer'"),
        ('adopted = "2020-12-30"', 'adopted = "2020年12月30日"', "not an ISO date"),
        ('published = "2021-07-14"', "published = 2021", "'published'"),
        ('doc_id = "yaohai-14th-fyp"', 'doc_id = "yaohai', "not valid TOML"),
    ],
)
def test_bad_sidecar(corpus_copy: Path, old: str, new: str, pattern: str) -> None:
    sidecar = corpus_copy / f"{STEM}.toml"
    text = sidecar.read_text(encoding="utf-8")
    assert old in text
    sidecar.write_text(text.replace(old, new), encoding="utf-8")
    assert f"{STEM}.toml" in _expect_error(corpus_copy, pattern)


def test_duplicate_doc_id(corpus_copy: Path) -> None:
    for ext in ("txt", "toml"):
        shutil.copy(corpus_copy / f"{STEM}.{ext}", corpus_copy / f"copy.{ext}")
    _expect_error(corpus_copy, "share doc_id")


# ---------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_and_tracks_changes(corpus_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = corpus_fingerprint(corpus_copy)
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert corpus_fingerprint(corpus_copy) == base
    assert corpus_fingerprint(CORPUS_DIR) == base  # same names and bytes → same value

    plan = corpus_copy / f"{STEM}.txt"
    original = plan.read_bytes()
    plan.write_bytes(original.replace("2600亿元".encode(), "2700亿元".encode()))
    changed = corpus_fingerprint(corpus_copy)
    assert changed != base
    plan.write_bytes(original)
    assert corpus_fingerprint(corpus_copy) == base

    sidecar = corpus_copy / f"{STEM}.toml"
    sidecar.write_text(sidecar.read_text(encoding="utf-8") + "\n# note\n", encoding="utf-8")
    assert corpus_fingerprint(corpus_copy) != base

    monkeypatch.setattr(corpus, "PARSER_VERSION", "test-bump")
    assert corpus_fingerprint(CORPUS_DIR) != base


def test_fingerprint_tracks_file_names(corpus_copy: Path) -> None:
    base = corpus_fingerprint(corpus_copy)
    for ext in ("txt", "toml"):
        (corpus_copy / f"{STEM}.{ext}").rename(corpus_copy / f"renamed.{ext}")
    assert corpus_fingerprint(corpus_copy) != base


def test_fingerprint_of_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        corpus_fingerprint(tmp_path / "nope")
