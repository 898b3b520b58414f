"""Across-seed statistics of ``cpi demo``: per-seed numbers from each run's inversion.json,
then per variant the mean and 95% confidence interval over seeds and the count of seeds whose
drop exceeds its own noise.

Definitions (stated again in OUT/demo.md):
- the 95% CI is a Student t interval over seeds: mean ± t(0.975, n-1) * sd / sqrt(n), with sd
  the sample standard deviation (n - 1 in the denominator); with one seed it is undefined;
- a seed's *noise* is twice the larger of (a) ``drop_stderr`` from its inversion.json (the
  binomial standard error of peak - final on the evaluation items) and (b) the standard
  deviation of the checkpoint-to-checkpoint changes of counterfactual accuracy from the peak
  on (the drop is itself a difference of two checkpoints, so this is its jitter from training
  as well as from evaluation). A seed "drops" when its drop is larger than its noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# t(0.975, df) for df = 1..30; beyond 30 the normal 1.96 is within 2%.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
METRICS = ("initial", "peak", "final", "rise", "drop")
CI_TEXT = "mean ± half-width of the 95% Student t interval over seeds"
NOISE_TEXT = (
    "2 x max(drop_stderr from inversion.json, std of the checkpoint-to-checkpoint changes of "
    "cf acc from the peak on)"
)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else 1.96


def mean_ci(values: Sequence[float]) -> dict[str, float | int]:
    """Mean, sample sd and the half-width of the 95% t interval (nan for fewer than 2)."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": math.nan, "sd": math.nan, "ci": math.nan}
    mean = sum(values) / n
    if n == 1:
        return {"n": 1, "mean": mean, "sd": math.nan, "ci": math.nan}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return {"n": n, "mean": mean, "sd": sd, "ci": t975(n - 1) * sd / math.sqrt(n)}


def checkpoint_jitter(rows: Sequence[dict[str, Any]], peak_step: int) -> float | None:
    """Sample sd of the changes of cf acc between consecutive checkpoints from the peak on;
    None when fewer than two changes follow the peak."""
    after = [r["cf_acc"] for r in rows if r["step"] >= peak_step]
    diffs = [b - a for a, b in zip(after[:-1], after[1:], strict=True)]
    if len(diffs) < 2:
        return None
    return mean_ci(diffs)["sd"]  # type: ignore[return-value]


def seed_record(inversion: dict[str, Any]) -> dict[str, Any]:
    """The per-seed numbers of one run, from its inversion.json."""
    s, rows = inversion["summary"], inversion["rows"]
    jitter = checkpoint_jitter(rows, s["peak_step"])
    stderr = s.get("drop_stderr") or 0.0
    noise = 2 * max(stderr, jitter or 0.0)
    last = rows[-1]
    return {
        "initial": s["initial_cf_acc"],
        "peak": s["peak_cf_acc"],
        "peak_step": s["peak_step"],
        "final": s["final_cf_acc"],
        "rise": s["rise"],
        "drop": s["drop"],
        "drop_stderr": stderr,
        "checkpoint_jitter": jitter,
        "noise": noise,
        "drop_exceeds_noise": s["drop"] > noise,
        "final_param_acc": last["param_acc"],
        "final_id_acc": last.get("id_acc"),
        "steps": [r["step"] for r in rows],
        "cf_acc": [r["cf_acc"] for r in rows],
        "param_acc": [r["param_acc"] for r in rows],
    }


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A variant's across-seed summary: mean/CI of each metric and the noise count."""
    out: dict[str, Any] = {m: mean_ci([r[m] for r in records]) for m in METRICS}
    out["final_param_acc"] = mean_ci([r["final_param_acc"] for r in records])
    ids = [r["final_id_acc"] for r in records if r["final_id_acc"] is not None]
    out["final_id_acc"] = mean_ci(ids)
    out["n_seeds"] = len(records)
    out["n_drop_exceeds_noise"] = sum(bool(r["drop_exceeds_noise"]) for r in records)
    return out


def mean_curve(records: Sequence[dict[str, Any]], key: str = "cf_acc") -> dict[str, list]:
    """Per-checkpoint mean and 95% CI half-width of ``key`` over the seeds (shared steps)."""
    steps = records[0]["steps"]
    if any(r["steps"] != steps for r in records):
        raise ValueError("seeds of one variant were evaluated at different steps")
    cols = [mean_ci([r[key][i] for r in records]) for i in range(len(steps))]
    return {"steps": steps, "mean": [c["mean"] for c in cols], "ci": [c["ci"] for c in cols]}


def fmt(stat: dict[str, float | int], signed: bool = False) -> str:
    """``0.81 ± 0.05`` (the ± part omitted when the interval is undefined)."""
    mean = f"{stat['mean']:+.2f}" if signed else f"{stat['mean']:.2f}"
    return mean if math.isnan(stat["ci"]) else f"{mean} ± {stat['ci']:.2f}"
