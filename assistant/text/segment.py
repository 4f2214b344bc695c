"""Segmentation: BM25 tokens (jieba, search mode, plus characters) and sentence
spans that keep offsets into the original string, so quotes stay verbatim."""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from assistant.errors import require
from assistant.text.script import is_han, to_simplified

if TYPE_CHECKING:
    import jieba

_JIEBA_LOCK = threading.Lock()

# The plan's own coined terms (“1335”, “一带三区”, “中国网谷”…) are registered from the
# corpus when it is loaded (``register_terms``), so jieba keeps them whole; nothing about
# a particular plan is written here.
_QUOTED = re.compile(r"[“\"]([\u4e00-\u9fffA-Za-z0-9+]{2,10})[”\"]")
_TERMS: set[str] = set()


def quoted_terms(text: str) -> set[str]:
    """Terms a document coins by putting them in quotes."""
    return set(_QUOTED.findall(text))


def register_terms(terms: set[str]) -> None:
    """Keep these compounds whole when segmenting (search mode still emits their parts)."""
    new = set(terms) - _TERMS
    if not new:
        return
    with _JIEBA_LOCK:
        _TERMS.update(new)
    if _tokenizer.cache_info().currsize:
        _add_terms(_tokenizer(), new)


def _add_terms(tok: jieba.Tokenizer, terms: set[str]) -> None:
    for term in sorted(terms):
        # a high frequency keeps the compound whole in the base cut
        tok.add_word(term, freq=max(tok.suggest_freq(term), 2000))


# Function words and question scaffolding: they carry no topic, and in a short
# question they would otherwise outweigh the one content word that matters.
_STOPWORDS_TEXT = """
    的 了 和 与 及 以及 或 或者 是 在 对 把 被 为 为了 将 就 都 也 又 还 而 并 并且 等 等等 之 其 中 上 下
    个 这 那 这个 那个 这些 那些 这样 那样 这种 那种 这块 那块 些 有 有没有 没有 没 会 会不会 能 能不能 可以 要 想
    吗 呢 吧 啊 呀 嘛 哦 哪 哪些 哪个 哪一 哪几 什么 啥 怎么 怎么样 怎样 如何 多少 几 几个 是否 为什么 谁
    我 我们 你 你们 他 他们 她 它 咱 咱们 自己 家 里 里面 这里 那里 一下 一些 一个 以后 现在 到底 具体 分别 方面
    请问 请 告诉 能否 关于 有关 提到 讲 说 打算 区里
    the a an of to in on for and or is are was be what which how does do did will would can could i my me you your
"""
STOPWORDS: frozenset[str] = frozenset(_STOPWORDS_TEXT.split())

_PUNCT_RE = re.compile(r"^[\W_]+$", re.UNICODE)


@lru_cache(maxsize=1)
def quiet_jieba() -> None:
    """jieba logs "Building prefix dict..." at DEBUG; keep it out of the user's console."""
    jieba_mod = require("jieba", "pip install jieba==0.42.1")
    jieba_mod.setLogLevel(logging.WARNING)  # type: ignore[attr-defined]
    logging.getLogger("jieba").setLevel(logging.WARNING)


@lru_cache(maxsize=1)
def _tokenizer() -> jieba.Tokenizer:
    """One jieba tokenizer per process, with the registered terms, loaded quietly."""
    with _JIEBA_LOCK:
        quiet_jieba()
        jieba_mod = require("jieba", "pip install jieba==0.42.1")
        tok = jieba_mod.Tokenizer()  # type: ignore[attr-defined]
        tok.initialize()
        _add_terms(tok, _TERMS)
        return tok


@lru_cache(maxsize=1)
def _pos_tokenizer() -> Any:
    """jieba's part-of-speech tagger, loaded once (~1.4 s: its own dictionary and tables)."""
    with _JIEBA_LOCK:
        quiet_jieba()
        require("jieba", "pip install jieba==0.42.1")
        import jieba.posseg as pseg

        pseg.dt.tokenizer.initialize()
        return pseg.dt


def load_pos_tagger() -> None:
    """Load the tagger now (at start-up), not during the first user's question."""
    _pos_tokenizer()


@lru_cache(maxsize=64)
def pos_tags(text: str) -> tuple[tuple[str, str], ...]:
    """jieba's words and part-of-speech tags (``ns`` marks a place name)."""
    tagger = _pos_tokenizer()
    return tuple((w.word, w.flag) for w in tagger.cut(text))


def bm25_tokens(text: str) -> list[str]:
    """Tokens for BM25: simplified, lower-cased, jieba search-mode, no punctuation or stopwords."""
    if not text:
        return []
    norm = unicodedata.normalize("NFKC", to_simplified(text)).lower()
    out: list[str] = []
    for tok in _tokenizer().cut_for_search(norm):
        tok = tok.strip()
        if not tok or _PUNCT_RE.match(tok) or tok in STOPWORDS:
            continue
        out.append(tok)
    return out


CHAR_PREFIX = "#"


def search_terms(text: str) -> list[str]:
    """BM25 index/query terms: the jieba words plus every Han character of them.

    The characters (namespaced with ``#`` so they never collide with one-character
    words) let a question match the plan when the two segment differently, e.g.
    骗钱/骗子 in a question against 诈骗 in the plan. Words still dominate: a matched
    word also matches all of its characters.
    """
    words = bm25_tokens(text)
    return words + [CHAR_PREFIX + ch for w in words for ch in w if is_han(ch)]


SENTENCE_END = "。！？；!?;"
CLOSERS = "”’」』）)】》\"'"  # marks that may follow a sentence's end


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans ``(start, end)`` into ``text``.

    A sentence ends after 。！？；(and their ASCII forms), swallowing closing quotes
    or brackets that follow, or at a line end. Spans are trimmed of surrounding
    whitespace and empty ones are dropped, so ``text[start:end]`` is a clean quote.
    """
    spans: list[tuple[int, int]] = []
    n = len(text)
    start = 0
    i = 0

    def emit(s: int, e: int) -> None:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))

    while i < n:
        ch = text[i]
        if ch in SENTENCE_END:
            j = i + 1
            while j < n and (text[j] in CLOSERS or text[j] in SENTENCE_END):
                j += 1
            emit(start, j)
            start = i = j
            continue
        if ch == "\n" or ch == "\r":
            emit(start, i)
            start = i + 1
        i += 1
    emit(start, n)
    return spans


def split_answer(text: str) -> list[str]:
    """Generated text → sentences (Chinese and English punctuation, line breaks)."""
    parts = re.split(r"(?<=[。！？!?；;])\s*|(?<=\.)\s+|\n+", text.strip())
    return [p.strip() for p in parts if p and p.strip()]


def squeeze(sentence: str) -> str:
    """A sentence without spaces and punctuation, for comparing two sentences' words."""
    return re.sub(r"[\s\W_]+", "", sentence)
