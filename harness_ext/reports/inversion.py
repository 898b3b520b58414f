"""From per-checkpoint lm-eval results to the inversion curve (``inversion.json``).

Pure JSON in, JSON out: no model, no lm-eval import. Accuracies are fractions in [0, 1];
steps are optimizer steps (the ``N`` of ``checkpoint-N``; 0 is the base model).

A row per step::

    {"step": 2, "checkpoint": "checkpoint-2",
     "cf_acc": 0.41, "cf_acc_stderr": 0.03, "param_acc": 0.22, "param_acc_stderr": 0.02,
     "id_acc": 0.55, "id_acc_stderr": 0.01, "attn_ctx": 0.31,
     "tasks": {"cpi_capitals": {"cf_acc": 0.4, "cf_acc_stderr": 0.05, "param_acc": ..., "n": 100}},
     "id_tasks": {"mmlu": {"metric": "acc,none", "value": 0.5, "stderr": 0.01}}}

``cf_acc`` / ``param_acc`` are unweighted means over the tasks that report them (as the
``cpi`` group aggregates), with stderr = sqrt(sum se_i^2) / k.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..core.constants import (
    ATTENTION_COLUMN,
    ATTENTION_KEY,
    CF_ACC,
    ID_ACC,
    PARAM_ACC,
    SCHEMA_VERSION,
    SETTINGS_KEY,
    SUMMARY_KEYS,
)
from ..core.errors import (
    CPIError,
)
from .results import (
    checked_stderr,
    checked_value,
    cpi_block,
    cpi_task_metrics,
    id_task_score,
    mean_with_stderr,
    task_metrics,
)


def _descendants(data: dict[str, Any], names: list[str]) -> set[str]:
    """``names`` and every subtask below them (``mmlu`` -> its 57 subjects)."""
    tree = data.get("group_subtasks") or {}
    out: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name not in out:
            out.add(name)
            stack.extend(tree.get(name) or [])
    return out


def row_from_results(data: dict[str, Any], step: int, id_tasks: list[str]) -> dict[str, Any]:
    """One inversion row from one lm-eval results dict (a per-checkpoint file)."""
    block = cpi_block(data)
    cpi = cpi_task_metrics(data)
    cf, cf_se = mean_with_stderr((m.get(CF_ACC), m.get(f"{CF_ACC}_stderr")) for m in cpi.values())
    param, param_se = mean_with_stderr(
        (m.get(PARAM_ACC), m.get(f"{PARAM_ACC}_stderr")) for m in cpi.values()
    )
    id_scores: dict[str, dict[str, Any]] = {}
    for spec in id_tasks:
        task, metric, value, err = id_task_score(data, spec)
        id_scores[task] = {"metric": metric, "value": value, "stderr": err}
    if id_tasks:
        id_acc, id_se = mean_with_stderr((s["value"], s["stderr"]) for s in id_scores.values())
        if any(s["value"] is None for s in id_scores.values()):
            id_acc, id_se = None, None  # a missing benchmark would bias the mean
    else:
        id_acc, id_se = None, None
    attention = block.get(ATTENTION_KEY)
    skip = set(cpi) | _descendants(data, list(id_scores))
    other = {t: m for t, m in task_metrics(data).items() if t not in skip}
    return {
        "step": int(step),
        "checkpoint": block.get("label") or ("base" if step == 0 else f"checkpoint-{step}"),
        CF_ACC: cf,
        f"{CF_ACC}_stderr": cf_se,
        PARAM_ACC: param,
        f"{PARAM_ACC}_stderr": param_se,
        ID_ACC: id_acc,
        f"{ID_ACC}_stderr": id_se,
        ATTENTION_COLUMN: attention.get(ATTENTION_COLUMN) if isinstance(attention, dict) else None,
        "tasks": {**cpi, **other},
        "id_tasks": id_scores,
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The inversion in numbers: initial, peak and final counterfactual accuracy.

    ``rise`` = peak - initial and ``drop`` = peak - final (fractions). ``drop_stderr`` is
    sqrt(se_peak^2 + se_final^2); ``drop_exceeds_stderr`` tells whether the fall after the
    peak is larger than that (None when a stderr is unknown). The peak is the earliest step
    with the highest cf_acc; "initial" is step 0 (the base) when present.
    """
    scored = sorted((r for r in rows if r.get(CF_ACC) is not None), key=lambda r: r["step"])
    summary: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS)
    summary["n_steps"] = len(scored)
    if not scored:
        return summary
    initial, final = scored[0], scored[-1]
    peak = max(scored, key=lambda r: (r[CF_ACC], -r["step"]))
    se_peak, se_final = peak.get(f"{CF_ACC}_stderr"), final.get(f"{CF_ACC}_stderr")
    drop = peak[CF_ACC] - final[CF_ACC]
    drop_se = (
        math.sqrt(se_peak**2 + se_final**2)
        if se_peak is not None and se_final is not None and peak is not final
        else (0.0 if peak is final else None)
    )
    summary.update(
        initial_step=initial["step"],
        initial_cf_acc=initial[CF_ACC],
        peak_cf_acc=peak[CF_ACC],
        peak_step=peak["step"],
        final_step=final["step"],
        final_cf_acc=final[CF_ACC],
        rise=peak[CF_ACC] - initial[CF_ACC],
        drop=drop,
        drop_stderr=drop_se,
        drop_exceeds_stderr=None if drop_se is None else bool(drop > drop_se),
        initial_param_acc=initial.get(PARAM_ACC),
        final_param_acc=final.get(PARAM_ACC),
        initial_id_acc=initial.get(ID_ACC),
        final_id_acc=final.get(ID_ACC),
    )
    return summary


