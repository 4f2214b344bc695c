"""``AnswerabilityJudge``: does the retrieved text answer this question?

Decided from evidence, not from lists of districts or phrases:
* the question's **answer type** (an amount, a date, a named person, a procedure,
  an individual's eligibility) must be present in the best-matching sentences;
* **things the plan never mentions** (a place name, a titled document, a year it
  does not speak of) mean the plan is silent; the corpus itself says what it
  mentions, so nothing about it is written here;
* **retrieval strength**: a best hit that is weak on both dense and BM25 scores
  is no answer;
* after drafting, the model's own "规划未提及" (``believes_model``), its odds of
  saying so when its draft cannot be verified (``doubts``), and the answer type
  in the quotes the answer actually cites (``unmet``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from assistant.models import Citation, Document, Hit, Sentence
from assistant.text import pos_tags, referenced_articles, to_simplified

# Answer types: what kind of thing the question wants, and what evidence of that kind looks like.
_ANSWER_TYPES: dict[str, tuple[str, str]] = {
    # reason: (the question asks for …, the evidence holds …)
    "amount": (
        r"多少(钱|元|美元|块)|几块钱|(费|价格|房价|利率|利息|工资|租金|补贴|补助|标准).{0,6}(多少|几|怎么算|怎么收)|多少分|分数线"
        r"|(交|缴|付|花|掏|贷|借)多少|(怎么|如何|怎样)收费|收费标准"
        r"|每(个)?月.{0,8}多少|how\s+much|what\s+(is\s+the\s+)?(cost|price|fee)",
        r"\d[\d,.]*\s*(万|亿)?元|\d+(\.\d+)?\s*%",
    ),
    "count": (
        r"多少(个|所|家|座|条|处|套|辆|台|张|户|名|位|公里|平方米|亩)|how\s+many",  # not "几个": also "a few"
        r"(\d+|[一二三四五六七八九十两百千万]+)\s*(个|所|家|座|条|处|套|辆|台|张|户|名|位|公里|平方米|亩|万)",
    ),
    "hours": (
        # a time of day named in passing ("只能上班时间去") asks for none: the noun must be asked about
        r"几点|(开放|营业|办公|上班|开门)时间(是|为)?(几点|什么|多少|怎么|呢|吗|[？?])|what\s+time|opening\s+hours",
        r"\d{1,2}\s*[:：]\s*\d{2}|\d{1,2}\s*点",
    ),
    "schedule": (
        r"哪一?年|哪一?天|几号|几月|具体(什么)?时间|开通时间|时间表"
        r"|(什么时候|何时|啥时候|啥时)(能|才能|可以|会)?(开通|通车|完工|建成|竣工|开工|开始招生|开业|开园|对外开放|开放)"
        r"|具体(是)?(什么时候|何时|啥时候)"
        r"|what\s+year|what\s+date",
        r"(19|20)\d\d\s*年|二〇[一二三]\S年|\d+\s*月",
    ),
    "person": (r"是谁|(是|系)边个|哪位|叫什么名字|叫啥|姓什么|谁(负责|分管|主管)|who\s+(is|are)", r"(?!)"),  # the plan names no officials
    "address": (
        r"地址|门牌|具体位置|坐几路|几路(公交|车)|几楼|几层|哪一?层|哪栋|哪一?站(下|换乘|上)|在哪站|哪个出口|where\s+(exactly\s+)?is\b.{0,60}\blocated|\baddress\b",
        r"\d+\s*号(?!线)|位于|坐落",  # a street address; a plan names roads, not where an office sits
    ),
    # which one is better or best ("哪个公园最适合小朋友"): the plan names sites, it does not rank them
    "best": (r"哪(个|家|所|一个|一家|一所)\S{0,6}(更|最)(好|适合|合适|靠谱|方便)", r"(?!)"),
    "site": (
        r"哪所|哪家|哪个\S{0,4}(学校|小学|中学|幼儿园|医院|小区|公园|地方|中心|养老院)|哪一?条(线|路|街|地铁|公交)"
        r"|which\s+(school|hospital|clinic|park|line|route|bus|metro|subway)",
        r"(?!)",  # a proper name of the kind asked: site_evidence()
    ),
    "contact": (
        # which line to call or where the asker can complain; evidence is a phone number (a bare five-digit
        # figure in a plan is more likely a target or a name than a line to call)
        # ("找谁 / 找哪个部门" alone asks who is in charge, which a plan's division of tasks can answer)
        r"(打|拨|找|问)(哪个|哪一个|什么|啥|几号)(热线|电话|号码)|(热线|电话|号码)(号码|是多少|多少|是几)"
        r"|联系(电话|方式)|(向|找|跟)(谁|哪个部门|哪个单位)(投诉|举报|反映)"
        r"|(哪里|哪儿|哪个\S{0,4}|哪)(投诉|举报|反映问题)|有没有\S{0,4}(热线|电话)[？?]"
        r"|电话(号码)?(能|可以)?(给|告诉)|(怎么|如何)联系(他|她|他们|对方)?[？?]"
        r"|(投诉|举报)(电话|热线)(是|号码|多少)"
        r"|\b(phone|telephone|hotline|contact)\s+(number|details)\b|\bwho\s+(do|should|can)\s+i\s+(call|contact|complain\s+to)\b"
        r"|\bwhich\s+(office|department|hotline|number)\s+(do|should|can)\s+i\b|\bwhere\s+(do|can|should)\s+i\s+(complain|report)\b",
        r"(?<!\d)(0\d{2,3}-?\d{7,8}|1[3-9]\d{9})(?!\d)|(热线|电话)[:：]?\s*\d{5,}|\d{5,}\s*热线",
    ),
    "procedure": (
        r"(怎么|如何|怎样|去哪|到哪|哪里)(申请|办理|报名|申报|登记)|(去哪|到哪|哪里)(办|去办)|(准备|需要|提交)(哪些|什么)?材料"
        r"|(办理|申请)(流程|手续|条件|窗口|地点)|(需要|要|满足|符合)(什么|哪些)条件|网址"
        r"|(需要|要)\S{0,2}(哪些|什么)材料|(办|要办|需要办)(哪些|什么)手续|流程(是什么|是啥)|(整个|具体)流程|找谁(报名|申请|办)"
        r"|how\s+(do|can|to)\s+(i\s+)?(apply|register)|\bwhere\s+(do|can|should)\s+i\s+(go\b.{0,30}\bto\s+)?(apply|register|renew)\b",
        r"(?!)",  # plans set directions; procedures live in implementing rules
    ),
    "forecast": (
        r"涨还是跌|跌还是涨|会不会(涨|跌|降价|涨价)|(房价|股价|价格|行情).{0,8}(走势|会涨|会跌|涨不涨|预测)"
        r"|(适合|值得|该不该|要不要|能不能)(买房|买入|投资|入手)|买哪(只|支|个)|推荐.{0,4}(股票|基金|楼盘)"
        r"|\bwill\s+.{0,30}\b(rise|fall|go\s+up|go\s+down)\b|\bshould\s+i\s+(buy|invest)",
        r"(?!)",  # a plan sets policy; it does not forecast markets or advise a purchase
    ),
    "personal": (
        r"我(家|们家|孩子|爸|妈)?[^。？?]{0,24}(能不能|能否|可不可以|可以不可以|还能|能|可以|符合|够不够|有没有资格|算不算)"
        r"[^，。？?]{0,8}(申请|领|享受|落户|入学|报名|退休|拿到|补缴|办理|条件)[^，。？?]{0,10}(吗|么|不|没|\?|？)"
        r"|我.{0,6}哪年(可以)?退休"
        # whether one's own home is in a scheme's scope, or one may do something without the local hukou
        r"|我(家|们家)?[^。？?]{0,24}(是不是|算不算|在不在)[^，。？?]{0,10}(范围|名单)"
        r"|(没有|不是|没)[^，。？?]{0,4}户口[^。？?]{0,20}(能|可以|能不能|可不可以)"
        # as in Chinese, an application or an entitlement of one's own: "Can I get help with a loan?" is a question
        # about what the plan offers
        r"|\b(can|could|may)\s+(i|we|my\s+\w+)\s+(still\s+)?(apply|enrol|enroll|register|qualify|claim|retire|receive)\b"
        r"|\b(am\s+i|are\s+we|is\s+my\s+\w+)\s+(eligible|entitled|qualified)\b|\b(do|would)\s+(i|we)\s+qualify\b",
        r"(?!)",  # the plan never decides an individual's case
    ),
}
# "Which hospital…" is answered only by a named hospital: a named school does not answer it.
_SITE_KINDS = {
    "school": (r"学校|小学|中学|学|幼儿园|school|kindergarten", r"学校|小学|中学|校区|幼儿园"),
    "hospital": (r"医院|诊所|卫生|hospital|clinic", r"医院|卫生服务中心|卫生院|诊所|(?<=[一二三四五六七八九十\d])院"),
    "park": (r"公园|广场|park", r"公园|广场"),
    "line": (r"线|路|街|地铁|公交|line|route|bus|metro|subway", r"\d+\s*号线|[\u4e00-\u9fff]{2,8}(路|街|大道)"),
}
_SITE_ASKED = re.compile(r"(?:哪所|哪家|哪个|哪一家|哪一所|哪一?条|which\s+)(\S{0,8})", re.IGNORECASE)


# A site's proper name carries a number, a place level or an institutional word ("合肥一中", "区人民医院",
# "实验小学"); "医院" alone, or with a category word ("我区中小学校", "全区社区卫生服务中心"), is a
# category, which answers no "which one".
_CATEGORY = r"中小|大中小|各类|各级|公办|民办|普惠|社区|卫生|基层|重点|薄弱|大型|综合"
_NAMED = (
    r"[\u4e00-\u9fff]{0,6}(?:[0-9一二三四五六七八九十]|第|实验|附属|人民|中医|妇幼|市|区|县|省|路|街)"
    rf"(?!{_CATEGORY})[\u4e00-\u9fff]{{0,4}}"
)


# After a word of worry or supposition a question word is indefinite: "担心哪天出事故" fears some day, and
# "万一哪天发大水" supposes one; neither asks for a date.
_INDEFINITE_BEFORE = re.compile(r"(万一|担心|怕|要是|如果|假如|哪怕|不管|无论|说不定|总有)\S{0,2}$")


# A question framed as what the plan says ("规划说能申请…吗") asks about the plan, not about one's own case.
_ABOUT_THE_PLAN = re.compile(r"规划(里|中|上)?(说|讲|写|提到|提出|有没有说)")


def _asks(pattern: re.Pattern[str], question: str) -> bool:
    return any(not _INDEFINITE_BEFORE.search(question[: m.start()]) for m in pattern.finditer(question))


def site_evidence(question: str) -> str:
    """The evidence pattern for "which school / hospital / park / line": a proper name of the kind asked."""
    asked = _SITE_ASKED.search(question)
    for kind, (kind_words, ends) in _SITE_KINDS.items():
        if asked and re.search(kind_words, asked.group(1), re.IGNORECASE):
            return ends if kind == "line" else f"{_NAMED}({ends})"
    return f"{_NAMED}(学校|小学|中学|校区|幼儿园|医院|公园)"


# Day-level times that point at a day from now ("明天", "这周末"): a plan speaks in years, so such a question
# asks for real-time information (counted only when the plan itself never uses the word). A bare "周末" is
# any weekend, a habit ("周末社区会办活动吗"), not a date.
_DAYS = re.compile(r"今天|明天|后天|今晚|明晚|今早|明早|本周|这周|下周|这个周末|这个星期|这个礼拜|下个星期|下个礼拜|这两天|这几天|最近几天|这个月|下个月|tomorrow|tonight|this\s+week(end)?|next\s+week", re.IGNORECASE)
_NOW = (
    r"(今年|去年|前年|目前|现在|最新|眼下|当前).{0,16}(数据|统计|一共有|总共有|有多少|实际完成|完成了多少|是多少)"
    r"|(今年|去年|前年|上半年|上个?月)(?![\d一二三四五六七八九十]+岁).{0,16}(多少|增长了)"  # not one's age ("今年75岁")
)
# How much has actually been done so far ("实际新增了多少", "已经改造完成多少"): an outcome, which a plan,
# written before it, cannot report, unless the question dates it before the plan ("十三五期间实际…").
# What the plan says ("已经提到了几个…") is not an outcome.
_REALIZED = re.compile(r"(实际(?!上)|至今|迄今|已经|(到|截[至止])?目前为止|截[至止]目前|到现在(为止)?)[，,]?(?:(?!提|写|说|讲|列)[^，,。？?]){0,12}(多少|几[个所家处条座项万亿])")
_YEAR = re.compile(r"((?:19|20)\d\d)\s*年")
# The state of things right now, asked as "X不X" ("现在堵不堵车？") or "现在人多吗": real-time information, not a plan's.
# A modal "能不能 / 会不会 / 是不是" asks what is possible or planned, not how things are now.
_RIGHT_NOW = re.compile(
    r"(现在|此刻|这会儿|眼下|今天|当下)[^，,。？?！!]{0,8}?((?![能可会是要用该])[\u4e00-\u9fff])不\2"
    r"|(现在|此刻|这会儿|眼下|当下)[^，,。？?！!]{0,6}?(人多|挤|堵|排队|开着|开门)(吗|么)"
)
# A place name: jieba's ``ns`` tag on a word that ends like a place, or a longer one (two-character tags are noisy).
_PLACE_END = ("省", "市", "区", "县", "镇", "乡", "街道", "村", "路", "街", "大道", "公园", "广场")
_TITLED = re.compile(r"《([^》]{2,30})》")

_EXPLAIN = {
    "amount": "具体金额、收费或发放标准",
    "count": "具体数量",
    "hours": "开放或办公的具体时间",
    "schedule": "具体时间安排",
    "person": "具体人员或职务人选",
    "address": "具体地址或怎么到达",
    "site": "具体是哪一所学校、医院、场所或哪条线路",
    "best": "哪一个更好、最合适之类的比较和推荐",
    "contact": "联系电话、投诉热线或受理部门",
    "procedure": "具体办理流程、所需材料或办理地点",
    "forecast": "价格走势预测或个人买卖、投资建议",
    "personal": "个人能否申请、是否符合条件的认定",
    "after_adoption": "规划通过以后的实际情况或统计数据",
    "real_time": "当天或近期的实时情况和具体安排",
    "other_place": "其他地方或规划未涉及的具体场所",
    "other_document": "该文件的内容",
    "article_missing": "该条文",
    "weak_evidence": "相关内容",
}
_EXPLAIN_EN = {
    "amount": "specific amounts, fees or payment standards",
    "count": "specific numbers of things",
    "hours": "opening or office hours",
    "schedule": "specific dates or schedules",
    "person": "who holds an office",
    "address": "street addresses or directions",
    "site": "which particular school, hospital, site or route",
    "best": "which one is better or best",
    "contact": "phone numbers, hotlines or which office handles complaints",
    "procedure": "application procedures, required documents or where to apply",
    "forecast": "market forecasts or advice on buying and investing",
    "personal": "individual eligibility decisions",
    "after_adoption": "results or statistics after the plan was adopted",
    "real_time": "day-to-day or real-time information",
    "other_place": "other places or specific sites the plan does not cover",
    "other_document": "that document",
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
    lookup: bool = False  # "which article…": retrieval itself is the answer
    wanted: str | None = None  # the answer type the question asks for, checked again in what the answer cites
    evidence: str | None = None  # the pattern that evidence of ``wanted`` matches (for a site: of the kind asked)


# "哪条" counts articles, but also lines and roads ("哪条线", "哪条路"): those are not lookups.
_LOOKUP = re.compile(r"哪一?条(?!线|路|街|河|道|地铁|公交|轨道|铁路)|第几条|出自|哪个条款|which\s+article|what\s+article", re.IGNORECASE)


class AnswerabilityJudge:
    """Decide from the question, the plan and the retrieval evidence whether the plan answers.

    ``min_dense`` / ``min_bm25``: below both, the best hit is too weak to be an
    answer. ``closest_dense``: a closest-match quote is offered only when at least
    this similar. ``evidence_sentences``: how many best-matching sentences of the
    top units must hold the answer type. ``doubt_logprob``: a draft that cannot be
    verified is taken as silence when the model gave its "规划未提及" opening at
    least this log-probability (``doubts``).
    """

    def __init__(
        self,
        documents: Sequence[Document] = (),
        *,
        min_dense: float = 0.80,
        min_bm25: float = 4.0,
        closest_dense: float = 0.78,
        evidence_sentences: int = 4,
        doubt_logprob: float = -6.0,
    ) -> None:
        if not 0.0 <= min_dense <= 1.0:
            raise ValueError(f"min_dense must be in [0, 1], got {min_dense}")
        if not 0.0 <= closest_dense <= 1.0:
            raise ValueError(f"closest_dense must be in [0, 1], got {closest_dense}")
        if min_bm25 < 0:
            raise ValueError(f"min_bm25 must be >= 0, got {min_bm25}")
        if evidence_sentences < 1:
            raise ValueError(f"evidence_sentences must be >= 1, got {evidence_sentences}")
        if not doubt_logprob <= 0.0:
            raise ValueError(f"doubt_logprob is a log-probability, so <= 0, got {doubt_logprob}")
        self.documents = list(documents)
        self.min_dense = min_dense
        self.min_bm25 = min_bm25
        self.closest_dense = closest_dense
        self.evidence_sentences = evidence_sentences
        self.doubt_logprob = doubt_logprob
        self._types = {k: (re.compile(q, re.IGNORECASE), re.compile(e)) for k, (q, e) in _ANSWER_TYPES.items()}

    @cached_property
    def plan_text(self) -> str:
        return "\n".join(d.source for d in self.documents)

    @cached_property
    def article_count(self) -> int:
        return max((len(d.articles) for d in self.documents), default=0)

    @cached_property
    def adopted_year(self) -> int:
        years = [int(d.meta.adopted[:4]) for d in self.documents if d.meta.adopted[:4].isdigit()]
        return max(years, default=0)

    # ------------------------------------------------------------ signals

    def answer_type(self, question: str) -> str | None:
        asked = self.answer_types(question)
        return asked[0] if asked else None

    def answer_types(self, question: str) -> list[str]:
        """Every kind of thing the question asks for ("哪条线…什么时候开通": a route and a date). Whether
        one may apply, asked as what the plan says ("规划说能申请加装电梯吗"), is a question about the plan."""
        asked = [key for key, (asks, _) in self._types.items() if _asks(asks, question)]
        return [k for k in asked if not (k == "personal" and _ABOUT_THE_PLAN.search(question))]

    def evidence_pattern(self, wanted: str, question: str) -> str:
        return site_evidence(question) if wanted == "site" else self._types[wanted][1].pattern

    def unknown_to_plan(self, question: str) -> str | None:
        """Something the question names that the plan never mentions: a place, a titled document, a year."""
        if not self.documents:
            return None
        for title in _TITLED.findall(question):
            if title not in self.plan_text and not self._names_this_plan(title):
                return "other_document"
        for year in _YEAR.findall(question):
            if f"{year}年" not in self.plan_text:
                return "after_adoption" if int(year) > self.adopted_year else "weak_evidence"
        if re.search(_NOW, question) or (_REALIZED.search(question) and not self._dated_before_plan(question)):
            return "after_adoption"
        if any(day not in self.plan_text for day in (m.group(0) for m in _DAYS.finditer(question))):
            return "real_time"
        if _RIGHT_NOW.search(question):
            return "real_time"
        if any(not self.mentions_place(place) for place in _place_names(question)):
            return "other_place"
        if any(not self._is_home(area) for area in _owning_areas(question)):
            return "other_place"  # "肥东县十四五重点发展哪些产业": the plan names it as a partner, not its plan
        return None

    def mentions_place(self, place: str) -> bool:
        """The plan names the place, in full or by its usual short form: a Chinese abbreviation keeps
        some of the name's characters in order, the first among them ("长江三角洲" → "长三角"). jieba
        sometimes glues a verb to a place ("回瑶海"): the place after it counts."""
        if place in self.plan_text or any(self._uses_word(short) for short in _abbreviations(place)):
            return True
        return len(place) >= 3 and pos_tags(place[0])[0][1] in ("v", "p") and self.mentions_place(place[1:])

    def _uses_word(self, word: str) -> bool:
        """The plan writes ``word`` as a word of its own, not as characters of others ("合肥新兴…")."""
        for found in re.finditer(re.escape(word), self.plan_text):
            around = self.plan_text[max(0, found.start() - 12) : found.end() + 12]
            if word in (w for w, _ in pos_tags(around)):
                return True
        return False

    @cached_property
    def own_periods(self) -> set[str]:
        """The five-year periods the plan is for, in residents' words ("十四五"), from its titles."""
        return {p for d in self.documents for p in d.meta.periods}

    def _dated_before_plan(self, question: str) -> bool:
        """The question names a year up to the plan's adoption, or a five-year period that is not the
        plan's own ("十三五"): the plan itself reports such results."""
        years = [int(y) for y in _YEAR.findall(question)]
        periods = set(re.findall(r"十[一二三四五六七八九]五", question))
        return any(y <= self.adopted_year for y in years) or bool(periods - self.own_periods)

    @cached_property
    def home_region(self) -> str:
        """The plan's own region and the areas above it ("合肥市瑶海区"), from the corpus."""
        return " ".join(d.meta.region for d in self.documents)

    def _is_home(self, area: str) -> bool:
        return area in self.home_region or any(area.startswith(part) for part in _area_parts(self.home_region))

    def _names_this_plan(self, title: str) -> bool:
        """《瑶海区十四五规划建议》 and the like: the user's own name for this plan (most of its
        character pairs are in the plan's titles), not another document."""
        names = " ".join(f"{d.meta.title} {d.meta.short_title}" for d in self.documents)
        pairs = {title[i : i + 2] for i in range(len(title) - 1)}
        return bool(pairs) and sum(p in names for p in pairs) / len(pairs) >= 0.5

    def _strong(self, hit: Hit) -> bool:
        # An article the question names by number ("第7条讲什么？") is the answer whatever words it shares.
        if hit.named:
            return True
        dense_ok = hit.dense_score is not None and hit.dense_score >= self.min_dense
        bm25_ok = hit.bm25_score is not None and hit.bm25_score >= self.min_bm25
        return dense_ok or bm25_ok

    def _closest(self, hits: list[Hit]) -> Hit | None:
        if not hits:
            return None
        top = hits[0]
        return top if self._strong(top) or (top.dense_score or 0.0) >= self.closest_dense else None

    # ------------------------------------------------------------ decisions

    def run(self, question: str, hits: list[Hit], evidence: Sequence[Sentence] = ()) -> Verdict:
        """``evidence``: the best-matching sentences of the top units, best first."""
        question = to_simplified(question)
        if any(n > self.article_count or n < 1 for n in referenced_articles(question)) and self.documents:
            return Verdict(False, "article_missing", None)
        lookup = bool(_LOOKUP.search(question))
        unknown = self.unknown_to_plan(question)
        if unknown is not None:
            return Verdict(False, unknown, self._closest(hits))
        asked = [] if lookup else self.answer_types(question)
        shown = " ".join(s.text for s in list(evidence)[: self.evidence_sentences])
        for kind in asked:
            if not re.search(self.evidence_pattern(kind, question), shown):
                return Verdict(False, kind, self._closest(hits))
        if not hits or not self._strong(hits[0]):
            return Verdict(False, "weak_evidence", self._closest(hits))
        if not asked:
            return Verdict(True, lookup=lookup)
        # the first kind asked is checked again in what the answer cites (unmet)
        return Verdict(True, lookup=lookup, wanted=asked[0], evidence=self.evidence_pattern(asked[0], question))

    def unmet(self, verdict: Verdict, citations: Sequence[Citation], hits: list[Hit]) -> Verdict | None:
        """Generate-then-verify: the quotes an answer cites must hold the answer type the question
        wants (a date for "when", an amount for "how much"), or the plan did not answer it."""
        wanted = verdict.wanted
        if wanted is None or verdict.lookup or not citations:
            return None
        pattern = verdict.evidence or self._types[wanted][1].pattern
        if re.search(pattern, " ".join(c.quote for c in citations)):
            return None
        return Verdict(False, wanted, self._closest(hits))

    def doubts(
        self, verdict: Verdict, hits: list[Hit], silence_logprob: float | None, invented: bool = False
    ) -> Verdict | None:
        """The draft could not be verified against the plan, and either the model itself weighed opening
        with "规划未提及" (``silence_logprob``, its log-probability) at or above ``doubt_logprob``, or it
        stated a number that was in neither the text it was shown nor the question (``invented``: it
        made the answer up, so the text does not hold it). An unverifiable draft alone is common in
        answers to answerable questions. Not for a lookup, whose answer is the retrieved article."""
        if verdict.lookup:
            return None
        if not invented and (silence_logprob is None or silence_logprob < self.doubt_logprob):
            return None
        return Verdict(False, "weak_evidence", self._closest(hits))

    def believes_model(self, verdict: Verdict, hits: list[Hit]) -> Verdict | None:
        """The model wrote "规划未提及": believed, except for a lookup, whose answer is the retrieved article."""
        if verdict.lookup:
            return None
        return Verdict(False, "weak_evidence", self._closest(hits))


