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

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..harness_ext.core.errors import CPIError, one_line

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


# Suffixes that mean "a data file" even when no such file exists (so the name is a typo, not
# a hub id); datasets would read some of them, but cpi train does not: one reader per format.
_OTHER_DATA_SUFFIXES = {".csv", ".tsv", ".txt", ".xls", ".xlsx", ".arrow", ".gz", ".zip", ".bz2"}
_SUPPORTED = ".jsonl/.json/.parquet"


def load_source(
    name: str,
    split: str = "train",
    config_name: str | None = None,
    allowed: tuple[str, ...] | None = None,
) -> Dataset:
    """Load a local ``.jsonl``/``.json``/``.parquet`` file or a hub dataset as one split.

    A local JSON file is read once in Python first (``check_json_file``): datasets reports a
    bad line as "error in row 0" and quietly re-encodes a column with mixed types, so each
    problem is caught here with its line number. ``allowed`` restricts the schemas a local
    file is checked against (see ``detect_schema``).
    """
    path = Path(name).expanduser()
    suffix = path.suffix.lower()
    if suffix not in LOCAL_SUFFIXES and (path.is_file() or suffix in _OTHER_DATA_SUFFIXES):
        raise CPIError(
            f"dataset file {name} has type {suffix or '(no suffix)'}, which cpi train does not "
            f"read; convert it to {_SUPPORTED} (e.g. JSON Lines: one object per line with the "
            "schema's columns)"
        )
    if suffix in LOCAL_SUFFIXES:
        if not path.is_file():
            raise CPIError(
                f"dataset file {name} not found; pass an existing {_SUPPORTED} file "
                "or a hub id such as tatsu-lab/alpaca"
            )
        if path.stat().st_size == 0:
            raise CPIError(f"dataset file {name} is empty; give a {_SUPPORTED} file with examples")
        if suffix == ".parquet":
            check_parquet_file(path, allowed)
        else:
            check_json_file(path, allowed)
        return _load_local(path, LOCAL_SUFFIXES[suffix])
    if os.path.isdir(name):
        raise CPIError(f"dataset {name} is a folder; pass one {_SUPPORTED} file or a hub id")
    return _load_hub(name, split, config_name)


def _load_local(path: Path, builder: str) -> Dataset:
    """``load_dataset`` for a checked local file; a failure left is one line naming the file."""
    from datasets import load_dataset

    try:
        return load_dataset(builder, data_files=str(path), split="train")
    except CPIError:
        raise
    except Exception as err:  # noqa: BLE001 - arrow/datasets raise many types for bad files
        raise CPIError(
            f"dataset file {path} could not be read as {builder} ({one_line(err)}); check "
            f"that it is a valid {builder} file, or convert it to JSON Lines"
        ) from err


def _load_hub(name: str, split: str, config_name: str | None) -> Dataset:
    """A hub dataset's split (the paper's datasets map "train" to their training split)."""
    from datasets import load_dataset

    hub = HUB_DATASETS.get(name)
    if hub is not None and split == "train":
        split = hub.split
    try:
        return load_dataset(name, config_name, split=split)
    except CPIError:
        raise
    except Exception as err:  # noqa: BLE001 - hub, network and builder errors alike
        raise CPIError(
            f"dataset {name} (split {split}) could not be loaded ({one_line(err)}); check the "
            f"hub id and --dataset_train_split, or pass a local {_SUPPORTED} file"
        ) from err


# --- the checks of a local JSON file ---------------------------------------------------------

# Text columns hold JSON strings (or null, read as ""), never numbers, booleans, lists or
# objects. Why an error rather than a conversion: datasets stores a column whose rows mix
# strings and numbers as JSON text and then quotes EVERY string target ("Paris" -> '"Paris"'),
# so one stray number silently changes the whole training set; converting the numbers
# ourselves would have to pick a spelling (1e3 or 1000.0? true or True?) for text the model is
# trained to produce. A number in a text field is a data mistake as often as not (an id or a
# year left unquoted), and the fix, quoting it, is one edit the author can check.
TEXT_COLUMNS = frozenset(
    {
        ALPACA_INSTRUCTION,
        ALPACA_INPUT,
        ALPACA_OUTPUT,
        PROMPT,
        COMPLETION,
        SQUAD_CONTEXT,
        SQUAD_QUESTION,
        CPI_ANSWER,
    }
)


