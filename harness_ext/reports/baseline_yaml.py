"""``cpi gate --baseline FILE.yaml``: a baseline in the shape of vLLM's lm-eval CI configs.

vLLM keeps one YAML per model under ``.buildkite/lm-eval-harness/configs/`` and checks every
listed metric of a fresh ``lm_eval`` run against it. The same file works here::

    model_name: "HuggingFaceTB/SmolLM2-135M-Instruct"   # required: who the numbers are of
    tasks:                                              # required, at least one
    - name: "cpi_capitals"                              # an lm-eval task name
      metrics:                                          # at least one per task
      - name: "cf_acc,none"                             # lm-eval's "metric,filter" (or "cf_acc")
        value: 0.62                                     # the baseline's value (a fraction)
    rtol: 0.08               # optional: pass iff measured >= value * (1 - rtol)
    limit: 200               # optional: the --limit the values were made with
    num_fewshot: 0           # optional
    apply_chat_template: false    # optional
    fewshot_as_multiturn: false   # optional
    gen_kwargs: "max_gen_toks=32" # optional: lm-eval's --gen_kwargs

Each (task, metric) is one check: it passes when the candidate's value is at least the
threshold: ``value * (1 - rtol)`` (vLLM's rule; ``rtol`` 0.08 as vLLM when the file gives
none) or ``value - --max-drop`` when ``--max-drop`` is given (it then overrides ``rtol``).
With ``--confidence C`` a check fails only when the one-sided C upper Wilson bound of the
candidate's value (from its item count) is below the threshold. The settings the file states
(limit, num_fewshot, apply_chat_template, fewshot_as_multiturn, gen_kwargs) are compared with
the candidate's like any other (:mod:`.settings`). Other keys of vLLM's configs (``backend``,
``max_model_len``, ``trust_remote_code``, ...) say how vLLM launched the model: they are read
past and listed in the report.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..core.cli_args import parse_key_values
from ..core.errors import CPIError
from .results import (
    checked_metric_by_task,
    checked_value,
    task_metrics,
)
from .settings import (
    check_settings,
    mismatch_lines,
    mismatches,
    task_settings,
)
from .stats import wilson_interval

VLLM_DEFAULT_RTOL = 0.08  # vLLM's DEFAULT_RTOL in test_lm_eval_correctness.py
YAML_SUFFIXES = (".yaml", ".yml")
KNOWN_KEYS = (
    "model_name",
    "tasks",
    "rtol",
    "limit",
    "num_fewshot",
    "apply_chat_template",
    "fewshot_as_multiturn",
    "gen_kwargs",
)
EPS = 1e-9


def is_yaml_baseline(path: Path) -> bool:
    """A ``.yaml`` / ``.yml`` file is a vLLM-shape baseline; anything else a results JSON."""
    return Path(path).suffix.lower() in YAML_SUFFIXES and Path(path).is_file()


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise CPIError(f"{path}: cannot read ({err})") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise CPIError(f"{path}: not valid YAML{line}; fix the file") from None
    if not isinstance(data, dict):
        raise CPIError(f"{path}: not a YAML mapping with model_name and tasks (see cpi gate -h)")
    return data


def _checked_tasks(data: dict[str, Any], path: Path) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` from ``tasks: [{name, metrics: [{name, value}]}]``."""
    tasks = data.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise CPIError(f"{path}: 'tasks' must be a non-empty list of {{name, metrics}}")
    out: dict[str, dict[str, float]] = {}
    for i, task in enumerate(tasks):
        name = task.get("name") if isinstance(task, dict) else None
        metrics = task.get("metrics") if isinstance(task, dict) else None
        if not isinstance(name, str) or not name or not isinstance(metrics, list) or not metrics:
            raise CPIError(
                f"{path}: tasks[{i}] needs a 'name' (text) and a non-empty 'metrics' list"
            )
        if name in out:
            raise CPIError(f"{path}: task {name} is listed twice; merge its metrics")
        out[name] = {}
        for j, metric in enumerate(metrics):
            mname = metric.get("name") if isinstance(metric, dict) else None
            if not isinstance(mname, str) or not mname or "value" not in metric:
                raise CPIError(
                    f"{path}: tasks[{i}].metrics[{j}] needs a 'name' (text) and a 'value'"
                )
            out[name][mname] = checked_value(metric["value"], f"{path}: task {name}", mname)
    return out


