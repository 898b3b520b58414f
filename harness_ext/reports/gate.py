"""``cpi gate``: fail CI when a candidate model relies on its context less than the baseline.

    cpi gate --baseline base.json --candidate cand.json --max-drop 0.05 [--metric cf_acc]

Both inputs are lm-eval results JSON files (``lm_eval --output_path`` writes them; so does
``cpi sweep`` under ``RUN_DIR/eval/``), or an ``--output_path`` folder holding one model's
results (the newest is taken). The gate compares the unweighted mean of ``--metric`` over
the baseline's cpi tasks. ``--max-drop`` is in the metric's units: accuracies are fractions,
so 0.05 allows the candidate to be up to 5 points below the baseline.

With ``--confidence 0.95`` the gate fails only when the drop exceeds ``--max-drop`` with that
confidence on the paired items (a one-sided paired bootstrap over the per-item records of
both files: ``step-N.items.jsonl`` next to a ``cpi sweep`` step file, or lm-eval's
``--log_samples`` files next to a results file; see ``reports/paired.py``). Without per-item
records for both it says so and falls back to the point estimate.

The gate never passes or fails on a wrong number. Every value of ``--metric`` in either file
must be a finite number in the metric's range (accuracies: [0, 1]), and every stderr, when
present, a finite number >= 0 (null or lm-eval's "N/A" means "not computed"). A NaN, "N/A",
null, true/false, text or out-of-range value is bad input, whatever the flags. A baseline
task missing from the candidate is bad input too, unless ``--allow-missing`` is given: then
the missing tasks are listed and the gate compares the tasks both files report.

Exit status:
  0  pass: the mean dropped by at most --max-drop
  1  regression: the mean dropped by more than --max-drop
  2  invalid input (a missing or malformed file, a bad value naming file, task and metric,
     a baseline task the candidate lacks, no shared task, a bad --max-drop) or any other error
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

from ..core.cli_args import ArgumentParser
from ..core.constants import CF_ACC
from ..core.errors import EXIT_FAIL, EXIT_OK, CPIError
from ..core.files import (
    atomic_write_json,
    atomic_write_text,
    check_output_file,
)
from .ci_formats import junit_xml, skipped_of, step_summary
from .results import (
    checked_metric_by_task,
    load_lm_eval_results,
    mean_with_stderr,
    metric_range,
    model_label,
    task_metrics,
)
from .settings import (
    add_allow_flag,
    check_settings,
    mismatch_lines,
    mismatches,
    parse_allowed,
    task_settings,
)
from .stats import Z95, wilson_interval

# Tolerance for float noise when the drop equals --max-drop exactly (fractions).
EPS = 1e-9
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"  # GitHub Actions: Markdown appended here is shown


def resolve_results_path(path: Path, role: str) -> Path:
    """The results file behind ``--baseline`` / ``--candidate``: the file itself, or the
    newest ``results*.json`` of an lm-eval output folder holding one model."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.name.startswith("results"))
        if len(files) == 0:
            raise CPIError(f"--{role} {path}: folder holds no results*.json from lm_eval")
        parents = {f.parent for f in files}
        if len(parents) > 1:
            raise CPIError(
                f"--{role} {path}: results of {len(parents)} models inside; pass one file"
            )
        return files[-1]
    if not path.exists():
        raise CPIError(f"--{role} {path}: no such file")
    return path


def check_max_drop(max_drop: float, metric: str) -> float:
    """``--max-drop`` must be a finite number >= 0, and at most the metric's full range
    (1 for accuracies, which are fractions: 0.05 = 5 points)."""
    low, high = metric_range(metric)
    if not math.isfinite(max_drop) or max_drop < 0:
        raise CPIError(f"--max-drop {max_drop} is invalid (give a finite number >= 0)")
    if max_drop > high - low:
        raise CPIError(
            f"--max-drop {max_drop} is larger than the range of {metric}; accuracies are "
            "fractions (0.05 = 5 points)"
        )
    return max_drop


