"""Shared text vocabulary: script conversion, segmentation, numerals, input checks."""

from assistant.text.input import validate_question
from assistant.text.numerals import (
    chinese_number,
    chinese_to_int,
    referenced_articles,
    without_article_references,
    written_amounts,
    written_numbers,
)
from assistant.text.script import Language, detect_language, is_han, to_simplified, to_traditional
from assistant.text.segment import (
    CHAR_PREFIX,
    CLOSERS,
    SENTENCE_END,
    STOPWORDS,
    bm25_tokens,
    load_pos_tagger,
    pos_tags,
    quoted_terms,
    register_terms,
    search_terms,
    split_answer,
    split_sentences,
    squeeze,
)

__all__ = [
    "CLOSERS",
    "CHAR_PREFIX",
    "SENTENCE_END",
    "STOPWORDS",
    "Language",
    "bm25_tokens",
    "load_pos_tagger",
    "pos_tags",
    "quoted_terms",
    "register_terms",
    "chinese_number",
    "chinese_to_int",
    "detect_language",
    "is_han",
    "referenced_articles",
    "search_terms",
    "split_answer",
    "split_sentences",
    "squeeze",
    "to_simplified",
    "to_traditional",
    "validate_question",
    "without_article_references",
    "written_amounts",
    "written_numbers",
]
