"""Column names, source schemas and dataset loading for ``cpi train`` (the one place for them).

Every training source is converted to one *canonical* row, so templates and curations are
written once and never look at a source's own column names:

    instruction  the request (Alpaca instruction, SQuAD/cpi question, prompt, last user turn)
    context      the passage the answer may be read from ("" when the example has none)
    response     the supervised target (Alpaca output, SQuAD answers.text[0], completion,
                 last assistant turn); the loss is computed on it only
    history      earlier turns of a multi-turn conversation, as role/content messages

A source schema is recognised by its columns (``detect_schema``); a file whose columns match
none of them, or only part of one, fails with a one-line error naming the missing columns.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cpi_bench.harness_ext.core.errors import CPIError

if TYPE_CHECKING:  # datasets is imported lazily so ``cpi train --help`` stays fast
    from datasets import Dataset


# Canonical columns (the only names templates and curations use).
INSTRUCTION, CONTEXT, RESPONSE, HISTORY = "instruction", "context", "response", "history"
CANONICAL_COLUMNS = (INSTRUCTION, CONTEXT, RESPONSE, HISTORY)
# The conversational column handed to TRL's SFTTrainer (rendered through the chat template).
MESSAGES = "messages"
ROLE, CONTENT = "role", "content"
# Roles. ``input`` carries the context as its own turn, for templates that have a slot for it
# (Alpaca's "### Input:"); templates without one fold the context into the user turn.
SYSTEM, USER, INPUT, ASSISTANT = "system", "user", "input", "assistant"

# Source columns.
ALPACA_INSTRUCTION, ALPACA_INPUT, ALPACA_OUTPUT = "instruction", "input", "output"
PROMPT, COMPLETION = "prompt", "completion"
SQUAD_CONTEXT, SQUAD_QUESTION, SQUAD_ANSWERS = "context", "question", "answers"
SQUAD_ANSWER_TEXT, SQUAD_ANSWER_START = "text", "answer_start"
CPI_ANSWER = "answer"
# Answer fields of the cpi evaluation files (CF_World_Facts, CF_Capitals, CF_Bio, the tasks'
# canonical rows): drop_overlap reads entities from them.
EVAL_ANSWER_FIELDS = ("answer", "memory_answer", "parametric_answer", "cf_answer", "param_answer")

LOCAL_SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class SourceSchema:
    """A recognised input layout: the columns that identify it and its default template."""

    name: str
    columns: tuple[str, ...]
    template: str
    description: str


# Order is detection priority: UltraChat carries both ``prompt`` and ``messages`` and is a
# messages dataset; the cpi schema shares ``context``/``question`` with SQuAD.
SCHEMAS: dict[str, SourceSchema] = {
    s.name: s
    for s in (
        SourceSchema("messages", (MESSAGES,), "tulu", "TULU / UltraChat conversations"),
        SourceSchema(
            "alpaca",
            (ALPACA_INSTRUCTION, ALPACA_INPUT, ALPACA_OUTPUT),
            "alpaca",
            "Alpaca instruction / input / output",
        ),
        SourceSchema(
            "squad",
            (SQUAD_CONTEXT, SQUAD_QUESTION, SQUAD_ANSWERS),
            "squad",
            "SQuAD reading comprehension",
        ),
        SourceSchema(
            "cpi",
            (SQUAD_CONTEXT, SQUAD_QUESTION, CPI_ANSWER),
            "squad",
            "cpi counterfactual QA (context, question, answer)",
        ),
        SourceSchema(
            "prompt_completion",
            (PROMPT, COMPLETION),
            "prompt_completion",
            "plain prompt / completion pairs",
        ),
    )
}


@dataclass(frozen=True)
class HubSource:
    """A hub dataset the paper trained on, with the split that holds its training data."""

    schema: str
    split: str


HUB_DATASETS: dict[str, HubSource] = {
    "tatsu-lab/alpaca": HubSource("alpaca", "train"),
    "allenai/tulu-v2-sft-mixture": HubSource("messages", "train"),
    "HuggingFaceH4/ultrachat_200k": HubSource("messages", "train_sft"),
    "rajpurkar/squad": HubSource("squad", "train"),
}


def detect_schema(
    columns: list[str] | tuple[str, ...], source: str, allowed: tuple[str, ...] | None = None
) -> SourceSchema:
    """The first schema whose columns are all present; a one-line error otherwise.

    ``allowed`` restricts the candidates (cf_augment reads only cpi or SQuAD files).
    """
    cols = set(columns)
    candidates = [s for s in SCHEMAS.values() if allowed is None or s.name in allowed]
    for schema in candidates:
        if cols.issuperset(schema.columns):
            return schema
    partial = sorted(
        (s for s in candidates if cols & set(s.columns)),
        key=lambda s: -len(cols & set(s.columns)),
    )
    if partial:
        best = len(cols & set(partial[0].columns))
        near = [s for s in partial if len(cols & set(s.columns)) == best]
        missing = " or ".join(
            f"{', '.join(c for c in s.columns if c not in cols)} ({s.name})" for s in near
        )
        raise CPIError(
            f"dataset {source} is missing column(s) {missing}; add or rename them "
            f"(columns found: {', '.join(sorted(cols))})"
        )
    known = "; ".join(f"{s.name} ({', '.join(s.columns)})" for s in candidates)
    raise CPIError(
        f"unknown dataset schema for {source} (columns: {', '.join(sorted(cols)) or 'none'}); "
        f"give a file with the columns of one of: {known}"
    )


def is_local_file(name: str) -> bool:
    """True when ``name`` names a local data file (by suffix), existing or not."""
    return Path(name).suffix.lower() in LOCAL_SUFFIXES


def load_source(name: str, split: str = "train", config_name: str | None = None) -> Dataset:
    """Load a local ``.jsonl``/``.json``/``.parquet`` file or a hub dataset as one split."""
    from datasets import load_dataset

    if is_local_file(name):
        path = Path(name)
        if not path.is_file():
            raise CPIError(
                f"dataset file {name} not found; pass an existing .jsonl/.json/.parquet file "
                "or a hub id such as tatsu-lab/alpaca"
            )
        builder = LOCAL_SUFFIXES[path.suffix.lower()]
        return load_dataset(builder, data_files=str(path), split="train")
    if os.path.isdir(name):
        raise CPIError(
            f"dataset {name} is a folder; pass one .jsonl/.json/.parquet file or a hub id"
        )
    hub = HUB_DATASETS.get(name)
    if hub is not None and split == "train":
        split = hub.split
    return load_dataset(name, config_name, split=split)


# --- conversion of each source schema to canonical rows -------------------------------------

Row = dict[str, Any]


def _row(instruction: str, context: str, response: str, history: list[dict] | None = None) -> Row:
    return {
        INSTRUCTION: instruction or "",
        CONTEXT: context or "",
        RESPONSE: response or "",
        HISTORY: history or [],
    }


def _from_alpaca(ex: Row) -> Row:
    return _row(ex[ALPACA_INSTRUCTION], ex[ALPACA_INPUT], ex[ALPACA_OUTPUT])


def _from_prompt_completion(ex: Row) -> Row:
    return _row(ex[PROMPT], "", ex[COMPLETION])


def _from_cpi(ex: Row) -> Row:
    return _row(ex[SQUAD_QUESTION], ex[SQUAD_CONTEXT], ex[CPI_ANSWER])


def squad_answer(answers: Any) -> tuple[str, int]:
    """The first SQuAD answer as (text, start); ("", -1) for unanswerable rows."""
    if isinstance(answers, dict):
        texts = answers.get(SQUAD_ANSWER_TEXT) or []
        starts = answers.get(SQUAD_ANSWER_START) or []
        if texts:
            return str(texts[0]), int(starts[0]) if starts else -1
    elif isinstance(answers, list) and answers:  # a list of {"text", "answer_start"} dicts
        first = answers[0]
        if isinstance(first, dict):
            return str(first.get(SQUAD_ANSWER_TEXT, "")), int(first.get(SQUAD_ANSWER_START, -1))
        return str(first), -1
    elif isinstance(answers, str):
        return answers, -1
    return "", -1


def _from_squad(ex: Row) -> Row:
    return _row(ex[SQUAD_QUESTION], ex[SQUAD_CONTEXT], squad_answer(ex[SQUAD_ANSWERS])[0])


def _from_messages(ex: Row) -> Row:
    """Split a conversation at its last assistant turn: history, last user turn, response."""
    messages = [
        {ROLE: str(m.get(ROLE, "")), CONTENT: str(m.get(CONTENT) or "")}
        for m in (ex[MESSAGES] or [])
        if isinstance(m, dict)
    ]
    last = max((i for i, m in enumerate(messages) if m[ROLE] == ASSISTANT), default=-1)
    if last < 1 or messages[last - 1][ROLE] != USER:
        return _row("", "", "")  # no user -> assistant exchange: dropped as empty
    return _row(messages[last - 1][CONTENT], "", messages[last][CONTENT], messages[: last - 1])


CONVERTERS: dict[str, Callable[[Row], Row]] = {
    "messages": _from_messages,
    "alpaca": _from_alpaca,
    "squad": _from_squad,
    "cpi": _from_cpi,
    "prompt_completion": _from_prompt_completion,
}


def canonical_features():
    """Arrow features of a canonical dataset (history is a list of role/content structs)."""
    from datasets import Features, Value

    message = {ROLE: Value("string"), CONTENT: Value("string")}
    return Features(
        {
            INSTRUCTION: Value("string"),
            CONTEXT: Value("string"),
            RESPONSE: Value("string"),
            HISTORY: [message],
        }
    )


def to_canonical(ds: Dataset, schema: SourceSchema) -> tuple[Dataset, int]:
    """Convert ``ds`` to canonical rows; drop rows without a response. Returns (rows, dropped)."""
    convert = CONVERTERS[schema.name]
    out = ds.map(
        convert,
        remove_columns=ds.column_names,
        features=canonical_features(),
        desc=f"Reading {schema.name} rows",
    )
    before = len(out)
    out = out.filter(lambda ex: bool(ex[RESPONSE].strip()), desc="Dropping rows without a response")
    return out, before - len(out)


def canonical_dataset(rows: list[Row]) -> Dataset:
    """A canonical dataset from in-memory rows (cf_augment's counterfactuals)."""
    from datasets import Dataset

    return Dataset.from_list(
        [_row(r[INSTRUCTION], r[CONTEXT], r[RESPONSE], r.get(HISTORY)) for r in rows],
        features=canonical_features(),
    )