def compared_tasks(
    base: dict[str, Any],
    cand: dict[str, Any],
    metric: str,
    allow_missing: bool,
    candidate_source: str | Path = "candidate",
) -> tuple[list[str], list[str]]:
    """(tasks to compare, baseline tasks the candidate lacks), both sorted.

    An incomplete evaluation must not pass: a missing task is an error unless
    ``allow_missing``; even then at least one task must be shared.
    """
    missing = sorted(set(base) - set(cand))
    tasks = sorted(set(base) & set(cand))
    if missing and not allow_missing:
        raise CPIError(
            f"{candidate_source}: the candidate lacks {metric} for task(s) "
            f"{', '.join(missing)} that the baseline has; evaluate both models on the same "
            "tasks (or pass --allow-missing to compare the shared tasks only)"
        )
    if not tasks:
        raise CPIError(
            f"{candidate_source}: the candidate shares no task with {metric} with the "
            f"baseline (baseline: "
            f"{', '.join(sorted(base))}); evaluate both models on the same tasks"
        )
    return tasks, missing


def gate(
    baseline: dict[str, Any],
    candidate: dict[str, Any],
    metric: str,
    max_drop: float,
    *,
    allow_missing: bool = False,
    allow_settings: frozenset[str] = frozenset(),
    baseline_source: str | Path = "baseline",
    candidate_source: str | Path = "candidate",
) -> dict[str, Any]:
    """Compare two lm-eval results dicts; the report says pass/fail and the per-task changes
    (values in the metric's units: fractions for accuracies).

    The two must have been made under the same settings (:mod:`.settings`: task version,
    few-shot count, chat template, generation settings, items, data) on every compared task;
    a difference is :class:`CPIError` unless its setting is in ``allow_settings`` (or
    ``"all"``), and accepted differences are listed in ``settings_mismatches``.

    Raises :class:`CPIError` (naming the source, task and metric) for any invalid value, when
    the baseline has no task with ``metric``, or when the candidate lacks a baseline task
    (unless ``allow_missing``; then those tasks are skipped and listed in ``missing_tasks``).
    """
    base = checked_metric_by_task(baseline, baseline_source, metric)
    cand = checked_metric_by_task(candidate, candidate_source, metric)
    if not base:
        raise CPIError(
            f"{baseline_source}: the baseline reports no task with metric '{metric}'; evaluate "
            "cpi tasks (e.g. --tasks cpi) or choose --metric from its metrics"
        )
    tasks, missing = compared_tasks(base, cand, metric, allow_missing, candidate_source)
    found = mismatches(
        {"baseline": task_settings(baseline, tasks), "candidate": task_settings(candidate, tasks)}
    )
    accepted = check_settings(found, allow_settings)
    base_mean, base_se = mean_with_stderr(base[t] for t in tasks)
    cand_mean, cand_se = mean_with_stderr(cand[t] for t in tasks)
    drop = base_mean - cand_mean
    return {
        "mode": "mean",
        "metric": metric,
        "tasks": _task_rows(tasks, base, cand, baseline, candidate),
        "baseline_mean": base_mean,
        "baseline_stderr": base_se,
        "candidate_mean": cand_mean,
        "candidate_stderr": cand_se,
        "drop": drop,
        "max_drop": max_drop,
        "passed": drop <= max_drop + EPS,
        "missing_tasks": missing,
        "extra_candidate_tasks": sorted(set(cand) - set(base)),
        "settings_mismatches": accepted,
    }


def _task_rows(
    tasks: list[str],
    base: dict[str, tuple[float, float | None]],
    cand: dict[str, tuple[float, float | None]],
    baseline: dict[str, Any],
    candidate: dict[str, Any],
) -> list[dict[str, Any]]:
    """One report row per compared task: both values, the change and the item counts."""
    nb, nc = _sample_counts(baseline), _sample_counts(candidate)
    return [
        {
            "task": t,
            "baseline": base[t][0],
            "candidate": cand[t][0],
            "change": cand[t][0] - base[t][0],
            "n_baseline": nb.get(t),
            "n_candidate": nc.get(t),
        }
        for t in tasks
    ]


def _sample_counts(data: dict[str, Any]) -> dict[str, int | None]:
    """``{task: items evaluated}`` (lm-eval's effective sample count)."""
    return {t: m.get("n") for t, m in task_metrics(data).items()}


