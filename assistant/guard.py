"""Input checks and the decisions made before and after retrieval:

* ``validate_question``: empty, binary, oversized input → InvalidInputError.
* ``QuestionGuard``: prompt injection and off-topic requests are declined before
  any retrieval or generation, so instructions inside a question never change
  behaviour.
* ``AnswerabilityJudge``: does the plan answer this at all? Combines retrieval
  evidence (calibrated on the dev set) with what the question asks for: the plan
  is a 2020 policy document, so it never holds subsidy amounts, procedures,
  results after its adoption, or other districts' plans.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .errors import InvalidInputError
from .models import Hit

# ---------------------------------------------------------------- validation

_CONTROL_OK = {"\n", "\t", "\r"}


def validate_question(question: object, max_chars: int) -> str:
    """Return the question stripped and whitespace-normalised, or raise InvalidInputError."""
    if isinstance(question, bytes | bytearray):
        try:
            question = bytes(question).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError("问题不是有效的 UTF-8 文本 (the question is not valid UTF-8 text).") from exc
    if not isinstance(question, str):
        raise InvalidInputError(f"问题必须是文本 (the question must be text, got {type(question).__name__}).")
    text = question.strip()
    if not text:
        raise InvalidInputError("问题为空，请输入您想了解的内容 (the question is empty).")
    if len(text) > max_chars:
        raise InvalidInputError(
            f"问题太长（{len(text)} 字），请精简到 {max_chars} 字以内 "
            f"(the question has {len(text)} characters; the limit is {max_chars})."
        )
    # Lone surrogates are how Python carries undecodable bytes: never valid text.
    if "\x00" in text or any(unicodedata.category(ch) == "Cs" for ch in text):
        raise InvalidInputError("问题包含无法识别的二进制字符，请输入文字 (the question contains binary data).")
    bad = sum(
        1
        for ch in text
        if (unicodedata.category(ch) in ("Cc", "Co", "Cn") and ch not in _CONTROL_OK) or ch == "\ufffd"
    )
    if bad >= 3 or bad / len(text) > 0.05:
        raise InvalidInputError("问题包含无法识别的二进制字符，请输入文字 (the question contains binary data).")
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cc" or ch in _CONTROL_OK)
    return re.sub(r"\s+", " ", text).strip()


# ---------------------------------------------------------------- intent

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


# ---------------------------------------------------------------- answerability

# What a 2020 planning document never contains. Each entry: (reason key, pattern).
_SPECIFICS = [
    ("amount", r"(补贴|补助|补偿|津贴|奖励|奖金|报销|发放|资助|贴息).{0,12}(多少|几|金额|标准|比例)|"
     r"(多少|几)(钱|块|万|元)|每(户|人|家|平方?米?).{0,8}(多少|几|补)|金额|"
     r"how\s+much\s+(money|subsid)|subsid(y|ies)\s+amount"),
    ("procedure", r"(怎么|如何|怎样|去哪|到哪|哪里|哪个)(申请|办理|报名|申报|登记)|(去哪|到哪|哪里)(办|去办)|"
     r"(申请|办理|报名|申报)(流程|手续|条件|材料|时间|地点|入口|窗口)|(准备|需要|提交|带)(哪些|什么)?材料|"
     r"(哪个|什么)窗口|去.{0,4}窗口|网址|(联系|咨询|办理)电话|电话(号码)?是多少|联系方式|"
     r"(补贴|补助|津贴|养老金|奖励|资金|钱).{0,8}(什么时候|何时|哪天|几号|多久|怎么领|如何领|去哪领|到账)|"
     r"how\s+(do|can|to)\s+(i\s+)?(apply|register)|application\s+(form|process)"),
    ("after_adoption", r"(202[2-9]|20[3-9]\d)年.{0,20}(实际|完成了|达到了|是多少|多少|情况|数据|统计)|"
     r"(去年|今年|前年|目前|现在|最新).{0,10}(实际|完成了|达到了|数据|统计|进度)|"
     r"(实际|已经)(完成|达到)了?(多少|什么)"),
    ("other_region", r"(包河|蜀山|庐阳|政务|滨湖|高新|经开|新站)区|(肥东|肥西|长丰|庐江)县|巢湖市"),
    ("personal", r"我(能|可以|是否|能不能|可不可以|符合|够).{0,6}(申请|领取|享受|拿到|条件)"),
]

_EXPLAIN = {
    "amount": "具体补贴金额或发放标准",
    "procedure": "具体办理流程、所需材料或办理地点",
    "after_adoption": "2021年以后的实际完成情况或统计数据",
    "other_region": "其他区县的规划内容",
    "personal": "个人能否申请、是否符合条件的认定",
    "article_missing": "该条文",
    "weak_evidence": "相关内容",
}

_EXPLAIN_EN = {
    "amount": "specific subsidy amounts or payment standards",
    "procedure": "application procedures, required documents or where to apply",
    "after_adoption": "actual results or statistics after 2021",
    "other_region": "plans of other districts",
    "personal": "individual eligibility decisions",
    "article_missing": "that article",
    "weak_evidence": "this topic",
}


def explain_gap(reason: str, english: bool = False) -> str:
    table = _EXPLAIN_EN if english else _EXPLAIN
    return table.get(reason, table["weak_evidence"])


_ARTICLE_REF = re.compile(r"第\s*([0-9]+|[一二三四五六七八九十百]+)\s*条|article\s+(\d+)", re.IGNORECASE)


def chinese_to_int(s: str) -> int | None:
    if s.isdigit():
        return int(s)
    digits = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
    total, current = 0, 0
    for ch in s:
        if ch in digits:
            current = digits[ch]
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        elif ch == "百":
            total += (current or 1) * 100
            current = 0
        else:
            return None
    return total + current


def referenced_articles(text: str) -> list[int]:
    """Article numbers a text names (第19条, 第十九条, article 19)."""
    out = []
    for m in _ARTICLE_REF.finditer(text):
        n = chinese_to_int(m.group(1) or m.group(2))
        if n is not None:
            out.append(n)
    return out


@dataclass(frozen=True)
class Verdict:
    answerable: bool
    reason: str | None = None  # one of the _EXPLAIN keys when not answerable
    closest: Hit | None = None  # what the plan does say that comes closest


class AnswerabilityJudge:
    """Decide from retrieval evidence and the question whether the plan answers it.

    ``min_dense`` / ``min_bm25``: below both, the best hit is too weak to be an
    answer (calibrated on the dev set, see eval/README.md). ``closest_dense``: a
    closest-match citation is only offered when it is at least this similar.
    """

    def __init__(
        self,
        *,
        max_article: int = 43,
        min_dense: float = 0.80,
        min_bm25: float = 4.0,
        closest_dense: float = 0.78,
    ) -> None:
        if not 0.0 <= min_dense <= 1.0:
            raise ValueError(f"min_dense must be in [0, 1], got {min_dense}")
        if not 0.0 <= closest_dense <= 1.0:
            raise ValueError(f"closest_dense must be in [0, 1], got {closest_dense}")
        if min_bm25 < 0:
            raise ValueError(f"min_bm25 must be >= 0, got {min_bm25}")
        self.max_article = max_article
        self.min_dense = min_dense
        self.min_bm25 = min_bm25
        self.closest_dense = closest_dense
        self._specifics = [(key, re.compile(p, re.IGNORECASE)) for key, p in _SPECIFICS]

    def asks_for(self, question: str) -> str | None:
        """The kind of specific the question wants that the plan never holds, if any."""
        for key, pattern in self._specifics:
            if pattern.search(question):
                return key
        return None

    def _strong(self, hit: Hit) -> bool:
        dense_ok = hit.dense_score is not None and hit.dense_score >= self.min_dense
        bm25_ok = hit.bm25_score is not None and hit.bm25_score >= self.min_bm25
        return dense_ok or bm25_ok

    def _closest(self, hits: list[Hit]) -> Hit | None:
        if not hits:
            return None
        top = hits[0]
        if self._strong(top) or (top.dense_score or 0.0) >= self.closest_dense:
            return top
        return None

    def run(self, question: str, hits: list[Hit]) -> Verdict:
        wanted = [n for n in referenced_articles(question) if n > self.max_article or n < 1]
        if wanted:
            return Verdict(False, "article_missing", None)
        specific = self.asks_for(question)
        if specific is not None:
            supported = self._specific_in_evidence(specific, question, hits)
            if not supported:
                return Verdict(False, specific, self._closest(hits))
        if not hits or not self._strong(hits[0]):
            return Verdict(False, "weak_evidence", self._closest(hits))
        return Verdict(True)

    @staticmethod
    def _specific_in_evidence(specific: str, question: str, hits: list[Hit]) -> bool:
        """Rarely a 'specific' is in the plan (e.g. a 2025 target): accept when the top
        unit's text holds the same kind of specific."""
        if not hits:
            return False
        text = hits[0].unit.text
        if specific == "amount":
            return bool(re.search(r"(补贴|补助|津贴|奖励)[^。]{0,20}\d+(\.\d+)?\s*(万|亿)?元", text))
        if specific == "after_adoption":
            years = re.findall(r"(20\d\d)年", question)
            return bool(years) and all(f"{y}年" in text for y in years)
        return False
