"""HTML reports: the leaderboard (``cpi compare --format html``) and the run report
(``cpi table RUN --format html``, ``inversion.html``), each one self-contained file.

Pure functions from the loaded JSON (the board of :func:`.compare.rank_entries`, an
``inversion.json``) to a string: reading stays in the readers. The page needs nothing at
view time: CSS and JavaScript are inline (vanilla, no library), curves are inline SVG
(:mod:`.svg`), and a Content-Security-Policy forbids every network request. Every text that
comes from a file (model names, paths, task names) is HTML-escaped; the script reads only
the table's own cells, so no data is ever placed inside it.

Tables sort by any column: click a header (or focus it and press Enter). Numbers sort by
their value (``data-v``, a fraction), best first on the first click; text sorts A-Z; empty
cells always last. Accuracies show as percentages with their 95% Wilson interval
(:func:`.stats.wilson_interval`, from the value and its item count); the standard error
lm-eval reports is in each cell's tooltip. Provenance (model fingerprint, data hashes,
versions, settings: whatever the file records) is one click away in a ``<details>``.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from ..core.constants import (
    ATTENTION_COLUMN,
    CF_ACC,
    CF_PREF,
    CPI_METRICS,
    HTML_GENERATOR,
    ID_ACC,
    PARAM_ACC,
)
from .settings import model_setting_text
from .stats import INTERVAL_NOTE, shared_items, wilson_interval
from .svg import curve_svg

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
TASK_METRICS_SHOWN = (CF_ACC, PARAM_ACC, CF_PREF)
SHORT = {CF_ACC: "cf", PARAM_ACC: "param", CF_PREF: "cf pref"}

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;
color:#1b1b1b;background:#fff}
h1{font-size:20px;margin:0 0 4px}p.note{color:#444;max-width:70em;margin:6px 0}
.wrap{overflow-x:auto}table{border-collapse:collapse;margin:12px 0}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:right}
th{background:#f3f5f8;cursor:pointer;user-select:none;white-space:nowrap;position:sticky;top:0}
th:focus{outline:2px solid #1f77b4}th.text,td.text{text-align:left;white-space:nowrap}
th[aria-sort=descending]::after{content:" \\25BC"}th[aria-sort=ascending]::after{content:" \\25B2"}
tbody tr:nth-child(even){background:#fafbfc}.ci{display:block;color:#666;font-size:11px}
td.model{font-weight:600;white-space:nowrap}details summary{cursor:pointer;color:#1f5fa8}
details pre{text-align:left;font-size:11px;max-width:60em;white-space:pre-wrap;
background:#f6f6f6;padding:6px}
svg.curve text{font-size:11px;fill:#333}svg .grid{stroke:#e4e4e4}svg .axis{stroke:#888}
svg .peak{stroke:#999;stroke-dasharray:4 3}.flag{color:#a15c00}
"""

SCRIPT = """
(function () {
  "use strict";
  function key(cell, numeric) {
    var raw = cell.getAttribute("data-v");
    if (raw === null) { raw = cell.textContent.trim(); }
    if (raw === "") { return null; }
    if (numeric) { var x = parseFloat(raw); return isNaN(x) ? null : x; }
    return raw.toLowerCase();
  }
  function sortBy(table, th, col) {
    var numeric = th.getAttribute("data-type") === "num";
    var current = th.getAttribute("aria-sort");
    var dir = current ? (current === "descending" ? "ascending" : "descending")
                      : (numeric ? "descending" : "ascending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
      return {row: row, i: i, k: key(row.cells[col], numeric)};
    });
    rows.sort(function (a, b) {
      if (a.k === null || b.k === null) {
        return a.k === b.k ? a.i - b.i : (a.k === null ? 1 : -1);
      }
      var c = a.k < b.k ? -1 : (a.k > b.k ? 1 : 0);
      return (dir === "ascending" ? c : -c) || a.i - b.i;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", dir);
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortBy(table, th, col); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, th, col); }
      });
    });
  });
}());
"""


