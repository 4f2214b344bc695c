"""Property-based fuzzing of the input edges: whatever a client or a file holds, the
assistant answers with its own domain error (``InvalidInputError``), never a traceback."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assistant.errors import InvalidInputError
from assistant.evaluation.questions import read_questions
from assistant.models import ChatTurn, Question
from assistant.text import validate_question

FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Every code point, lone surrogates included (undecodable bytes arrive as those).
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=300)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(ANY_TEXT, inner, max_size=5),
    max_leaves=20,
)
ODD_OBJECTS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.complex_numbers(),
    st.binary(max_size=300).map(bytearray),
    st.lists(ANY_TEXT, max_size=3),
    st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=3),
    st.builds(object),
    st.just(memoryview(b"abc")),
    st.just(Path("问题.txt")),
)


# --- validate_question --------------------------------------------------------------------------


@FUZZ
@given(question=ANY_TEXT | st.binary(max_size=300) | ODD_OBJECTS, max_chars=st.integers(1, 2000))
@example(question="\x00", max_chars=10)
@example(question=b"\xff\xfe", max_chars=10)
@example(question="\udcff" * 3, max_chars=10)
@example(question="  \n\t ", max_chars=10)
@example(question="问" * 11, max_chars=10)
@example(question="\u202e\u200b养老\ufeff", max_chars=10)
def test_validate_question_raises_only_invalid_input(question: object, max_chars: int) -> None:
    try:
        text = validate_question(question, max_chars)
    except InvalidInputError as exc:
        assert str(exc)  # a message fit to show
        return
    assert isinstance(text, str) and text
    assert len(text) <= max_chars
    assert text == text.strip() and "\x00" not in text
    assert not any("\ud800" <= ch <= "\udfff" for ch in text)


# --- history parsing ------------------------------------------------------------------------------

TURN_LIKE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "", None, 1]) | ANY_TEXT, "content": JSON_VALUES}
)


@FUZZ
@given(
    raw=JSON_VALUES | st.lists(TURN_LIKE | JSON_VALUES, max_size=10) | ODD_OBJECTS,
    max_turns=st.integers(-3, 12),
    max_chars=st.integers(1, 500),
)
@example(raw=[{"role": "user", "content": "  "}, {"role": "assistant", "content": "好"}], max_turns=6, max_chars=10)
@example(raw=({"role": "user", "content": "x" * 50},), max_turns=1, max_chars=3)
def test_history_parsing_never_raises(raw: object, max_turns: int, max_chars: int) -> None:
    turns = ChatTurn.parse_list(raw, max_turns=max_turns, max_chars=max_chars)
    assert isinstance(turns, list)
    assert len(turns) <= max(max_turns, 0)
    for turn in turns:
        assert isinstance(turn, ChatTurn)
        assert turn.role in ("user", "assistant")
        assert isinstance(turn.content, str) and 0 < len(turn.content) <= max_chars


# --- question files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder) / "questions.jsonl"


def _check_read(path: Path) -> None:
    problems: list[str] = []
    try:
        rows = read_questions(path, problems)
    except InvalidInputError as exc:
        assert str(exc)
        return
    assert rows and all(isinstance(q, Question) and q.question.strip() for q in rows)
    assert len({q.id for q in rows}) == len(rows)


ROW = st.fixed_dictionaries(
    {"question": JSON_VALUES},
    optional={
        "id": JSON_VALUES,
        "history": JSON_VALUES | st.lists(TURN_LIKE, max_size=4),
        "gold_articles": JSON_VALUES,
    },
)


def _jsonl(rows: list[object]) -> bytes:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode("utf-8", "surrogatepass")


@FUZZ
@given(content=st.binary(max_size=2000) | ANY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")))
@example(content=b"")
@example(content=b"\xef\xbb\xbf")
@example(content=b"1" * 5000)  # int() refuses more than 4300 digits: ValueError, not a JSONDecodeError
@example(content=b"[" * 100_000)  # RecursionError in the JSON decoder
@example(content=b'{"question": "\\udcff"}')
@example(content=b'{"question": "ok", "id": "a"}\n{"question": "ok", "id": "a"}')
def test_read_questions_on_arbitrary_bytes(scratch: Path, content: bytes) -> None:
    scratch.write_bytes(content)
    _check_read(scratch)


@FUZZ
@given(rows=st.lists(ROW | JSON_VALUES, min_size=1, max_size=6))
def test_read_questions_on_json_lines(scratch: Path, rows: list[object]) -> None:
    scratch.write_bytes(_jsonl(rows))
    _check_read(scratch)
