"""llama.cpp backend: bad model files fail cleanly before C code; (slow) the small
shipped model streams Chinese, honours stop strings, and serves threads one at a time."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.config import Settings
from assistant.errors import ConfigError, GenerationError, InvalidInputError, MissingDependencyError, ModelError
from assistant.generation import Generator, create_generator
from assistant.generation import llama as llama_module
from assistant.generation.llama import LlamaGenerator, disable_weight_repacking
from assistant.generation.shipped_models import MODELS, ensure_model

from helpers_llm import CHINESE_PROMPT, SMALL_MODEL, has_cjk, make_gguf


@pytest.fixture
def no_c_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a model file reaches llama.cpp's loader."""

    def refuse() -> None:
        raise AssertionError("a bad model file was handed to llama.cpp")

    monkeypatch.setattr(llama_module, "import_llama_cpp", refuse)


@pytest.mark.parametrize(
    "content",
    [b"", os.urandom(64 * 1024), make_gguf()[:50], make_gguf(tensors=[("w", [4096, 64], 0)])[:-1000]],
    ids=["empty", "random-bytes", "cut-header", "cut-data"],
)
def test_bad_model_files_are_model_errors_before_llama_cpp(tmp_path: Path, content: bytes, no_c_loader: None) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    gen = LlamaGenerator(path)
    with pytest.raises(ModelError, match=str(path)):
        list(gen.stream([{"role": "user", "content": "你好"}], max_tokens=4))
    assert not gen.loaded


def test_missing_model_file(tmp_path: Path, no_c_loader: None) -> None:
    with pytest.raises(ModelError, match="missing"):
        LlamaGenerator(tmp_path / "absent.gguf").load()


