"""What the measurement scripts under ``eval/`` share: loading one by path, and the real prompts of
answerable questions on the llama backend."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from assistant.answering.pipeline import Assistant
from assistant.answering.prompt import Drafter
from assistant.config import PROJECT_ROOT, Settings, load_settings
from assistant.evaluation.questions import read_questions
from assistant.generation.llama import LlamaGenerator, PromptPlan
from assistant.models import Query


def eval_script(name: str) -> ModuleType:
    """``eval/<name>.py`` as a module (loaded once; the folder is scripts, not a package)."""
    module_name = f"policy_qa_eval_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = PROJECT_ROOT / "eval" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def llama_assistant() -> tuple[Assistant, Settings, LlamaGenerator]:
    """The assistant on the llama backend, warmed up; exits with the reason when that backend is unavailable."""
    settings = load_settings(backend="llama")
    assistant = Assistant(settings)
    assistant.warm_up()
    generator = assistant.resources.generator
    if not isinstance(generator, LlamaGenerator):
        raise SystemExit(f"needs the llama backend ({assistant.resources.generator_error})")
    return assistant, settings, generator


def answerable_prompt_plans(
    assistant: Assistant, generator: LlamaGenerator, questions: Path, limit: int
) -> list[tuple[str, PromptPlan]]:
    """The prompts the answer step sends for the first ``limit`` answerable questions without history,
    split at their cached prefix (other units' sentences as text to evaluate, not copied quotes)."""
    settings = assistant.settings
    drafter = Drafter(generator, assistant.resources.scorer, settings.max_answer_tokens, plan_name=assistant.resources.plan_name)
    plans: list[tuple[str, PromptPlan]] = []
    for q in read_questions(questions):
        if len(plans) >= limit:
            break
        if q.kind in ("unanswerable", "adversarial") or q.history:
            continue
        hits = assistant.retriever().run(q.question, k=settings.top_k)
        plan = generator.prompt_plan(drafter.messages(Query(q.question, q.question, "zh-Hans", settings.mode), hits))
        if plan is not None:
            plans.append((q.id, plan))
    return plans