def _checked_options(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """The optional keys, each checked: rtol in [0, 1), limit > 0, num_fewshot >= 0, the
    two flags booleans, gen_kwargs text or a mapping."""
    rtol = data.get("rtol")
    if rtol is not None and not (
        isinstance(rtol, (int, float))
        and not isinstance(rtol, bool)
        and math.isfinite(rtol)
        and 0 <= rtol < 1
    ):
        raise CPIError(f"{path}: rtol {rtol!r} must be a number in [0, 1) (0.08 = 8% below)")
    limit = data.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))):
        raise CPIError(f"{path}: limit {limit!r} must be a number of items (or a fraction)")
    shots = data.get("num_fewshot")
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 0):
        raise CPIError(f"{path}: num_fewshot {shots!r} must be a whole number >= 0")
    for key in ("apply_chat_template", "fewshot_as_multiturn"):
        if data.get(key) is not None and not isinstance(data[key], bool):
            raise CPIError(f"{path}: {key} {data[key]!r} must be true or false")
    gen = data.get("gen_kwargs")
    if gen is not None and not isinstance(gen, (str, dict)):
        raise CPIError(f"{path}: gen_kwargs must be text 'k=v,k=v' or a mapping")
    return {"rtol": rtol, "limit": limit, "num_fewshot": shots, "gen_kwargs": gen} | {
        k: data.get(k) for k in ("apply_chat_template", "fewshot_as_multiturn")
    }


def load_yaml_baseline(path: Path) -> dict[str, Any]:
    """Read and check a vLLM-shape baseline: ``{"model_name", "tasks": {task: {metric:
    value}}, "options": {...}, "ignored_keys": [...], "source"}``; :class:`CPIError` (naming
    the file and the field) for anything malformed."""
    data = _read_yaml(path)
    name = data.get("model_name")
    if not isinstance(name, str) or not name.strip():
        raise CPIError(f"{path}: 'model_name' (text) is required, as in vLLM's configs")
    return {
        "model_name": name,
        "tasks": _checked_tasks(data, path),
        "options": _checked_options(data, path),
        "ignored_keys": sorted(k for k in data if k not in KNOWN_KEYS),
        "source": str(path),
    }


def _baseline_settings(baseline: dict[str, Any], tasks: list[str]) -> dict[str, dict[str, Any]]:
    """The settings the YAML states, as a results dict would record them, per task."""
    opts = baseline["options"]
    pseudo: dict[str, Any] = {"config": {}}
    if opts["num_fewshot"] is not None:
        pseudo["n-shot"] = dict.fromkeys(tasks, opts["num_fewshot"])
    if opts["limit"] is not None:
        pseudo["config"]["limit"] = opts["limit"]
    if opts["apply_chat_template"] is not None:
        pseudo["config"]["apply_chat_template"] = opts["apply_chat_template"]
    if opts["fewshot_as_multiturn"] is not None:
        pseudo["fewshot_as_multiturn"] = opts["fewshot_as_multiturn"]
    per_task = task_settings(pseudo, tasks)
    if opts["gen_kwargs"] is not None:
        for task in tasks:
            per_task[task]["generation_kwargs"] = _gen_text(opts["gen_kwargs"])
    return per_task


def _gen_text(value: Any) -> str:
    import json

    return json.dumps(parse_key_values(value), sort_keys=True, default=str)