# jieba tags a floor or a building number as a place ("六楼的父母"); a resident's home is not another place
_FLOOR = re.compile(r"[\d一二三四五六七八九十两几]+[楼层栋幢号]")
_AREA_END = ("省", "市", "区", "县")  # administrative areas: each has its own plan
_ASKING = re.compile(r"^(?:请问|我想(?:问|了解)(?:一下)?|想(?:问|了解)(?:一下)?)")


def _area_parts(region: str) -> list[str]:
    """"合肥市瑶海区" → ["合肥市", "瑶海区"]."""
    return re.findall(rf".+?[{''.join(_AREA_END)}]", region)


def _owning_areas(question: str) -> list[str]:
    """Administrative areas the question is about: its subject (first, after "请问") or the owner of
    what it asks ("肥东县的…"). A plan's region mentions its neighbours as partners, not their affairs."""
    words = pos_tags(_ASKING.sub("", question.strip()))
    return [
        w
        for i, (w, flag) in enumerate(words)
        if _is_area_name(w, flag) and (i == 0 or (i + 1 < len(words) and words[i + 1][0] == "的"))
    ]


# jieba's tags for proper nouns: a place, a person's name (which many district names look like), other names
_PROPER_TAGS = ("ns", "nr", "nz", "nt")


def _is_area_name(word: str, flag: str) -> bool:
    """An administrative area by name ("肥东县"): jieba tags it a place, and its name without the level
    is a proper noun too. jieba also tags common words that end like one as places ("城市", "上市",
    "老城区": the plan's own old town), whose rest is a common word ("城", "上", "老城")."""
    if flag != "ns" or not word.endswith(_AREA_END):
        return False
    return pos_tags(word[:-1])[0][1].startswith(_PROPER_TAGS)


