"""Data sources: where each task's public file lives (pinned by commit), how it is found
offline (``CPI_DATA_DIR``) and how a row becomes the canonical row of ``prompts.py``.

``CPI_DATA_DIR`` (a folder holding the public file names, directly or one folder below)
takes precedence; otherwise the file is downloaded once and cached by ``datasets`` (under
``HF_DATASETS_CACHE``). A missing or malformed file raises :class:`CPIError` naming it.
"""

from __future__ import annotations

import ast
import csv
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpi_bench.harness_ext.core.errors import CPIError, install_excepthook
from cpi_bench.tasks.prompts import CF_ANSWER, CONTEXT, PARAM_ANSWER, QUESTION

install_excepthook()

DATA_DIR_ENV = "CPI_DATA_DIR"

CPI_REPO = "locuslab/context-parametric-inversion"
CPI_COMMIT = "6f989849656f433d4520eaf0b9af6e3bb6a7ae70"
MEMO_TRAP_REPO = "liujch1998/memo-trap"
MEMO_TRAP_COMMIT = "d87b26abf4402b76d167d1326798d21d7ea2127e"


def _raw_url(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def _qa_row(field_param: str) -> Callable[[dict[str, Any]], dict[str, str]]:
    def convert(row: dict[str, Any]) -> dict[str, str]:
        return {
            CONTEXT: str(row["context"]).strip(),
            QUESTION: str(row["question"]).strip(),
            CF_ANSWER: str(row["answer"]).strip(),
            PARAM_ANSWER: str(row[field_param]).strip(),
        }

    return convert


def _quote_row(row: dict[str, Any]) -> dict[str, str]:
    # memo-trap: classes is a Python list literal of two endings; answer_index picks the one
    # the prompt asks for (the context answer); the other is the memorised proverb ending.
    classes = row["classes"]
    if isinstance(classes, str):
        try:
            classes = ast.literal_eval(classes)
        except (ValueError, SyntaxError) as err:
            raise ValueError(f"classes is not a list literal ({err})") from None
    if not isinstance(classes, (list, tuple)) or len(classes) != 2:
        raise ValueError(f"classes must hold exactly two endings, got {classes!r}")
    index = int(row["answer_index"])
    if index not in (0, 1):
        raise ValueError(f"answer_index must be 0 or 1, got {index}")
    return {
        CONTEXT: str(row["prompt"]).strip(),
        QUESTION: "",
        CF_ANSWER: str(classes[index]).strip(),
        PARAM_ANSWER: str(classes[1 - index]).strip(),
    }


def _id_row(row: dict[str, Any]) -> dict[str, str]:
    # in-distribution items of the synthetic world: the answer is the one to give, whether
    # it comes from the context (C), from both (C+S) or from memory (no context)
    return {
        CONTEXT: str(row.get("context") or "").strip(),
        QUESTION: str(row["question"]).strip(),
        CF_ANSWER: str(row["answer"]).strip(),
        PARAM_ANSWER: "",
    }


@dataclass(frozen=True)
class Source:
    """One public dataset: where it lives, what a row must hold, how to canonicalise it."""

    name: str
    file_name: str  # the public file name looked up under CPI_DATA_DIR
    url: str | None  # None: never downloaded (files that `cpi demo` writes)
    fields: tuple[str, ...]
    fmt: str  # json | jsonl | csv
    convert: Callable[[dict[str, Any]], dict[str, str]]
    expected_rows: int | None  # the published size, for the README and sanity tests


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "world_facts",
            "world_facts.json",
            _raw_url(CPI_REPO, CPI_COMMIT, "world_facts.json"),
            ("context", "question", "answer", "memory_answer"),
            "json",
            _qa_row("memory_answer"),
            313,
        ),
        Source(
            "capitals",
            "country_capitals_only.json",
            _raw_url(CPI_REPO, CPI_COMMIT, "country_capitals_only.json"),
            ("context", "question", "answer", "memory_answer"),
            "json",
            _qa_row("memory_answer"),
            196,
        ),
        Source(
            "bio",
            "famous_biographies.jsonl",
            _raw_url(CPI_REPO, CPI_COMMIT, "famous_biographies.jsonl"),
            ("context", "question", "answer", "parametric_answer"),
            "jsonl",
            _qa_row("parametric_answer"),
            555,
        ),
        Source(
            "quotes",
            "1-proverb-ending.csv",
            _raw_url(MEMO_TRAP_REPO, MEMO_TRAP_COMMIT, "data/1-proverb-ending.csv"),
            ("prompt", "classes", "answer_index"),
            "csv",
            _quote_row,
            860,
        ),
        # The synthetic world of `cpi demo` (written into OUT/world, read via CPI_DATA_DIR).
        Source(
            "synth_cf",
            "cpisynth_cf.jsonl",
            None,
            ("context", "question", "answer", "memory_answer"),
            "jsonl",
            _qa_row("memory_answer"),
            None,
        ),
        Source(
            "synth_id", "cpisynth_id.jsonl", None, ("question", "answer"), "jsonl", _id_row, None
        ),
    )
}


