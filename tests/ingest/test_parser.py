"""PlanParser over the real plan text and over synthetic edge cases."""

from __future__ import annotations

import re

import pytest

from assistant.errors import ConfigError, CorpusError
from assistant.ingest.parser import PlanParser, split_title
from assistant.models import Document, DocumentMeta
from assistant.text import chinese_number

TITLE = "中共合肥市瑶海区委关于制定国民经济和社会发展第十四个五年规划和二〇三五年远景目标的建议"
META = DocumentMeta(
    doc_id="yaohai-14th-fyp",
    title=TITLE,
    issuer="中共合肥市瑶海区委员会",
    adopted="2020-12-30",
    published="2021-07-14",
    source="test",
    filename="plan.txt",
)
BOILERPLATE = ("返回首页", "首页 >", "【", "发布时间", "信息来源", "字体", "扫一扫", "当前页")


@pytest.fixture(scope="module")
def doc(plan_text: str) -> Document:
    return PlanParser().run(plan_text, META)


# ---------------------------------------------------------------- real plan


def test_43_articles_in_order(doc: Document) -> None:
    assert [a.number for a in doc.articles] == list(range(1, 44))
    starts = [a.start for a in doc.articles]
    assert starts == sorted(starts)


@pytest.mark.parametrize(
    ("number", "title"),
    [
        # headings that run straight into the body, no punctuation between
        (4, "“十四五”时期瑶海经济社会发展指导思想"),
        (8, "“十四五”时期瑶海经济社会发展的区域布局"),
        (9, "“十四五”时期瑶海经济社会发展的主要目标"),
        (11, "深入实施科技兴区行动"),
        (16, "优先发展教育体育事业"),
        (17, "提高医疗卫生服务能力和水平"),
        (18, "加强劳动和社会保障"),
        (19, "积极应对人口老龄化挑战"),
        (24, "优化营商招商环境"),
        (40, "推进社会主义政治建设"),
        (41, "加强干部队伍建设"),
        (42, "引导社会广泛参与"),
        # headings alone on their line, followed by "——" bullets
        (5, "“十四五”时期瑶海经济社会发展必须遵循的原则"),
        (6, "“十四五”时期瑶海经济社会发展定位"),
        (7, "“十四五”时期瑶海经济社会发展路径"),
        # headings ending in 。
        (1, "决胜全面建成小康社会取得决定性成就"),
        (20, "加强和创新社会治理"),
        (23, "扩大有效投资"),
        (39, "发挥党统揽全局、协调各方的领导核心作用"),
        (43, "健全规划制定和落实机制"),
    ],
)
def test_article_titles(doc: Document, number: int, title: str) -> None:
    article = doc.article(number)
    assert article is not None
    assert article.title == title
    assert article.text.startswith(title)


def test_every_title_is_a_short_prefix_of_its_article(doc: Document) -> None:
    for a in doc.articles:
        assert 4 <= len(a.title) <= 32, (a.number, a.title)
        assert a.text.startswith(a.title), a.number
        # the character after the title is the heading's 。, a line break, or the body
        rest = a.text[len(a.title) :]
        assert rest, a.number
        assert not rest[0].isspace() or a.number in (5, 6, 7), a.number


def test_units_are_exact_slices(doc: Document, plan_text: str) -> None:
    assert doc.source == plan_text
    units = [*doc.units, doc.preamble]
    for u in units:
        assert u is not None
        assert plan_text[u.start : u.end] == u.text
        assert u.text == u.text.strip(), u.unit_id
        assert not re.match(r"\d+\.", u.text), u.unit_id


def test_nothing_between_units_but_headings(doc: Document, plan_text: str) -> None:
    """Consecutive units leave only whitespace, "N." and chapter headings between them."""
    assert doc.preamble is not None
    units = [doc.preamble, *doc.units]
    for prev, nxt in zip(units, units[1:], strict=False):
        gap = plan_text[prev.end : nxt.start].split()
        gap = [g for g in gap if g.strip("\u00a0")]
        for piece in gap:
            assert re.fullmatch(r"\d+\.|[一二三四五六七八九十]+、.+", piece), (prev.unit_id, nxt.unit_id, piece)


