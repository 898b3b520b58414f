"""``cpi table``: a swept run's inversion table, rendered only from JSON; and the table
formatting ``cpi compare`` (``compare.py``) shares.

    cpi table RUN_DIR --format md|csv|latex|json|html   # re-render RUN_DIR/inversion.json

Nothing here loads a model or lm-eval: reports run anywhere, in milliseconds, and always show
exactly what the evaluation wrote. Markdown and LaTeX show percentages (one decimal, with
"± stderr"); CSV and JSON keep raw fractions in [0, 1].
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any

from ..core.cli_args import ArgumentParser
from ..core.constants import (
    ATTENTION_COLUMN,
    CF_ACC,
    CF_PREF,
    EVAL_DIR,
    ID_ACC,
    INVERSION_JSON,
    PARAM_ACC,
    eval_file_name,
)
from ..core.errors import (
    EXIT_OK,
    CPIError,
)
from ..core.files import (
    atomic_write_bytes,
    check_output_file,
    dump_json,
    read_json,
    write_output,
)
from .flips import item_notes
from .html import run_html
from .knowledge_filter import (
    KNOWN_HEADERS,
    has_known,
    known_cells,
    known_note,
)
from .plots import inversion_png, plot_title
from .results import (
    is_lm_eval_results,
    provenance_of,
)
from .stats import (
    INTERVAL_NOTE,
    interval_text,
    row_items,
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


def raw_value(value: Any) -> str:
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
        body.append([raw_value(v) for v in line])
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


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The options of ``cpi table``."""
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
    return parser.parse_args(argv)


def main_table(argv: list[str]) -> int:
    """``cpi table``: print or write the run's table (and ``--plot``)."""
    from .inversion import load_inversion

    args = parse_args(argv)
    source = Path(args.run) / INVERSION_JSON if Path(args.run).is_dir() else Path(args.run)
    for flag, target in (("--output", args.output), ("--plot", args.plot)):
        if target:
            check_output_file(target, flag, inputs=(source,))
    data = load_inversion(Path(args.run))
    prov = step_provenance(source.parent, data) if args.format == "html" else None
    text = inversion_table(data, args.format, prov)
    if args.plot:
        atomic_write_bytes(Path(args.plot), inversion_png(data))
    write_output(text, args.output)
    return EXIT_OK


def main(argv: list[str]) -> int:
    """``cpi table``."""
    return main_table(argv)
