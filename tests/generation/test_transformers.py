"""transformers backend: stop-string trimming, refusal of hub names and bad files,
and (slow) the small shipped GGUF loaded through transformers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.errors import ConfigError, InvalidInputError, MissingDependencyError, ModelError
from assistant.generation import create_generator
from assistant.generation.transformers import TransformersGenerator, cut_at_stop

from helpers_llm import CHINESE_PROMPT, SMALL_MODEL, has_cjk, make_gguf


@pytest.mark.parametrize(
    ("pieces", "stops", "expected"),
    [
        (["1,", "2,", "3,", "4,", "5,", "6"], ["5"], "1,2,3,4,"),
        (["ab", "c<|", "im_e", "nd|>tail"], ["<|im_end|>"], "abc"),
        (["ab", "c<|", "im", " no"], ["<|im_end|>"], "abc<|im no"),  # a false start is released
        (["第一", "条。\n\n第二条"], ["\n\n"], "第一条。"),
        (["xy", "z"], [], "xyz"),
        (["STOP", "later"], ["STOP"], ""),
        (["aXb"], ["Xb", "b"], "a"),  # the earliest stop wins
    ],
)
def test_cut_at_stop(pieces: list[str], stops: list[str], expected: str) -> None:
    out = list(cut_at_stop(iter(pieces), stops))
    assert "".join(out) == expected
    assert all(out)  # never yields empty pieces


def test_cut_at_stop_streams_safe_text_early() -> None:
    gen = cut_at_stop(iter(["hello ", "wor", "ld<|e"]), ["<|end|>"])
    assert next(gen) == "hello "  # released at once, not held until the end
    assert next(gen) == "wor"
    assert list(gen) == ["ld", "<|e"]


def test_hub_names_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="hub names are refused"):
        TransformersGenerator("Qwen/Qwen2.5-0.5B-Instruct")


def test_bad_parameters_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(make_gguf())
    with pytest.raises(ConfigError, match="n_threads"):
        TransformersGenerator(path, n_threads=0)
    with pytest.raises(ConfigError, match="timeout_s"):
        TransformersGenerator(path, timeout_s=-1)


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no config.json"):
        TransformersGenerator(tmp_path)


@pytest.mark.parametrize("content", [b"", os.urandom(10_000), make_gguf()[:-40]], ids=["empty", "random", "cut"])
def test_bad_gguf_is_a_model_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=str(path)):
        TransformersGenerator(path)


def test_missing_packages_name_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(make_gguf())
    gen = TransformersGenerator(path)
    monkeypatch.setitem(sys.modules, "gguf", None)
    with pytest.raises(MissingDependencyError, match="pip install .*gguf"):
        gen.load()
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingDependencyError, match="pip install torch transformers"):
        gen.load()


def test_gguf_transformers_cannot_read_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(make_gguf())  # valid GGUF, but an architecture transformers does not know
    with pytest.raises(ModelError, match="transformers cannot load model"):
        TransformersGenerator(path).load()


def test_factory_and_lazy_construction(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    path.write_bytes(make_gguf())
    gen = create_generator(Settings(backend="transformers", llm_path=str(path), llm_threads=1))
    assert isinstance(gen, TransformersGenerator)
    assert gen.name == "transformers:tiny" and not gen.loaded
    with pytest.raises(InvalidInputError, match="max_tokens"):
        gen.stream([{"role": "user", "content": "x"}], max_tokens=-1)


# --- the real small model through transformers (slow: ~1 min to load on 2 cores, ~2.5 GB RAM) ---------


@pytest.fixture(scope="module")
def small_transformers(tmp_path_factory: pytest.TempPathFactory) -> TransformersGenerator:
    cache = tmp_path_factory.getbasetemp() / "shipped-models"
    settings = Settings(backend="transformers", cache_dir=cache, llm_model=SMALL_MODEL, llm_threads=2)
    gen = TransformersGenerator.from_settings(settings)
    gen.load()
    return gen


@pytest.mark.slow
def test_real_gguf_streams_a_chinese_reply(small_transformers: TransformersGenerator) -> None:
    assert small_transformers.name == "transformers:qwen2.5-0.5b"
    pieces = list(small_transformers.stream(CHINESE_PROMPT, max_tokens=8))
    assert len(pieces) >= 2
    assert has_cjk("".join(pieces))


@pytest.mark.slow
def test_real_gguf_honours_stop_strings(small_transformers: TransformersGenerator) -> None:
    counting = [{"role": "user", "content": "从1数到20，用英文逗号分隔，只输出数字。"}]
    text = "".join(small_transformers.stream(counting, max_tokens=14, stop=["5"]))
    assert text.startswith("1") and "4" in text and "5" not in text
