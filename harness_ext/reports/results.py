"""Reading lm-eval results JSON: metrics per task, means with stderrs, ID scores.

Shared by the reports (``table``, ``compare``, ``gate``) and the evaluator. Nothing here
imports torch or lm-eval, so reports stay fast and run where no model fits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..core.cli_args import parse_key_values
from ..core.constants import (
    CF_ACC,
    CF_PREF,
    CPI_KEY,
    DEFAULT_FILTER,
    ID_METRIC_PREFERENCE,
    PARAM_ACC,
    REASON_METRIC,
)
from ..core.errors import CPIError
from ..core.files import read_json

# Keys of an lm-eval results entry that are not metrics.
_NON_METRIC_KEYS = {"name", "alias", "sample_len", "sample_count", " "}


# ----------------------------------------------------------------------------- lm-eval results


def is_lm_eval_results(data: Any) -> bool:
    """An lm-eval results JSON has a ``results`` object mapping task names to metric objects."""
    return isinstance(data, dict) and isinstance(data.get("results"), dict)


def load_lm_eval_results(path: Path) -> dict[str, Any]:
    """Read an lm-eval results JSON (``lm_eval --output_path`` or ``eval/step-N.json``)."""
    data = read_json(path, "lm-eval results JSON")
    if not is_lm_eval_results(data):
        raise CPIError(
            f"{path}: no 'results' object; pass a file written by 'lm_eval --output_path' "
            "(results_<date>.json) or by 'cpi sweep' (RUN_DIR/eval/step-N.json)"
        )
    return data


def _number(value: Any) -> float | None:
    """A finite float, or None for lm-eval's "N/A" / NaN / missing."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def group_names(data: dict[str, Any]) -> set[str]:
    """Names that are groups (aggregates), not leaf tasks."""
    names = set(data.get("groups") or {})
    names.update(data.get("group_subtasks") or {})
    return names


def task_metrics(data: dict[str, Any], include_groups: bool = False) -> dict[str, dict[str, Any]]:
    """``{task: {metric: value, metric_stderr: value, "n": samples}}`` for filter ``none``.

    Values are floats (fractions for accuracies) or None where lm-eval wrote "N/A". Metrics
    under other filters keep their ``metric,filter`` key. Groups are skipped unless asked.
    """
    groups = group_names(data)
    n_samples = data.get("n-samples") or {}
    out: dict[str, dict[str, Any]] = {}
    for task, entry in (data.get("results") or {}).items():
        if not isinstance(entry, dict) or (task in groups and not include_groups):
            continue
        metrics: dict[str, Any] = {}
        for key, value in entry.items():
            if key in _NON_METRIC_KEYS or "," not in key:
                continue
            name, _, filt = key.partition(",")
            if name.removesuffix("_stderr") == REASON_METRIC:
                continue  # text (rule counts), not a number: per item in the records
            label = name if filt == DEFAULT_FILTER else key
            metrics[label] = _number(value)
        n = (n_samples.get(task) or {}).get("effective") if isinstance(n_samples, dict) else None
        if n is None:
            n = entry.get("sample_len")
        metrics["n"] = int(n) if isinstance(n, (int, float)) else None
        out[task] = metrics
    return out


# ----------------------------------------------------------------------------- checked values

# Metrics that are fractions in [0, 1]: every metric the cpi tasks report, and the usual
# lm-eval accuracies. Any other metric must still be a finite number.
FRACTION_METRICS = frozenset(
    {CF_ACC, PARAM_ACC, CF_PREF, "acc", "acc_norm", "exact_match", "contains", "f1", "em"}
)


def metric_range(metric: str) -> tuple[float, float]:
    """The closed interval a value of ``metric`` must lie in ([0, 1] for fractions)."""
    name = metric.partition(",")[0]
    return (0.0, 1.0) if name in FRACTION_METRICS else (-math.inf, math.inf)


def _shown(value: Any) -> str:
    """How a bad value reads in an error: as it is written in the JSON file."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, (bool, str)) or value is None:
        return json.dumps(value)
    return repr(value)


def checked_value(value: Any, where: str, metric: str) -> float:
    """``value`` as a float, or :class:`CPIError` naming ``where`` (file and task) and
    ``metric`` unless it is a finite JSON number within :func:`metric_range`.

    A report must never pass, fail or rank on a wrong number: NaN, "N/A", null, true/false,
    text and out-of-range values are bad input, not something to skip silently.
    """
    low, high = metric_range(metric)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and math.isfinite(value) and low <= value <= high:
        return float(value)
    need = f"a number in [{low:g}, {high:g}]" if math.isfinite(high) else "a finite number"
    raise CPIError(
        f"{where}: {metric} is {_shown(value)}, not {need} "
        "(re-evaluate this task, or fix or remove the value in the file)"
    )


def checked_stderr(value: Any, where: str, metric: str) -> float | None:
    """A standard error as a float, None when absent (null, or the "N/A" lm-eval writes for a
    stderr it did not compute: one item, or ``--bootstrap_iters 0``), else
    :class:`CPIError` unless it is a finite number >= 0 (same units as ``metric``)."""
    if value is None or value == "N/A":
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and math.isfinite(value) and value >= 0:
        return float(value)
    raise CPIError(
        f"{where}: {metric}_stderr is {_shown(value)}, not a finite number >= 0 "
        "(re-evaluate this task, or fix or remove the value in the file)"
    )


def _metric_keys(metric: str) -> tuple[str, str]:
    """``cf_acc`` -> (``cf_acc,none``, ``cf_acc_stderr,none``); an explicit filter is kept."""
    name, _, filt = metric.partition(",")
    filt = filt or DEFAULT_FILTER
    return f"{name},{filt}", f"{name}_stderr,{filt}"


def checked_metric_by_task(
    data: dict[str, Any], source: str | Path, metric: str
) -> dict[str, tuple[float, float | None]]:
    """``{task: (value, stderr)}`` for every leaf task of an lm-eval results dict whose entry
    has ``metric`` (units of the metric; fractions for accuracies), each value checked.

    Raises :class:`CPIError` naming ``source``, the task and the metric for any value or
    stderr that :func:`checked_value` / :func:`checked_stderr` refuse.
    """
    key, stderr_key = _metric_keys(metric)
    groups = group_names(data)
    out: dict[str, tuple[float, float | None]] = {}
    for task, entry in (data.get("results") or {}).items():
        if task in groups or not isinstance(entry, dict) or key not in entry:
            continue
        where = f"{source}: task {task}"
        out[task] = (
            checked_value(entry[key], where, metric),
            checked_stderr(entry.get(stderr_key), where, metric),
        )
    return out


def cpi_task_metrics(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The leaf tasks that report the cpi generation metrics (``cf_acc`` and ``param_acc``)."""
    return {task: m for task, m in task_metrics(data).items() if CF_ACC in m or PARAM_ACC in m}


