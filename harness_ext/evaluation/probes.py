"""``cpi sweep --knowledge_filter``: the closed-book probes, evaluated next to the sweep.

Counterfactual accuracy mixes two things: items whose real answer the model knows (a true
conflict between context and memory) and items it never knew (no conflict at all). The
filter asks each QA family's question without its context (``<task>_closedbook``, see
``tasks/closedbook``) and keeps the items the model answers correctly closed-book.

* ``--knowledge_filter`` (= ``base``): the probes run on the base model (step 0) once; the
  known set is the base model's, applied to every checkpoint.
* ``--knowledge_filter every``: the probes run at every checkpoint; each row is filtered by
  what that checkpoint knows.

The probes' results go to ``eval/closedbook-N.json`` with per-item records
``eval/closedbook-N.items.jsonl`` (the format of :mod:`.items`), under the provenance rules of
the step files, with their own settings (the probe tasks), so adding the filter to a swept
run evaluates only the probes. The reports (:mod:`..reports.knowledge`) turn them into
``cf_acc_known``, ``param_acc_known`` and ``known_frac``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...tasks.closedbook import is_probe, probe_for
from ..core.errors import CPIError, failure_reason
from ..core.files import read_json
from ..core.items import items_problem
from .provenance import (
    PROVENANCE_KEY,
    provenance_block,
    provenance_mismatch,
    task_provenance,
)

KNOWLEDGE_MODES = ("base", "every")
CLOSEDBOOK_FILE_PREFIX = "closedbook-"


def closedbook_file(eval_dir: Path, step: int) -> Path:
    """``eval/closedbook-<N>.json``: the closed-book probes' results at global step N."""
    return Path(eval_dir) / f"{CLOSEDBOOK_FILE_PREFIX}{step}.json"


def add_knowledge_option(parser: Any) -> None:
    """``--knowledge_filter [base|every]`` on the sweep's parser."""
    parser.add_argument(
        "--knowledge_filter",
        nargs="?",
        const="base",
        default=None,
        choices=KNOWLEDGE_MODES,
        help="also run the closed-book probes (<task>_closedbook: the question without its "
        "context) at the base model ('base', the default) or at every checkpoint ('every'), "
        "and add cf_acc_known / param_acc_known / known_frac (the metrics on the items the "
        "model answers correctly closed-book, matched by item_id)",
    )


@dataclass
class KnowledgePlan:
    """What the filter evaluates: the probe of each task, the steps probed, what is pending."""

    mode: str
    probes: dict[str, str]  # task -> its closed-book probe
    evaluator: Any  # CheckpointEvaluator over the probes
    steps: list[int]
    expected: dict[int, dict[str, Any]] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)
    lines: list[str] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)


def probes_of(tasks: list[str]) -> dict[str, str]:
    """``{task: probe}`` for the tasks whose family has a closed-book probe."""
    return {t: p for t in sorted(tasks) if not is_probe(t) and (p := probe_for(t))}


def plan_knowledge(plan: Any) -> KnowledgePlan | None:
    """The filter's plan for a sweep plan (None without ``--knowledge_filter``); raises
    :class:`CPIError` when no task has a probe or the base model is not part of the sweep."""
    from .evaluator import CheckpointEvaluator

    mode = getattr(plan.args, "knowledge_filter", None)
    if not mode:
        return None
    probes = probes_of(list(plan.evaluator.load_tasks()["tasks"]))
    if not probes:
        raise CPIError(
            "--knowledge_filter: none of the tasks has a closed-book probe (the QA families "
            "world_facts, capitals, bio, nqswap and cpisynth_cf have one; quotes do not)"
        )
    steps = sorted(t.step for t in plan.targets) if mode == "every" else [0]
    if mode == "base" and not any(t.step == 0 for t in plan.targets):
        raise CPIError(
            "--knowledge_filter base probes the base model at step 0, which this sweep does "
            "not evaluate; drop --skip_base (for hub revisions: --base_revision NAME=0), or "
            "use --knowledge_filter every to probe each checkpoint"
        )
    ev = plan.evaluator
    evaluator = CheckpointEvaluator(
        tasks=sorted(set(probes.values())),
        limit=ev.limit,
        batch_size=ev.batch_size,
        apply_chat_template=ev.apply_chat_template,
        model_args=ev.model_args,
        include_path=ev.include_path,
        bootstrap_iters=ev.bootstrap_iters,
        verbose=ev.verbose,
    )
    kp = KnowledgePlan(mode, probes, evaluator, steps)
    tasks_prov = task_provenance(evaluator.load_tasks())
    for step in steps:
        model = plan.expected[step]["model"]
        kp.expected[step] = provenance_block(model, tasks_prov, evaluator.settings)
    _split(kp, plan)
    return kp