def test_article_boundaries(doc: Document) -> None:
    a1, a43 = doc.article(1), doc.article(43)
    assert a1 is not None and a43 is not None
    assert a1.text.startswith("决胜全面建成小康社会取得决定性成就。“十三五”以来")
    assert a1.text.endswith("攻坚的新阶段。")
    assert a43.text.endswith("落到实处。")
    assert "意义重大" not in a43.text
    assert doc.closing.startswith("实现区“十四五”规划和二〇三五年远景目标,意义重大")
    assert doc.closing.endswith("作出更大贡献")
    assert doc.closing not in a43.text
    # multi-paragraph articles keep every "——" bullet, and only their own
    a5, a6, a7, a9 = (doc.article(n) for n in (5, 6, 7, 9))
    assert a5 is not None and a5.text.count("——") == 5 and a5.text.endswith("瑶海高质量发展。")
    assert a6 is not None and a6.text.count("——") == 3
    assert a7 is not None and a7.text.count("——") == 5 and a7.text.endswith("市场秩序法治化。")
    assert a9 is not None and a9.text.count("——") == 6
    a8 = doc.article(8)
    assert a8 is not None and "——" not in a8.text


def test_chapters(doc: Document, plan_text: str) -> None:
    assert [c.numeral for c in doc.chapters] == [chinese_number(i) for i in range(1, 12)]
    assert [c.index for c in doc.chapters] == list(range(1, 12))
    assert doc.chapters[0].title == "全面建成小康社会,开启新阶段现代化美好瑶海建设新征程"
    assert doc.chapters[3].title == "以产业链高级化推进产业转型升级,构建区域现代产业体系"
    assert doc.chapters[10].title == "全区人民团结起来,为实现“十四五”规划和二〇三五年远景目标而奋斗"
    counts = [len(c.articles) for c in doc.chapters]
    assert counts == [3, 6, 2, 3, 6, 4, 4, 2, 4, 4, 5]
    for c in doc.chapters:
        assert plan_text[c.start :].startswith(f"{c.numeral}、{c.title}")
        for u in ([c.intro] if c.intro else []) + list(c.articles):
            assert c.start < u.start and u.end <= c.end
            assert u.chapter == c.numeral
    for c, nxt in zip(doc.chapters, doc.chapters[1:], strict=False):
        assert c.end == nxt.start


def test_chapter_intros(doc: Document) -> None:
    intros = [c.intro for c in doc.chapters if c.intro is not None]
    assert [i.chapter for i in intros] == ["三", "四", "五", "六", "七", "八", "九", "十", "十一"]
    assert doc.chapters[0].intro is None and doc.chapters[1].intro is None
    for c in doc.chapters:
        if c.intro is not None:
            assert c.intro.number is None
            assert c.intro.kind == "chapter_intro"
            assert c.intro.title == c.title
            assert c.intro.unit_id == f"yaohai-14th-fyp#chapter-{c.numeral}"
            assert c.intro.end < c.articles[0].start
    four = doc.chapters[3].intro
    assert four is not None and "2600亿元" in four.text
    assert four.text.startswith("坚持产业立区")
    seven = doc.chapters[6].intro
    assert seven is not None and seven.text.endswith("推进文化强区建设。")  # the "\u00a0" line after it is dropped


def test_preamble(doc: Document) -> None:
    p = doc.preamble
    assert p is not None
    assert p.number is None and p.chapter == ""
    assert p.text.startswith("“十四五”时期是我国全面建成小康社会")
    assert p.text.endswith("提出以下建议。")
    assert p not in doc.units


def test_no_boilerplate_in_any_unit(doc: Document) -> None:
    texts = [u.text for u in doc.units] + [doc.closing]
    assert doc.preamble is not None
    texts.append(doc.preamble.text)
    for text in texts:
        for junk in BOILERPLATE:
            assert junk not in text, junk


