"""``cpi table`` and ``cpi compare``: tables and plots rendered only from JSON.

    cpi table RUN_DIR --format md|csv|latex|json      # re-render RUN_DIR/inversion.json
    cpi compare results_a.json out/model_b/ runs/ift-1 --format md

Nothing here loads a model or lm-eval: reports run anywhere, in milliseconds, and always show
exactly what the evaluation wrote. Markdown and LaTeX show percentages (one decimal, with
"± stderr"); CSV and JSON keep raw fractions in [0, 1].
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

from cpi_bench.harness_ext.core.cli_args import ArgumentParser
from cpi_bench.harness_ext.core.constants import (
    ATTENTION_COLUMN,
    CF_ACC,
    CF_PREF,
    CPI_METRICS,
    EVAL_DIR,
    ID_ACC,
    INVERSION_CSV,
    INVERSION_HTML,
    INVERSION_JSON,
    INVERSION_MD,
    INVERSION_PNG,
    PARAM_ACC,
    RUN_REPORTS,
    SETTINGS_KEY,
    eval_file_name,
)
from cpi_bench.harness_ext.core.errors import (
    EXIT_OK,
    EXIT_USAGE,
    CPIError,
)
from cpi_bench.harness_ext.core.files import (
    atomic_write_bytes,
    atomic_write_text,
    check_output_file,
    dump_json,
    read_json,
)
from cpi_bench.harness_ext.reports.flips import item_notes
from cpi_bench.harness_ext.reports.html import board_html, run_html
from cpi_bench.harness_ext.reports.knowledge import (
    KNOWN_HEADERS,
    has_known,
    known_cells,
    known_note,
)
from cpi_bench.harness_ext.reports.plots import inversion_png, plot_title
from cpi_bench.harness_ext.reports.results import (
    checked_metric_by_task,
    checked_stderr,
    checked_value,
    is_lm_eval_results,
    mean_with_stderr,
    model_label,
    provenance_of,
    task_metrics,
)
from cpi_bench.harness_ext.reports.settings import (
    ALLOW_FLAG,
    add_allow_flag,
    check_settings,
    mismatch_lines,
    mismatches,
    model_setting_text,
    parse_allowed,
    task_settings,
)
from cpi_bench.harness_ext.reports.stats import (
    INTERVAL_NOTE,
    interval_text,
    row_items,
    shared_items,
)

FORMATS = ("md", "csv", "latex", "json", "html")
TASK_METRICS_SHOWN = (CF_ACC, PARAM_ACC, CF_PREF)  # per-task columns in md / latex tables
DASH = "–"
BOARD_TITLE = "Context reliance leaderboard (cpi compare)"


# ----------------------------------------------------------------------------- formatting


def pct(value: float | None, stderr: float | None = None, show_stderr: bool = True) -> str:
    """``0.4123, 0.031`` -> ``41.2 ± 3.1`` (percentage points); None -> an en dash."""
    if value is None:
        return DASH
    text = f"{100 * value:.1f}"
    if show_stderr and stderr is not None:
        text += f" ± {100 * stderr:.1f}"
    return text


def _raw(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "–": "--",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (task names have underscores)."""
    return "".join(_LATEX.get(c, c) for c in text)


