"""eval/batching.py: its serial pass decodes what the product's own path decodes, and batching two
sequences answers every request (with the real small model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.evaluation.scripts import eval_script
from assistant.generation.llama import LlamaGenerator

from conftest import ROOT
from helpers_llm import SMALL_MODEL

batching = eval_script("batching")


@pytest.mark.slow
def test_serial_pass_matches_the_product_and_batching_answers_all(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp()
    settings = Settings(cache_dir=base / "shipped-models", llm_model=SMALL_MODEL, llm_threads=2, llm_context=1024)
    gen = LlamaGenerator.from_settings(settings.replace(cache_dir=tmp_path_factory.mktemp("batch-states")))
    plan_text = (Path(ROOT) / "corpus" / "yaohai-14th-five-year-plan-proposals.txt").read_text(encoding="utf-8")
    requests, expected = [], {}
    for i, (start, question) in enumerate([(3000, "这段原文讲了什么？"), (6000, "这段原文提到了哪些项目？")]):
        messages = [
            {"role": "system", "content": "你是规划问答助手，只根据原文回答。\n规划原文：\n" + plan_text[start : start + 200]},
            {"role": "user", "content": f"问题：{question}一句话回答。"},
        ]
        plan = gen.prompt_plan(messages)
        assert plan is not None
        requests.append(batching.Request(f"q{i}", plan.prefix, plan.full))
        expected[f"q{i}"] = "".join(gen.stream(messages, max_tokens=12))
    ctx = batching.Context(gen.model, 2, 1024, 2)
    for r in requests:
        ctx.save(r.prefix)
    try:
        serial, _ = ctx.run(requests, 1, 12)
        batched, _ = ctx.run(requests, 2, 12)
    finally:
        ctx.close()
    for qid, tokens in serial.items():
        assert gen.model.detokenize(tokens).decode("utf-8", "ignore") == expected[qid]
        assert 1 <= len(batched[qid]) <= 12
    gen.close()