def test_decimals_and_mid_line_numerals(doc: Document, plan_text: str) -> None:
    a1, a9 = doc.article(1), doc.article(9)
    assert a1 is not None and a9 is not None
    assert "财政总收入达到25.43亿元" in a1.text and "年均增长8.25%" in a1.text
    assert "二、三产业结构优化到" in a9.text
    assert all(not c.title.startswith("三产业") for c in doc.chapters)


# ---------------------------------------------------------------- split_title


@pytest.mark.parametrize(
    ("heading", "title", "rule"),
    [
        ("“十四五”时期瑶海经济社会发展路径", "“十四五”时期瑶海经济社会发展路径", "standalone"),
        ("主要任务:", "主要任务", "standalone"),
        ("扩大有效投资。充分发挥投资对优化供给结构的关键作用", "扩大有效投资", "sentence"),
        ("加强干部队伍建设全面落实新时代党的组织路线,落实好干部标准", "加强干部队伍建设", "opener"),
        ("优先发展教育体育事业以安徽省实施教育现代化为契机,着力补齐短板", "优先发展教育体育事业", "opener"),
        ("引导社会广泛参与面向社会、面向群众,充分运用广播电视", "引导社会广泛参与", "opener"),
        # 可以 is not a clause opener; the split falls on 坚持
        ("推进城市可以持续发展的建设坚持绿色低碳,建设美丽城区", "推进城市可以持续发展的建设", "opener"),
        (
            "这是一段没有任何可以识别标题的很长很长很长很长的开头文字内容,后面还有",
            "这是一段没有任何可以识别标题的很长很长很长很长的开头文字内容",
            "fallback",
        ),
    ],
)
def test_split_title(heading: str, title: str, rule: str) -> None:
    assert split_title(heading) == (title, rule)


# ---------------------------------------------------------------- synthetic


def make_plan(sep: str = "\u00a0", newline: str = "\n", boilerplate: bool = True) -> str:
    head = [
        "返回首页",
        "    首页 > 某局 > 规划计划",
        "",
        f"    【转区政府】{TITLE}(通过)",
        "    发布时间: 2021-07-14",
        "    【字体:\u00a0",
    ]
    body = [
        "    开篇的一段话。",
        "    一、第一部分的标题,后半句",
        f"    1.{sep}第一条标题。正文说财政收入25.43亿元,",
        "8.25%的增长写在行首也不是标题。",
        "    二、三产业结构优化到25:75,这是正文不是一章。",
        "    2.“十四五”时期发展路径",
        "    ——产业立区。抢抓机遇。",
        "    ——科技兴区。坚持创新。",
        "    二、第二部分的标题",
        "    本部分的引言,总领下文。",
        f"    3.{sep}加强干部队伍建设全面落实新时代党的组织路线,落实好干部标准。",
        "    实现目标,意义重大,任务艰巨。",
    ]
    tail = ["    扫一扫在手机打开当前页"]
    lines = (head if boilerplate else []) + body + (tail if boilerplate else [])
    return (newline * 2).join(lines) + newline


@pytest.mark.parametrize("sep", ["\u00a0", "", " ", "\u3000", "\u00a0 "])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_synthetic_plan(sep: str, newline: str) -> None:
    text = make_plan(sep, newline)
    doc = PlanParser().run(text, META)
    assert [a.number for a in doc.articles] == [1, 2, 3]
    assert [a.title for a in doc.articles] == ["第一条标题", "“十四五”时期发展路径", "加强干部队伍建设"]
    assert [c.title for c in doc.chapters] == ["第一部分的标题,后半句", "第二部分的标题"]
    for u in doc.units:
        assert text[u.start : u.end] == u.text
        assert u.text == u.text.strip()
        assert "\r" not in u.text[-1:]
    a1, a2, a3 = doc.articles
    assert a1.text.startswith("第一条标题。") and "25:75" in a1.text  # "二、三产业" line stays in article 1
    assert a2.text.endswith("坚持创新。") and a2.text.count("——") == 2
    assert a3.text.endswith("落实好干部标准。")
    assert doc.closing == "实现目标,意义重大,任务艰巨。"
    assert doc.chapters[0].intro is None
    assert doc.chapters[1].intro is not None and doc.chapters[1].intro.text == "本部分的引言,总领下文。"
    assert doc.preamble is not None and doc.preamble.text == "开篇的一段话。"