def render_grid(
    headers: list[str],
    rows: list[list[str]],
    fmt: str,
    numeric_from: int = 1,
    note: str | None = None,
) -> str:
    """A text table: Markdown pipes, CSV, or a LaTeX ``tabular`` (columns from
    ``numeric_from`` on are right-aligned). ``note`` is a sentence shown under a Markdown
    table and as a last full-width row of a LaTeX one (CSV keeps only data)."""
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(rows)
        return buf.getvalue()
    if fmt == "md":
        align = ["---" if i < numeric_from else "---:" for i in range(len(headers))]
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += ["", note] if note else []
        return "\n".join(lines) + "\n"
    if fmt == "latex":
        return _latex_grid(headers, rows, numeric_from, note)
    raise CPIError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _latex_grid(
    headers: list[str], rows: list[list[str]], numeric_from: int, note: str | None
) -> str:
    """A LaTeX ``tabular`` with escaped cells; ``note`` as a full-width row below it."""
    spec = "".join("l" if i < numeric_from else "r" for i in range(len(headers)))
    lines = [
        f"\\begin{{tabular}}{{{spec}}}",
        "\\hline",
        " & ".join(latex_escape(h) for h in headers) + r" \\",
        "\\hline",
    ]
    lines += [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows]
    lines.append("\\hline")
    if note:
        lines.append(
            f"\\multicolumn{{{len(headers)}}}{{p{{0.9\\linewidth}}}}{{\\footnotesize "
            f"{latex_escape(note)}}} \\\\"
        )
    lines.append("\\end{tabular}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- inversion tables


def _task_columns(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(task, metric) pairs shown per task, in a stable order: cpi tasks first."""
    seen: dict[tuple[str, str], None] = {}
    for row in data["rows"]:
        for task in sorted(row.get("tasks") or {}):
            for metric in TASK_METRICS_SHOWN:
                if metric in row["tasks"][task]:
                    seen[(task, metric)] = None
    return sorted(seen, key=lambda tm: (tm[1] == CF_PREF, tm[0], TASK_METRICS_SHOWN.index(tm[1])))


def _csv_task_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Every (task, metric) pair any row reports (CSV keeps them all, sorted)."""
    return sorted(
        {(t, m) for r in rows for t, ms in (r.get("tasks") or {}).items() for m in ms if m != "n"}
    )


def _inversion_csv(rows: list[dict[str, Any]]) -> str:
    """CSV of the inversion rows: raw fractions, every task metric and ID task value."""
    id_names = sorted({t for r in rows for t in (r.get("id_tasks") or {})})
    mean_keys = [CF_ACC, PARAM_ACC, ID_ACC]
    task_cols = _csv_task_columns(rows)
    headers = ["step", "checkpoint", *(f"{k}{s}" for k in mean_keys for s in ("", "_stderr"))]
    headers += [ATTENTION_COLUMN, *(f"{t}/{m}" for t, m in task_cols)]
    headers += [f"{t}/id" for t in id_names]
    body = []
    for r in rows:
        line = [r["step"], r.get("checkpoint")]
        line += [r.get(f"{k}{s}") for k in mean_keys for s in ("", "_stderr")]
        line.append(r.get(ATTENTION_COLUMN))
        line += [(r.get("tasks") or {}).get(t, {}).get(m) for t, m in task_cols]
        line += [(r.get("id_tasks") or {}).get(t, {}).get("value") for t in id_names]
        body.append([_raw(v) for v in line])
    return render_grid(headers, body, "csv")


def _inversion_text(data: dict[str, Any], rows: list[dict[str, Any]], fmt: str) -> str:
    """Markdown or LaTeX inversion table: percentages, means ± stderr, per-task columns."""
    has_id = any(r.get(ID_ACC) is not None for r in rows) or bool(data.get("id_tasks"))
    has_att = any(r.get(ATTENTION_COLUMN) is not None for r in rows)
    task_cols = _task_columns(data)
    known = has_known(rows)
    headers = ["step", "CF acc (%) ± se [95% Wilson CI]", "param acc (%) ± se [95% Wilson CI]"]
    if has_id:
        headers.append("ID acc (%)")
    if has_att:
        headers.append("attn ctx (%)")
    headers += list(KNOWN_HEADERS) if known else []
    headers += [
        f"{t} {m.replace('_acc', '').replace('cf_pref', 'cf pref')} (%)" for t, m in task_cols
    ]
    body = []
    for r in rows:
        line = [str(r["step"])]
        line += [
            pct(r.get(k), r.get(f"{k}_stderr")) + interval_text(r.get(k), row_items(r, k))
            for k in (CF_ACC, PARAM_ACC)
        ]
        if has_id:
            line.append(pct(r.get(ID_ACC), r.get(f"{ID_ACC}_stderr")))
        if has_att:
            line.append(pct(r.get(ATTENTION_COLUMN)))
        line += [pct(v) for v in known_cells(r)] if known else []
        for t, m in task_cols:
            cell = (r.get("tasks") or {}).get(t) or {}
            line.append(pct(cell.get(m), cell.get(f"{m}_stderr"), show_stderr=False))
        body.append(line)
    note = INTERVAL_NOTE + (known_note(data) if known else "") if fmt == "md" else None
    return render_grid(headers, body, fmt, numeric_from=1, note=note)


def inversion_table(
    data: dict[str, Any], fmt: str, provenance_by_step: dict[int, dict[str, Any]] | None = None
) -> str:
    """Render ``inversion.json`` as md / csv / latex / json / html text (md adds the summary
    sentence and the checkpoints that were not evaluated; html is the whole run report page,
    with each step's provenance from ``provenance_by_step``)."""
    if fmt == "json":
        return dump_json(data)
    if fmt == "html":
        summary = summary_sentence(data.get("summary") or {})
        return run_html(data, summary, provenance_by_step or {}, plot_title(data))
    rows = sorted(data["rows"], key=lambda r: r["step"])
    if fmt == "csv":
        return _inversion_csv(rows)
    table = _inversion_text(data, rows, fmt)
    if fmt == "md":
        table += "\n" + summary_sentence(data.get("summary") or {}) + "\n"
        table += item_notes(data)
        for f in data.get("failures") or []:
            table += f"\nNot evaluated: step {f.get('step')} ({f.get('path')}): {f.get('reason')}\n"
    return table


def summary_sentence(summary: dict[str, Any]) -> str:
    """One line a person reads: where the peak is and whether the fall is real."""
    if summary.get("peak_cf_acc") is None:
        return "No counterfactual accuracy was measured (no task reports cf_acc)."
    drop_se = summary.get("drop_stderr")
    verdict = {
        True: "exceeds its standard error",
        False: "is within its standard error",
        None: "has no standard error",
    }[summary.get("drop_exceeds_stderr")]
    se_text = f" ± {100 * drop_se:.1f}" if drop_se is not None else ""
    return (
        f"Counterfactual accuracy: {pct(summary['initial_cf_acc'])}% at step "
        f"{summary.get('initial_step', 0)}, peak {pct(summary['peak_cf_acc'])}% at step "
        f"{summary['peak_step']}, final {pct(summary['final_cf_acc'])}% at step "
        f"{summary.get('final_step')}. Rise {100 * summary['rise']:+.1f} points; drop "
        f"{100 * summary['drop']:.1f}{se_text} points, which {verdict}."
    )


def write_run_reports(run_dir: Path, data: dict[str, Any]) -> list[Path]:
    """Write inversion.json, then md / csv / png / html rendered from it (each atomically)."""
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / INVERSION_JSON, dump_json(data))
    data = read_json(run_dir / INVERSION_JSON)  # render from the file, exactly as stored
    atomic_write_text(run_dir / INVERSION_MD, inversion_table(data, "md"))
    atomic_write_text(run_dir / INVERSION_CSV, inversion_table(data, "csv"))
    atomic_write_bytes(run_dir / INVERSION_PNG, inversion_png(data))
    html = inversion_table(data, "html", step_provenance(run_dir, data))
    atomic_write_text(run_dir / INVERSION_HTML, html)
    return [run_dir / n for n in RUN_REPORTS]


def step_provenance(run_dir: Path, data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """``{step: provenance}`` from each row's ``eval/step-N.json`` (what the run report shows
    one click away). A missing or unreadable file gives a note instead: the report of the
    numbers never fails for want of their provenance."""
    out: dict[int, dict[str, Any]] = {}
    for row in data["rows"]:
        path = Path(run_dir) / EVAL_DIR / eval_file_name(row["step"])
        try:
            results = read_json(path, "results JSON")
        except CPIError as err:
            out[row["step"]] = {"not recorded": str(err)}
            continue
        out[row["step"]] = provenance_of(results) if is_lm_eval_results(results) else {}
    return out


# ----------------------------------------------------------------------------- cpi table


def main_table(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="cpi table",
        description="Re-render the inversion table of a swept run from RUN_DIR/inversion.json "
        "(no model is loaded).",
    )
    parser.add_argument("run", help="run folder holding inversion.json, or the JSON file itself")
    parser.add_argument(
        "--format",
        default="md",
        choices=FORMATS,
        help="md and latex show percentages; csv and json raw fractions",
    )
    parser.add_argument("--output", default=None, help="write here instead of printing")
    parser.add_argument(
        "--plot",
        default=None,
        metavar="PNG",
        help="also draw the inversion plot (Figure 2 style) to this PNG file",
    )
    args = parser.parse_args(argv)
    from cpi_bench.harness_ext.core.constants import INVERSION_JSON
    from cpi_bench.harness_ext.reports.inversion import load_inversion

    source = Path(args.run) / INVERSION_JSON if Path(args.run).is_dir() else Path(args.run)
    for flag, target in (("--output", args.output), ("--plot", args.plot)):
        if target:
            check_output_file(target, flag, inputs=(source,))
    try:
        data = load_inversion(Path(args.run))
        prov = step_provenance(source.parent, data) if args.format == "html" else None
        text = inversion_table(data, args.format, prov)
        if args.plot:
            atomic_write_bytes(Path(args.plot), inversion_png(data))
    except CPIError as err:
        print(f"cpi table: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if args.output:
        atomic_write_text(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


# ----------------------------------------------------------------------------- cpi compare


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
    from cpi_bench.harness_ext.reports.inversion import load_inversion

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
        line += [_raw(e["tasks"].get(t, {}).get(m)) for t in tasks for m in CPI_METRICS]
        line += [_raw(e[f"{m}{s}"]) for m, s in pairs]
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


def main_compare(argv: list[str]) -> int:
    """``cpi compare``: print or write the leaderboard; bad input exits 2 (one line)."""
    args = build_compare_parser().parse_args(argv)
    if args.output:
        check_output_file(args.output, "--output", inputs=tuple(args.paths))
    try:
        allowed = parse_allowed(args.allow_settings)
        entries = collect_entries(args.paths, run_step=args.run_step)
        text = compare_table(entries, args.format, sort_by=args.sort_by, allowed=allowed)
    except CPIError as err:
        print(f"cpi compare: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    for e in entries:
        if not e["tasks"]:
            print(
                f"cpi compare: warning: {e['source']} has no cf_acc/param_acc task; its row "
                "is empty and unranked",
                file=sys.stderr,
            )
    if args.output:
        atomic_write_text(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def main(argv: list[str]) -> int:  # pragma: no cover - the CLI dispatches main_<name>
    return main_table(argv)
