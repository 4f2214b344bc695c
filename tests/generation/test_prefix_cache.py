"""Saved prefix states: memory + disk round trip, validation of files, keys, read-only folders;
the first-come-first-served model slot; (slow) the cached path gives the plain path's output."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from assistant.config import Settings
from assistant.generation import Quote
from assistant.generation.kv_splice import Splice, copy_cells, token_ranges
from assistant.generation.llama import LlamaGenerator
from assistant.generation.prefix_cache import PrefixState, PrefixStateStore, state_key
from assistant.generation.slots import TicketLock

from helpers_llm import SMALL_MODEL

TOKENS = tuple(range(100, 180))


def store(directory: Path | None, **kw: Any) -> PrefixStateStore:
    return PrefixStateStore(directory, model_id="model-a|123", template_version="v1", **kw)


def state(tokens: tuple[int, ...] = TOKENS, size: int = 1000) -> PrefixState:
    return PrefixState(tokens, os.urandom(size))


def test_round_trip_memory_then_disk(tmp_path: Path) -> None:
    s = store(tmp_path)
    st = state()
    key = s.key(TOKENS)
    assert s.get(key) is None
    s.put(key, st)
    assert s.get(key, TOKENS) == st  # memory
    fresh = store(tmp_path)  # a later start: from disk
    assert fresh.get(key, TOKENS) == st
    stats = fresh.stats()
    assert stats["disk_states"] == 1 and stats["memory_states"] == 1 and stats["disk_hits"] == 1
    assert stats["disk_bytes"] > 1000


def test_key_depends_on_model_version_and_tokens() -> None:
    base = state_key("m", "v1", TOKENS)
    assert base == state_key("m", "v1", list(TOKENS))
    assert (
        len({base, state_key("m2", "v1", TOKENS), state_key("m", "v2", TOKENS), state_key("m", "v1", TOKENS[:-1])}) == 4
    )


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_file_is_ignored_and_rebuilt(tmp_path: Path, damage: str) -> None:
    s = store(tmp_path)
    key = s.key(TOKENS)
    s.put(key, state())
    path = next(tmp_path.glob("*.state"))
    raw = path.read_bytes()
    path.write_bytes(
        {
            "truncate": raw[:-10],
            "flip": raw[:-5] + bytes([raw[-5] ^ 1]) + raw[-4:],
            "garbage": os.urandom(500),
            "empty": b"",
        }[damage]
    )
    fresh = store(tmp_path)
    assert fresh.get(key) is None
    fresh.put(key, st := state())  # rebuilt over the bad file
    assert store(tmp_path).get(key) == st


def test_foreign_file_under_the_key_is_refused(tmp_path: Path) -> None:
    other = PrefixStateStore(tmp_path, model_id="model-b", template_version="v1")
    key = store(tmp_path).key(TOKENS)
    other.put(key, state())  # written under our key by another model
    assert store(tmp_path).get(key) is None
    wrong = store(None)
    wrong.put(key, state(tokens=(1, 2, 3)))
    assert wrong.get(key, TOKENS) is None  # a state for other tokens is never used


def test_read_only_folder_keeps_states_in_memory(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: the folder stays writable")
        s = store(folder / "states")
        key = s.key(TOKENS)
        s.put(key, st := state())
        assert not s.disk_ok
        assert s.get(key) == st
    finally:
        folder.chmod(0o700)


def test_unwritable_folder_keeps_states_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    s = store(blocker / "states")  # mkdir fails, even for root
    key = s.key(TOKENS)
    s.put(key, st := state())
    assert not s.disk_ok and s.get(key) == st


def test_memory_lru_is_bounded_in_bytes(tmp_path: Path) -> None:
    s = store(None, memory_bytes=3000)
    keys = [s.key((i, *TOKENS)) for i in range(3)]
    for k in keys:
        s.put(k, state(size=1000))
    assert s.get(keys[0]) is None and s.get(keys[2]) is not None
    assert s.stats()["memory_bytes"] <= 3000


def test_disk_is_bounded_in_bytes(tmp_path: Path) -> None:
    s = store(tmp_path, disk_bytes=2500)
    for i in range(4):
        s.put(s.key((i, *TOKENS)), state(size=1000))
    assert s.stats()["disk_bytes"] <= 2500


def test_ticket_lock_is_first_come_first_served() -> None:
    slot = TicketLock()
    assert slot.acquire(1)
    tickets = [slot.take() for _ in range(3)]
    assert [slot.ahead(t) for t in tickets] == [1, 2, 3] and slot.waiting == 3
    assert not slot.wait(tickets[1], timeout=0.01)  # not its turn
    slot.cancel(tickets[1])
    assert slot.ahead(tickets[2]) == 2
    order: list[int] = []

    def worker(t: int) -> None:
        assert slot.wait(t, timeout=5)
        order.append(t)
        slot.release()

    threads = [threading.Thread(target=worker, args=(t,)) for t in (tickets[2], tickets[0])]
    for th in threads:
        th.start()
    time.sleep(0.05)
    slot.release()
    for th in threads:
        th.join(5)
    assert order == [tickets[0], tickets[2]] and not slot.busy


class PieceTokens:
    """A tokenizer stand-in: token i spells ``pieces[i]``."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def detokenize(self, tokens: list[int], special: bool = True) -> bytes:
        return "".join(self.pieces[t] for t in tokens).encode("utf-8")