def _reuse_problem(path: Path, expected: dict[str, Any], force: bool) -> str | None:
    """Why a stored closed-book file may not be reused (None: it may)."""
    if not path.is_file():
        return "not evaluated yet"
    if force:
        return "--force"
    try:
        data = read_json(path, "closed-book results file")
    except CPIError as exc:
        return f"unreadable ({exc})"
    block = data.get("cpi") if isinstance(data, dict) else None
    if not isinstance(block, dict):
        return "not a cpi closed-book results file"
    return provenance_mismatch(block.get(PROVENANCE_KEY), expected) or items_problem(path)


def _split(kp: KnowledgePlan, plan: Any) -> None:
    """Decide, per probed step, reuse or evaluate (and say why, as the sweep does)."""
    for step in kp.steps:
        path = closedbook_file(plan.eval_dir, step)
        why = _reuse_problem(path, kp.expected[step], bool(plan.args.force))
        if why is None:
            kp.lines.append(f"{path.stem}: reuse (closed-book probes, unchanged)")
            continue
        kp.pending.add(step)
        verb = "evaluate" if why == "not evaluated yet" else "re-evaluating"
        kp.lines.append(f"{path.stem}: {verb}, {why}")


def evaluate_target(plan: Any, target: Any, model: Any, tokenizer: Any) -> None:
    """Run the probes on an already loaded model when its step is pending; a failure is
    recorded in ``plan.knowledge.failures`` (the step's main results stand)."""
    kp: KnowledgePlan | None = getattr(plan, "knowledge", None)
    if kp is None or target.step not in kp.pending:
        return
    try:
        kp.evaluator.evaluate_to(
            closedbook_file(plan.eval_dir, target.step),
            model,
            tokenizer,
            step=target.step,
            label=target.label,
            source="sweep",
            model_path=target.path,
            provenance=kp.expected[target.step],
        )
        kp.pending.discard(target.step)
    except Exception as exc:  # noqa: BLE001 - reported with the sweep's failures
        kp.failures.append(_failure(target, exc))


def _failure(target: Any, exc: BaseException) -> dict[str, Any]:
    """A failure record in the sweep's format, labelled as the probes'."""
    return {
        "step": target.step,
        "label": f"{target.label} (closed-book probes)",
        "path": target.path,
        "reason": failure_reason(exc),
    }


def evaluate_remaining(
    plan: Any, err: Any = None, skip: set[int] | None = None
) -> list[dict[str, Any]]:
    """Probe the steps still pending (their main results were reused, so the sweep did not
    load them), each model loaded once, except the steps in ``skip`` (their model already
    failed); return every probe failure of the sweep."""
    kp: KnowledgePlan | None = getattr(plan, "knowledge", None)
    if kp is None:
        return []
    targets = [t for t in plan.targets if t.step in kp.pending and t.step not in (skip or ())]
    if targets:
        from .loader import sweep_loader

        loader = sweep_loader(plan)
        print(f"cpi sweep: closed-book probes for {len(targets)} step(s)", file=err or sys.stderr)
        chat = bool(plan.args.apply_chat_template)
        for target in targets:
            try:
                model, tokenizer = loader.load(target, need_chat_template=chat)
            except Exception as exc:  # noqa: BLE001 - reported with the sweep's failures
                kp.failures.append(_failure(target, exc))
                continue
            try:
                evaluate_target(plan, target, model, tokenizer)
            finally:
                loader.release(target, model)
    return kp.failures