# ----------------------------------------------------------------------------- locating


def find_in_data_dir(data_dir: Path, file_name: str) -> Path | None:
    """``data_dir/file_name`` or ``data_dir/*/file_name`` (first in sorted order), else None."""
    direct = data_dir / file_name
    if direct.is_file():
        return direct
    for sub in sorted(p for p in data_dir.iterdir() if p.is_dir()) if data_dir.is_dir() else []:
        if (sub / file_name).is_file():
            return sub / file_name
    return None


def locate(source: Source) -> Path:
    """Local path of ``source``: from ``CPI_DATA_DIR`` if set, else the datasets download cache."""
    data_dir = os.environ.get(DATA_DIR_ENV)
    if source.url is None and not data_dir:
        raise CPIError(
            f"{source.file_name} is written by `cpi demo`; set {DATA_DIR_ENV} to the demo's "
            f"world folder (OUT/world) to evaluate on it."
        )
    if data_dir:
        root = Path(data_dir).expanduser()
        found = find_in_data_dir(root, source.file_name)
        if found is None:
            raise CPIError(
                f"{DATA_DIR_ENV}={data_dir} holds no {source.file_name} (looked in the folder "
                f"and one level below). Put {source.file_name} there "
                + (
                    f"(source: {source.url}) or unset {DATA_DIR_ENV} to download it."
                    if source.url
                    else "(`cpi demo` writes it into OUT/world)."
                )
            )
        return found
    try:
        import datasets

        return Path(datasets.DownloadManager(dataset_name="cpi_bench").download(source.url))
    except Exception as err:  # no network, offline mode, HTTP error
        root = err
        while root.__cause__ is not None:
            root = root.__cause__
        raise CPIError(
            f"could not download {source.file_name} from {source.url} "
            f"({type(root).__name__}: {root}). "
            f"Offline? Set {DATA_DIR_ENV} to a folder that contains {source.file_name}."
        ) from None


# ----------------------------------------------------------------------------- reading


def _read_records(path: Path, fmt: str) -> list[dict[str, Any]]:
    try:
        if fmt == "json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and "data" in data:
                data = data["data"]
            if not isinstance(data, list):
                raise CPIError(
                    f"{path}: expected a JSON list of objects, got {type(data).__name__}"
                )
            return data
        if fmt == "jsonl":
            rows = []
            with path.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, start=1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as err:
                            raise CPIError(
                                f"{path}: line {n} is not valid JSON ({err.msg})"
                            ) from None
            return rows
        if fmt == "csv":
            with path.open(encoding="utf-8", newline="") as fh:
                return list(csv.DictReader(fh))
    except json.JSONDecodeError as err:
        raise CPIError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    raise ValueError(f"unknown format {fmt!r}")


def load_rows(source: Source, path: Path) -> list[dict[str, str]]:
    """Read and validate ``path``; every row must carry ``source.fields`` (1-based row numbers)."""
    records = _read_records(path, source.fmt)
    if not records:
        raise CPIError(f"{path}: no rows; expected the {source.name} data ({source.url})")
    rows = []
    for n, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise CPIError(f"{path}: row {n} is a {type(record).__name__}, expected an object")
        for field in source.fields:
            value = record.get(field)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise CPIError(
                    f"{path}: row {n} lacks field '{field}' "
                    f"(each row needs {', '.join(source.fields)})"
                )
        try:
            rows.append(source.convert(record))
        except ValueError as err:
            raise CPIError(f"{path}: row {n}: {err}") from None
    return rows


def load_dataset(source: str, **_: Any):
    """lm-eval ``custom_dataset`` hook: a ``DatasetDict`` with one ``test`` split.

    lm-eval passes the task metadata and ``dataset_kwargs`` as keyword arguments; only
    ``source`` (a key of :data:`SOURCES`) is used.
    """
    import datasets

    if source not in SOURCES:
        raise CPIError(f"dataset_kwargs.source={source!r} is unknown; use one of {sorted(SOURCES)}")
    spec = SOURCES[source]
    rows = load_rows(spec, locate(spec))
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
