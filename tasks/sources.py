"""Data sources: where each task's public file lives (pinned by commit), how it is found
offline (``CPI_DATA_DIR``) and how a row becomes the canonical row of ``prompts.py``.

``CPI_DATA_DIR`` (a folder holding the public file names, directly or one folder below)
takes precedence; otherwise the file is downloaded once and cached by ``datasets`` (under
``HF_DATASETS_CACHE``). A missing or malformed file raises :class:`CPIError` naming it.
"""

from __future__ import annotations

import ast
import csv
import difflib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..harness_ext.core.errors import CPIError, install_excepthook
from ..harness_ext.core.files import read_json, read_jsonl
from .prompts import (
    CF_ANSWER,
    CF_ANSWERS,
    CONTEXT,
    PARAM_ANSWER,
    PARAM_ANSWERS,
    QUESTION,
)

install_excepthook()

DATA_DIR_ENV = "CPI_DATA_DIR"

CPI_REPO = "locuslab/context-parametric-inversion"
CPI_COMMIT = "6f989849656f433d4520eaf0b9af6e3bb6a7ae70"
MEMO_TRAP_REPO = "liujch1998/memo-trap"
MEMO_TRAP_COMMIT = "d87b26abf4402b76d167d1326798d21d7ea2127e"
# NQ-Swap as one plain JSON-lines file (the same 4,746 rows as merged.jsonl inside
# leaderboard/cli/xiaotang/nqswap.zip of the same repository); see tasks/nqswap/README.md.
NQ_SWAP_REPO = "kushalc/nd-lora"
NQ_SWAP_COMMIT = "40c8e4d9e2b4e27117a7b589cb15e9ed1a16963c"
CONFLICTQA_REPO = "OSU-NLP-Group/LLM-Knowledge-Conflict"
# The commit at which each ConflictQA file was checked (the files were added in two pushes).
CONFLICTQA_COMMITS = {
    "chatgpt": "8486a5a0d90fa805eeea7abd75fed4f106b22206",
    "gpt4": "6d4dca7ae1ca1ab35982239b4c19c8f8f9709023",
    **dict.fromkeys(
        ("llama2-70b", "llama2-7b", "palm2", "qwen7b", "vicuna33b", "vicuna7b"),
        "a5822191d65ecc40ce3402583c364c114202c852",
    ),
}
CONFLICTQA_GENERATORS = tuple(CONFLICTQA_COMMITS)


