
from assistant.answering.rewrite import FollowUpRewriter, QueryTranslator, plan_names, rule_rewrite, search_request
from assistant.ingest.corpus import load_corpus
from assistant.models import ChatTurn, Document, DocumentMeta
from assistant.text.dialogue import needs_context

from conftest import CORPUS_DIR, ScriptedGenerator

# Made-up conversations (not the dev set's): the rules are about the shape of a follow-up, not its words.
PRIMARY = [
    ChatTurn("user", "区里对小学有什么规划？"),
    ChatTurn("assistant", "第16条提出……"),
]


def test_no_history_keeps_the_question() -> None:
    assert FollowUpRewriter().run("那初中呢？", []) == "那初中呢？"


def test_standalone_question_is_not_rewritten() -> None:
    q = "规划对老旧小区改造提出了哪些要求？"
    assert FollowUpRewriter().run(q, PRIMARY) == q


def test_rule_rewrite_swaps_topic_into_previous_frame() -> None:
    assert FollowUpRewriter().run("那初中呢？", PRIMARY) == "区里对初中有什么规划？"
    assert rule_rewrite("体育这块呢？", "规划里对文化设施有啥措施？") == "规划里对体育有啥措施？"


def test_rule_rewrite_keeps_the_rest_of_the_follow_up() -> None:
    out = rule_rewrite("那空气呢？哪些指标要达标？", "规划对噪声污染是怎么说的？")
    assert out.startswith("规划对空气") and out.endswith("哪些指标要达标？")


def test_rule_rewrite_without_frame_prefixes_previous_question() -> None:
    out = rule_rewrite("那三个片区具体是哪三个？", "瑶海区的“一带三区”是什么意思？")
    assert "一带三区" in out and "三个片区" in out


PARKING = [ChatTurn("user", "停车难有解决办法吗？"), ChatTurn("assistant", "第15条提出建设一批便民停车场。")]


def test_a_whole_follow_up_question_is_searched_as_asked_with_the_conversation() -> None:
    # the model's "rewrite" only put the previous question in front: the new question is searched and
    # answered as asked, and retrieval mixes the conversation in at its lower weight
    asked = "那路上堵车怎么缓解？"
    assert search_request(asked, "停车难有解决办法吗？" + asked, PARKING) == (asked, PARKING)
    # a real rewrite is searched alone
    rewritten = "规划对缓解道路拥堵有什么措施？"
    assert search_request(asked, rewritten, PARKING) == (rewritten, [])
    # not rewritten at all: as asked, with the conversation
    assert search_request(asked, asked, PARKING) == (asked, PARKING)


def test_a_rewrite_that_only_echoes_the_previous_question_is_not_searched() -> None:
    culture = [ChatTurn("user", "公共文化设施有什么规划？"), ChatTurn("assistant", "第26条…")]
    asked = "那平时会办些什么活动？"
    assert search_request(asked, "规划对公共文化设施有什么规划？", culture) == (asked, culture)
    # a traditional previous turn is compared in simplified characters
    traditional = [ChatTurn("user", "停車難有解決辦法嗎？"), ChatTurn("assistant", "第15條…")]
    assert search_request(asked, "停车难有解决办法吗？" + asked, traditional) == (asked, traditional)


def test_an_elliptical_follow_up_keeps_the_previous_question_as_its_frame() -> None:
    joined = "规划里和上海、南京在医疗上有什么合作？教育方面呢？"
    history = [ChatTurn("user", "规划里和上海、南京在医疗上有什么合作？"), ChatTurn("assistant", "第33条…")]
    assert search_request("教育方面呢？", joined, history) == (joined, [])


def test_traditional_follow_up_is_detected() -> None:
    assert needs_context("那初中呢？") and needs_context("這個呢") and not needs_context(
        "瑶海区商贸服务业的目标是多少？省内、省外各要达到什么水平？"
    )


def test_the_translator_is_told_the_plan_and_region_names_from_the_corpus() -> None:
    """Without them the small model transliterates "Yaohai" (雅鸽区), which reads as another place."""
    meta = load_corpus(CORPUS_DIR)[0].meta
    names = plan_names(load_corpus(CORPUS_DIR))
    assert meta.short_title in names and meta.english_title in names and meta.region in names
    gen = ScriptedGenerator("瑶海区会建设更多公共图书馆吗？")
    out = QueryTranslator(gen, names=names).run("Will Yaohai District build more libraries?")
    assert out == "瑶海区会建设更多公共图书馆吗？"
    assert names in gen.calls[0][0]["content"] and gen.calls[0][-1]["content"] == "Will Yaohai District build more libraries?"


def test_plan_names_leave_out_what_the_metadata_lacks() -> None:
    meta = DocumentMeta(doc_id="d", title="某某区发展规划", issuer="", adopted="", published="", source="", filename="d.txt")
    bare = Document(meta, "第一条 总则", None, (), "")
    assert plan_names([bare]) == "规划指某某区发展规划。"
    assert plan_names([]) == ""
