"""The package layout is the pipeline: a module imports only from its own stage
or from stages below it (checked by walking every module's imports with ast)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

# Lower number = lower layer. Generation sits beside answering: neither needs the other's internals,
# but answering drives a generator, so generation is one step below it.
LAYERS = {
    "assistant": 0,  # the package itself holds nothing but its docstring
    "assistant.errors": 0,
    "assistant.files": 1,
    "assistant.text": 1,
    "assistant.config": 1,
    "assistant.models": 2,
    "assistant.ingest": 3,
    "assistant.retrieval": 4,
    "assistant.generation": 4,
    "assistant.answering": 5,
    "assistant.evaluation": 6,
    "assistant.feedback": 6,
    "ui": 7,  # the chat app, served by the CLI's `serve`
    "assistant.cli": 8,
    "assistant.__main__": 9,
}


def layer_of(module: str) -> int:
    best = max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"module {module} belongs to no layer: add it to LAYERS")
    return LAYERS[best]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path, module: str) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                out.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                out.append(node.module)
    return [m for m in out if m.split(".")[0] in ("assistant", "ui")]


SOURCES = sorted([*(ROOT / "assistant").rglob("*.py"), *(ROOT / "ui").rglob("*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_only_down_or_sideways(path: Path) -> None:
    module = module_name(path)
    mine = layer_of(module)
    upward = [m for m in imported(path, module) if layer_of(m) > mine]
    assert not upward, f"{module} (layer {mine}) imports from a later stage: {upward}"


def test_the_checker_sees_a_violation() -> None:
    # The check itself must be able to fail: a retrieval module importing answering is caught.
    assert layer_of("assistant.answering.guard") > layer_of("assistant.retrieval.retriever")
    assert layer_of("assistant.cli") > layer_of("ui.app") > layer_of("assistant.answering.pipeline")


def test_stage_sizes_stay_readable() -> None:
    pipeline = (ROOT / "assistant" / "answering" / "pipeline.py").read_text(encoding="utf-8")
    assert len(pipeline.splitlines()) <= 220
    for path in (ROOT / "ui").glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 420, path.name


def test_no_function_is_too_long() -> None:
    long = []
    for path in (ROOT / "assistant").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 65:
                    long.append(f"{path.relative_to(ROOT)}:{node.name} ({length} lines)")
    assert not long, long
