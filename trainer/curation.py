"""Data curations of the paper, as named pure transforms in one table (``CURATIONS``).

Each curation takes a canonical dataset (see ``schema.py``) and a ``CurationContext`` and
returns a new dataset; nothing is modified in place, and ``apply_curations`` records how many
examples each one kept. Choose them with ``--curation name[,name...]``; they run in the order
given.

    context_only      keep examples that carry an input context (the paper's context-only Alpaca)
    context_critical  drop the fraction --context_critical_drop (default 0.25) of the examples
                      with a context whose response the base model predicts best WITHOUT the
                      context (lowest loss): the non-context-critical ones. Examples without a
                      context pass through (add context_only to drop them too).
    context_critical_all
                      the same ranking over ALL examples: one without a context counts with
                      its own response loss, so memory-only examples (the theory's S points)
                      are dropped along with the C+S ones
    drop_overlap      drop examples that mention any entity of --overlap_entities or
                      --overlap_file (whole word, case-insensitive), e.g. countries and
                      capitals before testing on CF_Capitals
    cf_augment        add counterfactual examples (the context contradicts the facts, the target
                      is the context's answer) so that they make up --cf_augment_fraction of the
                      result: read from a cpi-schema file (context, question, answer) or built
                      from SQuAD-style data by entity substitution (Longpre et al., 2021)
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..harness_ext.core.cli_args import split_list
from ..harness_ext.core.files import read_json, read_jsonl
from .schema import (
    CONTEXT,
    EVAL_ANSWER_FIELDS,
    HISTORY,
    INSTRUCTION,
    RESPONSE,
    SQUAD_ANSWERS,
    SQUAD_CONTEXT,
    SQUAD_QUESTION,
    CPIError,
    canonical_dataset,
    detect_schema,
    squad_answer,
)
from .templates import Template

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

Scorer = Callable[[list[list[dict[str, str]]]], list[float]]


@dataclass
class CurationContext:
    """Everything a curation may need besides the data; built once by the trainer.

    ``scorer`` maps conversations (messages without context) to response losses; it is only
    called by context_critical. ``entities`` and ``counterfactuals`` are loaded up front.
    """

    template: Template
    seed: int = 42
    context_critical_drop: float = 0.25
    scorer: Scorer | None = None
    entities: tuple[str, ...] = ()
    counterfactuals: list[dict[str, Any]] = field(default_factory=list)
    cf_augment_fraction: float = 0.1


def _has_context(text: str) -> bool:
    return bool(text and text.strip())


def context_only(ds: Dataset, ctx: CurationContext) -> Dataset:
    """Keep the examples whose context (Alpaca ``input``, SQuAD ``context``) is not empty."""
    return ds.filter(lambda ex: _has_context(ex[CONTEXT]), desc="context_only")


def _drop_lowest_without_context(
    ds: Dataset, ctx: CurationContext, candidates: list[int]
) -> Dataset:
    """Drop ``floor(drop * len(candidates))`` of the candidate rows: those whose response loss
    WITHOUT their context is lowest (ties broken by position); keep every other row."""
    if ctx.scorer is None:
        raise CPIError("context_critical needs a scorer (the base model); this is a bug")
    n_drop = math.floor(ctx.context_critical_drop * len(candidates) + 1e-9)
    if not candidates or n_drop == 0:
        return ds.select(range(len(ds)))
    rows = ds.select(candidates).to_list()
    losses = ctx.scorer([ctx.template.to_messages(r, with_context=False) for r in rows])
    ranked = sorted(range(len(candidates)), key=lambda j: (losses[j], j))
    dropped = {candidates[j] for j in ranked[:n_drop]}
    return ds.select([i for i in range(len(ds)) if i not in dropped])


def context_critical(ds: Dataset, ctx: CurationContext) -> Dataset:
    """Drop ``floor(drop * n)`` of the n examples with a context: those whose response loss
    WITHOUT the context is lowest (the paper's curation). Examples without one pass through."""
    with_ctx = [i for i, c in enumerate(ds[CONTEXT]) if _has_context(c)]
    return _drop_lowest_without_context(ds, ctx, with_ctx)


def context_critical_all(ds: Dataset, ctx: CurationContext) -> Dataset:
    """Drop ``floor(drop * n)`` of ALL n examples, lowest response loss without a context
    first; an example that has no context is ranked by its own loss. Those are the theory's
    S points (answered from memory alone), as non-context-critical as the C+S points, which
    ``context_critical`` never removes (paper §5, Proposition 2)."""
    return _drop_lowest_without_context(ds, ctx, list(range(len(ds))))


def entity_pattern(entities: Sequence[str]) -> re.Pattern[str] | None:
    """One regex matching any entity as a whole word, case-insensitively."""
    words = sorted({e.strip() for e in entities if e and e.strip()}, key=len, reverse=True)
    if not words:
        return None
    return re.compile(
        r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE
    )


def _example_text(ex: dict[str, Any]) -> str:
    turns = " ".join(m["content"] for m in ex.get(HISTORY) or [])
    return " ".join((turns, ex[INSTRUCTION], ex[CONTEXT], ex[RESPONSE]))


def drop_overlap(ds: Dataset, ctx: CurationContext) -> Dataset:
    """Drop the examples whose text (all turns, context and response) mentions an entity."""
    pattern = entity_pattern(ctx.entities)
    if pattern is None:
        raise CPIError(
            "drop_overlap got no entities; pass --overlap_entities 'A,B' or --overlap_file FILE"
        )
    return ds.filter(lambda ex: pattern.search(_example_text(ex)) is None, desc="drop_overlap")


def cf_augment(ds: Dataset, ctx: CurationContext) -> Dataset:
    """Append counterfactual examples so they are ``cf_augment_fraction`` of the result:
    ``round(f * n / (1 - f))`` of them, drawn without replacement (seeded) from the source."""
    from datasets import concatenate_datasets

    f = ctx.cf_augment_fraction
    want = round(f * len(ds) / (1.0 - f))
    pool = list(ctx.counterfactuals)
    if want == 0:
        return ds.select(range(len(ds)))
    if not pool:
        raise CPIError(
            "cf_augment found no counterfactual examples in --cf_augment_source; "
            "give a cpi-schema file or SQuAD-style rows whose answer occurs in "
            "the context"
        )
    random.Random(ctx.seed).shuffle(pool)
    if want > len(pool):
        logger.warning(
            "cf_augment: wanted %d counterfactuals, the source has %d; using all", want, len(pool)
        )
    extra = canonical_dataset(pool[:want])
    return concatenate_datasets([ds, extra.cast(ds.features)])


@dataclass(frozen=True)
class Curation:
    """A table row: the transform and its one-line description (shown in --help)."""

    fn: Callable[[Dataset, CurationContext], Dataset]
    help: str
    needs_scorer: bool = False  # the trainer loads the base model's scorer only for these


CURATIONS: dict[str, Curation] = {
    "context_only": Curation(context_only, "keep examples that carry an input context"),
    "context_critical": Curation(
        context_critical,
        "drop --context_critical_drop of the context examples the base model answers best "
        "without their context",
        needs_scorer=True,
    ),
    "context_critical_all": Curation(
        context_critical_all,
        "drop --context_critical_drop of ALL examples, lowest response loss without a context "
        "first (examples without one count too: the theory's memory-only S points)",
        needs_scorer=True,
    ),
    "drop_overlap": Curation(
        drop_overlap, "drop examples mentioning an entity of --overlap_entities/--overlap_file"
    ),
    "cf_augment": Curation(
        cf_augment,
        "mix in --cf_augment_fraction of counterfactual examples from --cf_augment_source",
    ),
}


def parse_curations(spec: str | None) -> list[str]:
    """``"a,b"`` -> ["a", "b"]; unknown names raise a one-line error."""
    names = split_list(spec)
    unknown = [n for n in names if n not in CURATIONS]
    if unknown:
        raise CPIError(
            f"unknown --curation {', '.join(unknown)}; choose from "
            f"{', '.join(CURATIONS)} (comma-separated)"
        )
    return names


def apply_curations(
    ds: Dataset, names: Sequence[str], ctx: CurationContext, source: str = "the dataset"
) -> tuple[Dataset, list[dict[str, Any]]]:
    """Run the curations in order; return the result and one {"name", "kept", "total"} per
    curation. An empty result is an error naming the curation that emptied it."""
    report = []
    for name in names:
        total = len(ds)
        ds = CURATIONS[name].fn(ds, ctx)
        report.append({"name": name, "kept": len(ds), "total": total})
        logger.info("curation %s kept %d of %d examples", name, len(ds), total)
        if len(ds) == 0:
            hint = " (it has no input contexts)" if name == "context_only" else ""
            raise CPIError(
                f"curation {name} left 0 of {total} examples of {source}{hint}; drop it from "
                "--curation or use a dataset it keeps examples of"
            )
    return ds, report


# --- inputs of the curations -----------------------------------------------------------------

_PROPER_NOUN = re.compile(r"(?<![\w'])([A-Z][\w'’.-]*(?:\s+(?:of\s+|the\s+)?[A-Z][\w'’.-]*)*)")


def _question_entities(question: str) -> list[str]:
    """Capitalised phrases of a question except its first word ("What is the capital of
    Afghanistan?" -> ["Afghanistan"])."""
    body = question.split(maxsplit=1)[1] if len(question.split()) > 1 else ""
    return [m.group(1).rstrip(".?!,;:") for m in _PROPER_NOUN.finditer(body)]


def _read_records(path: Path) -> list[Any]:
    """The records of an --overlap_file (JSON Lines, or a JSON list or ``{"data": [...]}``);
    bad JSON or non-UTF-8 text is an error naming the file and line."""
    if path.suffix == ".jsonl":
        return read_jsonl(path, "--overlap_file")
    data = read_json(path, "--overlap_file")
    if isinstance(data, dict):
        data = data.get("data") or data.get("rows") or list(data.values())
    if not isinstance(data, list):
        raise CPIError(f"{path} holds no list of records; give a JSON list or JSON lines")
    return data


def _record_entities(path: Path, rec: Any) -> list[str]:
    """Answers (strings, or lists of aliases) and question entities of one evaluation record."""
    if isinstance(rec, str):
        return [rec]
    if not isinstance(rec, dict):
        raise CPIError(
            f"--overlap_file {path} holds a record that is {type(rec).__name__}, not an object "
            "or a string; give evaluation records (answer, question, ...) or entity strings"
        )
    found = []
    for key in EVAL_ANSWER_FIELDS:
        value = rec.get(key)
        found += [str(v) for v in (value if isinstance(value, list) else [value]) if v]
    if rec.get(SQUAD_QUESTION):
        found += _question_entities(str(rec[SQUAD_QUESTION]))
    return found


def load_entities(entities: str | None, path: str | None) -> tuple[str, ...]:
    """Entities from a comma-separated list and/or a file: ``.txt`` (one per line) or a
    ``.json``/``.jsonl`` evaluation file (answer fields plus capitalised phrases of questions,
    e.g. CF_Capitals gives the countries and both capitals)."""
    found = split_list(entities)
    if path:
        p = Path(path)
        if not p.is_file():
            raise CPIError(
                f"--overlap_file {path} not found; pass an existing .txt, .json or .jsonl file"
            )
        if p.suffix == ".txt":
            found += [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
        elif p.suffix in {".json", ".jsonl"}:
            for rec in _read_records(p):
                found += _record_entities(p, rec)
        else:
            raise CPIError(
                f"--overlap_file {path}: use a .txt (one entity per line), .json or .jsonl file"
            )
    return tuple(dict.fromkeys(found))


_QTYPES = (
    "how many",
    "how much",
    "how long",
    "what year",
    "when",
    "where",
    "whom",
    "whose",
    "who",
    "which",
    "why",
    "how",
    "what",
)


def question_type(question: str, answer: str) -> tuple[str, bool]:
    """A coarse answer type: the question's wh-phrase and whether the answer is numeric.
    (Longpre et al. used NER types; this keeps substitutes of the same kind without an NER
    model: a person for "who", a year for "what year", a number for "how many".)"""
    q = question.lower()
    wh = next((w for w in _QTYPES if re.search(rf"\b{w}\b", q)), "other")
    return wh, bool(re.fullmatch(r"[\d.,\s%$-]+", answer.strip()))


def substitute_counterfactuals(rows: Sequence[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Counterfactuals from SQuAD-style rows (context, question, answers): replace every
    occurrence of the answer in the context by another answer of the same question type that
    the context does not contain; the substitute is the target. Rows whose answer does not
    occur in the context, or with no substitute of their type, are skipped."""
    rng = random.Random(seed)
    parsed = []
    for r in rows:
        answer, _ = squad_answer(r[SQUAD_ANSWERS])
        context, question = str(r[SQUAD_CONTEXT]), str(r[SQUAD_QUESTION])
        if answer.strip() and answer in context:
            parsed.append((context, question, answer, question_type(question, answer)))
    by_type: dict[tuple[str, bool], list[str]] = defaultdict(list)
    for _, _, answer, qtype in parsed:
        if answer not in by_type[qtype]:
            by_type[qtype].append(answer)
    out = []
    for context, question, answer, qtype in parsed:
        candidates = [
            a
            for a in by_type[qtype]
            if a.lower() != answer.lower() and a.lower() not in context.lower()
        ]
        if not candidates:
            continue
        sub = rng.choice(candidates)
        new_context = re.sub(rf"(?<!\w){re.escape(answer)}(?!\w)", lambda _m, s=sub: s, context)
        if new_context == context:  # the answer only occurs inside a longer word
            new_context = context.replace(answer, sub)
        out.append({INSTRUCTION: question, CONTEXT: new_context, RESPONSE: sub, HISTORY: []})
    return out


def load_counterfactuals(path: str | None, seed: int) -> list[dict[str, Any]]:
    """Canonical counterfactual rows from a cpi-schema file (used as they are) or a
    SQuAD-schema file (built by ``substitute_counterfactuals``)."""
    if not path:
        raise CPIError(
            "cf_augment needs --cf_augment_source FILE (cpi schema: context, "
            "question, answer; or SQuAD: context, question, answers)"
        )
    from .schema import check_text_features, is_local_file, load_source

    if is_local_file(path) and not Path(path).is_file():
        raise CPIError(
            f"--cf_augment_source {path} not found; pass an existing .jsonl/.json/.parquet file"
        )
    allowed = ("cpi", "squad")
    ds = load_source(path, allowed=allowed)  # a JSON file's answers are checked to be text
    source = f"--cf_augment_source {path}"
    schema = detect_schema(ds.column_names, source, allowed=allowed)
    check_text_features(ds, schema, source)
    if schema.name == "cpi":
        return [
            {
                INSTRUCTION: str(r[SQUAD_QUESTION]),
                CONTEXT: str(r[SQUAD_CONTEXT]),
                RESPONSE: str(r["answer"]),
                HISTORY: [],
            }
            for r in ds
        ]
    return substitute_counterfactuals(list(ds), seed)