def test_without_boilerplate_and_with_bom() -> None:
    doc = PlanParser().run("\ufeff" + make_plan(boilerplate=False), META)
    assert len(doc.articles) == 3
    assert doc.preamble is not None and doc.preamble.text == "开篇的一段话。"


@pytest.mark.parametrize(
    ("heading", "bullets", "title"),
    [
        ("3.\u00a0健全实施机制。加强统筹。", "    ——分工明确。\n\n    ——考核到位。", "健全实施机制"),
        ("3.“十四五”时期发展保障", "    ——分工明确。\n\n    ——考核到位。", "“十四五”时期发展保障"),
        ("3.“十四五”时期发展保障", "    加强组织领导,压实责任。\n\n    ——考核到位。", "“十四五”时期发展保障"),
    ],
)
def test_last_article_keeps_its_bullets_but_not_the_closing(heading: str, bullets: str, title: str) -> None:
    old = "    3.\u00a0加强干部队伍建设全面落实新时代党的组织路线,落实好干部标准。"
    text = make_plan().replace(old, f"    {heading}\n\n{bullets}")
    doc = PlanParser().run(text, META)
    last = doc.articles[-1]
    assert last.number == 3 and last.title == title
    assert last.text.endswith("——考核到位。")
    assert doc.closing == "实现目标,意义重大,任务艰巨。"


def test_last_chapter_without_articles_keeps_footer_out() -> None:
    text = make_plan().replace("    实现目标,意义重大,任务艰巨。", "    三、结语\n\n    全区上下团结奋斗。")
    doc = PlanParser().run(text, META)
    last = doc.chapters[-1]
    assert last.numeral == "三" and last.articles == ()
    assert last.intro is not None and last.intro.text == "全区上下团结奋斗。"
    assert doc.closing == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("  \n\u00a0\n", "empty"),
        ("返回首页\n\n    首页 > 瑶海区\n\n    扫一扫在手机打开当前页\n", "no chapter headings"),
        ("    一、第一部分\n\n    只有引言没有条目。\n", "no numbered articles"),
        ("    1. 标题。正文。\n\n    一、第一部分\n\n    2. 标题。正文。\n", "before chapter"),
        ("    一、第一部分\n\n    1. 标题。正文。\n\n    3. 标题。正文。\n", "article 2 is missing"),
        ("    一、第一部分\n\n    1. 标题。\x00正文。\n", "NUL"),
    ],
)
def test_unparseable_text_raises_corpus_error(text: str, message: str) -> None:
    with pytest.raises(CorpusError, match=message) as info:
        PlanParser().run(text, META)
    assert "plan.txt" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs", [{"max_title_chars": 2}, {"min_title_chars": 0}, {"min_title_chars": True}, {"max_title_chars": "32"}]
)
def test_parser_config_is_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PlanParser(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("title", "short_title", "periods", "previous"),
    [
        (TITLE, "", ("十四五",), ("十三五",)),
        ("某区国民经济和社会发展规划建议", "某区“十五”规划", ("十五",), ("九五",)),  # the tenth, after the ninth
        ("某区国民经济和社会发展规划建议", "某区“十二五”时期规划", ("十二五",), ("十一五",)),
        ("某区国民经济和社会发展规划建议", "", (), ()),  # no period named: no review to look for
    ],
)
def test_a_plans_periods_come_from_its_titles(
    title: str, short_title: str, periods: tuple[str, ...], previous: tuple[str, ...]
) -> None:
    meta = DocumentMeta("d", title, "i", "2020-01-01", "2020-01-01", "s", "f.txt", short_title=short_title)
    assert meta.periods == periods and meta.previous_periods == previous