def test_missing_llama_cpp_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ok.gguf"
    path.write_bytes(make_gguf())
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install llama-cpp-python==0\.3\.36"):
        LlamaGenerator(path).load()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_threads": 0}, "n_threads"), ({"n_ctx": -1}, "n_ctx"), ({"timeout_s": 0}, "timeout_s")],
)
def test_bad_parameters(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LlamaGenerator(tmp_path / "m.gguf", **kwargs)


def test_bad_request_is_rejected_before_loading(tmp_path: Path, no_c_loader: None) -> None:
    gen = LlamaGenerator(tmp_path / "m.gguf")
    with pytest.raises(InvalidInputError, match="temperature"):
        gen.stream([{"role": "user", "content": "x"}], max_tokens=4, temperature=5)
    with pytest.raises(InvalidInputError, match="stop"):
        gen.stream([{"role": "user", "content": "x"}], max_tokens=4, stop=[""])


def test_weight_repacking_is_disabled_once() -> None:
    import llama_cpp

    disable_weight_repacking(llama_cpp)
    patched = llama_cpp.llama_cpp.llama_model_default_params
    disable_weight_repacking(llama_cpp)
    assert llama_cpp.llama_cpp.llama_model_default_params is patched
    assert patched().use_extra_bufts is False


def test_from_settings_uses_llm_path_and_settings(tmp_path: Path) -> None:
    path = tmp_path / "custom-q4.gguf"
    path.write_bytes(make_gguf())
    settings = Settings(cache_dir=tmp_path, llm_path=str(path), llm_threads=3, llm_context=1024, generation_timeout_s=7)
    gen = create_generator(settings)
    assert isinstance(gen, LlamaGenerator) and isinstance(gen, Generator)
    assert (gen.name, gen.model_path, gen.n_threads, gen.n_ctx, gen.timeout_s) == (
        "llama:custom-q4",
        path,
        3,
        1024,
        7.0,
    )
    assert not gen.loaded  # lazy


# --- the real small model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_llama(tmp_path_factory: pytest.TempPathFactory) -> LlamaGenerator:
    cache = tmp_path_factory.getbasetemp() / "shipped-models"
    gen = LlamaGenerator.from_settings(
        Settings(cache_dir=cache, llm_model=SMALL_MODEL, llm_threads=2, llm_context=1024)
    )
    assert gen.name == "llama:qwen2.5-0.5b"
    return gen


@pytest.mark.slow
def test_streams_a_chinese_reply(small_llama: LlamaGenerator) -> None:
    pieces = list(small_llama.stream(CHINESE_PROMPT, max_tokens=12))
    assert small_llama.loaded
    assert len(pieces) >= 2  # streamed piece by piece
    assert has_cjk("".join(pieces))


@pytest.mark.slow
def test_reply_logprob_scores_the_reply_the_model_gives(small_llama: LlamaGenerator) -> None:
    counting = [{"role": "user", "content": "从1数到20，用英文逗号分隔，只输出数字。"}]
    reply = "".join(small_llama.stream(counting, max_tokens=4))
    right_after = small_llama.reply_logprob(counting, reply)  # the context still holds this prompt
    assert right_after is not None and -3.0 < right_after <= 0.0  # greedy tokens: each the likeliest
    unlikely = small_llama.reply_logprob(counting, "规划未提及")
    assert unlikely is not None and unlikely < right_after - 5.0
    list(small_llama.stream(CHINESE_PROMPT, max_tokens=3))  # another prompt in between: evaluated again
    assert small_llama.reply_logprob(counting, reply) == pytest.approx(right_after, abs=0.05)
    with pytest.raises(InvalidInputError, match="start"):
        small_llama.reply_logprob(counting, "")


@pytest.mark.slow
def test_stop_strings_and_max_tokens(small_llama: LlamaGenerator) -> None:
    counting = [{"role": "user", "content": "从1数到20，用英文逗号分隔，只输出数字。"}]
    text = "".join(small_llama.stream(counting, max_tokens=30, stop=["5"]))
    assert text.startswith("1") and "4" in text and "5" not in text
    assert 1 <= len(list(small_llama.stream(counting, max_tokens=3))) <= 3


@pytest.mark.slow
def test_concurrent_users_are_served_one_at_a_time(
    small_llama: LlamaGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_llama.load()
    llm = small_llama._llm
    real = llm.create_chat_completion
    active, most = [0], [0]

    def counted(*args: Any, **kwargs: Any) -> Iterator[Any]:
        active[0] += 1
        most[0] = max(most[0], active[0])
        try:
            yield from real(*args, **kwargs)
        finally:
            active[0] -= 1

    monkeypatch.setattr(llm, "create_chat_completion", counted)
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def ask(i: int) -> None:
        try:
            results[i] = "".join(small_llama.stream([{"role": "user", "content": f"{i}+{i}=?"}], max_tokens=6))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and sorted(results) == [1, 2, 3]
    assert all(results.values())
    assert most[0] == 1, "two generations ran in one llama.cpp context at once"
    alone = "".join(small_llama.stream([{"role": "user", "content": "2+2=?"}], max_tokens=6))
    assert alone == results[2]  # greedy decoding: interleaving did not corrupt the context


@pytest.mark.slow
def test_abandoned_stream_frees_the_model(small_llama: LlamaGenerator) -> None:
    stream = small_llama.stream(CHINESE_PROMPT, max_tokens=50)
    next(iter(stream))
    stream.close()  # e.g. the browser went away mid-answer
    assert small_llama._slot.acquire(timeout=1)
    small_llama._slot.release()
    assert has_cjk("".join(small_llama.stream(CHINESE_PROMPT, max_tokens=6)))


@pytest.mark.slow
def test_prompt_longer_than_the_context_is_a_generation_error(small_llama: LlamaGenerator) -> None:
    too_long = [{"role": "user", "content": "合肥瑶海区" * 800}]  # ~2000+ tokens > n_ctx 1024
    with pytest.raises(GenerationError, match="too long"):
        list(small_llama.stream(too_long, max_tokens=4))
    assert has_cjk("".join(small_llama.stream(CHINESE_PROMPT, max_tokens=6)))  # still usable


@pytest.mark.slow
def test_truncated_real_model_is_rejected(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    real = ensure_model(SMALL_MODEL, tmp_path_factory.getbasetemp() / "shipped-models")
    cut = tmp_path / "cut.gguf"
    with real.open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(MODELS[SMALL_MODEL].size - 4096))
    with pytest.raises(ModelError, match="truncated"):
        LlamaGenerator(cut).load()