def mean_with_stderr(
    pairs: Iterable[tuple[float | None, float | None]],
) -> tuple[float | None, float | None]:
    """Unweighted mean of values and the standard error of that mean.

    The tasks are independent samples, so se(mean) = sqrt(sum se_i^2) / k. The stderr is None
    when any task's stderr is unknown; the mean is None when there is no value.
    """
    values, errors = [], []
    for value, err in pairs:
        if value is None:
            continue
        values.append(value)
        errors.append(err)
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if any(e is None for e in errors):
        return mean, None
    return mean, math.sqrt(sum(e * e for e in errors)) / len(values)


def parse_id_task(spec: str) -> tuple[str, str | None]:
    """``"gsm8k:exact_match,flexible-extract"`` -> (``gsm8k``, ``exact_match,flexible-extract``)."""
    task, sep, metric = spec.partition(":")
    return task.strip(), (metric.strip() or None) if sep else None


def id_task_score(
    data: dict[str, Any], spec: str
) -> tuple[str, str | None, float | None, float | None]:
    """(task, metric key, value, stderr) for one ``--id_tasks`` entry of a results JSON.

    The metric is the one named in ``spec`` or the first of
    :data:`~cpi_bench.harness_ext.core.constants.ID_METRIC_PREFERENCE` the task reports.
    Groups (``mmlu``) count as one task with their aggregated value.
    """
    task, wanted = parse_id_task(spec)
    entry = (data.get("results") or {}).get(task)
    if not isinstance(entry, dict):
        entry = (data.get("groups") or {}).get(task)
    if not isinstance(entry, dict):
        return task, wanted, None, None
    candidates = [wanted] if wanted else list(ID_METRIC_PREFERENCE)
    if not wanted:
        candidates += [k for k in entry if "," in k and "_stderr," not in k and k not in candidates]
    for key in candidates:
        if "," not in key:
            key = f"{key},{DEFAULT_FILTER}"
        if _number(entry.get(key)) is not None:
            name, _, filt = key.partition(",")
            return task, key, _number(entry[key]), _number(entry.get(f"{name}_stderr,{filt}"))
    return task, wanted, None, None


def cpi_block(data: dict[str, Any]) -> dict[str, Any]:
    """Our metadata block of a per-checkpoint file ({} for plain lm-eval output)."""
    block = data.get(CPI_KEY)
    return block if isinstance(block, dict) else {}


def model_label(data: dict[str, Any], path: Path) -> str:
    """A human name for the model of an lm-eval results JSON."""
    block = cpi_block(data)
    if block.get("label"):
        return str(block["label"])
    if data.get("model_name"):
        return str(data["model_name"])
    config = data.get("config") or {}
    args = parse_key_values(config.get("model_args"))
    if args.get("pretrained"):
        name = str(args["pretrained"])
        return f"{name}+{args['peft']}" if args.get("peft") else name
    parent = Path(path).parent.name
    return parent or Path(path).stem


# Top-level keys lm-eval writes that identify how a number was made.
_LM_EVAL_PROVENANCE_KEYS = (
    "lm_eval_version",
    "transformers_version",
    "git_hash",
    "date",
    "model_source",
    "model_name",
    "chat_template_sha",
    "system_instruction_sha",
    "fewshot_as_multiturn",
)


def provenance_of(data: dict[str, Any]) -> dict[str, Any]:
    """What a results file records about where its numbers came from, for a report to show:
    the model fingerprint (``cpi.provenance.model``), per-task data hashes and versions, the
    package versions, the evaluation settings and lm-eval's own identifying keys. Only what
    the file holds; nothing is looked up or recomputed."""
    block = cpi_block(data)
    prov = block.get("provenance") if isinstance(block.get("provenance"), dict) else {}
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    out: dict[str, Any] = {
        "model": prov.get("model"),
        "model_args": config.get("model_args"),
        "versions": prov.get("versions"),
        "task_versions": data.get("versions"),
        "data": {
            t: v.get("data")
            for t, v in (prov.get("tasks") or {}).items()
            if isinstance(v, dict) and v.get("data")
        }
        or None,
        "settings": block.get("settings"),
        "limit": config.get("limit"),
        "lm_eval": {k: data[k] for k in _LM_EVAL_PROVENANCE_KEYS if data.get(k) is not None}
        or None,
    }
    return {k: v for k, v in out.items() if v not in (None, {}, [])}
