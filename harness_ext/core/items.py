"""Per-item records: what each checkpoint answered on each item, next to its results file.

``eval/step-N.json`` holds one number per task; ``eval/step-N.items.jsonl`` holds, per task
and item, whether the output stated the context answer (``cf_hit``) and the memorised one
(``param_hit``), and the output itself, so two checkpoints can be compared item by item
(``cpi flips``), intervals can be paired (``cpi gate --confidence``) and items can be filtered
by what the model knows closed-book (``cpi sweep --knowledge_filter``).

The file is JSON lines. Line 1 is a header::

    {"kind": "cpi_items", "schema_version": 1, "step": 4, "results_file": "step-4.json",
     "results_sha256": "<SHA-256 of the results file's bytes>", "tasks": {"cpi_capitals": 12}}

Then one line per item::

    {"task": "cpi_capitals", "item_id": 7, "category": "capital", "cf_hit": 1,
     "param_hit": 0, "cf_contains": 1, "param_contains": 0,
     "reason": "asserted: context answer", "output": "Arequipa",
     "cf_answer": "Arequipa", "param_answer": "Lima"}

* ``item_id``: the document's ``item_id``, its 0-based row number in the public file
  (``tasks/sources.py``), so records of two checkpoints (or a task and its closed-book probe)
  pair up even under ``--limit``.
* ``category``: ``capital`` or ``other`` for the world-facts families (the question asks for
  a capital: it starts with "What is the capital (city) of"; 202 of the 313 CF_World_Facts
  questions), ``capital`` for CF_Capitals, null elsewhere (see :func:`item_category`).
* generation tasks: ``cf_hit`` / ``param_hit`` are the item's ``cf_acc`` / ``param_acc`` (0/1),
  ``reason`` the scoring rule that decided them (``tasks/scoring/``), ``cf_contains`` /
  ``param_contains`` the paper's plain containment (0/1), ``output`` the generated text
  (lm-eval's filtered response). Records of tasks scored before these existed lack them.
* ``_choice`` tasks: ``logprob_cf`` / ``logprob_param`` (summed log-likelihood of each answer,
  natural log), ``cf_pref`` = p(ctx) / (p(ctx) + p(mem)), ``cf_hit`` = lm-eval's ``acc``
  (p(ctx) > p(mem)), ``param_hit`` = 1 when p(mem) > p(ctx).
* other tasks on cpi data (closed-book probes, ``cpisynth_id``): their 0/1 metrics as they
  are (``acc``) and ``output``.

Provenance: the header names the SHA-256 of the results file written with it; a records file
counts only while that file is unchanged (:func:`items_problem`). Both are written by
:func:`write_results_with_items`, records first, so a crash between the two leaves records
that no longer match, never a results file with someone else's records. Records come from
lm-eval's own ``log_samples`` output; the stored results file keeps none of the bulky samples.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from .constants import REASON_METRIC
from .errors import CPIError
from .files import atomic_write_text, dump_json, read_jsonl

ITEMS_SUFFIX = ".items.jsonl"
ITEMS_KIND = "cpi_items"
ITEMS_SCHEMA_VERSION = 1
CATEGORY_CAPITAL, CATEGORY_OTHER = "capital", "other"
_CAPITAL_QUESTION = re.compile(r"^\s*what(?:'s| is) the capital(?: city)? of\b", re.IGNORECASE)
# metric name -> record key (what a per-item value of that metric is stored as)
METRIC_KEYS = {
    "cf_acc": "cf_hit",
    "param_acc": "param_hit",
    "cf_pref": "cf_pref",
    "acc": "acc",
    "cf_contains": "cf_contains",
    "param_contains": "param_contains",
}
REASON_KEY = REASON_METRIC  # the per-item scoring rule of generation tasks


# ----------------------------------------------------------------------------- records


def item_category(task: str, doc: dict[str, Any]) -> str | None:
    """The category of one item, where the data has one.

    CF_World_Facts mixes capital questions with other facts: an item is ``capital`` when its
    question asks for a capital (``What is the capital [city] of ...``), else ``other``; the
    demo's ``cpisynth_cf`` world is read the same way. CF_Capitals items are all ``capital``.
    Other families have no category (None)."""
    family = task.removeprefix("cpi_").removeprefix("cpisynth_")
    if family.startswith("capitals"):
        return CATEGORY_CAPITAL
    if family.startswith(("world_facts", "cf")):
        question = str(doc.get("question") or "")
        return CATEGORY_CAPITAL if _CAPITAL_QUESTION.match(question) else CATEGORY_OTHER
    return None


def _first(value: Any) -> Any:
    """lm-eval's per-request response lists hold one entry per request; unwrap one level."""
    return value[0] if isinstance(value, (list, tuple)) and value else value


