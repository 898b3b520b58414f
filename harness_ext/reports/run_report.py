"""A swept run's report: ``inversion.json`` built from the step files, enriched with what the
per-item records tell, and written with its renderings (md, csv, png, html).

``cpi sweep`` (``harness_ext/commands/sweep.py``) calls :func:`build` and :func:`write`
after evaluating; ``cpi table`` re-renders from the written JSON.

* :func:`build`: the rows and summary (``inversion.py``), the settings, and from the per-item
  records (``core/items.py``) the knowledge-filtered columns (``knowledge_filter.py``), the
  drop's paired bootstrap interval (``drop_interval``) and ``flips`` peak -> final per task
  (``flips.py``). Steps without records are left out of those.
* :func:`write`: ``inversion.json`` first, then every rendering from the file as stored, each
  written atomically; the HTML page shows each row's provenance (``eval/step-N.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.constants import (
    INVERSION_CSV,
    INVERSION_HTML,
    INVERSION_JSON,
    INVERSION_MD,
    INVERSION_PNG,
    RUN_REPORTS,
)
from ..core.errors import CPIError
from ..core.files import (
    atomic_write_bytes,
    atomic_write_text,
    dump_json,
    read_json,
)
from . import stats
from .flips import flips_report, step_records
from .inversion import build_inversion
from .knowledge_filter import attach_known
from .plots import inversion_png
from .tables import inversion_table, step_provenance


def build(
    run_dir: Path,
    done: dict[int, dict[str, Any]],
    failures: list[dict[str, Any]],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """The content of ``inversion.json`` for the step results in ``done`` (``{step: results
    JSON}``). ``meta``: ``id_tasks``, ``run`` (its name and base), ``settings`` and
    ``knowledge_filter`` (None, ``base`` or ``every``)."""
    inversion = build_inversion(done, id_tasks=meta["id_tasks"], run=meta["run"], failures=failures)
    inversion["settings"] = meta["settings"]
    enrich_inversion(Path(run_dir), inversion, meta.get("knowledge_filter"))
    return inversion


def drop_interval(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any] | None:
    """``inversion.json``'s ``drop_interval``: the drop (peak - final cf_acc, the unweighted
    mean over the generation tasks) on the items both steps answered, its 95% paired
    bootstrap interval and how it was made; None without per-item records of both steps."""
    peak, final = summary.get("peak_step"), summary.get("final_step")
    if not isinstance(peak, int) or not isinstance(final, int):
        return None
    try:
        a, b = step_records(run_dir, peak), step_records(run_dir, final)
    except CPIError:
        return None
    pairs = {
        t: [(a[t][i]["cf_hit"], b[t][i]["cf_hit"]) for i in sorted(set(a[t]) & set(b[t]))]
        for t in sorted(set(a) & set(b))
        if any("output" in r for r in a[t].values())  # generation tasks: those of cf_acc
    }
    n = sum(len(p) for p in pairs.values())
    if not n:
        return None
    dist = stats.paired_bootstrap(pairs)
    low, high = stats.percentile_interval(dist, 0.95)
    return {
        "from": peak,
        "to": final,
        "drop": stats.point_difference(pairs),
        "ci95": [low, high],
        "method": f"paired bootstrap over {n} items of {len(pairs)} task(s), step "
        f"{peak} vs {final}, items resampled within each task, "
        f"{stats.BOOTSTRAP_ITERATIONS} resamples, seed {stats.BOOTSTRAP_SEED}, percentile",
    }


def enrich_inversion(run_dir: Path, inversion: dict[str, Any], knowledge_mode: str | None) -> None:
    """Add what the per-item records tell to ``inversion`` (in place): the knowledge-filtered
    columns (with ``knowledge_mode``), the drop's paired bootstrap interval
    (``drop_interval``) and ``flips`` (peak -> final per task). Steps without records are
    simply left out."""
    run_dir = Path(run_dir)
    if not inversion.get("rows"):
        return
    attach_known(run_dir, inversion, knowledge_mode)
    summary = inversion.get("summary") or {}
    interval = drop_interval(run_dir, summary)
    if interval:
        inversion["drop_interval"] = interval
    peak, final = summary.get("peak_step"), summary.get("final_step")
    if isinstance(peak, int) and isinstance(final, int) and peak != final:
        try:
            report = flips_report(run_dir, peak, final, n_examples=0)
        except CPIError:
            return
        inversion["flips"] = {
            "from": peak,
            "to": final,
            "tasks": {
                t: {**v, "to_memorised": len(report["details"][t]["to_memorised"]),
                    "to_context": len(report["details"][t]["to_context"])}
                for t, v in report["tasks"].items()
            },
        }  # fmt: skip


def write(run_dir: Path, data: dict[str, Any]) -> list[Path]:
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