def _describe(value: Any) -> str:
    """``a number (7)``, ``a list (["a", "b"])``: what a JSON value is, shortened."""
    kinds = {bool: "a boolean", int: "a number", float: "a number", list: "a list"}
    kinds[dict] = "an object"
    text = json.dumps(value, ensure_ascii=False)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{kinds.get(type(value), type(value).__name__)} ({text})"


def _text_problem(value: Any) -> str | None:
    """None for text (or null); else what is wrong and the one edit that fixes it."""
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, list):
        first = next((v for v in value if isinstance(v, str)), None)
        example = f", e.g. {json.dumps(first, ensure_ascii=False)}" if first else ""
        return f"is {_describe(value)}, not text; give one JSON string{example}"
    if isinstance(value, dict):
        return f"is {_describe(value)}, not text; give a JSON string"
    quoted = json.dumps(json.dumps(value))
    return f"is {_describe(value)}, not text; quote it as a JSON string ({quoted})"


def _messages_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list):
        return f"is {_describe(value)}; give a list of {{role, content}} objects"
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            return f"turn {i} is {_describe(message)}; each turn is a {{role, content}} object"
        for key in (ROLE, CONTENT):
            if _text_problem(message.get(key)) is not None:
                return f"turn {i}'s {key} is {_describe(message[key])}; give a JSON string"
    return None


def _answers_problem(value: Any) -> str | None:
    """SQuAD answers: {"text": [str, ...], "answer_start": [int, ...]}, a list of
    {"text", "answer_start"} objects, or one string."""
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, dict):
        texts = value.get(SQUAD_ANSWER_TEXT)
        texts = texts if isinstance(texts, list) else [texts]
    elif isinstance(value, list):
        texts = [a.get(SQUAD_ANSWER_TEXT) if isinstance(a, dict) else a for a in value]
    else:
        return f'is {_describe(value)}; give {{"text": ["..."], "answer_start": [0]}}'
    bad = next((t for t in texts if t is not None and not isinstance(t, str)), None)
    if bad is not None:
        return f"holds an answer text that is {_describe(bad)}; give JSON strings"
    return None


_FIELD_CHECKS: dict[str, Callable[[Any], str | None]] = {
    **dict.fromkeys(TEXT_COLUMNS, _text_problem),
    MESSAGES: _messages_problem,
    SQUAD_ANSWERS: _answers_problem,
}


@dataclass
class JsonFileProfile:
    """What one pass over a JSON file found: its columns (in order of appearance), its row
    count, and per checked column the first row whose value is wrong: (where, what)."""

    columns: dict[str, None] = field(default_factory=dict)
    rows: int = 0
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add(self, where: str, row: Any) -> None:
        """Count one row; remember its columns and the first problem of each column."""
        if not isinstance(row, dict):
            raise CPIError(
                f"{where} is {_describe(row)}, not a JSON object; give one object per row"
            )
        self.rows += 1
        for key, value in row.items():
            self.columns.setdefault(key)
            check = _FIELD_CHECKS.get(key)
            if check is not None and key not in self.problems:
                problem = check(value)
                if problem is not None:
                    self.problems[key] = (where, problem)


def check_json_file(path: Path, allowed: tuple[str, ...] | None = None) -> JsonFileProfile:
    """Read a ``.jsonl``/``.json`` file once: UTF-8, valid JSON on every line, one object per
    row, and the text fields of its schema hold strings; each error names the line."""
    profile = _profile_json(path)
    if profile.rows == 0:
        raise CPIError(f"dataset file {path} has no rows; give a {_SUPPORTED} file with examples")
    schema = detect_schema(list(profile.columns), str(path), allowed)
    for column in schema.columns:
        if column in profile.problems:
            where, problem = profile.problems[column]
            raise CPIError(f"{where}: field {column!r} {problem} (the {schema.name} schema)")
    return profile