def _choice_fields(sample: dict[str, Any]) -> dict[str, Any] | None:
    """Log-likelihoods of the two continuations (context answer first) of a _choice item."""
    resps = sample.get("filtered_resps") or []
    if len(resps) != 2:
        return None
    ll_cf, ll_param = (float(_first(r)) for r in resps)
    return {
        "cf_hit": int(sample.get("acc", ll_cf > ll_param)),
        "param_hit": int(ll_param > ll_cf),
        "logprob_cf": ll_cf,
        "logprob_param": ll_param,
        "cf_pref": float(sample["cf_pref"]),
    }


def record_from_sample(task: str, sample: dict[str, Any]) -> dict[str, Any] | None:
    """One per-item record from one lm-eval logged sample (``log_samples``), or None for a
    sample that is not on cpi data (no ``item_id``: lm-eval's own benchmarks)."""
    doc = sample.get("doc") or {}
    if not isinstance(doc, dict) or doc.get("item_id") is None:
        return None
    record: dict[str, Any] = {
        "task": task,
        "item_id": int(doc["item_id"]),
        "category": item_category(task, doc),
    }
    if "cf_pref" in sample:
        fields = _choice_fields(sample)
        if fields is None:
            return None
        record.update(fields)
    else:
        for metric in ("cf_acc", "param_acc", "acc", "cf_contains", "param_contains"):
            if metric in sample:
                record[METRIC_KEYS[metric]] = int(sample[metric])
        if isinstance(sample.get(REASON_KEY), str):
            record[REASON_KEY] = sample[REASON_KEY]
        record["output"] = str(_first(sample.get("filtered_resps")) or "")
    for key in ("cf_answer", "param_answer"):
        if doc.get(key):
            record[key] = str(doc[key])
    return record


def records_from_samples(samples: dict[str, list[dict[str, Any]]] | None) -> list[dict[str, Any]]:
    """Per-item records of every task in lm-eval's ``samples`` (task -> logged samples),
    in task then item order. Only the ``none`` filter (the one cpi tasks use) is kept."""
    records = []
    for task in sorted(samples or {}):
        for sample in samples[task]:
            if sample.get("filter", "none") != "none":
                continue
            record = record_from_sample(task, sample)
            if record is not None:
                records.append(record)
    return sorted(records, key=lambda r: (r["task"], r["item_id"]))


def item_value(record: dict[str, Any], metric: str) -> float | None:
    """The per-item value of ``metric`` (``cf_acc`` -> ``cf_hit``, ...): its mean over a
    task's items is the task's metric. None when the record has no such value."""
    key = METRIC_KEYS.get(metric.partition(",")[0])
    if key == "acc" and "acc" not in record and "cf_pref" in record:
        key = "cf_hit"  # a _choice task's acc is its cf_hit
    value = record.get(key) if key else None
    return float(value) if isinstance(value, (int, float)) else None


# ----------------------------------------------------------------------------- files


