"""``cpi gate --confidence``: is the drop larger than ``--max-drop`` beyond sampling noise?

A point estimate fails a candidate that scored 6 points lower on 50 items as surely as one
that did on 5,000. With per-item records for both files, the gate pairs the items (same task,
same ``item_id``) and resamples them: one-sided paired bootstrap, items resampled with
replacement within each task, the same draw for baseline and candidate,
:data:`~.stats.BOOTSTRAP_ITERATIONS` resamples with seed :data:`~.stats.BOOTSTRAP_SEED`.
The drop (baseline mean - candidate mean, unweighted over tasks, as the gate's point
estimate) exceeds ``--max-drop`` with confidence C when the (1 - C) quantile of its bootstrap
distribution (the one-sided lower bound) is above ``--max-drop``; only then does the
candidate fail.

Per-item records of a results file: a ``cpi sweep`` step file's sibling
``step-N.items.jsonl`` (while it matches the file), or lm-eval ``--log_samples`` files
``samples_<task>_<date>.jsonl`` next to ``results_<date>.json``. Without them for both files
(or without shared items for a task) the gate says so and falls back to the point estimate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.items import by_task, item_value, records_for_results_file
from . import stats


def _values(records: dict[int, dict[str, Any]], metric: str) -> dict[int, float]:
    """``{item_id: per-item value of metric}`` for the records that have one."""
    out = {}
    for item_id, record in records.items():
        value = item_value(record, metric)
        if value is not None:
            out[item_id] = value
    return out


def paired_items(
    base_path: Path, cand_path: Path, tasks: list[str], metric: str
) -> tuple[dict[str, list[tuple[float, float]]] | None, str]:
    """(``{task: [(baseline value, candidate value)] per shared item}``, where the records
    came from), or (None, why not) when a file or a task lacks per-item values."""
    found = {}
    for role, path in (("baseline", base_path), ("candidate", cand_path)):
        got = records_for_results_file(path)
        if got is None:
            why = (
                f"the {role} {path} has no per-item records (no matching step-N.items.jsonl, "
                "no lm-eval samples_*.jsonl next to it)"
            )
            return None, why
        found[role] = (by_task(got[0]), got[1])
    pairs: dict[str, list[tuple[float, float]]] = {}
    for task in tasks:
        a = _values(found["baseline"][0].get(task, {}), metric)
        b = _values(found["candidate"][0].get(task, {}), metric)
        shared = sorted(set(a) & set(b))
        if not shared:
            return None, f"task {task} has no item with a per-item {metric} in both files"
        pairs[task] = [(a[i], b[i]) for i in shared]
    return pairs, f"baseline: {found['baseline'][1]}; candidate: {found['candidate'][1]}"


def significance(
    base_path: Path,
    cand_path: Path,
    tasks: list[str],
    metric: str,
    max_drop: float,
    confidence: float,
) -> dict[str, Any]:
    """The gate's ``significance`` block: ``method`` (``paired_bootstrap`` or
    ``point_estimate`` when falling back), ``note`` (one line for the log) and, with items,
    ``n_items``, ``drop_items`` (the drop on the paired items), ``lower_bound`` (one-sided,
    at ``confidence``) and ``exceeds`` (lower bound > max_drop). Fractions throughout."""
    pairs, source = paired_items(base_path, cand_path, tasks, metric)
    if pairs is None:
        return {
            "method": "point_estimate",
            "confidence": confidence,
            "note": f"--confidence {confidence:g}: {source}; falling back to the point "
            "estimate of the drop",
        }
    dist = stats.paired_bootstrap(pairs)
    low = stats.lower_bound(dist, confidence)
    n = sum(len(p) for p in pairs.values())
    exceeds = low > max_drop + 1e-9
    return {
        "method": "paired_bootstrap",
        "confidence": confidence,
        "n_items": n,
        "drop_items": stats.point_difference(pairs),
        "lower_bound": low,
        "exceeds": exceeds,
        "iterations": stats.BOOTSTRAP_ITERATIONS,
        "seed": stats.BOOTSTRAP_SEED,
        "records": source,
        "note": f"one-sided paired bootstrap over {n} paired items ({len(pairs)} task(s), "
        f"{stats.BOOTSTRAP_ITERATIONS} resamples, seed {stats.BOOTSTRAP_SEED}): the drop is "
        f"at least {100 * low:.1f} points with {100 * confidence:g}% confidence, "
        + ("above" if exceeds else "not above")
        + f" --max-drop {100 * max_drop:.1f}",
    }
