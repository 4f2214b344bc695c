"""Script conversion, language guess, BM25 tokens and sentence spans."""

from __future__ import annotations

import subprocess
import sys

import pytest

from assistant.text import (
    STOPWORDS,
    bm25_tokens,
    detect_language,
    quoted_terms,
    register_terms,
    split_sentences,
    to_simplified,
    to_traditional,
)
from assistant.text.aspects import split_aspects

from conftest import ROOT


def test_script_conversion_round_trip() -> None:
    assert to_simplified("「十三五」期間瑤海區完成了多少個老舊小區") == "「十三五」期间瑶海区完成了多少个老旧小区"
    assert to_traditional("养老服务体系") == "養老服務體系"
    assert to_simplified(to_traditional("加强劳动和社会保障")) == "加强劳动和社会保障"
    assert to_simplified("") == ""
    assert to_simplified("Hello, world 123") == "Hello, world 123"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("瑶海区的“1335”养老服务体系是什么意思？", "zh-Hans"),
        ("「十三五」期間瑤海區一共完成了多少個老舊小區？", "zh-Hant"),
        ("我住瑤海區，家裡長輩中風後長期臥床", "zh-Hant"),
        ("Which article covers building emergency shelters?", "en"),
        ("What does Yaohai plan for 养老?", "en"),
        ("GDP增长目标是多少？", "zh-Hans"),
        ("中国", "zh-Hans"),  # identical in both scripts → simplified
        ("", "zh-Hans"),
        ("12345", "zh-Hans"),
    ],
)
def test_detect_language(text: str, expected: str) -> None:
    assert detect_language(text) == expected


def test_bm25_tokens_simplify_lowercase_and_drop_noise() -> None:
    register_terms({"十三五"})  # as loading the corpus does (the plan quotes it); not left to test order
    toks = bm25_tokens("「十三五」期間瑤海區完成了多少個老舊小區？")
    assert "十三五" in toks and "瑶海区" in toks and "老旧" in toks and "小区" in toks
    assert not any(t in STOPWORDS for t in toks)
    assert not any(not t.strip() or all(not ch.isalnum() for ch in t) for t in toks)
    assert bm25_tokens("Yaohai ELEVATOR") == ["yaohai", "elevator"]
    assert bm25_tokens("，。！？   ") == []
    assert bm25_tokens("") == []


def test_coined_terms_come_from_the_text_and_stay_whole() -> None:
    text = "推进“云端小驿站”建设，打造“三横两纵”路网。"
    terms = quoted_terms(text)
    assert terms == {"云端小驿站", "三横两纵"}
    assert "云端小驿站" not in bm25_tokens("关于云端小驿站的规定")
    register_terms(terms)
    assert "云端小驿站" in bm25_tokens("关于云端小驿站的规定")


def test_traditional_and_simplified_questions_tokenize_alike() -> None:
    assert bm25_tokens("長期護理保險制度") == bm25_tokens("长期护理保险制度")


def test_split_sentences_spans_are_exact_and_trimmed() -> None:
    text = "  第一句。第二句！\n第三句“引用。”然后；\n\n最后没有标点  \n"
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == ["第一句。", "第二句！", "第三句“引用。”", "然后；", "最后没有标点"]
    for a, b in spans:
        assert text[a:b] == text[a:b].strip()


def test_split_sentences_edge_cases() -> None:
    assert split_sentences("") == []
    assert split_sentences("   \n ") == []
    assert split_sentences("无标点") == [(0, 3)]
    assert [("问？！"[a:b]) for a, b in split_sentences("问？！")] == ["问？！"]


def test_split_sentences_on_the_plan(plan_text: str) -> None:
    spans = split_sentences(plan_text)
    assert len(spans) > 300
    assert all(0 <= a < b <= len(plan_text) for a, b in spans)
    assert all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:], strict=False))  # ordered, disjoint


def test_jieba_loads_silently() -> None:
    code = "from assistant.text import bm25_tokens; bm25_tokens('养老服务'); bm25_tokens('老旧小区')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "Building prefix dict" not in proc.stderr


def test_pos_tagger_loads_silently_once_and_tags_places() -> None:
    # The tagger is loaded by warm_up (not by the first question) and must stay quiet either way.
    code = (
        "from assistant.text import load_pos_tagger, pos_tags\n"
        "from assistant.text.segment import _pos_tokenizer\n"
        "load_pos_tagger(); load_pos_tagger(); tags = pos_tags('杭州的地铁规划')\n"
        "assert ('杭州', 'ns') in tags, tags\n"
        "assert _pos_tokenizer.cache_info().misses == 1, _pos_tokenizer.cache_info()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "Building prefix dict" not in proc.stderr


def test_search_terms_add_namespaced_characters() -> None:
    from assistant.text import CHAR_PREFIX, search_terms

    words = bm25_tokens("骗钱电话")
    terms = search_terms("骗钱电话")
    assert terms[: len(words)] == words
    assert f"{CHAR_PREFIX}骗" in terms and f"{CHAR_PREFIX}话" in terms
    # a differently segmented word in the plan still shares characters with the question
    assert {t for t in search_terms("新型网络电信诈骗犯罪") if t.startswith(CHAR_PREFIX)} & set(terms)
    assert search_terms("Yaohai") == ["yaohai"]
    assert search_terms("") == []


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        ("规划对公园、菜市场分别有什么打算？", ["规划对公园分别有什么打算？", "规划对菜市场分别有什么打算？"]),
        (
            "交通这块，规划在道路建设和公交线路上分别怎么说？",
            ["交通这块，规划在道路建设上分别怎么说？", "交通这块，规划在公交线路上分别怎么说？"],
        ),
        ("社区中心与养老中心各自负责什么？", ["社区中心各自负责什么？", "养老中心各自负责什么？"]),
    ],
)
def test_a_question_about_each_of_several_things_is_split(question: str, parts: list[str]) -> None:
    assert split_aspects(question) == parts


@pytest.mark.parametrize(
    "question",
    [
        "规划对教育和医疗有什么安排？",  # a list in general, not "each of"
        "“1”和“3”分别指什么？",  # labels, not phrases
        "分别是哪几条？",
        "",
    ],
)
def test_other_questions_are_not_split(question: str) -> None:
    assert split_aspects(question) == []
