"""The layout's promises (docs/development.md): layers import only downwards, no module
import cycle, no function much longer than 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# repository folder -> import prefix (pyproject's package-dir)
PACKAGES = {
    "tasks": "cpi_bench.tasks",
    "trainer": "cpi_bench.trainer",
    "harness_ext": "cpi_bench.harness_ext",
    "demo": "cpi_bench.demo",
}
# Each layer may import its own modules and the layers listed for it (cli.py dispatches by
# name). Running and reporting meet only in commands: evaluation writes JSON, reports read it,
# and neither imports the other.
_CORE, _TASKS = "cpi_bench.harness_ext.core", "cpi_bench.tasks"
_MODELS = "cpi_bench.harness_ext.models"
_PLUGIN = "cpi_bench.harness_ext.lm_eval_plugin"
_EVAL, _REPORTS = "cpi_bench.harness_ext.evaluation", "cpi_bench.harness_ext.reports"
LAYERS = {
    _CORE: (),
    _TASKS: (_CORE,),
    _MODELS: (_CORE, _TASKS),
    _PLUGIN: (_CORE, _TASKS),
    _EVAL: (_CORE, _TASKS, _MODELS, _PLUGIN),
    _REPORTS: (_CORE, _TASKS),
    "cpi_bench.harness_ext.commands": (_CORE, _TASKS, _MODELS, _EVAL, _REPORTS),
    "cpi_bench.harness_ext": (_CORE, _TASKS),
    "cpi_bench.trainer": ("cpi_bench.harness_ext", _TASKS),
    "cpi_bench.demo": ("cpi_bench.trainer", "cpi_bench.harness_ext", _TASKS),
}
MAX_FUNCTION_LINES = 70  # "about 60": the guard leaves a little room for docstrings


def _modules() -> dict[str, Path]:
    found = {}
    for folder, prefix in PACKAGES.items():
        for path in (REPO / folder).rglob("*.py"):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([prefix, *parts])] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every cpi_bench module ``name`` imports, at any depth of the file."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def _layer(module: str) -> str:
    return max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)


def test_layers_import_only_downwards() -> None:
    """Every import goes to its own layer or one listed below it in LAYERS."""
    modules = _modules()
    bad = []
    for name, path in modules.items():
        if name == "cpi_bench.harness_ext.cli":
            continue
        mine = _layer(name)
        allowed = (mine, *LAYERS[mine])
        for dep in _imports(name, path, set(modules)):
            if not any(dep == a or dep.startswith(a + ".") for a in allowed):
                bad.append(f"{name} -> {dep}")
    assert bad == []


def test_no_module_import_cycle() -> None:
    modules = _modules()
    graph = {n: _imports(n, p, set(modules)) for n, p in modules.items()}
    graph = {n: {d for d in deps if not n.startswith(d + ".")} for n, deps in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


@pytest.mark.parametrize("folder", sorted(PACKAGES))
def test_no_function_is_much_longer_than_60_lines(folder: str) -> None:
    long = []
    for path in (REPO / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.name} ({n} lines)")
    assert long == []
