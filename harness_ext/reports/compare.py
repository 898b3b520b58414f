"""``cpi compare``: one leaderboard row per model or run, from JSON only.

    cpi compare results_a.json out/model_b/ runs/ift-1 --format md
    cpi compare out/ runs/tulu-lora --run_step peak --format html --output board.html

A path is an lm-eval results JSON, an lm-eval ``--output_path`` folder (the newest results
file of each model), a swept run folder (the row ``--run_step`` picks) or an
``inversion.json``. Means and ranks are over the tasks every model reports; results made under
different settings are refused unless accepted (``settings.py``). Rendering shares the
formatting of ``tables.py``; the HTML page is ``html.py``'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..core.cli_args import ArgumentParser
from ..core.constants import (
    CF_ACC,
    CPI_METRICS,
    EVAL_DIR,
    ID_ACC,
    INVERSION_JSON,
    PARAM_ACC,
    SETTINGS_KEY,
    eval_file_name,
)
from ..core.errors import EXIT_OK, CPIError
from ..core.files import (
    check_output_file,
    dump_json,
    read_json,
    write_output,
)
from .html import board_html
from .results import (
    checked_metric_by_task,
    checked_stderr,
    checked_value,
    is_lm_eval_results,
    mean_with_stderr,
    model_label,
    provenance_of,
    task_metrics,
)
from .settings import (
    ALLOW_FLAG,
    add_allow_flag,
    check_settings,
    mismatch_lines,
    mismatches,
    model_setting_text,
    parse_allowed,
    task_settings,
)
from .stats import INTERVAL_NOTE, interval_text, shared_items
from .tables import (
    BOARD_TITLE,
    DASH,
    FORMATS,
    pct,
    raw_value,
    render_grid,
)


def _results_files_in(folder: Path) -> list[Path]:
    """lm-eval ``--output_path`` folders: the newest results*.json of each model folder."""
    files = sorted(p for p in folder.rglob("*.json") if p.name.startswith("results"))
    newest: dict[Path, Path] = {}
    for f in files:  # names end with an ISO date: sorted order is time order
        newest[f.parent] = f
    return sorted(newest.values())


def _entry_from_results(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """A leaderboard entry from an lm-eval results dict, every cf/param value checked
    (fractions in [0, 1]; stderr finite and >= 0 when present), as ``cpi gate`` checks them."""
    checked = {m: checked_metric_by_task(data, path, m) for m in CPI_METRICS}
    counts = {t: m.get("n") for t, m in task_metrics(data).items()}
    tasks: dict[str, dict[str, Any]] = {}
    for task in sorted(set().union(*checked.values())):
        cell: dict[str, Any] = {}
        for metric, by_task in checked.items():
            if task in by_task:
                cell[metric], cell[f"{metric}_stderr"] = by_task[task]
        tasks[task] = {**cell, "n": counts.get(task)}
    return {
        "model": model_label(data, path),
        "source": str(path),
        "tasks": tasks,
        "settings": task_settings(data, tasks),
        "provenance": provenance_of(data),
    }


def _checked_row_tasks(row: dict[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    """The cpi tasks of one inversion row, their cf/param values checked like lm-eval's."""
    tasks: dict[str, dict[str, Any]] = {}
    for task, metrics in (row.get("tasks") or {}).items():
        if not isinstance(metrics, dict) or not any(m in metrics for m in CPI_METRICS):
            continue
        where = f"{path}: step {row['step']}: task {task}"
        cell: dict[str, Any] = {"n": metrics.get("n")}
        for m in CPI_METRICS:
            if m in metrics:
                cell[m] = checked_value(metrics[m], where, m)
                cell[f"{m}_stderr"] = checked_stderr(metrics.get(f"{m}_stderr"), where, m)
        tasks[task] = cell
    return tasks


def pick_row(data: dict[str, Any], path: Path, which: str) -> dict[str, Any]:
    """The row that stands for a run: ``final``, ``peak`` (highest cf_acc, earliest step) or
    the row of step ``which``. Row means used to pick the peak are checked first."""
    rows = [r for r in data["rows"] if r.get(CF_ACC) is not None] or data["rows"]
    if not rows:
        raise CPIError(f"{path}: inversion.json has no rows; rerun 'cpi sweep'")
    for r in rows:
        if r.get(CF_ACC) is not None:
            checked_value(r[CF_ACC], f"{path}: step {r['step']}", CF_ACC)
    rows = sorted(rows, key=lambda r: r["step"])
    if which == "peak":
        return max(rows, key=lambda r: (r.get(CF_ACC) or 0.0, -r["step"]))
    if which == "final":
        return rows[-1]
    matches = [r for r in rows if str(r["step"]) == which]
    if not matches:
        steps = ", ".join(str(r["step"]) for r in rows)
        raise CPIError(f"{path}: no row for --run_step {which}; steps: {steps}")
    return matches[0]