def items_path(results_path: str | Path) -> Path:
    """``eval/step-4.json`` -> ``eval/step-4.items.jsonl``."""
    path = Path(results_path)
    return path.with_name(path.stem + ITEMS_SUFFIX)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_results_with_items(
    path: str | Path, results: dict[str, Any], records: list[dict[str, Any]]
) -> Path:
    """Write the per-item records (``items_path(path)``), then the results JSON ``path``,
    each atomically; the records' header names the results file's SHA-256. Returns the
    records file."""
    path = Path(path)
    text = dump_json(results)
    counts: dict[str, int] = {}
    for r in records:
        counts[r["task"]] = counts.get(r["task"], 0) + 1
    header = {
        "kind": ITEMS_KIND,
        "schema_version": ITEMS_SCHEMA_VERSION,
        "step": (results.get("cpi") or {}).get("step"),
        "results_file": path.name,
        "results_sha256": _sha256(text.encode("utf-8")),
        "tasks": counts,
    }
    lines = [json.dumps(header, ensure_ascii=False)]
    lines += [json.dumps(r, ensure_ascii=False) for r in records]
    target = items_path(path)
    atomic_write_text(target, "\n".join(lines) + "\n")
    atomic_write_text(path, text)
    return target


def read_items(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, records) of a per-item file; :class:`CPIError` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise CPIError(f"{path}: no per-item records (rerun 'cpi sweep' on the run to write them)")
    parsed = read_jsonl(path, "per-item records file (rerun 'cpi sweep')")
    if not parsed or not isinstance(parsed[0], dict) or parsed[0].get("kind") != ITEMS_KIND:
        raise CPIError(f"{path}: no '{ITEMS_KIND}' header line; rerun 'cpi sweep'")
    for n, rec in enumerate(parsed[1:], start=2):
        if not isinstance(rec, dict) or not isinstance(rec.get("task"), str):
            raise CPIError(f"{path}: line {n} is not an item record (no 'task')")
        if not isinstance(rec.get("item_id"), int) or isinstance(rec.get("item_id"), bool):
            raise CPIError(f"{path}: line {n}: 'item_id' must be an integer")
    return parsed[0], parsed[1:]


def items_problem(results_path: str | Path) -> str | None:
    """Why the per-item records of ``results_path`` cannot be used with it (None: they can):
    missing, unreadable, or written with another version of the results file."""
    results_path = Path(results_path)
    target = items_path(results_path)
    if not target.is_file():
        return "no per-item records"
    try:
        header, _ = read_items(target)
        current = _sha256(results_path.read_bytes())
    except (CPIError, OSError):
        return "per-item records unreadable"
    if header.get("results_sha256") != current:
        return "per-item records belong to another version of the results"
    return None


def load_checked_items(results_path: str | Path) -> list[dict[str, Any]]:
    """The records of ``results_path``, or :class:`CPIError` when they are missing or stale."""
    why = items_problem(results_path)
    if why:
        raise CPIError(
            f"{items_path(results_path)}: {why} for {Path(results_path).name}; rerun "
            "'cpi sweep' on the run (it rewrites both)"
        )
    return read_items(items_path(results_path))[1]


def by_task(records: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """``{task: {item_id: record}}``."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["task"], {})[r["item_id"]] = r
    return out


# ----------------------------------------------------------------------------- lm-eval files


def samples_files(results_path: str | Path) -> list[Path]:
    """lm-eval ``--log_samples`` files of a results file: ``samples_<task>_<date>.jsonl``
    next to ``results_<date>.json`` (the same date id)."""
    path = Path(results_path)
    if not path.stem.startswith("results_"):
        return []
    date_id = path.stem[len("results_") :]
    return sorted(path.parent.glob(f"samples_*_{date_id}.jsonl"))


def records_from_samples_file(path: Path) -> list[dict[str, Any]]:
    """Per-item records from one lm-eval ``samples_<task>_<date>.jsonl`` file."""
    task = path.name[len("samples_") :].rsplit("_", 1)[0]
    return records_from_samples({task: read_jsonl(path, "lm-eval samples file")})


def records_for_results_file(results_path: str | Path) -> tuple[list[dict[str, Any]], str] | None:
    """Per-item records that belong to a results file, and where they came from: its sibling
    ``.items.jsonl`` (a cpi step file; only while it matches) or lm-eval ``--log_samples``
    files next to it. None when there are none."""
    path = Path(results_path)
    if items_path(path).is_file() and items_problem(path) is None:
        return read_items(items_path(path))[1], str(items_path(path))
    files = samples_files(path)
    if files:
        records = [r for f in files for r in records_from_samples_file(f)]
        return (records, ", ".join(f.name for f in files)) if records else None
    return None
