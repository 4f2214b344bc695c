
from assistant.answering.rewrite import FollowUpRewriter, rule_rewrite
from assistant.models import ChatTurn
from assistant.text.dialogue import needs_context

from conftest import ScriptedGenerator

KINDERGARTEN = [
    ChatTurn("user", "区里对幼儿园有什么规划？"),
    ChatTurn("assistant", "第16条提出要及时做好幼儿园设点布局。"),
]


def test_no_history_keeps_the_question() -> None:
    assert FollowUpRewriter().run("那高中呢？", []) == "那高中呢？"


def test_standalone_question_is_not_rewritten() -> None:
    q = "规划对新建民用建筑按绿色建筑标准设计建造提出了多大比例的要求？"
    assert FollowUpRewriter().run(q, KINDERGARTEN) == q


def test_rule_rewrite_swaps_topic_into_previous_frame() -> None:
    assert FollowUpRewriter().run("那高中呢？", KINDERGARTEN) == "区里对高中有什么规划？"
    assert rule_rewrite("中医这块呢？", "规划里对看病难有啥措施？") == "规划里对中医有啥措施？"


def test_rule_rewrite_keeps_the_rest_of_the_follow_up() -> None:
    out = rule_rewrite("那水呢？哪几条河要保证达标？", "规划对土壤污染是怎么说的？")
    assert out.startswith("规划对水") and out.endswith("哪几条河要保证达标？")


def test_rule_rewrite_without_frame_prefixes_previous_question() -> None:
    out = rule_rewrite("那五个主体具体是哪五个？", "瑶海区的“1335”养老服务体系是什么意思？")
    assert "1335" in out and "五个主体" in out


def test_model_rewrite_is_used_when_sensible() -> None:
    gen = ScriptedGenerator("区里对高中教育有什么规划？")
    assert FollowUpRewriter(gen).run("那高中呢？", KINDERGARTEN) == "区里对高中教育有什么规划？"
    assert len(gen.calls) == 1


def test_unusable_model_rewrite_falls_back_to_rules() -> None:
    gen = ScriptedGenerator("好的，我来帮你改写这个问题。首先我们需要理解上下文。" * 3)
    assert FollowUpRewriter(gen).run("那高中呢？", KINDERGARTEN) == "区里对高中有什么规划？"


def test_traditional_follow_up_is_detected() -> None:
    assert needs_context("那高中呢？") and needs_context("這個呢") and not needs_context(
        "瑶海区建筑业总产值的目标是多少？省内、省外建筑业产值各要突破多少？"
    )
