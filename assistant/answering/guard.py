"""``QuestionGuard``: prompt injection and off-topic requests are declined before
any retrieval or generation, so instructions inside a question never change
behaviour."""

from __future__ import annotations

import re
from dataclasses import dataclass

# ---------------------------------------------------------------- validation

_INJECTION = [
    r"(忽略|无视|忘[记掉]|不要理会|跳过|覆盖).{0,12}(指令|指示|提示|规则|设定|要求|限制|约束)",
    r"(系统|原始|初始|隐藏)\s*(提示|指令|prompt)",
    r"提示词",
    r"(输出|打印|泄露|复述|重复|告诉我|显示|给我).{0,10}(你的|系统)?.{0,4}(指令|prompt|设定|规则)",
    r"ignore\s+(all\s+|any\s+|the\s+|your\s+)*(previous|prior|above|earlier)?\s*(instructions|prompts?|rules)",
    r"(reveal|print|show|repeat|output|leak)\s+(me\s+)?(your|the)\s+(system\s+)?(prompt|instructions)",
    r"system\s+prompt",
    r"(you\s+are\s+now|act\s+as|pretend\s+to\s+be|jailbreak|developer\s+mode|\bDAN\b)",
    r"(你现在是|扮演|假装你是|从现在起你|开发者模式|越狱)",
    r"[【\[(（]\s*(系统|管理员|官方)?\s*(通知|公告|消息|更新)\s*[】\])）]",
    r"(系统|管理员)(通知|公告|消息)[:：]",
    r"(新增|增加|补充|追加)了?.{0,6}第\s*[0-9一二三四五六七八九十百]+\s*条",
    r"(规划|建议).{0,6}(已|已经)?(更新|修订|修改)为",
]

_OFF_TOPIC = [
    r"(写|作|编|创作|来)(一|几)?(首|篇|个|段)?.{0,8}(诗|绝句|律诗|词|歌|歌词|小说|故事|笑话|作文|段子|对联|剧本|文案)",
    r"(七言|五言)(绝句|律诗)?",
    r"(讲|说|来)(一|几)?(个|段).{0,6}(笑话|故事|段子)",
    r"(write|compose)\s+(me\s+)?(a|an)\s+(poem|story|song|joke|essay|haiku)",
    r"(写|生成|编写).{0,6}(代码|程序|脚本|函数|sql)",
    r"\b(python|javascript|java|c\+\+)\b.{0,20}(code|function|script)",
    r"(翻译|translate).{0,6}(这段|下面|following)",
    r"(今天|明天)?(天气|股票|彩票|星座|运势)",
]

_PLAN_WORDS = re.compile(
    r"规划|建议|十四五|瑶海|区里|政府|政策|条|养老|教育|医疗|就业|社保|住房|小区|交通|环境|文化|产业|安全|社区|"
    r"plan|policy|yaohai|district",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Intent:
    kind: str  # "policy" | "injection" | "off_topic"
    matched: str = ""


class QuestionGuard:
    """Classify a question before retrieval: a policy question, an injection, or off-topic."""

    def __init__(self) -> None:
        self._injection = [re.compile(p, re.IGNORECASE) for p in _INJECTION]
        self._off_topic = [re.compile(p, re.IGNORECASE) for p in _OFF_TOPIC]

    def run(self, question: str) -> Intent:
        for pattern in self._injection:
            m = pattern.search(question)
            if m:
                return Intent("injection", m.group(0))
        for pattern in self._off_topic:
            m = pattern.search(question)
            # A creative request that also names the plan is still off-topic for a
            # policy assistant, except "规划里的…故事" style noise: keep it simple.
            if m:
                return Intent("off_topic", m.group(0))
        return Intent("policy")
