"""OUT/demo.png of ``cpi demo``: one panel per variant (each seed's counterfactual-accuracy
curve thin, the mean thick with its 95% t band), the variants' means overlaid, and the
dose-response of the context_critical_all curation (drop against the share dropped)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .aggregate import mean_curve

COLORS = {
    "standard": "#1f77b4",
    "context_only": "#2ca02c",
    "context_critical_25": "#ff7f0e",
    "context_critical_50": "#d62728",
    "context_critical_75": "#9467bd",
    "cf_augment": "#8c564b",
    "full": "#7f7f7f",
}


def _band(
    ax: Any, curve: dict[str, list], color: str, label: str | None = None, band: bool = True
) -> None:
    steps, mean = curve["steps"], curve["mean"]
    ax.plot(steps, mean, color=color, lw=2.2, label=label)
    if band and not any(math.isnan(c) for c in curve["ci"]):
        lo = [m - c for m, c in zip(mean, curve["ci"], strict=True)]
        hi = [m + c for m, c in zip(mean, curve["ci"], strict=True)]
        ax.fill_between(steps, lo, hi, color=color, alpha=0.2, lw=0)


def _variant_panel(ax: Any, name: str, block: dict[str, Any]) -> None:
    color = COLORS.get(name, "black")
    records = list(block["per_seed"].values())
    for rec in records:
        ax.plot(rec["steps"], rec["cf_acc"], color=color, lw=0.8, alpha=0.45)
    _band(ax, mean_curve(records), color)
    s = block["summary"]
    ci = "" if math.isnan(s["drop"]["ci"]) else f" ± {s['drop']['ci']:.2f}"
    title = "standard (QK finetuning)" if name == "standard" else name
    ax.set_title(
        f"{title}\ndrop {s['drop']['mean']:.2f}{ci}; "
        f"{s['n_drop_exceeds_noise']}/{s['n_seeds']} seeds > noise",
        fontsize=10,
    )


def _overlay_panel(ax: Any, variants: dict[str, Any]) -> None:
    for name, block in variants.items():
        if block["runs_as"] == name:
            curve = mean_curve(list(block["per_seed"].values()))
            _band(ax, curve, COLORS.get(name, "k"), name, band=False)  # bands: own panels
    ax.set_title("all variants: mean over seeds", fontsize=10)
    ax.legend(fontsize=7.5, loc="lower center", ncol=2, framealpha=0.9)  # below the curves


def _dose_panel(ax: Any, report: dict[str, Any]) -> None:
    rows, xs, labels = report["dose_response"], [], []
    for row in rows:
        x = 100 * row["drop_fraction"]
        d = row["drop"]
        ax.errorbar(x, d["mean"], yerr=0 if math.isnan(d["ci"]) else d["ci"], fmt="o",
                    color="#d62728", capsize=4, ms=6)  # fmt: skip
        seeds = report["variants"][row["variant"]]["per_seed"].values()
        ax.scatter([x + 2.5] * len(seeds), [r["drop"] for r in seeds], s=10, color="grey")
        xs.append(x)
        share = row["removed_share_mean"]
        labels.append(
            f"{x:.0f}%\n-{100 * share['C+S']:.0f}% C+S\n-{100 * share['S']:.0f}% S"
            if x
            else "0%\n(standard)"
        )
    ax.plot(xs, [r["drop"]["mean"] for r in rows], color="#d62728", lw=1)
    only = report["variants"].get("context_only")
    if only:
        d = only["summary"]["drop"]
        ax.errorbar(112, d["mean"], yerr=0 if math.isnan(d["ci"]) else d["ci"], fmt="s",
                    color=COLORS["context_only"], capsize=4, ms=6)  # fmt: skip
        recs = only["per_seed"].values()
        ax.scatter([114.5] * len(recs), [r["drop"] for r in recs], s=10, color="grey")
        xs.append(112)
        labels.append("C only\n(context_only)")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_xlim(-10, 125)
    ax.set_xlabel("pool share dropped by context_critical_all", fontsize=9)
    ax.set_ylabel("drop (peak - final cf acc)", fontsize=9)
    ax.set_title("dose-response: mean ± 95% CI, grey = seeds", fontsize=10)


def plot_demo(report: dict[str, Any], path: Path) -> None:
    """Write the figure; panels for the variants present in ``report`` only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = {n: b for n, b in report["variants"].items() if b["runs_as"] == n}
    n_panels = len(variants) + 1 + bool(report["dose_response"])
    cols = 3 if n_panels > 4 else n_panels
    rows = math.ceil(n_panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax, (name, block) in zip(flat, variants.items(), strict=False):
        _variant_panel(ax, name, block)
    _overlay_panel(flat[len(variants)], report["variants"])
    for i, ax in enumerate(flat[: len(variants) + 1]):
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.set_xlabel("IFT step", fontsize=9)
        if i % cols == 0:
            ax.set_ylabel("counterfactual accuracy", fontsize=9)
        ax.tick_params(labelsize=8)
    if report["dose_response"]:
        _dose_panel(flat[len(variants) + 1], report)
        flat[len(variants) + 1].grid(alpha=0.3)
    for ax in flat[n_panels:]:
        ax.axis("off")
    n = len(report["seeds"])
    fig.suptitle(
        f"cpi demo: context reliance on knowledge conflicts during IFT ({n} seed"
        f"{'s' if n > 1 else ''}; thin = one seed, thick = mean, band = 95% t interval)",
        fontsize=12,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
