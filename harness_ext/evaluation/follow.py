"""``cpi sweep RUN_DIR --follow``: evaluate each checkpoint of a live training run as it lands.

A second process (another GPU or machine on the same filesystem) follows the run folder that
``cpi train`` (or any HF-Trainer-based trainer, with ``--base_model``) writes, instead of a
callback that costs the training process memory and time. Every ``--poll_interval`` seconds
it looks at the folder and evaluates what is new:

* the base model (step 0) once the run has started (``cpi_run.json`` exists: it names the
  base; a follower started before the trainer waits for it, or for the folder);
* each ``checkpoint-N`` once the trainer has *finished writing it*: the folder is complete
  (config, every weight shard, or the adapter files) and its ``trainer_state.json``, which
  HF Trainer writes last, reads with ``global_step`` N, or a later checkpoint exists
  (``core/run_folder.finished_checkpoints``). A half-written checkpoint is never loaded;
* after each step ``inversion.*`` is rewritten, so the curve is current during training.

It ends by itself when ``cpi_run.json`` says ``finished`` or ``failed``: then it evaluates
every remaining complete checkpoint exactly as ``cpi sweep RUN_DIR`` would, so its table has
the rows a sweep afterwards gives. It also ends after ``--idle_timeout`` seconds without a
new checkpoint (a trainer killed with ``kill -9`` leaves ``running`` behind; a folder without
``cpi_run.json`` never says finished); then only finished checkpoints are evaluated and the
others are named. Several followers share the steps through the sweep's step claims
(``workers.py``); a killed follower is resumed by starting it again (finished steps are
reused through their provenance).

This module must not import ``sweep.py`` (which imports it): the sweep passes the steps a
follower runs each round as :class:`SweepSteps`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.cli_args import positive_number
from ..core.errors import CPIError
from ..core.files import remove_stale_tmp
from ..core.run_folder import (
    FAILED,
    FINISHED,
    RUN_MANIFEST,
    Target,
    finished_checkpoints,
    manifest_path,
    read_manifest,
)

POLL_SECONDS = 10.0  # default --poll_interval
IDLE_SECONDS = 3600.0  # default --idle_timeout
UNTRACKED = "untracked"  # a folder without cpi_run.json, followed with --base_model


def add_follow_options(parser: argparse.ArgumentParser) -> None:
    """``--follow``, ``--idle_timeout``, ``--poll_interval`` on the sweep's parser."""
    add = parser.add_argument
    add(
        "--follow",
        action="store_true",
        help="follow a live training run: evaluate the base and each checkpoint once the "
        "trainer has finished writing it, keep inversion.* current, end when cpi_run.json "
        "says finished or failed (or after --idle_timeout)",
    )
    add(
        "--idle_timeout",
        type=float,
        default=IDLE_SECONDS,
        metavar="SECONDS",
        help=f"with --follow: end after this many seconds without a new checkpoint "
        f"(default {IDLE_SECONDS:g}; 0 = never)",
    )
    add(
        "--poll_interval",
        type=float,
        default=POLL_SECONDS,
        metavar="SECONDS",
        help=f"with --follow: seconds between looks at the run folder (default {POLL_SECONDS:g})",
    )


@dataclass(frozen=True)
class SweepSteps:
    """The sweep functions a follower calls (see sweep.py for each)."""

    plan: Callable[..., Any]  # plan_sweep(args, err, evaluator, discover) -> SweepPlan
    split: Callable[..., Any]  # split_done(plan, err, only) -> (done, pending, lines)
    evaluate: Callable[..., Any]  # evaluate_pending(plan, pending, done, err, loader, after)
    write_table: Callable[..., Any]  # write_table(plan, done, failures, out, err, brief)
    finish: Callable[..., int]  # (plan, done, failures, out, err) -> exit status