def _candidate_settings(
    candidate: dict[str, Any], tasks: list[str], baseline: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The candidate's settings; its generation settings are its ``--gen_kwargs`` override
    (what a YAML's ``gen_kwargs`` states), not the task's own defaults."""
    per_task = task_settings(candidate, tasks)
    if baseline["options"]["gen_kwargs"] is not None:
        override = (candidate.get("config") or {}).get("gen_kwargs")
        for task in tasks:
            per_task[task]["generation_kwargs"] = _gen_text(override)
    return per_task


def _tolerance(baseline: dict[str, Any], max_drop: float | None) -> dict[str, Any]:
    """How far below the baseline a value may fall: ``--max-drop`` (absolute) when given,
    else the file's ``rtol``, else vLLM's default rtol (relative)."""
    if max_drop is not None:
        return {"kind": "max_drop", "value": max_drop, "text": f"--max-drop {max_drop:g}"}
    rtol = baseline["options"]["rtol"]
    if rtol is None:
        return {"kind": "rtol", "value": VLLM_DEFAULT_RTOL, "text": "rtol 0.08 (vLLM's default)"}
    return {"kind": "rtol", "value": float(rtol), "text": f"rtol {rtol:g} (from the file)"}


def _threshold(value: float, tol: dict[str, Any]) -> float:
    if tol["kind"] == "max_drop":
        return value - tol["value"]
    return value * (1 - tol["value"])


def _interval_text(ci: tuple[float, float] | None, n: int | None) -> str:
    if ci is None:
        return f"n={n}" if n else "no item count, no interval"
    return f"95% CI [{ci[0]:.3f}, {ci[1]:.3f}], n={n}"


def _check(
    task: str,
    metric: str,
    value: float,
    measured: float,
    n: int | None,
    tol: dict[str, Any],
    confidence: float | None,
) -> dict[str, Any]:
    """One (task, metric) check with its numbers, 95% Wilson interval and verdict."""
    threshold = _threshold(value, tol)
    fraction = 0.0 <= measured <= 1.0 and 0.0 <= value <= 1.0
    ci = wilson_interval(measured, n) if fraction and n else None
    passed = measured >= threshold - EPS
    judged = "point estimate"
    if confidence is not None and fraction and n:
        upper = _one_sided_upper(measured, n, confidence)
        passed = upper >= threshold - EPS
        judged = f"one-sided {100 * confidence:g}% upper bound {upper:.3f}"
    message = (
        f"{task} {metric}: measured {measured:.3f} ({_interval_text(ci, n)}) "
        f"{'>=' if passed else '<'} threshold {threshold:.3f} (baseline {value:.3f}, "
        f"{tol['text']}; judged on the {judged})"
    )
    return {
        "task": task,
        "metric": metric,
        "baseline": value,
        "candidate": measured,
        "change": measured - value,
        "n_candidate": n,
        "threshold": threshold,
        "interval95": list(ci) if ci else None,
        "passed": passed,
        "gated": True,
        "message": message,
    }


def _one_sided_upper(p: float, n: int, confidence: float) -> float:
    """The one-sided ``confidence`` upper Wilson bound of a proportion ``p`` on ``n`` items:
    the upper end of the two-sided ``2 * confidence - 1`` interval."""
    ci = wilson_interval(p, n, confidence=2 * confidence - 1)
    return ci[1] if ci else p


def _measured(
    baseline: dict[str, Any], candidate: dict[str, Any], source: str | Path
) -> tuple[dict[tuple[str, str], float], list[str]]:
    """The candidate's checked value of every baseline (task, metric) it reports, and the
    ``task metric`` pairs it lacks."""
    found: dict[tuple[str, str], float] = {}
    lacking = []
    for task, metrics in baseline["tasks"].items():
        for metric in metrics:
            values = checked_metric_by_task(candidate, source, metric)
            if task in values:
                found[(task, metric)] = values[task][0]
            else:
                lacking.append(f"{task} {metric}")
    return found, lacking


def gate_yaml(
    baseline: dict[str, Any],
    candidate: dict[str, Any],
    *,
    max_drop: float | None = None,
    confidence: float | None = None,
    allow_missing: bool = False,
    allow_settings: frozenset[str] = frozenset(),
    candidate_source: str | Path = "candidate",
) -> dict[str, Any]:
    """Check every (task, metric) of a :func:`load_yaml_baseline` baseline against an lm-eval
    results dict. The report holds one check per pair (``passed`` on its own threshold); it
    passes when every check passes. A pair the candidate lacks is :class:`CPIError` unless
    ``allow_missing`` (then it is listed in ``missing``; one pair must remain)."""
    found, lacking = _measured(baseline, candidate, candidate_source)
    if lacking and not allow_missing:
        raise CPIError(
            f"{candidate_source}: the candidate lacks {', '.join(lacking)} that the baseline "
            f"{baseline['source']} lists (evaluate those tasks, or pass --allow-missing)"
        )
    if not found:
        raise CPIError(f"{candidate_source}: no task and metric of {baseline['source']} in it")
    tasks = sorted({t for t, _ in found})
    accepted = check_settings(
        mismatches(
            {
                "baseline": _baseline_settings(baseline, tasks),
                "candidate": _candidate_settings(candidate, tasks, baseline),
            }
        ),
        allow_settings,
    )
    counts = {t: m.get("n") for t, m in task_metrics(candidate).items()}
    tol = _tolerance(baseline, max_drop)
    checks = [
        _check(t, m, baseline["tasks"][t][m], v, counts.get(t), tol, confidence)
        for (t, m), v in found.items()
    ]
    return {
        "mode": "per_metric",
        "model_name": baseline["model_name"],
        "tolerance": tol,
        "confidence": confidence,
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
        "missing": lacking,
        "ignored_keys": baseline["ignored_keys"],
        "settings_mismatches": accepted,
    }


def render_yaml_report(report: dict[str, Any], cand_name: str) -> str:
    """Plain text for CI logs: one line per check, the settings flagged, the verdict."""
    lines = [
        f"cpi gate: baseline {report['model_name']} (YAML) vs candidate {cand_name}; "
        f"tolerance {report['tolerance']['text']}",
        "",
    ]
    for c in report["checks"]:
        lines.append(("PASS  " if c["passed"] else "FAIL  ") + c["message"])
    lines.append("")
    if report["missing"]:
        lines.append(f"Skipped (--allow-missing): {', '.join(report['missing'])}.")
    for text in mismatch_lines(report["settings_mismatches"]):
        lines.append(f"Settings differ (accepted): {text}.")
    if report["ignored_keys"]:
        lines.append(f"Read past (vLLM launch options): {', '.join(report['ignored_keys'])}.")
    failed = [c for c in report["checks"] if not c["passed"]]
    verdict = "PASS" if report["passed"] else "FAIL"
    lines.append(
        f"{verdict}: {len(report['checks']) - len(failed)} of {len(report['checks'])} "
        "task metric(s) at or above their threshold."
    )
    return "\n".join(lines) + "\n"
