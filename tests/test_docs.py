"""The docs say only what is true of this checkout: every ``cpi ...`` command they show parses
(option names, types and choices, as ``cpi <command> --help`` knows them), and every file,
folder, module and link they name exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.errors import CPIError

REPO = Path(__file__).resolve().parents[1]
TOP = ("tasks", "trainer", "harness_ext", "demo", "tests", "benchmarks", "docs", ".ci")
ROOT_FILES = ("README.md", "CHANGELOG.md", "pyproject.toml", "setup.py")
# package name -> folder (pyproject's package-dir)
PACKAGE_DIRS = {"cpi_bench." + p: p for p in ("tasks", "trainer", "harness_ext", "demo")}
_FENCE = re.compile(r"^```(\w*)\s*$")
_TICKED = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_PLACEHOLDER = re.compile(r"[<>*{}$ |]|\.\.\.|\bN\b|[A-Z]{3,}")


def doc_files() -> list[Path]:
    """README.md, CHANGELOG.md, docs/**/*.md and every folder README in the repository."""
    found = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    for top in TOP:
        found += sorted(p for p in (REPO / top).rglob("README.md") if "docs" not in p.parts)
    return [p for p in dict.fromkeys(found) if p.is_file()]


def code_lines(text: str) -> list[str]:
    """Shell lines of the fenced code blocks (bash, sh, untagged; in console blocks only the
    ``$ `` lines), with backslash continuations joined."""
    lines, fence, pending = [], None, ""
    for line in text.splitlines():
        match = _FENCE.match(line.strip())
        if match:
            fence = None if fence is not None else match.group(1)
            continue
        if fence is None or fence not in ("", "bash", "sh", "shell", "console"):
            continue
        if fence == "console" and not line.startswith("$ ") and not pending:
            continue  # output, not a command
        pending += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            lines.append(pending.strip())
            pending = ""
    return lines


def cpi_commands(line: str) -> list[list[str]]:
    """The ``cpi`` invocations of one shell line (after ``$ ``, variable assignments, and
    between ``&&``, ``;`` and ``|``), as argv lists without the ``cpi``."""
    line = line.removeprefix("$ ")
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return []
    commands, current = [], []
    for word in [*words, ";"]:
        if word in ("&&", ";", "|", "||"):
            if current:
                commands.append(current)
            current = []
        else:
            current.append(word)
    out = []
    for words in commands:
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            words = words[1:]
        if words[:1] == ["cpi"] and len(words) > 1 and words[1] != "--debug":
            out.append(words[1:])
    return out


def _all_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in doc_files():
        for line in code_lines(path.read_text(encoding="utf-8")):
            if "..." in line:  # an elided command: not a whole command line
                continue
            for argv in cpi_commands(line):
                found.append((f"{path.relative_to(REPO)}: cpi {' '.join(argv)}", argv))
    return found


def test_the_docs_show_cpi_commands() -> None:
    """The check below reads the commands at all (a broken extractor would pass vacuously)."""
    names = {argv[0] for _, argv in _all_commands()}
    assert {"train", "sweep", "table", "compare", "gate", "flips", "export", "demo"} <= names


@pytest.mark.parametrize(("where", "argv"), _all_commands(), ids=lambda v: str(v)[:80])
def test_every_cpi_command_in_the_docs_parses(where: str, argv: list[str]) -> None:
    try:
        cli.parse_only(argv)
    except CPIError as err:
        pytest.fail(f"{where}\n  -> {err}")


def referenced_paths(path: Path) -> list[str]:
    """Repository paths a Markdown file names: backticked paths under a top-level folder
    (or a root file), ``cpi_bench.*`` modules, and relative links."""
    text = path.read_text(encoding="utf-8")
    found = []
    for ticked in _TICKED.findall(text):
        word = ticked.strip()
        if word.startswith("cpi_bench.") and re.fullmatch(r"[\w.]+", word) and "." in word[10:]:
            found.append(_module_path(word))
        elif _PLACEHOLDER.search(word) or not re.fullmatch(r"[\w./-]+", word):
            continue
        elif word.split("/")[0] in TOP and "/" in word or word in ROOT_FILES:
            found.append(word)
    for link in _LINK.findall(text):
        target = link.split("#")[0]
        if target and "://" not in target and not target.startswith("mailto:"):
            found.append(str((path.parent / target).resolve().relative_to(REPO)))
    return found


def _module_path(module: str) -> str:
    """``cpi_bench.harness_ext.core.items`` -> ``harness_ext/core/items`` (a .py or a folder)."""
    for package, folder in PACKAGE_DIRS.items():
        if module == package or module.startswith(package + "."):
            return folder + module[len(package) :].replace(".", "/")
    return module


def _exists(rel: str) -> bool:
    target = REPO / rel
    return target.exists() or target.with_suffix(".py").exists() or _attribute_of_module(rel)


def _attribute_of_module(rel: str) -> bool:
    """``harness_ext/core/items/read_items`` names a function of ``core/items.py``."""
    parent = (REPO / rel).parent
    return parent.with_suffix(".py").is_file()


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_path_the_docs_name_exists(doc: Path) -> None:
    missing = sorted({p for p in referenced_paths(doc) if not _exists(p)})
    assert missing == [], f"{doc.relative_to(REPO)} names paths that do not exist"


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    """CI must run what a new user runs: the README's test command (after its venv part)
    is a line of .ci/run, which makes its own fresh venv first."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = [
        line
        for line in readme.splitlines()
        if line.startswith("python -m venv") and "pytest" in line
    ]
    assert len(commands) == 1, commands
    after_venv = commands[0].split(". .venv/bin/activate && ", 1)[1]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert after_venv in ci
    assert any(line.startswith("python3 -m venv") for line in ci)  # a fresh venv, not ours