@dataclass
class _State:
    """What a follower knows across rounds."""

    last_new: float = field(default_factory=time.monotonic)  # when a new step last appeared
    seen: set[int] = field(default_factory=set)  # steps resolved (evaluated, reused, failed)
    done: dict[int, dict[str, Any]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # checkpoints not finished writing
    noted: set[str] = field(default_factory=set)  # waiting lines already printed
    evaluator: Any = None
    loader: Any = None


def check_follow_options(args: argparse.Namespace) -> None:
    """The options --follow cannot take, and its two numbers."""
    positive_number(args.poll_interval, "--poll_interval")
    positive_number(args.idle_timeout, "--idle_timeout", allow_zero=True)
    for flag, value in (
        ("--workers", args.workers > 1),
        ("--dry-run", args.dry_run),
        ("--knowledge_filter", args.knowledge_filter),
    ):
        if value:
            hint = {
                "--workers": "start several followers instead; they share the steps",
                "--dry-run": "run cpi sweep RUN_DIR --dry-run without --follow",
                "--knowledge_filter": "run cpi sweep RUN_DIR --knowledge_filter after "
                "training; it reuses the step files and runs only the probes",
            }[flag]
            raise CPIError(f"--follow does not take {flag} ({hint})")


def run_status(run_dir: Path, args: argparse.Namespace) -> str | None:
    """The run's status (``running``, ``finished``, ``failed``), ``untracked`` for a folder
    of another trainer followed with --base_model, or None while there is nothing to follow."""
    if not run_dir.is_dir():
        return None
    if manifest_path(run_dir).is_file():
        # a manifest without a status (hand-written) says nothing is training: as finished
        return read_manifest(run_dir).get("status") or FINISHED
    return UNTRACKED if args.base_model else None


def _finished_only(state: _State, err: Any) -> Callable[..., list[Target]]:
    """A discover function (targets.Discover) listing only finished checkpoints; it notes
    each checkpoint still being written once."""

    def discover(run_dir: Path, base: str, include_base: bool, _err: Any) -> list[Target]:
        found, state.waiting = finished_checkpoints(run_dir)
        for line in state.waiting:
            if line not in state.noted:
                state.noted.add(line)
                print(f"cpi sweep: waiting for {line}", file=err)
        return ([Target(0, "base", base, "base")] if include_base else []) + found

    return discover


def _round(args, out, err, steps: SweepSteps, state: _State, discover, final: bool) -> Any:
    """Plan once more and resolve every step not seen before; the plan."""
    plan = steps.plan(args, err, state.evaluator, discover)
    if state.evaluator is None:
        remove_stale_tmp(plan.eval_dir)
    state.evaluator = plan.evaluator
    if args.apply_chat_template and not final and not any(t.step > 0 for t in plan.targets):
        return plan  # step 0 borrows the first checkpoint's chat template: wait for one
    new = [t for t in plan.targets if t.step not in state.seen]
    if not new:
        return plan
    state.seen |= {t.step for t in new}
    state.last_new = time.monotonic()
    done, pending, lines = steps.split(plan, err, new)
    for line in lines:
        if "re-evaluating" in line:
            print(f"cpi sweep: {line}", file=err)
    state.done.update(done)
    if pending:
        if state.loader is None:
            from .loader import sweep_loader

            state.loader = sweep_loader(plan)

        def after() -> None:
            steps.write_table(plan, state.done, state.failures, out, err, True)

        state.failures += steps.evaluate(plan, pending, state.done, err, state.loader, after)
    elif done:
        steps.write_table(plan, state.done, state.failures, out, err, True)
    state.last_new = time.monotonic()  # idle time counts from here, not while evaluating
    return plan


def _ending(status: str | None, state: _State, args: argparse.Namespace) -> str | None:
    """Why the follower ends now (None: it goes on)."""
    if status in (FINISHED, FAILED):
        return f"the run is {status} ({RUN_MANIFEST}); evaluating what remains"
    idle = time.monotonic() - state.last_new
    if args.idle_timeout > 0 and idle >= args.idle_timeout:
        return f"no new checkpoint for {idle:.0f} s (--idle_timeout {args.idle_timeout:g})"
    return None


def follow(args: argparse.Namespace, out: Any, err: Any, steps: SweepSteps) -> int:
    """The follower's loop (module docstring); its exit status is the sweep's."""
    check_follow_options(args)
    run_dir = Path(args.run_dir).expanduser()
    state = _State()
    print(
        f"cpi sweep: following {run_dir} (every {args.poll_interval:g} s; ends when the run "
        f"ends or after {args.idle_timeout:g} s without a new checkpoint)",
        file=err,
    )
    while True:
        status = run_status(run_dir, args)
        why = _ending(status, state, args)
        if status is None:
            if "start" not in state.noted:
                state.noted.add("start")
                print(f"cpi sweep: waiting for {manifest_path(run_dir)}", file=err)
            if why:
                raise CPIError(
                    f"{run_dir}: no run to follow appeared ({manifest_path(run_dir)} is "
                    f"missing) within --idle_timeout {args.idle_timeout:g} s; check the path, "
                    "or pass --base_model for a folder of another trainer"
                )
        elif why:
            print(f"cpi sweep: {why}", file=err)
            ended = status in (FINISHED, FAILED)
            discover = None if ended else _finished_only(state, err)
            plan = _round(args, out, err, steps, state, discover, final=True)
            if not ended and state.waiting:
                print(
                    "cpi sweep: not evaluated (still being written when following ended): "
                    + "; ".join(state.waiting)
                    + f"; run cpi sweep {run_dir} once training has ended",
                    file=err,
                )
            return steps.finish(plan, state.done, state.failures, out, err)
        else:
            _round(args, out, err, steps, state, _finished_only(state, err), final=False)
        time.sleep(args.poll_interval)
