"""``cpi gate``: fail CI when a candidate model relies on its context less than the baseline.

    cpi gate --baseline base.json --candidate cand.json --max-drop 0.05 [--metric cf_acc]

Both inputs are lm-eval results JSON files (``lm_eval --output_path`` writes them; so does
``cpi sweep`` under ``RUN_DIR/eval/``), or an ``--output_path`` folder holding one model's
results (the newest is taken). The gate compares the unweighted mean of ``--metric`` over
the cpi tasks both files report. ``--max-drop`` is in the metric's units: accuracies are
fractions, so 0.05 allows the candidate to be up to 5 points below the baseline.

Exit status: 0 pass, 1 the mean dropped by more than ``--max-drop``, 2 bad input (a file
is missing or malformed, or the candidate lacks a task the baseline has).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cpi_bench.harness_ext.core.cli_args import ArgumentParser
from cpi_bench.harness_ext.core.constants import (
    CF_ACC,
)
from cpi_bench.harness_ext.core.errors import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    CPIError,
)
from cpi_bench.harness_ext.reports.results import (
    load_lm_eval_results,
    mean_with_stderr,
    model_label,
    task_metrics,
)

# Tolerance for float noise when the drop equals --max-drop exactly (fractions).
EPS = 1e-9


def _resolve(path: Path, role: str) -> Path:
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


def metric_by_task(data: dict[str, Any], metric: str) -> dict[str, tuple[float, float | None]]:
    """``{task: (value, stderr)}`` for the leaf tasks that report ``metric``."""
    out = {}
    for task, m in task_metrics(data).items():
        if m.get(metric) is not None:
            out[task] = (m[metric], m.get(f"{metric}_stderr"))
    return out


def gate(
    baseline: dict[str, Any], candidate: dict[str, Any], metric: str, max_drop: float
) -> dict[str, Any]:
    """Compare two results dicts; the report says pass/fail and the per-task changes.

    Raises :class:`CPIError` when the baseline has no task with ``metric`` or the
    candidate lacks one of the baseline's tasks (an incomplete evaluation must not pass).
    """
    base = metric_by_task(baseline, metric)
    cand = metric_by_task(candidate, metric)
    if not base:
        raise CPIError(
            f"the baseline reports no task with metric '{metric}'; evaluate cpi tasks "
            "(e.g. --tasks cpi) or choose --metric from its metrics"
        )
    missing = sorted(set(base) - set(cand))
    if missing:
        raise CPIError(
            f"the candidate lacks {metric} for task(s) {', '.join(missing)} that the baseline "
            "has; evaluate both models on the same tasks"
        )
    tasks = sorted(base)
    base_mean, base_se = mean_with_stderr(base[t] for t in tasks)
    cand_mean, cand_se = mean_with_stderr(cand[t] for t in tasks)
    drop = base_mean - cand_mean
    rows = [
        {
            "task": t,
            "baseline": base[t][0],
            "candidate": cand[t][0],
            "change": cand[t][0] - base[t][0],
            "n_baseline": None,
        }
        for t in tasks
    ]
    return {
        "metric": metric,
        "tasks": rows,
        "baseline_mean": base_mean,
        "baseline_stderr": base_se,
        "candidate_mean": cand_mean,
        "candidate_stderr": cand_se,
        "drop": drop,
        "max_drop": max_drop,
        "passed": drop <= max_drop + EPS,
        "extra_candidate_tasks": sorted(set(cand) - set(base)),
    }


def _sample_counts(data: dict[str, Any]) -> dict[str, int | None]:
    return {t: m.get("n") for t, m in task_metrics(data).items()}


def render(report: dict[str, Any], base_name: str, cand_name: str) -> str:
    """A plain-text report for CI logs (percentage points)."""
    m = report["metric"]
    lines = [f"cpi gate on {m}: baseline {base_name} vs candidate {cand_name}", ""]
    width = max([len("task"), *(len(r["task"]) for r in report["tasks"]), len("mean")])
    lines.append(f"{'task':<{width}}  {'baseline':>9}  {'candidate':>9}  {'change':>8}")
    for r in report["tasks"]:
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
    verdict = "PASS" if report["passed"] else "FAIL"
    lines.append(
        f"{verdict}: mean {m} dropped by {100 * report['drop']:.1f} points "
        f"(allowed: {100 * report['max_drop']:.1f})."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="cpi gate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline",
        required=True,
        help="lm-eval results JSON of the reference model (e.g. last release)",
    )
    parser.add_argument(
        "--candidate", required=True, help="lm-eval results JSON of the model to release"
    )
    parser.add_argument(
        "--max-drop",
        "--max_drop",
        dest="max_drop",
        type=float,
        required=True,
        help="largest allowed fall of the mean metric, as a fraction (0.05 = 5 points)",
    )
    parser.add_argument(
        "--metric",
        default=CF_ACC,
        help="metric averaged over the tasks both files report (default cf_acc; "
        "e.g. cf_pref for the _choice tasks)",
    )
    parser.add_argument(
        "--json",
        dest="json_out",
        default=None,
        metavar="FILE",
        help="also write the report as JSON here (for CI artifacts)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.max_drop <= 1:
        print(
            f"cpi gate: --max-drop {args.max_drop} is outside [0, 1]; accuracies are "
            "fractions (0.05 = 5 points)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        base_path = _resolve(Path(args.baseline), "baseline")
        cand_path = _resolve(Path(args.candidate), "candidate")
        baseline = load_lm_eval_results(base_path)
        candidate = load_lm_eval_results(cand_path)
        report = gate(baseline, candidate, args.metric, args.max_drop)
    except CPIError as err:
        print(f"cpi gate: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    nb, nc = _sample_counts(baseline), _sample_counts(candidate)
    for row in report["tasks"]:
        row["n_baseline"], row["n_candidate"] = nb.get(row["task"]), nc.get(row["task"])
        if row["n_baseline"] != row["n_candidate"]:
            print(
                f"cpi gate: warning: {row['task']} was evaluated on {row['n_baseline']} items "
                f"for the baseline and {row['n_candidate']} for the candidate (--limit?)",
                file=sys.stderr,
            )
    sys.stdout.write(
        render(report, model_label(baseline, base_path), model_label(candidate, cand_path))
    )
    if args.json_out:
        from cpi_bench.harness_ext.core.files import (
            atomic_write_json,
        )

        atomic_write_json(Path(args.json_out), report)
    return EXIT_OK if report["passed"] else EXIT_FAIL