def _abbreviations(name: str, shortest: int = 3) -> set[str]:
    """The short forms a name could have: its first character and some later ones, in order, leaving
    out at least one in between ("长江三角洲" → "长三角", "长江角洲"…). Shorter than three characters they
    match too much; a mere beginning ("合肥市" of "合肥市蜀山区") is another place, not an abbreviation;
    names over eight characters are not abbreviated."""
    if len(name) < shortest + 1 or len(name) > 8:
        return set()
    out = set()
    for size in range(shortest, len(name)):
        for rest in itertools.combinations(range(1, len(name)), size - 1):
            positions = (0, *rest)
            if positions[-1] - positions[0] + 1 > size:  # something left out in between
                out.add("".join(name[i] for i in positions))
    return out


def _place_names(question: str) -> list[str]:
    """Place names in the question (jieba's part-of-speech tag ``ns``), simplified; a place followed by the
    kind of site it names is that site ("新桥" + "机场")."""
    words = pos_tags(question)
    names = []
    for i, (w, flag) in enumerate(words):
        following = words[i + 1] if i + 1 < len(words) else ("", "")
        if flag != "ns" or _FLOOR.fullmatch(w):
            continue
        if following[0] in _SITES:
            names.append(w + following[0])
        # a two-character one only as the owner of what is asked about ("杭州的…") or followed by a place
        # demonstrative ("芜湖那边…", "杭州这里…"): jieba also tags 上门 and 东西 as places
        elif len(w) >= 3 or w.endswith(_PLACE_END) or _owner_or_pointed(following):
            names.append(w)
    return names


# Kinds of site that a place name before them names ("新桥" + "机场", "庐江" + "医院")
_SITES = {"机场", "车站", "火车站", "高铁站", "医院", "学校", "小学", "中学", "大学", "公园", "广场", "商场", "体育馆", "图书馆"}


_PLACE_DEMONSTRATIVES = {"这里", "这边", "这儿", "那里", "那边", "那儿"}


def _owner_or_pointed(following: tuple[str, str]) -> bool:
    return following[0] == "的" or following[0] in _PLACE_DEMONSTRATIVES