def _e(value: Any) -> str:
    """HTML-escaped text, quotes included (safe in an attribute too)."""
    return escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    """A whole self-contained HTML document around ``body`` (already escaped HTML)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="generator" content="{HTML_GENERATOR}">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n"
        f"<script>{SCRIPT}</script>\n</body></html>\n"
    )


def th(label: str, numeric: bool, title: str = "") -> str:
    """A sortable header cell (numeric columns sort by value, the others as text)."""
    kind = 'data-type="num"' if numeric else 'data-type="text" class="text"'
    tip = f' title="{_e(title)}"' if title else ""
    return f'<th scope="col" {kind}{tip}>{_e(label)}</th>'


def num_cell(value: float | None, n: int | None = None, stderr: float | None = None) -> str:
    """A percentage cell: the value (one decimal), its 95% Wilson interval from ``n`` items
    below it, the stderr in the tooltip; ``data-v`` keeps the fraction for sorting."""
    if value is None:
        return '<td data-v="">–</td>'
    ci = wilson_interval(value, n) if n else None
    tip = [f"{100 * value:.2f}%"] + ([f"± {100 * stderr:.2f} (stderr)"] if stderr else [])
    tip += [f"n = {n}"] if n else []
    interval = f'<span class="ci">[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]</span>' if ci else ""
    return f'<td data-v="{value!r}" title="{_e(", ".join(tip))}">{100 * value:.1f}{interval}</td>'


def text_cell(text: str, css: str = "text", sort_key: str | None = None) -> str:
    key = f' data-v="{_e(sort_key)}"' if sort_key is not None else ""
    return f'<td class="{css}"{key}>{_e(text)}</td>'


def provenance_details(prov: dict[str, Any]) -> str:
    """``<details>`` holding everything the file records about the numbers' origin (JSON,
    escaped), with a one-line summary: the weights fingerprint and the lm-eval version."""
    if not prov:
        return '<td class="text" data-v="">not recorded</td>'
    model = prov.get("model") if isinstance(prov.get("model"), dict) else {}
    weights = str(model.get("weights") or "")
    versions = prov.get("versions") if isinstance(prov.get("versions"), dict) else {}
    lm_eval = versions.get("lm_eval") or (prov.get("lm_eval") or {}).get("lm_eval_version")
    summary = ", ".join(
        p for p in (f"weights {weights[:12]}…" if weights else "", f"lm-eval {lm_eval}") if p
    )
    text = json.dumps(prov, indent=2, sort_keys=True, default=str)
    return (
        f'<td class="text" data-v="{_e(weights)}"><details><summary>{_e(summary or "show")}'
        f"</summary><pre>{_e(text)}</pre></details></td>"
    )


def _board_headers(board: dict[str, Any], curves: bool, flagged: bool) -> list[str]:
    shared = ", ".join(board["shared_tasks"])
    heads = [
        th("rank", True),
        th("model", False),
        th("mean cf (%)", True, f"mean counterfactual accuracy over {shared}; 95% CI below"),
        th("mean param (%)", True, f"mean parametric accuracy over {shared}; 95% CI below"),
        th("items", True, "items behind the means (all shared tasks)"),
    ]
    if curves:
        heads.append(
            th(
                "curve",
                True,
                "cf, param and ID accuracy against the step; sorts by "
                "the fall of cf_acc after its peak (points)",
            )
        )
    for task in board["tasks"]:
        heads += [th(f"{task} {SHORT[m]} (%)", True) for m in CPI_METRICS]
    if flagged:
        heads.append(
            th(
                "settings (differ)",
                False,
                "settings accepted with --allow-settings-mismatch: this model's values",
            )
        )
    if any(e["missing_tasks"] for e in board["models"]):
        heads.append(th("missing", False, "tasks this model lacks (left out of every mean)"))
    heads.append(th("provenance", False, "model fingerprint, data hashes, versions"))
    return heads


def _curve_cell(entry: dict[str, Any]) -> str:
    points = entry.get("curve") or []
    scored = [p[CF_ACC] for p in points if p.get(CF_ACC) is not None]
    fall = (max(scored) - scored[-1]) if scored else None
    svg = curve_svg(points, compact=True, label=f"{entry['model']}: inversion curve")
    key = "" if fall is None else repr(fall)
    return f'<td data-v="{key}">{svg or "–"}</td>'


def _board_row(
    entry: dict[str, Any], rank: str, board: dict[str, Any], curves: bool, flagged: bool
) -> str:
    shared = board["shared_tasks"]
    cells = [
        f'<td data-v="{"" if rank == "–" else _e(rank)}">{_e(rank)}</td>',
        text_cell(entry["model"], "text model"),
    ]
    for metric in CPI_METRICS:
        n = shared_items(entry, shared) if entry.get(metric) is not None else None
        cells.append(num_cell(entry.get(metric), n, entry.get(f"{metric}_stderr")))
    n_all = shared_items(entry, shared)
    cells.append(f'<td data-v="{n_all or ""}">{n_all if n_all is not None else "–"}</td>')
    if curves:
        cells.append(_curve_cell(entry))
    for task in board["tasks"]:
        cell = entry["tasks"].get(task) or {}
        for metric in CPI_METRICS:
            cells.append(num_cell(cell.get(metric), cell.get("n"), cell.get(f"{metric}_stderr")))
    if flagged:
        text = model_setting_text(board["settings_mismatches"], entry["model"])
        cells.append(text_cell(text or "–", "text flag"))
    if any(e["missing_tasks"] for e in board["models"]):
        cells.append(text_cell(", ".join(entry["missing_tasks"]) or "–"))
    cells.append(provenance_details(entry.get("provenance") or {}))
    return "<tr>" + "".join(cells) + "</tr>"


def board_html(board: dict[str, Any], ranks: list[str], note: str, title: str) -> str:
    """The leaderboard page: one row per model, sortable, with intervals, per-task columns,
    each run's curve, accepted setting differences and provenance (see the module doc)."""
    curves = any(e.get("curve") for e in board["models"])
    flagged = bool(board.get("settings_mismatches"))
    head = "".join(_board_headers(board, curves, flagged))
    body = "\n".join(
        _board_row(e, r, board, curves, flagged)
        for r, e in zip(ranks, board["models"], strict=True)
    )
    notes = [note, INTERVAL_NOTE]  # the note names the tasks and any accepted differences
    if curves:
        notes.append(
            "Curves: counterfactual accuracy (blue, solid), parametric accuracy (orange, "
            "dashed) and ID accuracy (green, dotted) against the training step, 0-100%."
        )
    sources = "".join(f"<li>{_e(e['model'])}: {_e(e['source'])}</li>" for e in board["models"])
    html = (
        f"<h1>{_e(title)}</h1>"
        + "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
        + '<div class="wrap"><table class="sortable" id="board"><thead><tr>'
        + head
        + f"</tr></thead><tbody>\n{body}\n</tbody></table></div>"
        + f"<details><summary>sources</summary><ul>{sources}</ul></details>"
    )
    return page(title, html)


