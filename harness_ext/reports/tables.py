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
    ID_ACC,
    INVERSION_CSV,
    INVERSION_JSON,
    INVERSION_MD,
    INVERSION_PNG,
    PARAM_ACC,
)
from cpi_bench.harness_ext.core.errors import (
    EXIT_OK,
    EXIT_USAGE,
    CPIError,
)
from cpi_bench.harness_ext.core.files import (
    atomic_write_bytes,
    atomic_write_text,
    dump_json,
    read_json,
)
from cpi_bench.harness_ext.reports.results import (
    cpi_task_metrics,
    is_lm_eval_results,
    mean_with_stderr,
    model_label,
)

FORMATS = ("md", "csv", "latex", "json")
TASK_METRICS_SHOWN = (CF_ACC, PARAM_ACC, CF_PREF)  # per-task columns in md / latex tables
DASH = "–"


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


def render_grid(headers: list[str], rows: list[list[str]], fmt: str, numeric_from: int = 1) -> str:
    """A text table: Markdown pipes, CSV, or a LaTeX ``tabular`` (columns from
    ``numeric_from`` on are right-aligned)."""
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
        return "\n".join(lines) + "\n"
    if fmt == "latex":
        spec = "".join("l" if i < numeric_from else "r" for i in range(len(headers)))
        lines = [
            f"\\begin{{tabular}}{{{spec}}}",
            "\\hline",
            " & ".join(latex_escape(h) for h in headers) + r" \\",
            "\\hline",
        ]
        lines += [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows]
        lines += ["\\hline", "\\end{tabular}"]
        return "\n".join(lines) + "\n"
    raise CPIError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")


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


def inversion_table(data: dict[str, Any], fmt: str) -> str:
    """Render ``inversion.json`` as md / csv / latex / json text."""
    if fmt == "json":
        return dump_json(data)
    rows = sorted(data["rows"], key=lambda r: r["step"])
    has_id = any(r.get(ID_ACC) is not None for r in rows) or bool(data.get("id_tasks"))
    has_att = any(r.get(ATTENTION_COLUMN) is not None for r in rows)
    task_cols = _task_columns(data)
    if fmt == "csv":
        id_names = sorted({t for r in rows for t in (r.get("id_tasks") or {})})
        headers = [
            "step",
            "checkpoint",
            CF_ACC,
            f"{CF_ACC}_stderr",
            PARAM_ACC,
            f"{PARAM_ACC}_stderr",
            ID_ACC,
            f"{ID_ACC}_stderr",
            ATTENTION_COLUMN,
        ]
        all_task_cols = sorted(
            {
                (t, m)
                for r in rows
                for t, ms in (r.get("tasks") or {}).items()
                for m in ms
                if m != "n"
            }
        )
        headers += [f"{t}/{m}" for t, m in all_task_cols]
        headers += [f"{t}/id" for t in id_names]
        body = []
        for r in rows:
            line = [
                r["step"],
                r.get("checkpoint"),
                r.get(CF_ACC),
                r.get(f"{CF_ACC}_stderr"),
                r.get(PARAM_ACC),
                r.get(f"{PARAM_ACC}_stderr"),
                r.get(ID_ACC),
                r.get(f"{ID_ACC}_stderr"),
                r.get(ATTENTION_COLUMN),
            ]
            line += [(r.get("tasks") or {}).get(t, {}).get(m) for t, m in all_task_cols]
            line += [(r.get("id_tasks") or {}).get(t, {}).get("value") for t in id_names]
            body.append([_raw(v) for v in line])
        return render_grid(headers, body, "csv")
    headers = ["step", "CF acc (%)", "param acc (%)"]
    if has_id:
        headers.append("ID acc (%)")
    if has_att:
        headers.append("attn ctx (%)")
    headers += [
        f"{t} {m.replace('_acc', '').replace('cf_pref', 'cf pref')} (%)" for t, m in task_cols
    ]
    body = []
    for r in rows:
        line = [
            str(r["step"]),
            pct(r.get(CF_ACC), r.get(f"{CF_ACC}_stderr")),
            pct(r.get(PARAM_ACC), r.get(f"{PARAM_ACC}_stderr")),
        ]
        if has_id:
            line.append(pct(r.get(ID_ACC), r.get(f"{ID_ACC}_stderr")))
        if has_att:
            line.append(pct(r.get(ATTENTION_COLUMN)))
        for t, m in task_cols:
            cell = (r.get("tasks") or {}).get(t) or {}
            line.append(pct(cell.get(m), cell.get(f"{m}_stderr"), show_stderr=False))
        body.append(line)
    table = render_grid(headers, body, fmt, numeric_from=1)
    if fmt == "md":
        table += "\n" + summary_sentence(data.get("summary") or {}) + "\n"
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


# ----------------------------------------------------------------------------- plot


