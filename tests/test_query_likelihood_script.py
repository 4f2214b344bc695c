"""eval/query_likelihood.py: its one-batch token scores equal scoring token by token after the same
restored prefix, and its summary counts what it says (R@1 both ways, the gain's AUC)."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.config import Settings
from assistant.evaluation.scripts import eval_script
from assistant.generation.llama import LlamaGenerator, import_llama_cpp

from helpers_llm import SMALL_MODEL

ql = eval_script("query_likelihood")


def _row(qid: str, gold: list[int], no_unit: float, units: list[tuple[int, float]]) -> dict:
    return {"id": qid, "gold": gold, "no_unit": no_unit, "units": [{"article": a, "mean_logprob": lp} for a, lp in units]}


def test_summary_counts_first_hits_both_ways_and_separation() -> None:
    rows = [
        _row("a", [3], -4.0, [(3, -3.9), (5, -2.0)]),  # hybrid right, likelihood wrong; gain 2.0
        _row("b", [7], -4.0, [(2, -3.5), (7, -3.0)]),  # hybrid wrong, likelihood right; gain 1.0
        _row("u", [], -4.0, [(9, -3.5)]),  # unanswerable; gain 0.5
    ]
    summary = ql.summarise(rows, thresholds=(0.75, 1.5))
    assert (summary["answerable"], summary["unanswerable"]) == (2, 1)
    assert summary["r_at_1_hybrid"] == 0.5
    assert summary["r_at_1_query_likelihood"] == 0.5
    assert summary["gain_auc"] == 1.0  # both answerable gains above the unanswerable one
    assert summary["declined_at"]["0.75"] == {"unanswerable": 1, "answerable": 0}
    assert summary["declined_at"]["1.5"] == {"unanswerable": 1, "answerable": 1}
    assert ql.auc([1.0], [1.0]) == 0.5
    assert np.isnan(ql.auc([], [1.0]))


@pytest.mark.slow
def test_batched_scores_match_token_by_token(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp()
    settings = Settings(cache_dir=base / "shipped-models", llm_model=SMALL_MODEL, llm_threads=2, llm_context=1024)
    gen = LlamaGenerator.from_settings(settings.replace(cache_dir=tmp_path_factory.mktemp("ql-states"), prefix_cache=True))
    prefix = [{"role": "system", "content": "你是规划问答助手，只根据原文回答。\n规划原文：\n" + "加快建设养老服务设施，完善社区居家养老服务网络。" * 4}]
    question = "区里对养老服务有什么打算？"
    batched = ql.token_logprobs(gen, prefix, question)
    assert len(batched) >= 5 and all(lp <= 0.0 for lp in batched)

    low = import_llama_cpp().llama_cpp
    llm = gen.model
    gen.restore_prefix(prefix)
    head = list(llm.tokenize(ql.USER_HEAD.encode("utf-8"), add_bos=False, special=True))
    wanted = list(llm.tokenize(question.encode("utf-8"), add_bos=False, special=False))
    llm.eval(head)
    one_by_one = []
    for token in wanted:
        row = np.ctypeslib.as_array(low.llama_get_logits(llm.ctx), shape=(llm.n_vocab(),)).astype(np.float64)
        top = row.max()
        one_by_one.append(float(row[token] - top - np.log(np.exp(row - top).sum())))
        llm.eval([token])
    llm.reset()
    # Batched and one-token matrix products round differently (~0.1 nat here); a misaligned token costs several.
    assert batched == pytest.approx(one_by_one, abs=0.2)

    list(gen.stream([*prefix, {"role": "user", "content": "用一句话回答：规划说了什么？"}], max_tokens=6))
    assert ql.token_logprobs(gen, prefix, question) == pytest.approx(batched, abs=0.05)  # a live, longer context is cut back
    gen.close()