def render(report: dict[str, Any], base_name: str, cand_name: str) -> str:
    """A plain-text report for CI logs (values in percentage points)."""
    m = report["metric"]
    rows = report["tasks"]
    width = max([len("task"), *(len(r["task"]) for r in rows), len("mean")])
    lines = [f"cpi gate on {m}: baseline {base_name} vs candidate {cand_name}", ""]
    lines.append(f"{'task':<{width}}  {'baseline':>9}  {'candidate':>9}  {'change':>8}")
    for r in rows:
        flag = "  <- drop" if -r["change"] > report["max_drop"] + EPS else ""
        lines.append(
            f"{r['task']:<{width}}  {100 * r['baseline']:>8.1f}%  "
            f"{100 * r['candidate']:>8.1f}%  {100 * r['change']:>+7.1f}{flag}"
        )
    lines.append(
        f"{'mean':<{width}}  {100 * report['baseline_mean']:>8.1f}%  "
        f"{100 * report['candidate_mean']:>8.1f}%  {-100 * report['drop']:>+7.1f}"
    )
    lines.append("")
    if report["missing_tasks"]:
        lines.append(
            f"Skipped (the candidate lacks them; --allow-missing): "
            f"{', '.join(report['missing_tasks'])}. The mean is over the {len(rows)} "
            "shared task(s) above."
        )
    for text in mismatch_lines(report.get("settings_mismatches") or []):
        lines.append(
            f"Settings differ (accepted with --allow-settings-mismatch): {text}; "
            "this difference is not the model's alone."
        )
    sig = report.get("significance")
    if sig:
        lines.append(f"Significance: {sig['note']}.")
    verdict = "PASS" if report["passed"] else "FAIL"
    lines.append(
        f"{verdict}: mean {m} dropped by {100 * report['drop']:.1f} points "
        f"(allowed: {100 * report['max_drop']:.1f})"
        + (
            f"; judged on its one-sided {100 * sig['confidence']:g}% lower bound "
            f"{100 * sig['lower_bound']:.1f}."
            if sig and sig.get("method") == "paired_bootstrap"
            else "."
        )
    )
    return "\n".join(lines) + "\n"


def _warn_about(report: dict[str, Any]) -> None:
    """Warnings a CI log should show without failing: skipped tasks, accepted settings."""
    skipped = skipped_of(report)
    if skipped:
        print(
            f"cpi gate: warning: the candidate lacks {', '.join(skipped)}; "
            "skipped (--allow-missing)",
            file=sys.stderr,
        )
    for d in report.get("settings_mismatches") or []:
        values = ", ".join(f"{k} {v}" for k, v in d["values"].items())
        print(
            f"cpi gate: warning: {d['task']} {d['setting']} differs ({values}); accepted "
            "with --allow-settings-mismatch",
            file=sys.stderr,
        )


def _ci(value: float | None, n: int | None) -> str:
    ci = wilson_interval(value, n) if value is not None and n else None
    return f"95% CI [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}], n={n}" if ci else "no interval"


def _drop_interval(report: dict[str, Any]) -> str:
    """The drop's interval: the paired bootstrap bound when there is one, else the normal
    95% interval from the two means' standard errors (points)."""
    sig = report.get("significance") or {}
    if sig.get("method") == "paired_bootstrap":
        return (
            f"one-sided {100 * sig['confidence']:g}% lower bound {100 * sig['lower_bound']:.1f}"
            f" (paired bootstrap, {sig['n_items']} items)"
        )
    se_b, se_c = report["baseline_stderr"], report["candidate_stderr"]
    if se_b is None or se_c is None:
        return "no interval (a stderr is unknown)"
    half = Z95 * math.sqrt(se_b**2 + se_c**2)
    drop = report["drop"]
    return f"95% CI [{100 * (drop - half):.1f}, {100 * (drop + half):.1f}]"


