"""``AnswerabilityJudge``: does the plan answer this at all? Combines retrieval
evidence with what the question asks for: the plan is a 2020 policy document,
so it never holds subsidy amounts, procedures, results after its adoption, or
other districts' plans."""

from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.models import Hit
from assistant.text import referenced_articles

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

    def weak_for_model(self, hits: list[Hit]) -> Verdict | None:
        """When the model says the plan does not answer, it is believed only if the
        dense evidence is weak; with strong evidence quoting beats refusing (None)."""
        top = hits[0] if hits else None
        if top is None or (top.dense_score or 0.0) < self.min_dense + 0.04:
            return Verdict(False, "weak_evidence", top)
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