def build_inversion(
    results_by_step: dict[int, dict[str, Any]],
    *,
    id_tasks: list[str],
    run: dict[str, Any] | None = None,
    failures: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole ``inversion.json`` document from per-step lm-eval results dicts."""
    rows = [row_from_results(results_by_step[s], s, id_tasks) for s in sorted(results_by_step)]
    settings = {}
    for data in results_by_step.values():
        settings = cpi_block(data).get(SETTINGS_KEY) or {}
        break
    cpi_tasks = sorted({t for r in rows for t, m in r["tasks"].items() if CF_ACC in m})
    return {
        "schema_version": SCHEMA_VERSION,
        "run": run or {},
        SETTINGS_KEY: settings,
        "cpi_tasks": cpi_tasks,
        "id_tasks": [s.partition(":")[0] for s in id_tasks],
        "has_attention": any(r.get(ATTENTION_COLUMN) is not None for r in rows),
        "rows": rows,
        "summary": summarize(rows),
        "failures": failures or [],
    }


def load_inversion(path: Path) -> dict[str, Any]:
    """Read ``inversion.json`` (a file, or a run folder holding one) with clear errors."""
    from ..core.constants import (
        INVERSION_JSON,
    )
    from ..core.files import (
        read_json,
    )

    path = Path(path)
    if path.is_dir():
        path = path / INVERSION_JSON
        if not path.is_file():
            raise CPIError(
                f"{path}: not found; run 'cpi sweep {path.parent}' first to evaluate the run"
            )
    data = read_json(path, "inversion.json")
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise CPIError(f"{path}: no 'rows' list; is it an inversion.json from 'cpi sweep'?")
    for n, row in enumerate(data["rows"]):
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise CPIError(f"{path}: rows[{n}] has no integer 'step'; rerun 'cpi sweep'")
        check_row_values(row, path)
    data["summary"] = summarize(data["rows"])  # from the checked rows, never taken on trust
    return data


_ROW_VALUES = (CF_ACC, PARAM_ACC, ID_ACC, ATTENTION_COLUMN)


def _check_value_and_stderr(values: dict[str, Any], key: str, where: str) -> None:
    """``values[key]`` (when not null) in the metric's range, its ``_stderr`` finite >= 0."""
    if values.get(key) is not None:
        checked_value(values[key], where, key)
    if f"{key}_stderr" in values:
        checked_stderr(values[f"{key}_stderr"], where, key)


def check_row_values(row: dict[str, Any], path: Path) -> None:
    """Every number of an inversion row, as ``cpi gate`` checks them: a NaN, "N/A", true,
    text or out-of-range value is :class:`CPIError` naming the file, step, task and metric
    (null means "not measured" and passes)."""
    where = f"{path}: step {row['step']}"
    for key in _ROW_VALUES:
        _check_value_and_stderr(row, key, where)
    for group in ("tasks", "id_tasks"):
        tasks = row.get(group) or {}
        if not isinstance(tasks, dict):
            raise CPIError(f"{where}: '{group}' is not an object; rerun 'cpi sweep'")
        for task, metrics in tasks.items():
            if not isinstance(metrics, dict):
                raise CPIError(f"{where}: task {task} is not an object; rerun 'cpi sweep'")
            if group == "id_tasks":
                metrics = {str(metrics.get("metric")): metrics.get("value")}
            for key in metrics:
                if key != "n" and not key.endswith("_stderr"):
                    _check_value_and_stderr(metrics, key, f"{where}: task {task}")