def _entry_from_inversion(data: dict[str, Any], path: Path, which: str) -> dict[str, Any]:
    """A leaderboard entry for a swept run: its row ``which``, named ``run@step``."""
    row = pick_row(data, path, which)
    name = (data.get("run") or {}).get("name") or path.parent.name
    tasks = _checked_row_tasks(row, path)
    step_file = path.parent / EVAL_DIR / eval_file_name(row["step"])
    if step_file.is_file():  # the row's own results file records every setting
        source = read_json(step_file, "results JSON")
    else:  # only what inversion.json keeps: its settings and the item counts
        source = {
            "cpi": {"settings": data.get(SETTINGS_KEY) or {}},
            "n-samples": {t: {"effective": c.get("n")} for t, c in tasks.items()},
        }
    provenance = provenance_of(source) if is_lm_eval_results(source) else {}
    return {
        "model": f"{name}@{row['step']}",
        "source": str(path),
        "tasks": tasks,
        "settings": task_settings(source, tasks),
        "provenance": {"run": data.get("run") or {}, **provenance},
        "curve": curve_points(data),
        "step": row["step"],
    }


def curve_points(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The inversion curve of a run: ``[{step, cf_acc, param_acc, id_acc (+ _stderr)}]``
    sorted by step (fractions; None where a row has no value)."""
    keys = (CF_ACC, PARAM_ACC, ID_ACC)
    return [
        {"step": r["step"], **{k: r.get(k) for k in keys}}
        | {f"{k}_stderr": r.get(f"{k}_stderr") for k in keys}
        for r in sorted(data["rows"], key=lambda r: r["step"])
    ]


def _entries_from_path(raw: str, run_step: str) -> list[dict[str, Any]]:
    """The entries one command-line PATH stands for (see :func:`collect_entries`)."""
    from .inversion import load_inversion

    path = Path(raw)
    if path.is_dir():
        if (path / INVERSION_JSON).is_file():
            return [_entry_from_inversion(load_inversion(path), path / INVERSION_JSON, run_step)]
        files = _results_files_in(path)
        if not files:
            raise CPIError(
                f"{path}: neither a swept run folder (no {INVERSION_JSON}) nor an lm-eval "
                "output folder (no results*.json inside)"
            )
        return [_entry_from_results(read_json(f), f) for f in files]
    data = read_json(path, "results JSON")
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        return [_entry_from_inversion(load_inversion(path), path, run_step)]
    if is_lm_eval_results(data):
        return [_entry_from_results(data, path)]
    raise CPIError(
        f"{path}: neither an lm-eval results JSON (no 'results') nor an inversion.json (no 'rows')"
    )


def collect_entries(paths: list[str], run_step: str = "final") -> list[dict[str, Any]]:
    """One entry per model: ``{"model", "source", "tasks": {task: metrics}}``.

    A path is an lm-eval results JSON, an ``inversion.json``, a run folder (its
    inversion.json, row ``run_step``), or an lm-eval ``--output_path`` folder (the newest
    results file of each model inside). Every value is checked (:func:`checked_value`).
    """
    entries = [e for raw in paths for e in _entries_from_path(raw, run_step)]
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        groups.setdefault(e["model"], []).append(e)
    for same in groups.values():  # same name twice: tell them apart by where they came from
        if len(same) < 2:
            continue
        folders = [Path(e["source"]).parent.name for e in same]
        unique = len(set(folders)) == len(folders)
        for e, folder in zip(same, folders, strict=True):
            where = folder if unique else f"{folder}/{Path(e['source']).name}"
            e["model"] = f"{e['model']} ({where})"
    return entries


def shared_tasks(entries: list[dict[str, Any]]) -> list[str]:
    """The tasks every model with any cpi task reports: the only set a mean may rank on.

    Raises :class:`CPIError` when models report tasks but share none (nothing comparable).
    """
    sets = [set(e["tasks"]) for e in entries if e["tasks"]]
    shared = sorted(set.intersection(*sets)) if sets else []
    if len(sets) > 1 and not shared:
        listing = "; ".join(
            f"{e['model']}: {', '.join(sorted(e['tasks']))}" for e in entries if e["tasks"]
        )
        raise CPIError(
            f"the models share no cpi task, so no mean can be compared ({listing}); "
            "evaluate them on common tasks"
        )
    return shared


def _mean_over(entry: dict[str, Any], tasks: list[str], metric: str) -> tuple[Any, Any]:
    """(mean, stderr) of ``metric`` over ``tasks`` (fractions); (None, None) when the entry
    lacks a value on one of them, since a mean over fewer tasks would not be comparable."""
    cells = [entry["tasks"].get(t) or {} for t in tasks]
    if not cells or any(c.get(metric) is None for c in cells):
        return None, None
    return mean_with_stderr((c[metric], c.get(f"{metric}_stderr")) for c in cells)


def rank_entries(entries: list[dict[str, Any]], sort_by: str = CF_ACC) -> dict[str, Any]:
    """The leaderboard as data: ``{"tasks", "shared_tasks", "models"}``, models ordered by
    their mean ``sort_by`` over the shared tasks (best first) or by name; each model carries
    its means (``cf_acc``, ``param_acc`` and stderrs, fractions) and ``missing_tasks``."""
    tasks = sorted({t for e in entries for t in e["tasks"]})
    shared = shared_tasks(entries)
    models = []
    for e in entries:
        row = {**e, "missing_tasks": sorted(set(tasks) - set(e["tasks"]))}
        for metric in CPI_METRICS:
            row[metric], row[f"{metric}_stderr"] = _mean_over(e, shared, metric)
        models.append(row)
    if sort_by == "model":
        models.sort(key=lambda e: e["model"])
    else:
        models.sort(key=lambda e: (e[sort_by] is None, -(e[sort_by] or 0.0), e["model"]))
    return {"tasks": tasks, "shared_tasks": shared, "models": models}


def _rank_labels(board: dict[str, Any], sort_by: str) -> list[str]:
    """1, 2, ... per row; an en dash for a row with no mean to rank on."""
    return [
        DASH if sort_by != "model" and e[sort_by] is None else str(i)
        for i, e in enumerate(board["models"], start=1)
    ]


def _compare_csv(board: dict[str, Any], sort_by: str) -> str:
    """CSV leaderboard: raw fractions, the tasks each model lacks and those the means use."""
    tasks, pairs = board["tasks"], [(CF_ACC, ""), (CF_ACC, "_stderr")]
    pairs += [(PARAM_ACC, ""), (PARAM_ACC, "_stderr")]
    headers = ["rank", "model", *(f"{t}/{m}" for t in tasks for m in CPI_METRICS)]
    headers += [f"mean_{m}{s}" for m, s in pairs] + ["mean_over_tasks", "missing_tasks"]
    headers += ["settings_differ", "source"]
    body = []
    for rank, e in zip(_rank_labels(board, sort_by), board["models"], strict=True):
        line = [rank if rank != DASH else "", e["model"]]
        line += [raw_value(e["tasks"].get(t, {}).get(m)) for t in tasks for m in CPI_METRICS]
        line += [raw_value(e[f"{m}{s}"]) for m, s in pairs]
        line += [";".join(board["shared_tasks"]), ";".join(e["missing_tasks"])]
        line += [model_setting_text(board.get("settings_mismatches") or [], e["model"])]
        line.append(e["source"])
        body.append(line)
    return render_grid(headers, body, "csv")


def _compare_note(board: dict[str, Any]) -> str:
    """The sentence under a md / latex leaderboard: which tasks the means and ranks are over."""
    shared = board["shared_tasks"]
    if not shared:
        return "No model reports a cpi task: nothing to rank."
    who = (
        "every model"
        if all(e["tasks"] for e in board["models"])
        else "every model with cpi results"
    )
    text = f"Means and ranks are over the {len(shared)} task(s) {who} reports: "
    text += ", ".join(shared) + "."
    lacking = [e for e in board["models"] if e["missing_tasks"]]
    if lacking:
        text += " Missing: " + "; ".join(
            f"{e['model']} lacks {', '.join(e['missing_tasks'])}" for e in lacking
        )
        text += " (shown as " + DASH + ", left out of every mean)."
    flagged = board.get("settings_mismatches") or []
    if flagged:
        text += (
            f" Settings differ between these results (accepted with {ALLOW_FLAG}): "
            + "; ".join(mismatch_lines(flagged))
            + ". Such differences are not the models' alone."
        )
    return text


def _compare_text(board: dict[str, Any], fmt: str, sort_by: str) -> str:
    """Markdown or LaTeX leaderboard in percentages, with a ``missing`` column when a model
    lacks a task, and the note naming the tasks the means are over."""
    tasks = board["tasks"]
    any_missing = any(e["missing_tasks"] for e in board["models"])
    headers = ["rank", "model", *(f"{t} {m}" for t in tasks for m in ("cf", "param"))]
    headers += ["mean cf ± se [95% CI]", "mean param ± se [95% CI]"]
    if any_missing:
        headers.append("missing")
    flagged = board.get("settings_mismatches") or []
    if flagged:
        headers.append("settings (differ)")
    body = []
    for rank, e in zip(_rank_labels(board, sort_by), board["models"], strict=True):
        line = [rank, e["model"]]
        for t in tasks:
            cell = e["tasks"].get(t, {})
            line += [pct(cell.get(m), show_stderr=False) for m in CPI_METRICS]
        n = shared_items(e, board["shared_tasks"])
        line += [pct(e[m], e[f"{m}_stderr"]) + interval_text(e[m], n) for m in CPI_METRICS]
        if any_missing:
            line.append(", ".join(e["missing_tasks"]) or DASH)
        if flagged:
            line.append(model_setting_text(flagged, e["model"]) or DASH)
        body.append(line)
    note = _compare_note(board) + (" " + INTERVAL_NOTE if fmt == "md" else "")
    return render_grid(headers, body, fmt, numeric_from=2, note=note)


def compare_table(
    entries: list[dict[str, Any]],
    fmt: str,
    sort_by: str = CF_ACC,
    allowed: frozenset[str] = frozenset(),
) -> str:
    """The leaderboard: one row per model, cf/param per cpi task and their means over the
    tasks all models share (see :func:`rank_entries`), as md / csv / latex / json / html.

    The models' results must have been made under the same settings (:mod:`.settings`) on
    every task they share; a difference is :class:`CPIError` unless its setting is in
    ``allowed`` (or ``"all"``), and then it is flagged in every format."""
    board = rank_entries(entries, sort_by)
    board["settings_mismatches"] = check_settings(
        mismatches({e["model"]: e.get("settings") or {} for e in entries}), allowed
    )
    if fmt == "json":
        return dump_json(board)
    if fmt == "csv":
        return _compare_csv(board, sort_by)
    if fmt == "html":
        return board_html(board, _rank_labels(board, sort_by), _compare_note(board), BOARD_TITLE)
    return _compare_text(board, fmt, sort_by)


def build_compare_parser() -> ArgumentParser:
    """The ``cpi compare`` options."""
    parser = ArgumentParser(
        prog="cpi compare",
        description="Leaderboard across models or runs: counterfactual (cf) and parametric "
        "accuracy (%) per cpi task, and their means over the tasks every model reports (the "
        "ranking uses only those), one row per model, best cf first. Every value must be a "
        "finite fraction in [0, 1], else exit 2 naming the file, task and metric.",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="lm-eval results JSON (lm_eval --output_path), an lm-eval output "
        "folder, a swept run folder, or an inversion.json",
    )
    parser.add_argument("--format", default="md", choices=FORMATS, help="output format")
    parser.add_argument(
        "--sort_by",
        default=CF_ACC,
        choices=(CF_ACC, PARAM_ACC, "model"),
        help="order rows by mean cf_acc (default, best first), mean param_acc, or model name",
    )
    parser.add_argument(
        "--run_step",
        default="final",
        help="for run folders: which row stands for the run: final, peak, or a step number",
    )
    add_allow_flag(parser)
    parser.add_argument("--output", default=None, help="write here instead of printing")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    return build_compare_parser().parse_args(argv)


def main_compare(argv: list[str]) -> int:
    """``cpi compare``: print or write the leaderboard; bad input exits 2 (one line)."""
    args = parse_args(argv)
    if args.output:
        check_output_file(args.output, "--output", inputs=tuple(args.paths))
    allowed = parse_allowed(args.allow_settings)
    entries = collect_entries(args.paths, run_step=args.run_step)
    text = compare_table(entries, args.format, sort_by=args.sort_by, allowed=allowed)
    for e in entries:
        if not e["tasks"]:
            print(
                f"cpi compare: warning: {e['source']} has no cf_acc/param_acc task; its row "
                "is empty and unranked",
                file=sys.stderr,
            )
    write_output(text, args.output)
    return EXIT_OK


def main(argv: list[str]) -> int:
    """``cpi compare``."""
    return main_compare(argv)