def _raw_url(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def _text(row: dict[str, Any], field: str) -> str:
    """A text field, stripped; a list, number, bool or object is an error (``str()`` of it
    would silently become an answer such as ``"['Porto']"`` or ``"True"``)."""
    value = row[field]
    if not isinstance(value, str):
        raise ValueError(
            f"field '{field}' is a {type(value).__name__} ({json.dumps(value)[:60]}), not text; "
            "give one JSON string"
        )
    return value.strip()


def _qa_row(field_param: str) -> Callable[[dict[str, Any]], dict[str, str]]:
    def convert(row: dict[str, Any]) -> dict[str, str]:
        return {
            CONTEXT: _text(row, "context"),
            QUESTION: _text(row, "question"),
            CF_ANSWER: _text(row, "answer"),
            PARAM_ANSWER: _text(row, field_param),
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


def _answer_list(value: Any, field: str) -> list[str]:
    """NQ-Swap's answers: a JSON list of alternative strings, any of which is right.

    A bare string is taken as a one-item list; an empty list, or one with a non-string or an
    empty item, is malformed (the caller turns the ValueError into a CPIError naming the row).
    """
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError(f"{field} must be a non-empty list of strings, got {value!r}")
    answers = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{field} must hold non-empty strings, got {item!r}")
        answers.append(item.strip())
    return answers


def _nqswap_row(row: dict[str, Any]) -> dict[str, Any]:
    # NQ-Swap: the passage with the answer entity substituted (sub_context) is the context;
    # its answers (sub_answer) are the context answers, the original NQ answers (org_answer)
    # the memorised ones. Every alternative counts when scoring (cf_answers, param_answers);
    # the first one is the target and the two-choice continuation.
    cf = _answer_list(row["sub_answer"], "sub_answer")
    param = _answer_list(row["org_answer"], "org_answer")
    return {
        CONTEXT: str(row["sub_context"]).strip(),
        QUESTION: str(row["question"]).strip(),
        CF_ANSWER: cf[0],
        PARAM_ANSWER: param[0],
        CF_ANSWERS: cf,
        PARAM_ANSWERS: param,
    }


# ----------------------------------------------------------------------------- ConflictQA
# StrategyQA questions are yes/no questions, so the answer a model naturally gives is "Yes" or
# "No"; these are the answer strings scored. The dataset's ground_truth ("True"/"False") is
# only a fallback of the polarity rule below, never the memorised answer: in ConflictQA the
# memorised answer is what the generator model itself said (memory_answer), right or wrong.
YES, NO = "yes", "no"
_NEGATIONS = frozenset(
    ("not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "cannot", "without")
)
_EXPLICIT = {"yes": True, "true": True, "no": False, "false": False}
_WORD = re.compile(r"[a-z0-9']+")
_EXPLICIT_HEAD = re.compile(r"^\s*(yes|no|true|false)\s*(?:[,.!:;]|$)", re.IGNORECASE)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def _negations(text: str) -> int:
    """Negation cues: not/no/never/none/nobody/nothing/nowhere/neither/cannot/without, n't."""
    return sum(1 for w in _words(text) if w in _NEGATIONS or w.endswith("n't"))


def _explicit(answer: str) -> bool | None:
    """``True``/``False`` for an answer that is, or starts with, yes/no/true/false plus
    punctuation (``"False."``, ``"Yes, it is."``); None otherwise (``"No one can..."``)."""
    match = _EXPLICIT_HEAD.match(answer)
    return _EXPLICIT[match.group(1).lower()] if match else None


def _likeness(question: str, answer: str) -> tuple[float, float]:
    """How closely ``answer`` restates ``question``: word-sequence ratio, then word overlap."""
    q, a = _words(question), _words(answer)
    union = set(q) | set(a)
    overlap = len(set(q) & set(a)) / len(union) if union else 0.0
    return difflib.SequenceMatcher(None, q, a).ratio(), overlap


def memory_polarity(
    question: str, memory_answer: str, counter_answer: str, ground_truth: bool
) -> tuple[bool, str]:
    """(does the generator's own memory_answer say *yes* to ``question``?, the step that decided).

    ConflictQA gives the two sides as sentences (``"Shrimp scampi is not definitely free of
    plastic."``), the counter answer being the memory answer turned around, so the yes/no labels
    must be read off them. Steps, first that decides wins (tasks/conflictqa/README.md has the
    check on the real file):

    1. ``explicit``: memory_answer, else counter_answer, is a bare yes/no/true/false;
    2. ``negation``: the two answers differ in their count of negation cues; an answer says yes
       when its count has the question's parity (``"Would someone in Boston not receive..."`` ->
       ``"...would not receive..."`` is a yes); when both parities agree (stray negations), the
       one with more cues is the no;
    3. ``likeness``: no count differs (``"impossible"`` vs ``"possible"``, swapped order): the
       answer that restates the question more closely is the yes;
    4. ``ground_truth``: the two answers cannot be told apart (identical): the dataset label.
    """
    for answer, flip in ((memory_answer, False), (counter_answer, True)):
        said = _explicit(answer)
        if said is not None:
            return said != flip, "explicit"
    n_q, n_m, n_c = _negations(question), _negations(memory_answer), _negations(counter_answer)
    if n_m != n_c:
        memory_yes, counter_yes = (n_m - n_q) % 2 == 0, (n_c - n_q) % 2 == 0
        return (memory_yes if memory_yes != counter_yes else n_m < n_c), "negation"
    like_m, like_c = _likeness(question, memory_answer), _likeness(question, counter_answer)
    if like_m != like_c:
        return like_m > like_c, "likeness"
    return ground_truth, "ground_truth"


def _ground_truth(value: Any) -> bool:
    """ConflictQA's ground_truth: ``["True"]`` in the files (also ``"['True']"`` or ``True``)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = ast.literal_eval(text) if text.startswith("[") else text
        except (ValueError, SyntaxError):
            value = text
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    label = str(value).strip().lower()
    if label not in ("true", "false"):
        raise ValueError(f"ground_truth must be ['True'] or ['False'], got {value!r}")
    return label == "true"


def _conflictqa_row(row: dict[str, Any]) -> dict[str, str]:
    # ConflictQA (StrategyQA part): the context is the counter-memory passage; the memorised
    # answer is the polarity of the generator's own memory_answer, the context answer its
    # opposite (the counter_memory argues for counter_answer).
    memory_yes, _ = memory_polarity(
        str(row["question"]),
        str(row["memory_answer"]),
        str(row["counter_answer"]),
        _ground_truth(row["ground_truth"]),
    )
    return {
        CONTEXT: str(row["counter_memory"]).strip(),
        QUESTION: str(row["question"]).strip(),
        CF_ANSWER: NO if memory_yes else YES,
        PARAM_ANSWER: YES if memory_yes else NO,
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
        # memo-trap's other three files: same columns, same reading as 1-proverb-ending.csv
        # (sizes from the memo-trap README).
        *(
            Source(
                name,
                file_name,
                _raw_url(MEMO_TRAP_REPO, MEMO_TRAP_COMMIT, f"data/{file_name}"),
                ("prompt", "classes", "answer_index"),
                "csv",
                _quote_row,
                rows,
            )
            for name, file_name, rows in (
                ("quotes_translation", "2-proverb-translation.csv", 843),
                ("quotes_hate_speech", "3-hate-speech-ending.csv", 100),
                ("quotes_science", "4-history-of-science-qa.csv", 736),
            )
        ),
        Source(
            "nqswap",
            "merged.jsonl",
            _raw_url(NQ_SWAP_REPO, NQ_SWAP_COMMIT, "leaderboard/cli/nqswap/merged.jsonl"),
            ("question", "org_answer", "sub_context", "sub_answer"),
            "jsonl",
            _nqswap_row,
            4746,
        ),
        # ConflictQA files are JSON lines despite the .json name.
        *(
            Source(
                f"conflictqa_{generator}",
                f"conflictQA-strategyQA-{generator}.json",
                _raw_url(
                    CONFLICTQA_REPO,
                    CONFLICTQA_COMMITS[generator],
                    f"conflictQA/conflictQA-strategyQA-{generator}.json",
                ),
                ("question", "ground_truth", "memory_answer", "counter_answer", "counter_memory"),
                "jsonl",
                _conflictqa_row,
                1245 if generator == "chatgpt" else None,
            )
            for generator in CONFLICTQA_GENERATORS
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


def _json_rows(path: Path) -> list[Any]:
    """A JSON file: a list of row objects (or ``{"data": [...]}``)."""
    data = read_json(path, "data file")
    if isinstance(data, dict) and "data" in data:
        data = data["data"]
    if not isinstance(data, list):
        raise CPIError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
    return data


def _csv_rows(path: Path) -> list[Any]:
    """A CSV file with a header line: one dict per row."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    except UnicodeDecodeError as err:
        raise CPIError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
            "re-save the file as UTF-8"
        ) from None


# a Source's ``fmt`` -> how its file is read into rows
READERS: dict[str, Callable[[Path], list[Any]]] = {
    "json": _json_rows,
    "jsonl": lambda path: read_jsonl(path, "data file"),
    "csv": _csv_rows,
}


def _read_records(path: Path, fmt: str) -> list[dict[str, Any]]:
    return READERS[fmt](path)


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
    rows = representative_order(load_rows(spec, locate(spec)))
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


ORDER_SEED = 1234  # fixed: the same --limit always draws the same items


def representative_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows in a fixed, seeded random order, each tagged with ``item_id`` (its 0-based
    row number in the public file).

    lm-eval's ``--limit N`` takes the first N documents. The public files are sorted (the
    first 196 rows of world_facts are exactly the capitals; the first 30 CF_Bio rows cover 6
    people), so a prefix is not representative; a seeded shuffle makes every ``--limit`` a
    uniform random subset, identical across runs and machines. Full-set metrics (means) do
    not depend on the order.
    """
    import random

    tagged = [{**row, "item_id": i} for i, row in enumerate(rows)]
    random.Random(ORDER_SEED).shuffle(tagged)
    return tagged