def inversion_png(data: dict[str, Any]) -> bytes:
    """The paper's Figure 2 from ``inversion.json``: counterfactual and parametric accuracy
    (%, left axis) against training steps, ID accuracy (%, right axis); with a second panel
    for attention to context when measured."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    rows = sorted(data["rows"], key=lambda r: r["step"])
    steps = [r["step"] for r in rows]
    has_att = any(r.get(ATTENTION_COLUMN) is not None for r in rows)
    fig, axes = plt.subplots(
        1, 2 if has_att else 1, figsize=(10.5 if has_att else 6.4, 4.6), squeeze=False
    )
    ax = axes[0][0]

    def series(key: str) -> tuple[list[int], list[float], list[float]]:
        xs, ys, es = [], [], []
        for r in rows:
            if r.get(key) is not None:
                xs.append(r["step"])
                ys.append(100 * r[key])
                es.append(100 * (r.get(f"{key}_stderr") or 0.0))
        return xs, ys, es

    handles = []
    for key, label, style in (
        (CF_ACC, "counterfactual acc", "-o"),
        (PARAM_ACC, "parametric acc", "--s"),
    ):
        xs, ys, es = series(key)
        if xs:
            (line,) = ax.plot(xs, ys, style, label=label)
            ax.fill_between(
                xs,
                [y - e for y, e in zip(ys, es, strict=True)],
                [y + e for y, e in zip(ys, es, strict=True)],
                alpha=0.15,
                color=line.get_color(),
            )
            handles.append(line)
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy on counterfactual items (%)")
    ax.set_ylim(-2, 102)
    xs, ys, _ = series(ID_ACC)
    if xs:
        ax2 = ax.twinx()
        (line,) = ax2.plot(xs, ys, ":^", color="tab:green", label="ID acc (right)")
        ax2.set_ylabel("ID accuracy (%)")
        handles.append(line)
    summary = data.get("summary") or {}
    if summary.get("peak_step") is not None:
        ax.axvline(summary["peak_step"], color="grey", lw=0.8, ls="--")
    if handles:
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            ncol=len(handles),
            fontsize=8,
            frameon=False,
        )
    run = (data.get("run") or {}).get("name") or ""
    ax.set_title(f"Context-parametric inversion {run}".strip(), fontsize=10)
    if steps:
        ax.set_xticks(steps if len(steps) <= 12 else steps[:: max(1, len(steps) // 10)])
    if has_att:
        axa = axes[0][1]
        xs, ys, _ = series(ATTENTION_COLUMN)
        axa.plot(xs, ys, "-o", color="tab:purple")
        axa.set_xlabel("training step")
        axa.set_ylabel("attention on context (%)")
        axa.set_title("attention from answer position to context", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def write_run_reports(run_dir: Path, data: dict[str, Any]) -> list[Path]:
    """Write inversion.json, then md / csv / png rendered from it (each atomically)."""
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / INVERSION_JSON, dump_json(data))
    data = read_json(run_dir / INVERSION_JSON)  # render from the file, exactly as stored
    atomic_write_text(run_dir / INVERSION_MD, inversion_table(data, "md"))
    atomic_write_text(run_dir / INVERSION_CSV, inversion_table(data, "csv"))
    atomic_write_bytes(run_dir / INVERSION_PNG, inversion_png(data))
    return [run_dir / n for n in (INVERSION_JSON, INVERSION_MD, INVERSION_CSV, INVERSION_PNG)]


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
    from cpi_bench.harness_ext.reports.inversion import load_inversion

    try:
        data = load_inversion(Path(args.run))
        text = inversion_table(data, args.format)
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
    tasks = cpi_task_metrics(data)
    return {"model": model_label(data, path), "source": str(path), "tasks": tasks}


def _entry_from_inversion(data: dict[str, Any], path: Path, which: str) -> dict[str, Any]:
    rows = [r for r in data["rows"] if r.get(CF_ACC) is not None] or data["rows"]
    if not rows:
        raise CPIError(f"{path}: inversion.json has no rows; rerun 'cpi sweep'")
    rows = sorted(rows, key=lambda r: r["step"])
    if which == "peak":
        row = max(rows, key=lambda r: (r.get(CF_ACC) or 0.0, -r["step"]))
    elif which == "final":
        row = rows[-1]
    else:
        matches = [r for r in rows if str(r["step"]) == which]
        if not matches:
            raise CPIError(
                f"{path}: no row for step {which}; steps: {', '.join(str(r['step']) for r in rows)}"
            )
        row = matches[0]
    name = (data.get("run") or {}).get("name") or path.parent.name
    tasks = {t: m for t, m in (row.get("tasks") or {}).items() if CF_ACC in m or PARAM_ACC in m}
    return {"model": f"{name}@{row['step']}", "source": str(path), "tasks": tasks}


def collect_entries(paths: list[str], run_step: str = "final") -> list[dict[str, Any]]:
    """One entry per model: ``{"model", "source", "tasks": {task: metrics}}``.

    A path is an lm-eval results JSON, an ``inversion.json``, a run folder (its
    inversion.json, row ``run_step``), or an lm-eval ``--output_path`` folder (the newest
    results file of each model inside).
    """
    from cpi_bench.harness_ext.reports.inversion import load_inversion

    entries: list[dict[str, Any]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            if (path / INVERSION_JSON).is_file():
                inv = load_inversion(path)
                entries.append(_entry_from_inversion(inv, path / INVERSION_JSON, run_step))
                continue
            files = _results_files_in(path)
            if not files:
                raise CPIError(
                    f"{path}: neither a swept run folder (no {INVERSION_JSON}) nor an lm-eval "
                    "output folder (no results*.json inside)"
                )
            for f in files:
                entries.append(_entry_from_results(read_json(f), f))
            continue
        data = read_json(path, "results JSON")
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            entries.append(_entry_from_inversion(load_inversion(path), path, run_step))
        elif is_lm_eval_results(data):
            entries.append(_entry_from_results(data, path))
        else:
            raise CPIError(
                f"{path}: neither an lm-eval results JSON (no 'results') nor an inversion.json "
                "(no 'rows')"
            )
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["model"]] = counts.get(e["model"], 0) + 1
    for e in entries:  # same name twice: tell them apart by where they came from
        if counts[e["model"]] > 1:
            e["model"] = f"{e['model']} ({Path(e['source']).parent.name}/{Path(e['source']).name})"
    return entries


def compare_table(entries: list[dict[str, Any]], fmt: str, sort_by: str = CF_ACC) -> str:
    """The leaderboard: one row per model, cf/param per cpi task and their means."""
    tasks = sorted({t for e in entries for t in e["tasks"]})
    for e in entries:
        e[CF_ACC], e[f"{CF_ACC}_stderr"] = mean_with_stderr(
            (m.get(CF_ACC), m.get(f"{CF_ACC}_stderr")) for m in e["tasks"].values()
        )
        e[PARAM_ACC], e[f"{PARAM_ACC}_stderr"] = mean_with_stderr(
            (m.get(PARAM_ACC), m.get(f"{PARAM_ACC}_stderr")) for m in e["tasks"].values()
        )
    if sort_by == "model":
        ordered = sorted(entries, key=lambda e: e["model"])
    else:
        ordered = sorted(
            entries, key=lambda e: (e.get(sort_by) is None, -(e.get(sort_by) or 0.0), e["model"])
        )
    if fmt == "json":
        return dump_json({"tasks": tasks, "models": ordered})
    headers = ["rank", "model"]
    for t in tasks:
        headers += [f"{t} cf", f"{t} param"]
    headers += ["mean cf", "mean param"]
    if fmt == "csv":
        headers = ["rank", "model"] + [f"{t}/{m}" for t in tasks for m in (CF_ACC, PARAM_ACC)]
        headers += [
            f"mean_{CF_ACC}",
            f"mean_{CF_ACC}_stderr",
            f"mean_{PARAM_ACC}",
            f"mean_{PARAM_ACC}_stderr",
            "source",
        ]
    body = []
    for rank, e in enumerate(ordered, start=1):
        if fmt == "csv":
            line = [str(rank), e["model"]]
            line += [_raw(e["tasks"].get(t, {}).get(m)) for t in tasks for m in (CF_ACC, PARAM_ACC)]
            line += [
                _raw(e[CF_ACC]),
                _raw(e[f"{CF_ACC}_stderr"]),
                _raw(e[PARAM_ACC]),
                _raw(e[f"{PARAM_ACC}_stderr"]),
                e["source"],
            ]
        else:
            line = [str(rank), e["model"]]
            for t in tasks:
                m = e["tasks"].get(t, {})
                line += [
                    pct(m.get(CF_ACC), show_stderr=False),
                    pct(m.get(PARAM_ACC), show_stderr=False),
                ]
            line += [
                pct(e[CF_ACC], e[f"{CF_ACC}_stderr"]),
                pct(e[PARAM_ACC], e[f"{PARAM_ACC}_stderr"]),
            ]
        body.append(line)
    return render_grid(headers, body, fmt, numeric_from=2)


def main_compare(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="cpi compare",
        description="Leaderboard across models or runs: counterfactual (cf) and parametric "
        "accuracy (%) per cpi task and their mean, one row per model, best cf first.",
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
    parser.add_argument("--output", default=None, help="write here instead of printing")
    args = parser.parse_args(argv)
    try:
        entries = collect_entries(args.paths, run_step=args.run_step)
        text = compare_table(entries, args.format, sort_by=args.sort_by)
    except CPIError as err:
        print(f"cpi compare: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    for e in entries:
        if not e["tasks"]:
            print(
                f"cpi compare: warning: {e['source']} has no cf_acc/param_acc task; its row "
                "is empty",
                file=sys.stderr,
            )
    if args.output:
        atomic_write_text(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def main(argv: list[str]) -> int:  # pragma: no cover - the CLI dispatches main_<name>
    return main_table(argv)
