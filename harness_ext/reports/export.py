"""``cpi export``: a results file as the Hugging Face Hub's ``.eval_results/`` YAML.

    cpi export out/org__model/results_2025-01-01T00-00-00.json --dataset-id ORG/BENCHMARK
    cpi export runs/alpaca-lora --step 400 --dataset-id ORG/BENCHMARK --output-dir .eval_results

The Hub shows a model's evaluation results from YAML files in its repository's
``.eval_results/`` folder (https://huggingface.co/docs/hub/eval-results; the field list:
https://github.com/huggingface/hub-docs/blob/main/eval_results.yaml). Each file is a list of
entries::

    - dataset:
        id: ORG/BENCHMARK    # required: the Hub dataset (a registered Benchmark) the value is on
        task_id: cpi_capitals  # required: the task, as in the benchmark's eval.yaml
        revision: <hash>     # optional: the dataset revision
      value: 0.62            # required: the metric value
      date: "2025-01-15T10:30:00Z"  # optional: ISO-8601, when the evaluation ran
      source:                # optional: where the result comes from
        url: https://...     # required when source is given
        name: Eval logs      # optional
        user: someone        # optional: a Hub user or org
      notes: "..."           # optional: details about the evaluation setup

This command writes one file per task, ``<output-dir>/<task_id>.yaml``, holding one entry:
the task's ``--metric`` (default ``cf_acc``) as lm-eval wrote it (a fraction; ``--scale
percent`` for 0-100), the date lm-eval recorded, and ``notes`` stating how the number was
made (metric, item count and 95% Wilson interval, few-shot count, chat template, task
version, package versions): the settings that must match for two values to be comparable.
The cpi tasks read public files, not a Hub dataset, so ``--dataset-id`` (the benchmark the
values are reported under) is required. Existing files are never overwritten (exit 2).

Input: an lm-eval results JSON, an lm-eval ``--output_path`` folder of one model, a
``cpi sweep`` step file, or a swept run folder with ``--step N`` (or ``final`` / ``peak``),
whose ``eval/step-N.json`` is exported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path
from typing import Any

from ..core.cli_args import ArgumentParser, split_list
from ..core.constants import CF_ACC, EVAL_DIR, INVERSION_JSON, eval_file_name
from ..core.errors import EXIT_OK, CPIError
from ..core.files import atomic_write_text, check_writable
from .results import (
    checked_metric_by_task,
    cpi_block,
    load_lm_eval_results,
    task_metrics,
)
from .settings import task_settings
from .stats import wilson_interval

DOCS_URL = "https://huggingface.co/docs/hub/eval-results"
DEFAULT_DIR = ".eval_results"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # a Hub repo id: owner/name
SAFE_NAME = re.compile(r"[^\w.-]+")
SCALES = {"fraction": 1.0, "percent": 100.0}


def results_path(source: Path, step: str | None) -> Path:
    """The results file to export: the file itself, the newest results file of an lm-eval
    output folder, or a run's ``eval/step-N.json`` for ``--step`` (N, final or peak)."""
    from .gate import resolve_results_path

    if step is None:
        if (source / INVERSION_JSON).is_file():
            raise CPIError(
                f"{source}: a swept run folder; choose its step with --step N|final|peak"
            )
        return resolve_results_path(source, "results")
    if not (source / INVERSION_JSON).is_file():
        raise CPIError(f"--step {step}: {source} is not a swept run folder (no {INVERSION_JSON})")
    from .compare import pick_row
    from .inversion import load_inversion

    row = pick_row(load_inversion(source), source / INVERSION_JSON, step)
    path = source / EVAL_DIR / eval_file_name(row["step"])
    if not path.is_file():
        raise CPIError(
            f"{path}: the results file of step {row['step']} is missing; rerun cpi sweep"
        )
    return path


def _date(data: dict[str, Any]) -> str | None:
    """lm-eval's ``date`` (Unix seconds) as ISO-8601 UTC; None when the file has none."""
    value = data.get("date")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        stamp = dt.datetime.fromtimestamp(float(value), tz=dt.timezone.utc)
        return stamp.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return None