def test_token_ranges_spell_each_piece_in_order() -> None:
    spelled = ["规划", "原文", "：\n", "[第9条]", " 二、三", "产业", "结构", "。", "做大", "体量", "。\n\n", "回答"]
    text = "".join(spelled)
    llm = PieceTokens(spelled)
    tokens = list(range(len(spelled)))
    assert token_ranges(llm, tokens, text, ("[第9条]", "二、三产业结构。")) == ((3, 4), (4, 8))  # a space before
    assert token_ranges(llm, tokens, text, ("做大体量。",)) == ((8, 11),)  # the line break after comes along
    assert token_ranges(llm, tokens, text, ("三产业",)) is None  # shares a token with "二、": would bring it along
    assert token_ranges(llm, tokens, text, ("做大体",)) is None
    assert token_ranges(llm, tokens, text, ("不在原文里",)) is None
    assert token_ranges(llm, tokens, text, ("做大", "产业")) is None  # pieces must come in reading order
    assert token_ranges(llm, tokens[:-1], text, ("做大",)) is None  # tokens that do not spell the text


class RecordingLlamaCpp:
    """llama.cpp's memory calls, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: (self.calls.append((name, *args)), 0)[1]

    def llama_state_seq_set_data(self, ctx: Any, buf: Any, size: int, seq: int) -> int:
        self.calls.append(("load", seq, size))
        return size


def test_copy_cells_keeps_the_quoted_ranges_and_sets_them_down_back_to_back() -> None:
    low = RecordingLlamaCpp()
    splice = Splice(source=tuple(range(20)), ranges=((2, 5), (8, 10)), start=100)
    copy_cells(low, "ctx", b"state", splice)
    calls = [c for c in low.calls if c[0] != "llama_get_memory"]
    lift = 100 + 20 + 5
    assert calls == [
        ("load", 1, 5),  # the source's state, into sequence 1
        ("llama_memory_seq_rm", 0, 1, 0, 2),  # what lies outside the ranges goes
        ("llama_memory_seq_rm", 0, 1, 5, 8),
        ("llama_memory_seq_rm", 0, 1, 10, -1),
        ("llama_memory_seq_add", 0, 1, -1, -1, lift),  # above every position in use
        ("llama_memory_seq_add", 0, 1, 2 + lift, 5 + lift, 100 - 2 - lift),  # first range at 100..102
        ("llama_memory_seq_cp", 0, 1, 0, 100, 103),
        ("llama_memory_seq_add", 0, 1, 8 + lift, 10 + lift, 103 - 8 - lift),  # second right after it
        ("llama_memory_seq_cp", 0, 1, 0, 103, 105),
        ("llama_memory_seq_rm", 0, 1, -1, -1),  # sequence 1 is left empty
    ]


# --- the real small model ---------------------------------------------------------------------------


@pytest.mark.slow
def test_cached_path_gives_the_plain_paths_output(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp()
    settings = Settings(cache_dir=base / "shipped-models", llm_model=SMALL_MODEL, llm_threads=2, llm_context=1024)
    plan = (Path(__file__).resolve().parents[2] / "corpus" / "yaohai-14th-five-year-plan-proposals.txt").read_text(
        encoding="utf-8"
    )
    head = [
        {"role": "system", "content": "你是规划问答助手，只根据原文回答。"},
        {"role": "user", "content": "规划原文：\n" + plan[3000:3200]},
        {"role": "assistant", "content": "好的。"},
    ]
    messages = [*head, {"role": "user", "content": "问题：这段原文讲了什么？一句话回答。"}]
    plain = LlamaGenerator.from_settings(settings.replace(prefix_cache=False))
    expected = "".join(plain.stream(messages, max_tokens=16))
    plain.close()
    cached = LlamaGenerator.from_settings(settings.replace(cache_dir=tmp_path_factory.mktemp("states")))
    cached.load()
    evaluated: list[int] = []
    real_eval = cached._llm.eval
    cached._llm.eval = lambda tokens: (evaluated.append(len(tokens)), real_eval(tokens))[1]
    assert "".join(cached.stream(messages, max_tokens=16)) == expected
    assert cached.last.prefix == "built"
    first = sum(evaluated)
    cached._llm.reset()  # as if another unit had been used since
    evaluated.clear()
    assert "".join(cached.stream(messages, max_tokens=16)) == expected
    assert cached.last.prefix == "restored" and cached.state_stats()["disk_states"] == 1
    assert sum(evaluated) < first - cached.last.prefix_tokens + 20  # only the question (and the answer) evaluated
    assert cached.warm_prefix(head) == "cached"
    cached.close()


@pytest.mark.slow
def test_prompt_plan_splits_at_the_prefix_and_evaluates_nothing(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp()
    settings = Settings(cache_dir=base / "shipped-models", llm_model=SMALL_MODEL, llm_threads=2, llm_context=1024)
    gen = LlamaGenerator.from_settings(settings.replace(cache_dir=tmp_path_factory.mktemp("plan-states")))
    head = [{"role": "system", "content": "你是规划问答助手，只根据下面的原文回答。" * 8}]
    question = {"role": "user", "content": "问题：这段原文讲了什么？"}
    plan = gen.prompt_plan([*head, question])
    assert plan is not None
    assert len(plan.prefix) >= 64 and plan.full[: len(plan.prefix)] == plan.prefix
    tail = gen.model.detokenize(plan.full[len(plan.prefix) :]).decode("utf-8")
    assert "这段原文讲了什么" in tail and "只根据下面的原文回答" not in tail  # the question is all that follows
    assert gen.model.n_tokens == 0 and gen.state_stats()["memory_states"] == 0  # nothing was evaluated or saved
    assert gen.prompt_plan([question]) is None  # no prefix: the plain path
    gen.close()


@pytest.mark.slow
def test_quoted_sentences_come_from_their_units_saved_state(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The model reads a quote copied from another unit's state: it answers from the quoted sentence,
    and the quoted tokens are not evaluated again. Without that state they are evaluated."""
    base = tmp_path_factory.getbasetemp()
    settings = Settings(cache_dir=base / "shipped-models", llm_model=SMALL_MODEL, llm_threads=2, llm_context=2048)
    plan = (Path(__file__).resolve().parents[2] / "corpus" / "yaohai-14th-five-year-plan-proposals.txt").read_text(
        encoding="utf-8"
    )
    fact = "二、三产业结构优化到25:75"
    start = plan.index(fact)
    quoted = plan[plan.rindex("。", 0, start) + 1 : plan.index("。", start) + 1]
    rules = "你是规划问答助手，只根据原文回答。\n\n规划原文：\n"
    source = [{"role": "system", "content": rules + plan[start - 300 : start + 200]}]
    other = plan.index("养老")
    head = [{"role": "system", "content": rules + plan[other - 200 : other + 200]}]
    messages = [*head, {"role": "user", "content": f"其他相关原文：\n{quoted}\n\n问题：二、三产业结构要优化到什么比例？"}]
    quotes = [Quote(source, (quoted,))]

    gen = LlamaGenerator.from_settings(
        settings.replace(cache_dir=tmp_path_factory.mktemp("quote-states"), prefix_cache_quotes=True)
    )
    assert gen.takes_quotes
    gen.load()
    assert gen.warm_prefix(head) == "built"
    prompt_evaluated: list[int] = []  # the prompt is evaluated in runs; the answer one token at a time
    real_eval = gen._llm.eval
    gen._llm.eval = lambda tokens: (prompt_evaluated.append(len(tokens)) if len(tokens) > 1 else None, real_eval(tokens))[1]
    gen._llm.reset()
    live = "".join(gen.stream(messages, max_tokens=24, quotes=quotes))  # the source's state is not saved yet
    assert gen.last.prefix == "restored" and gen.last.quoted_tokens == 0 and "25:75" in live
    live_evaluated = sum(prompt_evaluated)

    assert gen.warm_prefix(source) == "built"
    gen._llm.reset()
    prompt_evaluated.clear()
    copied = "".join(gen.stream(messages, max_tokens=24, quotes=quotes))
    assert gen.last.prefix == "restored" and gen.last.quoted_tokens >= 10
    assert "25:75" in copied
    assert sum(prompt_evaluated) == live_evaluated - gen.last.quoted_tokens  # the quote was not evaluated
    # Right after, the doubt score reads the same context: only its own tokens are evaluated.
    prompt_evaluated.clear()
    assert gen.reply_logprob(messages, copied[:4], quotes=quotes) is not None
    assert sum(prompt_evaluated) == 0
    # A prompt without quotes never reuses copied cells (they are not what evaluating it gives).
    plain = "".join(gen.stream(messages, max_tokens=24))
    assert gen.last.quoted_tokens == 0 and "25:75" in plain
    gen.close()
