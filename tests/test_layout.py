"""The layout's promises (harness_ext/README.md): layers import only downwards, no module
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
# Each layer may import its own and the layers listed for it (cli.py dispatches by name).
LAYERS = {
    "cpi_bench.harness_ext.core": (),
    "cpi_bench.tasks": ("cpi_bench.harness_ext.core",),
    "cpi_bench.harness_ext": ("cpi_bench.tasks",),
    "cpi_bench.trainer": ("cpi_bench.harness_ext", "cpi_bench.tasks"),
    "cpi_bench.demo": ("cpi_bench.trainer", "cpi_bench.harness_ext", "cpi_bench.tasks"),
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
