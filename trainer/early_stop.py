"""Stop finetuning once the inversion has set in: ``cpi train --early_stop_on_inversion DROP``.

After each in-training evaluation (:class:`.callback.CPIEvalCallback`, at every save) the
counterfactual accuracy (``cf_acc``, the mean over the eval tasks that report it, a fraction)
is compared with its running peak over the evaluations so far. When it has been at least
``drop`` below that peak for ``patience`` consecutive evaluations, training stops; the peak's
step is the best checkpoint. The base model (step 0) is not evaluated during training, so the
running peak is over the saved checkpoints only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EPS = 1e-9  # float noise: a fall of exactly DROP counts


@dataclass
class InversionStopper:
    """The running peak of cf_acc and the stopping rule.

    Args:
        drop: how far below the running peak cf_acc must be (a fraction, 0.05 = 5 points).
        patience: for how many consecutive evaluations (>= 1).
    """

    drop: float
    patience: int = 1
    best_step: int | None = None
    best_cf_acc: float | None = None
    below: int = 0  # consecutive evaluations at least `drop` below the peak
    stop_step: int | None = None
    reason: str | None = None
    history: list[tuple[int, float]] = field(default_factory=list)

    def update(self, step: int, cf_acc: float | None) -> bool:
        """Record the evaluation at global ``step``; True when training should stop now."""
        if cf_acc is None:
            return False
        self.history.append((step, cf_acc))
        if self.best_cf_acc is None or cf_acc > self.best_cf_acc + EPS:
            self.best_step, self.best_cf_acc, self.below = step, cf_acc, 0
            return False
        if self.best_cf_acc - cf_acc >= self.drop - EPS:
            self.below += 1
        else:
            self.below = 0
        if self.below >= self.patience and self.stop_step is None:
            self.stop_step = step
            self.reason = (
                f"cf_acc {cf_acc:.4f} at step {step} was at least {self.drop:g} below its "
                f"running peak {self.best_cf_acc:.4f} (step {self.best_step}) for "
                f"{self.below} consecutive evaluation(s)"
            )
            return True
        return False

    def manifest_fields(self) -> dict[str, Any]:
        """What ``cpi_run.json`` records (see ``core/run_folder.py``): ``best_step`` (the
        running peak's step), ``stop_reason`` (null when training was not stopped early) and
        ``early_stop`` (the rule, where it stopped and the cf_acc per evaluated step)."""
        return {
            "best_step": self.best_step,
            "stop_reason": self.reason,
            "early_stop": {
                "drop": self.drop,
                "patience": self.patience,
                "stopped": self.stop_step is not None,
                "stop_step": self.stop_step,
                "best_cf_acc": self.best_cf_acc,
                "cf_acc_by_step": {str(s): v for s, v in self.history},
            },
        }