def setup_notes(
    data: dict[str, Any], task: str, metric: str, value: float, scale: str = "fraction"
) -> str:
    """One line saying how the value was made: what must match for it to be comparable."""
    n = task_metrics(data).get(task, {}).get("n")
    ci = wilson_interval(value, n) if n and 0 <= value <= 1 else None
    settings = task_settings(data, [task])[task]
    versions = (cpi_block(data).get("provenance") or {}).get("versions") or {}
    lm_eval = versions.get("lm_eval") or data.get("lm_eval_version")
    parts = [f"lm-eval task {task}, metric {metric} ({scale} of items)"]
    if n:
        parts.append(f"{n} items" + (f", 95% CI [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
    for key, label in (("num_fewshot", "few-shot"), ("chat_template", "chat template")):
        if key in settings:
            parts.append(f"{label} {settings[key]}")
    if "task_version" in settings:
        parts.append(f"task version {settings['task_version']}")
    parts += [f"lm-eval {lm_eval}"] if lm_eval else []
    parts += [f"cpi-bench {versions['cpi_bench']}"] if versions.get("cpi_bench") else []
    return "; ".join(parts)


def _task_ids(pairs: list[str]) -> dict[str, str]:
    """``--task-id TASK=ID`` pairs as a mapping; :class:`CPIError` for a malformed one."""
    out = {}
    for pair in pairs:
        task, sep, task_id = pair.partition("=")
        if not sep or not task.strip() or not task_id.strip():
            raise CPIError(f"--task-id {pair!r}: give TASK=ID (e.g. cpi_capitals=capitals)")
        out[task.strip()] = task_id.strip()
    return out


def eval_results_entries(
    data: dict[str, Any], source: Path, args: argparse.Namespace
) -> dict[str, list[dict[str, Any]]]:
    """``{file name: [entry]}``: one ``.eval_results`` entry per exported task, fields in
    the order of the Hub's documentation (see the module docstring)."""
    values = checked_metric_by_task(data, source, args.metric)
    wanted = split_list(args.tasks) or sorted(values)
    lacking = [t for t in wanted if t not in values]
    if lacking or not wanted:
        raise CPIError(
            f"{source}: no {args.metric} for {', '.join(lacking) or 'any task'} "
            f"(it reports {args.metric} for: {', '.join(sorted(values)) or 'no task'})"
        )
    ids = _task_ids(args.task_id or [])
    files: dict[str, list[dict[str, Any]]] = {}
    for task in wanted:
        value = values[task][0]
        dataset = {"id": args.dataset_id, "task_id": ids.get(task, task)}
        if args.dataset_revision:
            dataset["revision"] = args.dataset_revision
        entry: dict[str, Any] = {"dataset": dataset, "value": value * SCALES[args.scale]}
        if _date(data):
            entry["date"] = _date(data)
        if args.source_url:
            entry["source"] = {"url": args.source_url}
            entry["source"] |= {k: getattr(args, f"source_{k}") for k in ("name", "user")
                                if getattr(args, f"source_{k}")}  # fmt: skip
        entry["notes"] = args.notes or setup_notes(data, task, args.metric, value, args.scale)
        files[SAFE_NAME.sub("_", dataset["task_id"]) + ".yaml"] = [entry]
    return files


def build_parser() -> ArgumentParser:
    """The ``cpi export`` options; the module docstring is its --help text."""
    parser = ArgumentParser(
        prog="cpi export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", help="results JSON, lm-eval output folder, or swept run folder")
    parser.add_argument("--step", default=None, help="for a run folder: N, final or peak")
    parser.add_argument(
        "--dataset-id",
        "--dataset_id",
        dest="dataset_id",
        required=True,
        help="the Hub benchmark dataset the values are reported under (owner/name)",
    )
    parser.add_argument("--dataset-revision", "--dataset_revision", dest="dataset_revision")
    parser.add_argument("--metric", default=CF_ACC, help="the metric exported (default cf_acc)")
    parser.add_argument("--tasks", default=None, help="comma list (default: every task with it)")
    parser.add_argument(
        "--task-id",
        "--task_id",
        dest="task_id",
        action="append",
        metavar="TASK=ID",
        help="the benchmark's task id for an lm-eval task (default: the task name); repeatable",
    )
    parser.add_argument("--scale", choices=tuple(SCALES), default="fraction")
    parser.add_argument("--source-url", "--source_url", dest="source_url", default=None)
    parser.add_argument("--source-name", "--source_name", dest="source_name", default=None)
    parser.add_argument("--source-user", "--source_user", dest="source_user", default=None)
    parser.add_argument("--notes", default=None, help="replace the generated setup notes")
    parser.add_argument(
        "--output-dir",
        "--output_dir",
        dest="output_dir",
        default=DEFAULT_DIR,
        help=f"where the YAML files go (default {DEFAULT_DIR}, in the current folder)",
    )
    return parser


def _check_args(args: argparse.Namespace) -> None:
    if not HUB_ID.match(args.dataset_id):
        raise CPIError(
            f"--dataset-id {args.dataset_id!r} is not a Hub dataset id (give owner/name)"
        )
    if (args.source_name or args.source_user) and not args.source_url:
        raise CPIError("--source-name/--source-user need --source-url (the Hub requires a url)")
    if args.source_url and not args.source_url.startswith(("https://", "http://")):
        raise CPIError(f"--source-url {args.source_url!r} must be an http(s) URL")


def parse_args(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str]) -> int:
    """Write one ``.eval_results`` YAML per task; exit 2 (one line) on bad input or when a
    file to write exists already (nothing is written then)."""
    import yaml

    args = parse_args(argv)
    _check_args(args)
    path = results_path(Path(args.source), args.step)
    files = eval_results_entries(load_lm_eval_results(path), path, args)
    out_dir = Path(args.output_dir)
    taken = [name for name in files if (out_dir / name).exists()]
    if taken:
        raise CPIError(
            f"--output-dir {out_dir}: {', '.join(taken)} already "
            f"exist{'s' if len(taken) == 1 else ''}; cpi export never "
            "overwrites a file (move it away, or choose another --output-dir)"
        )
    check_writable(out_dir, "--output-dir")
    for name, entries in files.items():
        text = yaml.safe_dump(entries, sort_keys=False, allow_unicode=True)
        atomic_write_text(out_dir / name, text)
        print(f"wrote {out_dir / name}: {entries[0]['dataset']['task_id']} = {entries[0]['value']}")
    print(f"Upload the folder to the model repository (see {DOCS_URL}).")
    return EXIT_OK
