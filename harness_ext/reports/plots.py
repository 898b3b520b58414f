"""The inversion plot (the paper's Figure 2) drawn from ``inversion.json`` only.

Counterfactual and parametric accuracy (fractions, left axis, ± stderr bands) against the
training step, ID accuracy on a right axis when measured, the cf_acc peak marked, and a second
panel for attention to context when measured. Built to be read at a glance: at most 8 integer
step ticks however many checkpoints, the legend below the axes (never over a curve), units on
every axis. matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import io
from typing import Any

from ..core.constants import ATTENTION_COLUMN, CF_ACC, ID_ACC, PARAM_ACC

MAX_X_TICKS = 8  # step ticks on the x axis, whatever the number of checkpoints
MIN_ID_SPAN = 0.2  # the ID axis spans at least this (fractions), so noise is not magnified
TITLE = "Context reliance during finetuning"
_CURVES = (  # (row key, legend label, line style, colour)
    (CF_ACC, "counterfactual acc (context's answer) ± stderr", "-o", "tab:blue"),
    (PARAM_ACC, "parametric acc (memorised answer) ± stderr", "--s", "tab:orange"),
)


def series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float], list[float]]:
    """(steps, values, stderrs) of one row key, rows without a value skipped (fractions; a
    missing stderr counts as 0)."""
    xs, ys, es = [], [], []
    for r in rows:
        if r.get(key) is not None:
            xs.append(r["step"])
            ys.append(float(r[key]))
            es.append(float(r.get(f"{key}_stderr") or 0.0))
    return xs, ys, es


def _draw_band(
    ax: Any, xs: list[int], ys: list[float], es: list[float], color: str, alpha: float
) -> None:
    """The ± stderr band around a curve; an error bar when there is a single step (a band
    of one point would not show)."""
    if len(xs) == 1:
        ax.errorbar(xs, ys, yerr=[es, es], fmt="none", ecolor=color, capsize=4)
        return
    lows = [y - e for y, e in zip(ys, es, strict=True)]
    highs = [y + e for y, e in zip(ys, es, strict=True)]
    ax.fill_between(xs, lows, highs, alpha=alpha, color=color, lw=0)


def _plot_curve(
    ax: Any, rows: list[dict[str, Any]], key: str, label: str, style: str, color: str
) -> Any:
    """One accuracy curve with its ± stderr band; the line handle for the legend, or None
    when no row has a value for ``key``."""
    xs, ys, es = series(rows, key)
    if not xs:
        return None
    (line,) = ax.plot(xs, ys, style, color=color, label=label, markersize=4, lw=1.6)
    _draw_band(ax, xs, ys, es, color, alpha=0.18)
    return line


def _plot_id_axis(ax: Any, rows: list[dict[str, Any]]) -> Any:
    """ID accuracy (± stderr) on a right-hand axis; its handle, or None when not measured."""
    xs, ys, es = series(rows, ID_ACC)
    if not xs:
        return None
    ax2 = ax.twinx()
    (line,) = ax2.plot(
        xs, ys, ":^", color="tab:green", markersize=4, label="ID accuracy (right axis)"
    )
    _draw_band(ax2, xs, ys, es, "tab:green", alpha=0.12)
    low, high = min(ys), max(ys)
    pad = max(MIN_ID_SPAN - (high - low), 0.0) / 2 + 0.02
    ax2.set_ylim(max(0.0, low - pad), min(1.0, high + pad))
    ax2.set_ylabel("ID accuracy (fraction)", color="tab:green")
    ax2.tick_params(axis="y", colors="tab:green")
    return line


def _mark_peak(ax: Any, summary: dict[str, Any]) -> Any:
    """A dashed vertical line at the step of peak cf_acc; its handle, or None."""
    step = summary.get("peak_step")
    if step is None:
        return None
    return ax.axvline(step, color="grey", lw=0.9, ls="--", label=f"cf_acc peak (step {step})")


def _style_axes(ax: Any, steps: list[int], title: str, y_label: str) -> None:
    """Units on both axes, integer step ticks (at most MAX_X_TICKS), a light grid. One
    distinct step gets one tick and a +-1 step margin (no fractional ticks)."""
    from matplotlib.ticker import MaxNLocator

    if len(set(steps)) == 1:
        ax.set_xlim(steps[0] - 1, steps[0] + 1)
        ax.set_xticks([steps[0]])
    else:
        locator = MaxNLocator(nbins=MAX_X_TICKS, integer=True, steps=[1, 2, 2.5, 5, 10])
        ax.xaxis.set_major_locator(locator)
    ax.set_xlabel("training step")
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3, lw=0.5)


def _plot_attention(ax: Any, rows: list[dict[str, Any]]) -> None:
    """The second panel: attention mass on context tokens (fraction) per step."""
    xs, ys, _ = series(rows, ATTENTION_COLUMN)
    ax.plot(xs, ys, "-o", color="tab:purple", markersize=4)
    ax.set_ylim(-0.02, 1.02)
    title = "Attention from the answer to the context"
    _style_axes(ax, xs, title, "attention on context (fraction)")


def plot_title(data: dict[str, Any]) -> str:
    """``Context reliance during finetuning: <run name>`` (no colon without a name)."""
    run = str((data.get("run") or {}).get("name") or "").strip()
    return f"{TITLE}: {run}" if run else TITLE


def inversion_figure(data: dict[str, Any]) -> Any:
    """The inversion plot of an ``inversion.json`` document as a matplotlib Figure (Agg
    backend; the caller closes it). See the module docstring for what it shows."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    rows = sorted(data["rows"], key=lambda r: r["step"])
    has_att = any(r.get(ATTENTION_COLUMN) is not None for r in rows)
    fig, axes = plt.subplots(
        1, 2 if has_att else 1, figsize=(12.0 if has_att else 7.2, 5.0), squeeze=False
    )
    ax = axes[0][0]
    handles = [_plot_curve(ax, rows, *curve) for curve in _CURVES]
    ax.set_ylim(-0.02, 1.02)
    handles += [_plot_id_axis(ax, rows), _mark_peak(ax, data.get("summary") or {})]
    _style_axes(ax, [r["step"] for r in rows], plot_title(data), "accuracy (fraction)")
    if has_att:
        _plot_attention(axes[0][1], rows)
    handles = [h for h in handles if h is not None]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1 if len(handles) > 2 else 0.06, 1, 1))
    return fig


def inversion_png(data: dict[str, Any], dpi: int = 120) -> bytes:
    """PNG bytes of :func:`inversion_figure` (``dpi`` dots per inch; 7.2 x 5 inches, 12 x 5
    with the attention panel)."""
    fig = inversion_figure(data)  # sets the Agg backend before pyplot is imported here
    import matplotlib.pyplot as plt

    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buf.getvalue()
