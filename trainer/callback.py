"""In-training evaluation: the sweep's evaluator as a ``transformers.TrainerCallback``.

``cpi train --eval_tasks cpi_capitals,cpi_quotes`` adds :class:`CPIEvalCallback`. At every
checkpoint save it evaluates the live model (no reload: the model and tokenizer the Trainer
holds are wrapped in lm-eval's ``HFLM``) and writes ``<output_dir>/eval/step-<N>.json`` in
the per-checkpoint format of ``cpi sweep``. A later ``cpi sweep RUN_DIR`` with the same
``--tasks`` and ``--limit`` skips those steps and only evaluates what is missing (the base
model, step 0), then writes the inversion table.

Next to each results file it writes the per-item records (``step-<N>.items.jsonl``, see
:mod:`.items`). The metrics go through the Trainer's own logging (``Trainer.log``: the
``report_to`` backends and ``state.log_history``) as ``cpi/cf_acc``, ``cpi/param_acc`` (the
means over the tasks, as in the inversion rows) and ``cpi/<task>/<metric>`` per task;
TensorBoard and W&B show them under ``train/`` (transformers prefixes every non-eval key).
The callback needs the Trainer for that: ``cpi train`` binds it; by hand, call
``callback.bind(trainer)`` (unbound, the metrics only reach ``state.log_history``). With
``early_stop_on_inversion`` it stops training once cf_acc has fallen that far below its
running peak (:mod:`.early_stop`).

The tasks are indexed and built once, at the first save. Only the main process evaluates;
the model is put back in training mode afterwards. Under multi-GPU training the other ranks
wait in their next collective while rank 0 evaluates: keep ``limit`` small there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import transformers

from ..harness_ext.core.cli_args import parse_limit, split_list
from ..harness_ext.core.constants import (
    EVAL_DIR,
    eval_file_name,
)
from .early_stop import InversionStopper

log = logging.getLogger("cpi_bench.callback")


class CPIEvalCallback(transformers.TrainerCallback):
    """Evaluate the live model on lm-eval tasks at each save.

    Args:
        tasks: lm-eval tasks or groups, e.g. ``["cpi_capitals", "cpi_quotes"]`` or ``["cpi"]``.
        limit: items per task (None = all; a float < 1 is a fraction).
        batch_size: lm-eval batch size.
        output_dir: run folder; default the Trainer's ``args.output_dir``.
        apply_chat_template: render prompts with the tokenizer's chat template (use the same
            value as the later ``cpi sweep`` so that it can reuse these files).
        early_stop_on_inversion: stop training when cf_acc is at least this much (a
            fraction) below its running peak for ``early_stop_patience`` consecutive
            evaluations (None: never).
        early_stop_patience: consecutive evaluations (>= 1).
        trainer: the Trainer whose ``log`` receives the metrics (or call :meth:`bind`).
    """

    def __init__(
        self,
        tasks: list[str],
        limit: int | float | str | None = None,
        batch_size: int = 8,
        output_dir: str | None = None,
        apply_chat_template: bool | str = False,
        early_stop_on_inversion: float | None = None,
        early_stop_patience: int = 1,
        trainer: Any = None,
    ) -> None:
        from ..harness_ext.evaluation.evaluator import CheckpointEvaluator

        self.tasks = split_list(tasks)
        self.limit = limit = parse_limit(limit, "limit")
        self.batch_size = batch_size
        self.output_dir = output_dir
        self.evaluator = CheckpointEvaluator(
            tasks=self.tasks,
            limit=limit,
            batch_size=batch_size,
            apply_chat_template=apply_chat_template,
        )
        self.written: list[Path] = []
        self.trainer = trainer
        self.stopper = (
            InversionStopper(float(early_stop_on_inversion), int(early_stop_patience))
            if early_stop_on_inversion is not None
            else None
        )
        self.logged: list[dict[str, float]] = []

    def bind(self, trainer: Any) -> CPIEvalCallback:
        """Log through ``trainer.log`` (its ``report_to`` backends and ``log_history``)."""
        self.trainer = trainer
        return self

    def _provenance(self, out_dir: Path, checkpoint: Path) -> dict:
        """The block ``cpi sweep`` would record for this checkpoint, so it can reuse the file:
        fingerprints of the checkpoint just saved (and, for adapters, of the base)."""
        from ..harness_ext.core.constants import ADAPTER_CONFIG
        from ..harness_ext.core.run_folder import manifest_path, read_manifest
        from ..harness_ext.evaluation.provenance import (
            model_provenance,
            provenance_block,
            task_provenance,
        )

        kind = "adapter" if (checkpoint / ADAPTER_CONFIG).is_file() else "full"
        base = read_manifest(out_dir)["base_model"] if manifest_path(out_dir).is_file() else ""
        model = model_provenance(kind, str(checkpoint), base)
        tasks = task_provenance(self.evaluator.load_tasks())
        return provenance_block(model, tasks, self.evaluator.settings)

    def on_save(self, args, state, control, **kwargs):
        """Evaluate ``kwargs["model"]`` at ``state.global_step`` and write its results file."""
        if not state.is_world_process_zero:
            return control
        model = kwargs.get("model")
        tokenizer = kwargs.get("processing_class") or kwargs.get("tokenizer")
        if model is None or tokenizer is None:
            log.warning(
                "CPIEvalCallback: the Trainer passed no model or tokenizer; skipped "
                "step %s (give the Trainer a processing_class)",
                state.global_step,
            )
            return control
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wraps one
        step = int(state.global_step)
        out_dir = Path(self.output_dir or args.output_dir)
        checkpoint = (out_dir / f"checkpoint-{step}").resolve()
        path = out_dir / EVAL_DIR / eval_file_name(step)
        provenance = self._provenance(out_dir, checkpoint)

        def evaluate() -> dict[str, Any]:
            return self.evaluator.evaluate_to(
                path,
                model,
                tokenizer,
                step=step,
                label=f"checkpoint-{step}",
                source="callback",
                model_path=str(checkpoint),
                provenance=provenance,
            )

        results, reused = self._evaluate_claimed(path, step, provenance, evaluate)
        self.written.append(path)
        how = "read from the sweep that evaluated it" if reused else "evaluated"
        log.info("CPIEvalCallback: step %s %s -> %s", step, how, path)
        metrics = log_metrics(results, step)
        self._log(metrics, state)
        if self.stopper is not None and self.stopper.update(step, metrics.get("cpi/cf_acc")):
            log.warning("CPIEvalCallback: stopping training: %s", self.stopper.reason)
            control.should_training_stop = True
        return control

    def _evaluate_claimed(
        self, path: Path, step: int, provenance: dict[str, Any], evaluate: Any
    ) -> tuple[dict[str, Any], bool]:
        """(results, whether they were reused), under the step's claim as sweeps take it
        (harness_ext/evaluation/workers.py): a ``cpi sweep --follow`` of this run and the
        callback never evaluate one step at the same time, and a step the follower has
        already evaluated with the same provenance is read, not evaluated again."""
        from ..harness_ext.evaluation.sweep import reuse_problem
        from ..harness_ext.evaluation.workers import (
            claim_path,
            release,
            reusable_result,
            try_claim,
        )

        claim = claim_path(path.parent, step)
        fd, _ = try_claim(claim, block=True)  # waits while a follower evaluates this step
        try:
            limit = self.evaluator.attention_limit
            stored = reusable_result(path, provenance, limit, reuse_problem)
            # none yet, unreadable or made from other inputs: evaluate (and replace it)
            return (stored, True) if stored is not None else (evaluate(), False)
        finally:
            release(fd, claim)

    def _log(self, metrics: dict[str, float], state: Any) -> None:
        """Through ``trainer.log`` when bound, else straight into ``state.log_history``."""
        self.logged.append(metrics)
        if self.trainer is not None:
            self.trainer.log(dict(metrics))
        else:
            state.log_history.append({**metrics, "step": state.global_step})


def log_metrics(results: dict[str, Any], step: int) -> dict[str, float]:
    """``cpi/cf_acc``, ``cpi/param_acc`` (means over the tasks, fractions) and
    ``cpi/<task>/<metric>`` for every task metric of one results dict (nulls left out)."""
    from ..harness_ext.reports.inversion import row_from_results

    row = row_from_results(results, step, [])
    metrics = {f"cpi/{k}": row[k] for k in ("cf_acc", "param_acc") if row.get(k) is not None}
    for task, values in sorted(row["tasks"].items()):
        for name, value in values.items():
            if name != "n" and not name.endswith("_stderr") and isinstance(value, float):
                metrics[f"cpi/{task}/{name}"] = value
    return metrics