def check_parquet_file(path: Path, allowed: tuple[str, ...] | None = None) -> None:
    """A parquet file's footer alone (no rows read): readable, has rows, and the schema's text
    columns are typed as text, so the error comes before datasets converts the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path)
    except Exception as err:  # noqa: BLE001 - ArrowInvalid, OSError, ...
        raise CPIError(
            f"dataset file {path} is not a readable parquet file ({one_line(err)}); "
            "write it again (e.g. Dataset.to_parquet) or convert it to JSON Lines"
        ) from None
    if meta.metadata.num_rows == 0:
        raise CPIError(f"dataset file {path} has no rows; give a {_SUPPORTED} file with examples")
    arrow = meta.schema_arrow
    schema = detect_schema(arrow.names, str(path), allowed)
    for column in schema.columns:
        kind = arrow.field(column).type
        if column in TEXT_COLUMNS and not (
            pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
        ):
            raise CPIError(
                f"dataset file {path}: column {column!r} holds {kind} values, not text; store "
                f"it as strings (the {schema.name} schema)"
            )


def _profile_json(path: Path) -> JsonFileProfile:
    """A JSON array (``.json``: rows are named "row N") or JSON Lines ("line N")."""
    profile = JsonFileProfile(columns={})
    if path.suffix.lower() == ".json":
        whole = _parse_whole_json(path)
        if whole is not None:
            rows = whole if isinstance(whole, list) else [whole]
            for i, row in enumerate(rows, 1):
                profile.add(f"dataset file {path} row {i}", row)
            return profile
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            where = f"dataset file {path} line {n}"
            line = _decode(raw, where)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise CPIError(
                    f"{where} is not valid JSON ({err.msg} at column {err.colno}); fix or "
                    "remove that line (JSON Lines: one complete object per line)"
                ) from None
            profile.add(where, row)
    return profile


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CPIError(_not_utf8(where, raw, err.start)) from None


def _not_utf8(where: str, data: bytes, offset: int) -> str:
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return (
        f"{where} is not UTF-8 text (byte 0x{data[offset]:02x} at column {column}); re-save "
        "the file as UTF-8, e.g. iconv -f latin1 -t utf-8"
    )


def _parse_whole_json(path: Path) -> Any:
    """The parsed file when it is one JSON document (an array of rows, pretty-printed or
    not); None when it is JSON Lines, which datasets also accepts under ``.json``."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise CPIError(_not_utf8(f"dataset file {path} line {line}", data, err.start)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        if text.lstrip().startswith("["):
            raise CPIError(
                f"dataset file {path} line {err.lineno} is not valid JSON ({err.msg} at column "
                f"{err.colno}); fix the file (a JSON array of row objects, or JSON Lines)"
            ) from None
        return None


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


def check_text_features(ds: Dataset, schema: SourceSchema, source: str) -> None:
    """Parquet and hub data carry column types: a text column of numbers (or lists) is the
    same mistake as in a JSON file, and would be silently stringified by the conversion."""
    from datasets import Value

    for column in schema.columns:
        feature = ds.features.get(column)
        if column not in TEXT_COLUMNS or feature is None:
            continue
        if not (isinstance(feature, Value) and feature.dtype in _TEXT_DTYPES):
            kind = feature.dtype if isinstance(feature, Value) else type(feature).__name__
            raise CPIError(
                f"dataset {source}: column {column!r} holds {kind} values, not text; store it "
                f"as strings (the {schema.name} schema)"
            )


_TEXT_DTYPES = {"string", "large_string", "null"}


def to_canonical(
    ds: Dataset, schema: SourceSchema, source: str | None = None
) -> tuple[Dataset, int]:
    """Convert ``ds`` to canonical rows; drop rows without a response. Returns (rows, dropped).

    ``source`` (the dataset's name) turns on the column-type check and names it in errors.
    """
    if source is not None:
        check_text_features(ds, schema, source)
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