def mean_checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks of a gate on the mean (for JUnit and the step summary): one informational
    check per task (the gate does not judge tasks one by one) and the gated mean."""
    m, allowed = report["metric"], report["max_drop"]
    checks = []
    for r in report["tasks"]:
        over = -r["change"] > allowed + EPS
        checks.append(
            {
                **r,
                "metric": m,
                "passed": True,
                "gated": False,
                "message": f"{r['task']} {m}: baseline {100 * r['baseline']:.1f}% "
                f"({_ci(r['baseline'], r['n_baseline'])}), candidate "
                f"{100 * r['candidate']:.1f}% ({_ci(r['candidate'], r['n_candidate'])}), "
                f"change {100 * r['change']:+.1f} points"
                + ("; more than --max-drop, but the gate is on the mean" if over else ""),
            }
        )
    n_b = sum(r["n_baseline"] or 0 for r in report["tasks"]) or None
    n_c = sum(r["n_candidate"] or 0 for r in report["tasks"]) or None
    checks.append(
        {
            "task": f"mean over {len(report['tasks'])} task(s)",
            "metric": m,
            "baseline": report["baseline_mean"],
            "candidate": report["candidate_mean"],
            "passed": report["passed"],
            "gated": True,
            "message": f"mean {m} fell from {100 * report['baseline_mean']:.1f}% "
            f"({_ci(report['baseline_mean'], n_b)}) to {100 * report['candidate_mean']:.1f}% "
            f"({_ci(report['candidate_mean'], n_c)}): drop {100 * report['drop']:.1f} points "
            f"({_drop_interval(report)}), allowed {100 * allowed:.1f}",
        }
    )
    return checks


def build_parser() -> ArgumentParser:
    """The ``cpi gate`` options; the module docstring is its --help text (exit codes too)."""
    parser = ArgumentParser(
        prog="cpi gate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline",
        required=True,
        help="lm-eval results JSON of the reference model, or a vLLM-shape YAML baseline "
        "(model_name, tasks[].metrics[].{name, value}, optional rtol; see docs/release-gates.md)",
    )
    parser.add_argument(
        "--candidate", required=True, help="lm-eval results JSON of the model to release"
    )
    parser.add_argument(
        "--max-drop",
        "--max_drop",
        dest="max_drop",
        type=float,
        default=None,
        help="largest allowed fall, as a fraction (0.05 = 5 points); >= 0. Required with a "
        "results JSON baseline (of the mean); with a YAML baseline it replaces the file's rtol "
        "(per task and metric)",
    )
    parser.add_argument(
        "--metric",
        default=CF_ACC,
        help="metric averaged over the tasks (default cf_acc; e.g. cf_pref for _choice tasks); "
        "a YAML baseline names its own metrics",
    )
    parser.add_argument(
        "--allow-missing",
        "--allow_missing",
        dest="allow_missing",
        action="store_true",
        help="skip (and list) baseline tasks the candidate lacks instead of exiting 2",
    )
    add_allow_flag(parser)
    parser.add_argument(
        "--confidence",
        type=float,
        default=None,
        metavar="C",
        help="fail only when the drop exceeds --max-drop with confidence C (e.g. 0.95) on the "
        "paired items: a one-sided paired bootstrap (10,000 resamples, seed 0) over the "
        "per-item records of both files (a step-N.json's step-N.items.jsonl, or lm-eval "
        "--log_samples samples_*.jsonl next to a results file); without them it says so and "
        "uses the point estimate. With a YAML baseline: fail a task metric only when the "
        "one-sided C upper Wilson bound of its value is below the threshold (C > 0.5)",
    )
    _add_output_flags(parser)
    return parser


def _add_output_flags(parser: ArgumentParser) -> None:
    """--json and --junit: the report as files for CI."""
    parser.add_argument(
        "--json",
        dest="json_out",
        default=None,
        metavar="FILE",
        help="also write the report as JSON here (for CI artifacts)",
    )
    parser.add_argument(
        "--junit",
        dest="junit_out",
        default=None,
        metavar="FILE",
        help="also write JUnit XML here: one test case per task and metric, a regression as "
        "a <failure> with the numbers and interval (GitLab, Jenkins, Buildkite, GitHub)",
    )


def _check_flags(args: argparse.Namespace, yaml_baseline: bool) -> None:
    """Flag values that depend on the kind of baseline; :class:`CPIError` when wrong."""
    if args.max_drop is None and not yaml_baseline:
        raise CPIError("--max-drop is required with a results JSON baseline (e.g. --max-drop 0.05)")
    if args.max_drop is not None:
        check_max_drop(args.max_drop, args.metric)
    low = 0.5 if yaml_baseline else 0.0
    if args.confidence is not None and not low < args.confidence < 1:
        raise CPIError(
            f"--confidence {args.confidence} is invalid (give a level in ({low:g}, 1), e.g. 0.95)"
        )


def _json_gate(args: argparse.Namespace, base_path: Path, cand_path: Path) -> tuple[dict, str]:
    """The gate on the mean over tasks of two results JSON files: (report, text)."""
    baseline = load_lm_eval_results(base_path)
    candidate = load_lm_eval_results(cand_path)
    report = gate(
        baseline,
        candidate,
        args.metric,
        args.max_drop,
        allow_missing=args.allow_missing,
        allow_settings=parse_allowed(args.allow_settings),
        baseline_source=base_path,
        candidate_source=cand_path,
    )
    if args.confidence is not None:
        from .paired import significance

        tasks = [r["task"] for r in report["tasks"]]
        sig = significance(base_path, cand_path, tasks, args.metric, args.max_drop, args.confidence)
        report["significance"] = sig
        if sig["method"] == "paired_bootstrap":
            report["passed"] = not sig["exceeds"]
    report["checks"] = mean_checks(report)
    names = model_label(baseline, base_path), model_label(candidate, cand_path)
    return report, render(report, *names)


def _yaml_gate(args: argparse.Namespace, base_path: Path, cand_path: Path) -> tuple[dict, str]:
    """The gate of every task metric a vLLM-shape YAML lists: (report, text)."""
    from . import baseline_yaml

    baseline = baseline_yaml.load_yaml_baseline(base_path)
    candidate = load_lm_eval_results(cand_path)
    report = baseline_yaml.gate_yaml(
        baseline,
        candidate,
        max_drop=args.max_drop,
        confidence=args.confidence,
        allow_missing=args.allow_missing,
        allow_settings=parse_allowed(args.allow_settings),
        candidate_source=cand_path,
    )
    text = baseline_yaml.render_yaml_report(report, model_label(candidate, cand_path))
    return report, text


def _write_outputs(args: argparse.Namespace, report: dict[str, Any], title: str) -> None:
    """--json, --junit and, when GitHub Actions names one, the step summary."""
    if args.json_out:
        atomic_write_json(Path(args.json_out), report)
    if args.junit_out:
        atomic_write_text(Path(args.junit_out), junit_xml(report))
    summary = os.environ.get(STEP_SUMMARY_ENV)
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(step_summary(report, title))
        except OSError as err:
            raise CPIError(f"${STEP_SUMMARY_ENV} {summary}: cannot append ({err})") from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the gate; exit 0 pass, 1 regression. Bad input raises :class:`CPIError`, which
    ``cpi`` prints as ``cpi gate: error: <message>`` with exit status 2."""
    from .baseline_yaml import is_yaml_baseline

    args = parse_args(argv)
    yaml_baseline = is_yaml_baseline(Path(args.baseline))
    _check_flags(args, yaml_baseline)
    base_path = (
        Path(args.baseline)
        if yaml_baseline
        else resolve_results_path(Path(args.baseline), "baseline")
    )
    cand_path = resolve_results_path(Path(args.candidate), "candidate")
    for flag, target in (("--json", args.json_out), ("--junit", args.junit_out)):
        if target:
            check_output_file(target, flag, inputs=(base_path, cand_path))
    run = _yaml_gate if yaml_baseline else _json_gate
    report, text = run(args, base_path, cand_path)
    _warn_about(report)
    report["baseline_source"], report["candidate_source"] = str(base_path), str(cand_path)
    sys.stdout.write(text)
    _write_outputs(args, report, f"baseline `{base_path}` vs candidate `{cand_path}`")
    return EXIT_OK if report["passed"] else EXIT_FAIL
