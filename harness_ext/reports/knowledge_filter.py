"""The knowledge-filtered columns of the inversion rows, from per-item files only.

``cpi sweep --knowledge_filter`` writes the closed-book probes' records
(``eval/closedbook-N.items.jsonl``). An item is *known* at a step when its probe stated the
memorised answer (``acc`` = 1). For each row and each task with a probe:

* ``cf_acc_known`` / ``param_acc_known``: the mean ``cf_hit`` / ``param_hit`` over the known
  items (matched by ``item_id``), fractions; null when no item is known;
* ``known_frac``: known items / probed items of the task; ``n_known``: their count.

The row's values are unweighted means over the tasks that have them (as ``cf_acc`` is).
With mode ``base`` the known set is the base model's (step 0) for every row; with ``every``
each row uses its own step's probes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...tasks.closedbook import is_probe, probe_for
from ..core.constants import EVAL_DIR, eval_file_name
from ..core.items import by_task, items_path, items_problem, read_items

KNOWN_KEYS = ("cf_acc_known", "param_acc_known", "known_frac")


def known_ids(records: list[dict[str, Any]]) -> dict[str, tuple[set[int], set[int]]]:
    """``{probe task: (known item ids, probed item ids)}`` from closed-book records."""
    out: dict[str, tuple[set[int], set[int]]] = {}
    for r in records:
        if not is_probe(r["task"]):
            continue
        known, probed = out.setdefault(r["task"], (set(), set()))
        probed.add(r["item_id"])
        if r.get("acc") == 1:
            known.add(r["item_id"])
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def task_known_metrics(
    records: dict[int, dict[str, Any]], known: set[int], probed: set[int]
) -> dict[str, Any]:
    """The known-item metrics of one task at one step (records keyed by item_id)."""
    ids = [i for i in records if i in probed]
    hits = [records[i] for i in ids if i in known]
    return {
        "cf_acc_known": _mean([float(r["cf_hit"]) for r in hits if "cf_hit" in r]),
        "param_acc_known": _mean([float(r["param_hit"]) for r in hits if "param_hit" in r]),
        "known_frac": len(hits) / len(ids) if ids else None,
        "n_known": len(hits),
    }


def row_known_metrics(
    step_records: list[dict[str, Any]], known: dict[str, tuple[set[int], set[int]]]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(row values, per-task values) for one step's records and a known set; only
    generation tasks (those with ``param_hit`` and an ``output``) count, as in ``cf_acc``."""
    per_task: dict[str, dict[str, Any]] = {}
    for task, records in sorted(by_task(step_records).items()):
        probe = probe_for(task)
        if probe not in known or not any("output" in r for r in records.values()):
            continue
        per_task[task] = task_known_metrics(records, *known[probe])
    row = {
        key: _mean([m[key] for m in per_task.values() if m[key] is not None]) for key in KNOWN_KEYS
    }
    row["n_known"] = sum(m["n_known"] for m in per_task.values()) if per_task else None
    return row, per_task


def _closedbook_records(eval_dir: Path, step: int) -> list[dict[str, Any]] | None:
    path = eval_dir / f"closedbook-{step}.json"
    if not path.is_file() or items_problem(path):
        return None
    return read_items(items_path(path))[1]


def attach_known(run_dir: Path, inversion: dict[str, Any], mode: str | None) -> None:
    """Add the known-item columns to every row of ``inversion`` (in place) and a
    ``knowledge_filter`` block. Rows without per-item records or probes (a probe run that
    failed) get nulls; the block's ``missing`` lists the steps without probes."""
    if not mode:
        return
    eval_dir = Path(run_dir) / EVAL_DIR
    base = _closedbook_records(eval_dir, 0) if mode == "base" else None
    missing = []
    for row in inversion.get("rows") or []:
        step = row["step"]
        probes = base if mode == "base" else _closedbook_records(eval_dir, step)
        step_file = eval_dir / eval_file_name(step)
        if probes is None or items_problem(step_file):
            row.update(dict.fromkeys((*KNOWN_KEYS, "n_known")))
            missing.append(step)
            continue
        records = read_items(items_path(step_file))[1]
        values, per_task = row_known_metrics(records, known_ids(probes))
        row.update(values)
        for task, metrics in per_task.items():
            row.setdefault("tasks", {}).setdefault(task, {}).update(metrics)
    inversion["knowledge_filter"] = {
        "mode": mode,
        "known_at": "step 0 (base model)" if mode == "base" else "each row's own step",
        "rule": "known = the closed-book probe (<task>_closedbook) states the memorised "
        "answer; cf_acc_known / param_acc_known = mean over known items, matched by item_id",
        "missing": missing,
    }


# ----------------------------------------------------------------------------- table columns

KNOWN_HEADERS = ("CF acc known (%)", "param acc known (%)", "known (%)")


def has_known(rows: list[dict[str, Any]]) -> bool:
    """True when any row carries the knowledge-filtered columns."""
    return any(r.get("known_frac") is not None for r in rows)


def known_cells(row: dict[str, Any]) -> list[float | None]:
    """The row's ``cf_acc_known``, ``param_acc_known`` and ``known_frac`` (fractions)."""
    return [row.get(k) for k in KNOWN_KEYS]


def known_note(data: dict[str, Any]) -> str:
    """What the known columns mean, for the note under a table."""
    block = data.get("knowledge_filter") or {}
    return (
        " Known: items whose closed-book probe (the question without its context) states the "
        f"memorised answer, at {block.get('known_at', 'step 0')}; 'CF/param acc known' are "
        "the accuracies on those items, 'known' their share of the items."
    )
