"""Uncertainty of accuracies and of their changes: Wilson intervals, exact McNemar tests and
paired bootstraps over items. Pure Python and numpy; every accuracy is a fraction in [0, 1].

* :func:`wilson_interval`: the 95% (by default) Wilson score interval of a proportion from
  its value and its number of items.
* :func:`mcnemar_exact_p`: two-sided exact McNemar test of two checkpoints on the same items:
  under "no change", each discordant item (lost or gained) is a fair coin, so
  p = min(1, 2 * P[Binomial(lost + gained, 1/2) <= min(lost, gained)]).
* :func:`paired_bootstrap`: the distribution of a difference of means over tasks when the
  same items are resampled (with replacement, within each task) for both sides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

Z95 = 1.959963984540054  # two-sided 95% normal quantile
BOOTSTRAP_SEED = 0  # fixed: the same files always give the same interval
BOOTSTRAP_ITERATIONS = 10_000


def z_for(confidence: float, two_sided: bool = True) -> float:
    """The normal quantile for a confidence level (0.95 -> 1.96 two-sided, 1.645 one-sided)."""
    from statistics import NormalDist

    tail = (1 - confidence) / 2 if two_sided else 1 - confidence
    return NormalDist().inv_cdf(1 - tail)


def wilson_interval(p: float, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval (low, high) of a proportion ``p`` (fraction) observed on ``n``
    items; None when ``n`` is unknown or 0."""
    if n is None or n <= 0 or p is None:
        return None
    p = min(1.0, max(0.0, float(p)))
    z = Z95 if confidence == 0.95 else z_for(confidence)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact_p(lost: int, gained: int) -> float:
    """Two-sided exact McNemar p-value for ``lost`` vs ``gained`` discordant items (a
    binomial test with p = 1/2). 1.0 when there is no discordant item. Worked example:
    8 lost, 2 gained -> 2 * (1 + 10 + 45) / 1024 = 0.109375."""
    n = lost + gained
    if n == 0:
        return 1.0
    k = min(lost, gained)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap(
    pairs: Mapping[str, Sequence[tuple[float, float]]],
    iterations: int = BOOTSTRAP_ITERATIONS,
    seed: int = BOOTSTRAP_SEED,
) -> Any:
    """Bootstrap distribution (numpy array, ``iterations`` values) of
    mean over tasks of (mean of a - mean of b), resampling each task's paired items
    ``(a, b)`` with replacement (stratified by task, the same items for both sides).

    The statistic on the original items is the unweighted mean over tasks of the per-task
    differences: the ``drop`` of the inversion summary and of ``cpi gate`` on those items."""
    import numpy as np

    rng = np.random.default_rng(seed)
    total = np.zeros(iterations)
    tasks = [t for t in sorted(pairs) if len(pairs[t])]
    for task in tasks:
        diff = np.array([a - b for a, b in pairs[task]], dtype=float)
        idx = rng.integers(0, len(diff), size=(iterations, len(diff)))
        total += diff[idx].mean(axis=1)
    return total / max(1, len(tasks))


def point_difference(pairs: Mapping[str, Sequence[tuple[float, float]]]) -> float:
    """The statistic :func:`paired_bootstrap` resamples, on the items themselves."""
    tasks = [t for t in sorted(pairs) if len(pairs[t])]
    if not tasks:
        return 0.0
    return sum(sum(a - b for a, b in pairs[t]) / len(pairs[t]) for t in tasks) / len(tasks)


def percentile_interval(dist: Any, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided percentile interval of a bootstrap distribution."""
    import numpy as np

    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(dist, [tail, 100 - tail])
    return float(low), float(high)


def lower_bound(dist: Any, confidence: float) -> float:
    """One-sided lower bound: the ``1 - confidence`` quantile of a bootstrap distribution
    (the value the statistic exceeds with probability ``confidence``)."""
    import numpy as np

    return float(np.percentile(dist, 100 * (1 - confidence)))


# ----------------------------------------------------------------------------- table cells

INTERVAL_NOTE = (
    "Intervals: 95% Wilson score intervals from each row's mean and its item count n (the "
    "items of all tasks in the mean; for an unweighted mean over tasks of unequal size an "
    "approximation); ± is the standard error lm-eval reports."
)


def row_items(row: Mapping, metric: str) -> int | None:
    """Items behind a row's mean of ``metric``: the sum of ``n`` over its tasks that report
    it (None when a count is unknown)."""
    counts = [m.get("n") for m in (row.get("tasks") or {}).values() if m.get(metric) is not None]
    if not counts or any(not isinstance(c, int) for c in counts):
        return None
    return sum(counts)


def shared_items(entry: Mapping, tasks: Sequence[str]) -> int | None:
    """Items behind a leaderboard entry's means over ``tasks``: the sum of its item counts
    there (None when a count is unknown or the entry lacks one of the tasks)."""
    counts = [((entry.get("tasks") or {}).get(t) or {}).get("n") for t in tasks]
    if not counts or any(not isinstance(c, int) for c in counts):
        return None
    return sum(counts)


def interval_text(value: float | None, n: int | None) -> str:
    """`` [35.0, 47.8]``: the Wilson interval in percent, or "" when it is undefined."""
    ci = wilson_interval(value, n) if value is not None and n else None
    return f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else ""