def _run_task_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(task, metric) pairs shown per task: cf/param of generation tasks, then cf_pref."""
    seen = {
        (t, m)
        for r in rows
        for t, ms in (r.get("tasks") or {}).items()
        for m in TASK_METRICS_SHOWN
        if isinstance(ms, dict) and m in ms
    }
    return sorted(seen, key=lambda tm: (tm[1] == CF_PREF, tm[0], TASK_METRICS_SHOWN.index(tm[1])))


def _row_items(row: dict[str, Any], metric: str) -> int | None:
    counts = [m.get("n") for m in (row.get("tasks") or {}).values() if m.get(metric) is not None]
    return sum(counts) if counts and all(isinstance(c, int) for c in counts) else None


def _run_row(
    row: dict[str, Any], cols: list[tuple[str, str]], extra: list[str], prov: dict[str, Any]
) -> str:
    cells = [
        f'<td data-v="{row["step"]}">{row["step"]}</td>',
        text_cell(str(row.get("checkpoint") or "")),
    ]
    for key in (CF_ACC, PARAM_ACC):
        cells.append(num_cell(row.get(key), _row_items(row, key), row.get(f"{key}_stderr")))
    if ID_ACC in extra:
        cells.append(num_cell(row.get(ID_ACC), None, row.get(f"{ID_ACC}_stderr")))
    if ATTENTION_COLUMN in extra:
        cells.append(num_cell(row.get(ATTENTION_COLUMN)))
    for task, metric in cols:
        cell = (row.get("tasks") or {}).get(task) or {}
        cells.append(num_cell(cell.get(metric), cell.get("n"), cell.get(f"{metric}_stderr")))
    cells.append(provenance_details(prov))
    return "<tr>" + "".join(cells) + "</tr>"


def run_html(
    data: dict[str, Any],
    summary: str,
    provenance_by_step: dict[int, dict[str, Any]],
    title: str,
) -> str:
    """The run report page of an ``inversion.json``: the summary sentence, the inversion
    curve (inline SVG), the sortable table of steps with intervals and per-task columns, each
    step's provenance, the run's settings, and the checkpoints not evaluated."""
    rows = sorted(data["rows"], key=lambda r: r["step"])
    extra = [k for k in (ID_ACC, ATTENTION_COLUMN) if any(r.get(k) is not None for r in rows)]
    cols = _run_task_columns(rows)
    heads = [
        th("step", True),
        th("checkpoint", False),
        th("CF acc (%)", True),
        th("param acc (%)", True),
    ]
    heads += [th({ID_ACC: "ID acc (%)", ATTENTION_COLUMN: "attn ctx (%)"}[k], True) for k in extra]
    heads += [th(f"{t} {SHORT[m]} (%)", True) for t, m in cols]
    heads.append(th("provenance", False, "model fingerprint, data hashes, versions"))
    body = "\n".join(_run_row(r, cols, extra, provenance_by_step.get(r["step"], {})) for r in rows)
    points = [
        {"step": r["step"], **{k: r.get(k) for k in (CF_ACC, PARAM_ACC, ID_ACC)}}
        | {f"{k}_stderr": r.get(f"{k}_stderr") for k in (CF_ACC, PARAM_ACC, ID_ACC)}
        for r in rows
    ]
    run_info = {k: data.get(k) for k in ("run", "settings", "cpi_tasks", "id_tasks")}
    failures = "".join(
        f"<li>step {_e(f.get('step'))} ({_e(f.get('path'))}): {_e(f.get('reason'))}</li>"
        for f in data.get("failures") or []
    )
    html = (
        f'<h1>{_e(title)}</h1><p class="note">{_e(summary)}</p>'
        + curve_svg(points, label=title)
        + f'<p class="note">{_e(INTERVAL_NOTE)}</p>'
        + '<div class="wrap"><table class="sortable" id="steps"><thead><tr>'
        + "".join(heads)
        + f"</tr></thead><tbody>\n{body}\n</tbody></table></div>"
        + (f"<h2>Not evaluated</h2><ul>{failures}</ul>" if failures else "")
        + "<details><summary>run and settings</summary><pre>"
        + _e(json.dumps(run_info, indent=2, sort_keys=True, default=str))
        + "</pre></details>"
    )
    return page(title, html)
