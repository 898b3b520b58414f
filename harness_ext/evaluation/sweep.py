"""``cpi sweep RUN_DIR``: evaluate the base model and every checkpoint of a run in one process.

    cpi sweep runs/tulu-lora --tasks cpi --id_tasks arc_challenge,mmlu,gsm8k,squad_completion
    cpi sweep runs/tiny --tasks cpi_capitals,cpi_quotes --limit 50 --device cpu
    cpi sweep runs/tiny --dry-run        # what would be reused, what re-evaluated, and why
    cpi sweep runs/live --follow         # evaluate each checkpoint as a live training saves it
    cpi sweep --model EleutherAI/pythia-160m --revisions 'step*' --out sweeps/pythia
    cpi sweep --checkpoints ckpts.yaml --out sweeps/other-trainer

Step 0 is the base model named in ``RUN_DIR/cpi_run.json`` (a folder, a ``.gguf`` file or a
hub id); step N is ``RUN_DIR/checkpoint-N``. Hub revisions and checkpoint lists are read by
``targets.py``, following a live run by ``follow.py`` (docs/sweeps.md). The lm-eval tasks
are indexed and built once; each model is loaded once; a LoRA run loads its base once and
swaps the adapters on it. Each checkpoint's results are written atomically to
``eval/step-N.json`` (in the run folder, or ``--out``) with the provenance of what produced
them (content fingerprints of the weights and data files, task versions, settings, tool
versions); a rerun reuses a step only when all of it is unchanged, else it says why and
re-evaluates. Next to each step file, ``eval/step-N.items.jsonl`` keeps what every item
scored (see ``items.py``; reused only with its step file). With ``--knowledge_filter`` the
closed-book probes run too (``probes.py``). The ``cpi sweep`` command
(``harness_ext/commands/sweep.py``) then writes ``inversion.json`` and its renderings through
the :class:`Reports` it hands in: this module runs models and writes step files, and never
imports the reports. ``python -m`` of this module (a ``--workers`` child) evaluates only.

A checkpoint that cannot be loaded or evaluated is reported with its path and reason; the
others still run and the exit status is 1. An incomplete checkpoint folder (killed during
save, missing shards) is skipped with a warning. Bad input (no run folder, a malformed
manifest, an unknown task, missing data, an unwritable folder) exits with 2 before any model
is loaded. Several sweeps of one run folder (``--workers N``, Slurm arrays, ``accelerate
launch``) share the steps: each step is claimed by one process (``workers.py``).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.cli_args import ArgumentParser, parse_limit, split_list
from ..core.constants import (
    CPI_KEY,
    DEFAULT_TASKS,
    EVAL_DIR,
    eval_file_name,
)
from ..core.errors import (
    EXIT_FAIL,
    EXIT_OK,
    CPIError,
    failure_reason,
    run_entry,
)
from ..core.files import read_json, remove_stale_tmp, text_sha256
from ..core.items import (
    items_path,
    items_problem,
)
from ..core.run_folder import Target
from . import follow, probes, targets, workers
from .provenance import (
    PROVENANCE_KEY,
    model_provenance,
    provenance_block,
    provenance_mismatch,
    task_provenance,
)

# ----------------------------------------------------------------------------- options


def _limit_arg(text: str) -> int | float:
    return parse_limit(text)


def _add_task_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--tasks",
        default=",".join(DEFAULT_TASKS),
        help="comma-separated lm-eval tasks/groups (globs allowed); default: the cpi group",
    )
    add(
        "--id_tasks",
        default="",
        help="standard benchmarks whose mean is the ID accuracy, e.g. "
        "arc_challenge,mmlu,gsm8k,squad_completion; 'task:metric,filter' picks the metric",
    )
    add(
        "--limit",
        type=_limit_arg,
        default=None,
        help="items per task (a number < 1 is a fraction), for quick sweeps",
    )
    add(
        "--include_path", action="append", default=[], help="extra lm-eval task folder (repeatable)"
    )
    add(
        "--apply_chat_template",
        nargs="?",
        const=True,
        default=False,
        metavar="NAME",
        help="render prompts with the tokenizer's chat template (optionally a named one), "
        "as lm_eval --apply_chat_template",
    )
    add(
        "--bootstrap_iters",
        type=int,
        default=100000,
        help="lm-eval bootstrap iterations for non-mean stderrs",
    )


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--batch_size", default="8", help="lm-eval batch size: an integer or 'auto' (default 8)")
    add(
        "--device",
        default=None,
        help="torch device: cuda, cuda:1, cpu, mps (default: cuda if visible)",
    )
    add(
        "--model_args",
        default="",
        help="extra lm-eval model args, e.g. dtype=bfloat16,max_length=2048 "
        "(pretrained/peft/tokenizer come from the run folder)",
    )
    add(
        "--base_model",
        default=None,
        help="override the manifest's base_model (folder, .gguf file or hub id; a relative "
        "path is relative to the current folder) for step 0 and the adapters",
    )
    add(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice); 1 is often fastest for small "
        "models on a busy machine",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--skip_base", action="store_true", help="do not evaluate step 0 (the base model)")
    add(
        "--attention",
        action="store_true",
        help="add the attention-to-context column (Figure 3b): attention mass from the "
        "answer position onto the context, mean of layers and heads",
    )
    add(
        "--attention_limit",
        type=int,
        default=100,
        help="counterfactual items per task for --attention (default 100)",
    )
    add(
        "--use_cache",
        default=None,
        metavar="DIR",
        help="lm-eval response cache folder; one SQLite file per checkpoint, named by the "
        "content fingerprint of its weights",
    )
    add("--force", action="store_true", help="re-evaluate steps that already have results")
    add(
        "--workers",
        type=int,
        default=1,
        help="evaluate the steps in N processes on this machine (one GPU each when visible, "
        "else the CPU threads split); they share the steps through claim files, as do "
        "independent sweeps of one run folder (Slurm arrays, accelerate launch)",
    )
    add("--worker", action="store_true", help=argparse.SUPPRESS)  # a --workers child
    probes.add_knowledge_option(parser)
    add(
        "--dry-run",
        "--dry_run",
        dest="dry_run",
        action="store_true",
        help="list which steps would be reused and which re-evaluated (and why); evaluate nothing",
    )
    add(
        "--verbose",
        action="store_true",
        help="show lm-eval's and transformers' logs and progress bars",
    )


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "run_dir",
        nargs="?",
        default=None,
        help="run folder: cpi_run.json and checkpoint-N folders (or --model / --checkpoints)",
    )
    add(
        "--model",
        default=None,
        metavar="ORG/NAME",
        help="sweep the revisions (branches) of this hub model instead of a run folder",
    )
    add(
        "--revisions",
        default=None,
        help="with --model: comma-separated branch/tag names or patterns ('step*'), each "
        "optionally NAME=STEP; the step is otherwise parsed from the name",
    )
    add(
        "--base_revision",
        default=None,
        metavar="NAME[=STEP]",
        help="with --model: the base revision (default: the one with the lowest step)",
    )
    add(
        "--checkpoints",
        default=None,
        metavar="FILE.yaml",
        help="sweep a list of checkpoints: 'base_model: PATH' and 'checkpoints:' with "
        "'- {step: N, path: PATH}' entries (full models or peft adapters)",
    )
    add(
        "--out",
        default=None,
        metavar="DIR",
        help="folder for eval/ and inversion.* (needed with --model and --checkpoints; "
        "default for a run folder: the run folder)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="cpi sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _add_source_options(parser)
    _add_task_options(parser)
    _add_model_options(parser)
    _add_run_options(parser)
    follow.add_follow_options(parser)
    return parser


def _batch_size(text: str) -> int | str:
    if text.isdigit() and int(text) > 0:
        return int(text)
    if text.startswith("auto"):
        return text
    raise CPIError(f"--batch_size {text!r} is invalid (use a positive integer or 'auto')")


# ----------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Reports:
    """How step files become ``inversion.*``: given by the ``cpi sweep`` command, so that
    evaluation never imports the reports (they read only JSON).

    ``build(out_dir, done, failures, meta)`` returns the content of ``inversion.json`` for the
    steps in ``done`` (``meta``: ``id_tasks``, ``run``, ``settings``, ``knowledge_filter``);
    ``write(out_dir, inversion)`` writes it and its renderings and returns their paths;
    ``summary(inversion["summary"])`` is one sentence for stdout.
    """

    build: Callable[[Path, dict[int, dict[str, Any]], list[dict[str, Any]], dict], dict]
    write: Callable[[Path, dict[str, Any]], list[Path]]
    summary: Callable[[dict[str, Any]], str]


@dataclass
class SweepPlan:
    """Everything the sweep decided before loading a model."""

    args: argparse.Namespace
    source: targets.SweepSource  # what is evaluated, where results go
    targets: list[Target]
    evaluator: Any  # CheckpointEvaluator, tasks built
    tasks_provenance: dict[str, Any]
    attention_limit: int
    expected: dict[int, dict[str, Any]] = field(default_factory=dict)
    knowledge: Any = None  # probes.KnowledgePlan with --knowledge_filter
    reports: Reports | None = None  # None: evaluate only (a --workers child)

    @property
    def base_model(self) -> str:
        return self.source.base_model

    @property
    def out_dir(self) -> Path:
        """Where eval/ and inversion.* go: the run folder, or --out."""
        return self.source.out_dir

    @property
    def eval_dir(self) -> Path:
        return self.out_dir / EVAL_DIR

    def keeps_base(self) -> bool:
        """Whether adapters are (or may later be) evaluated on the loaded base."""
        return self.source.keeps_base or any(t.kind == "adapter" for t in self.targets)


def _check_options(args: argparse.Namespace) -> int:
    """The numeric options; returns the attention item count (0 = no attention column)."""
    if args.threads is not None and args.threads < 1:
        raise CPIError(f"--threads {args.threads} is invalid (give a whole number >= 1)")
    if args.workers < 1:
        raise CPIError(f"--workers {args.workers} is invalid (give a whole number >= 1)")
    if args.bootstrap_iters < 0:
        raise CPIError(f"--bootstrap_iters {args.bootstrap_iters} is invalid (give >= 0)")
    if args.attention and args.attention_limit <= 0:
        raise CPIError(
            f"--attention_limit {args.attention_limit} is invalid with --attention "
            "(give a number of items > 0)"
        )
    return args.attention_limit if args.attention else 0


def build_evaluator(args: argparse.Namespace) -> Any:
    """The evaluator of the sweep's tasks (built once; ``load_tasks`` reads the data)."""
    from .evaluator import CheckpointEvaluator, parse_model_args

    return CheckpointEvaluator(
        tasks=split_list(args.tasks),
        id_tasks=split_list(args.id_tasks),
        limit=args.limit,
        batch_size=_batch_size(str(args.batch_size)),
        apply_chat_template=args.apply_chat_template,
        model_args=parse_model_args(args.model_args),
        include_path=args.include_path,
        attention_limit=_check_options(args),
        bootstrap_iters=args.bootstrap_iters,
        verbose=args.verbose,
    )


def plan_sweep(
    args: argparse.Namespace,
    err,
    evaluator: Any = None,
    discover: Any = None,
    reports: Reports | None = None,
) -> SweepPlan:
    """Read the source (run folder, hub revisions or checkpoint list), build the tasks (their
    data read and hashed) and list targets: every input problem surfaces here, before any
    model is loaded. ``evaluator``: one already built (a follower's later rounds);
    ``discover``: how a run folder's checkpoints are listed (see targets.plan_source);
    ``reports``: how tables are written (None: no table)."""
    attention_limit = _check_options(args)
    source = targets.plan_source(args, err, discover)
    evaluator = evaluator or build_evaluator(args)
    tasks_prov = task_provenance(evaluator.load_tasks())
    plan = SweepPlan(args, source, list(source.targets), evaluator, tasks_prov, attention_limit)
    plan.reports = reports
    for target in plan.targets:
        plan.expected[target.step] = expected_provenance(plan, target)
    plan.knowledge = probes.plan_knowledge(plan)
    return plan


def expected_provenance(plan: SweepPlan, target: Target) -> dict[str, Any]:
    """The provenance block evaluating ``target`` now would record (a hub revision's also
    names its commit)."""
    model = model_provenance(target.kind, target.path, plan.base_model)
    model.update(plan.source.origins.get(target.step) or {})
    return provenance_block(model, plan.tasks_provenance, plan.evaluator.settings)


def reuse_problem(data: Any, expected: dict[str, Any], attention_limit: int) -> str | None:
    """Why a stored per-checkpoint file may not be reused (None: it may)."""
    block = data.get(CPI_KEY) if isinstance(data, dict) else None
    if not isinstance(block, dict) or not isinstance(data.get("results"), dict):
        return "not a cpi per-checkpoint results file"
    why = provenance_mismatch(block.get(PROVENANCE_KEY), expected)
    if why:
        return why
    if attention_limit > 0:
        att = block.get("attention")
        if not isinstance(att, dict) or att.get("max_items") != attention_limit:
            return "no attention-to-context measurement for these settings"
    return None


def split_done(
    plan: SweepPlan, err, only: list[Target] | None = None
) -> tuple[dict[int, dict[str, Any]], list[Target], list[str]]:
    """(reusable results by step, targets to evaluate, one line per decision), over the plan's
    targets or ``only`` these."""
    done: dict[int, dict[str, Any]] = {}
    pending: list[Target] = []
    lines: list[str] = []
    for t in plan.targets if only is None else only:
        f = plan.eval_dir / eval_file_name(t.step)
        if not f.is_file():
            why = "not evaluated yet"
        elif plan.args.force:
            why = "--force"
        else:
            try:
                data = read_json(f, "per-checkpoint results file")
                why = reuse_problem(data, plan.expected[t.step], plan.attention_limit)
                why = why or items_problem(f)
            except CPIError as exc:
                why = f"unreadable ({exc})"
            if why is None:
                done[t.step] = data
                lines.append(f"step-{t.step}: reuse ({t.label}, unchanged)")
                continue
        pending.append(t)
        lines.append(
            f"step-{t.step}: {'evaluate' if why == 'not evaluated yet' else 're-evaluating'}, {why}"
        )
    return done, pending, lines


# ----------------------------------------------------------------------------- evaluation


def _cache_db(plan: SweepPlan, target: Target) -> str | None:
    """One lm-eval response cache per checkpoint, named by its content fingerprint."""
    if not plan.args.use_cache:
        return None
    model = plan.expected[target.step]["model"]
    key = text_sha256(repr(sorted(model.items())))[:16]
    label = target.label.replace("/", "_")
    name = f"{plan.out_dir.resolve().name}-{label}-{key}.db"
    return str(Path(plan.args.use_cache).expanduser() / name)


def _evaluate_one(plan: SweepPlan, loader, target: Target) -> dict[str, Any]:
    """Load ``target``, evaluate it, write ``eval/step-N.json`` atomically; return results."""
    model, tokenizer = loader.load(target, need_chat_template=bool(plan.args.apply_chat_template))
    try:
        results = plan.evaluator.evaluate_to(
            plan.eval_dir / eval_file_name(target.step),
            model,
            tokenizer,
            step=target.step,
            label=target.label,
            source="sweep",
            model_path=target.path,
            cache_db=_cache_db(plan, target),
            provenance=plan.expected[target.step],
        )
        probes.evaluate_target(plan, target, model, tokenizer)
        return results
    finally:
        loader.release(target, model)
        if target.kind == "base":
            loader.drop_base_unless(plan.keeps_base())
        del model


def evaluate_pending(
    plan: SweepPlan,
    pending: list[Target],
    done: dict[int, dict[str, Any]],
    err,
    loader: Any = None,
    after_each: Any = None,
) -> list[dict[str, Any]]:
    """Evaluate ``pending`` in step order into ``done``; return one record per failure (the
    other checkpoints still run). ``loader``: a ModelLoader to reuse (default: a new one);
    ``after_each``: called after each step (a follower rewrites the table)."""
    from .evaluator import quiet_logs

    if not plan.args.verbose:
        quiet_logs()
    from .loader import sweep_loader

    loader = loader or sweep_loader(plan)
    # each step through its claim (workers.py): several sweeps share a run folder
    return workers.evaluate_claimed(
        plan,
        pending,
        done,
        err,
        lambda t: _evaluate_one(plan, loader, t),
        _failure,
        reuse_problem,
        after_each=after_each,
    )


def _failure(target: Target, exc: BaseException) -> dict[str, Any]:
    reason = failure_reason(exc)
    return {"step": target.step, "label": target.label, "path": target.path, "reason": reason}


# ----------------------------------------------------------------------------- the command


def forget_stale_results(plan: SweepPlan, failures: list[dict[str, Any]], err: Any) -> None:
    """Remove the step file of a failed step when it was made from other inputs (weights,
    data, settings) than the step has now: no table or gate may read those numbers as this
    checkpoint's. The file is the sweep's own (checked before it started); one that still
    matches (a --force rerun) is kept."""
    for failure in failures:
        path = plan.eval_dir / eval_file_name(failure["step"])
        expected = plan.expected.get(failure["step"])
        if expected is None or not path.is_file():
            continue
        try:
            current = reuse_problem(read_json(path), expected, plan.attention_limit) is None
        except CPIError:
            current = False
        if not current:
            path.unlink()
            items_path(path).unlink(missing_ok=True)
            print(
                f"cpi sweep: removed {path}: made from other inputs than step "
                f"{failure['step']} has now",
                file=err,
            )


def write_table(plan: SweepPlan, done, failures, out, err, brief: bool = False) -> list[dict]:
    """Write inversion.json and its renderings from the step files (this process's and its
    peers', under a short lock: several sweeps may finish together); the failures it lists.
    Only the steps of the plan's targets are rows. ``brief``: one line on ``err`` instead
    of the summary (a follower's table after each step). Without ``plan.reports`` (a
    ``--workers`` child) nothing is written."""
    steps = {t.step for t in plan.targets}
    done = {s: r for s, r in done.items() if s in steps}
    with workers.assembly_lock(plan.out_dir):
        failures = workers.collect_peers(plan, done, failures, reuse_problem)
        if plan.reports is None:
            return failures
        meta = {
            "id_tasks": plan.evaluator.id_tasks,
            "run": plan.source.run,
            "settings": plan.evaluator.settings,
            "knowledge_filter": getattr(plan.args, "knowledge_filter", None),
        }
        inversion = plan.reports.build(plan.out_dir, done, failures, meta)
        lost = workers.loses_rows(plan.out_dir, inversion, {f["step"] for f in failures}, steps)
        if lost:
            print(
                f"cpi sweep: kept inversion.json: it has rows for steps {lost} that this "
                "process does not see yet",
                file=err,
            )
        elif done or failures:  # an older table would show rows these files no longer back
            paths = plan.reports.write(plan.out_dir, inversion)
            if brief:
                rows = [r["step"] for r in inversion["rows"]]
                print(f"cpi sweep: {paths[0]}: rows for steps {rows}", file=err)
            else:
                print(plan.reports.summary(inversion["summary"]), file=out)
                print("wrote " + ", ".join(str(p) for p in paths), file=out)
    return failures


def report(plan: SweepPlan, done, failures, out, err) -> int:
    """Write the table (not in a --workers child: its launcher does); the exit status."""
    if getattr(plan.args, "worker", False):
        return EXIT_FAIL if failures else EXIT_OK
    failures = write_table(plan, done, failures, out, err)
    for f in failures:
        print(f"cpi sweep: FAILED step {f['step']} ({f['path']}): {f['reason']}", file=err)
    if failures:
        print(
            f"cpi sweep: {len(failures)} of {len(plan.targets)} models failed; fix them and "
            "rerun (finished steps are kept)",
            file=err,
        )
        return EXIT_FAIL
    return EXIT_OK


def _launch_workers(args: argparse.Namespace, pending: int, err) -> None:
    """``--workers N``: N sweeps of this run sharing the steps through their claims, one
    device (or a share of the CPU threads) each; the launcher then assembles the table."""
    if args.workers > pending:
        print(
            f"cpi sweep: {pending} step(s) to evaluate: starting {pending} workers, "
            f"not {args.workers}",
            file=err,
        )
    codes = workers.spawn_workers(args, min(args.workers, pending), err)
    for i, code in enumerate(codes):
        if code not in (EXIT_OK, EXIT_FAIL):
            print(
                f"cpi sweep: worker {i} exited with status {code}; its unfinished steps "
                "are taken over",
                file=err,
            )


def run_sweep(args: argparse.Namespace, out=None, err=None, reports: Reports | None = None) -> int:
    """The sweep behind ``cpi sweep`` (argparse namespace in, exit status out); ``reports``
    writes the tables (None: evaluate only)."""
    out, err = out or sys.stdout, err or sys.stderr
    started = time.time()
    if not args.verbose:
        from .evaluator import quiet_logs

        quiet_logs()
    targets.source_kind(args)  # a wrong combination of flags fails first
    args.since = int(os.environ.get(workers.SINCE_ENV) or time.time_ns())
    workers.apply_rank_env(args)
    if args.follow:
        return follow.follow(args, out, err, _follow_steps(reports))
    # no run-wide lock: several sweeps share a run folder step by step (workers.py)
    plan = plan_sweep(args, err, reports=reports)
    remove_stale_tmp(plan.eval_dir)
    done, pending, lines = split_done(plan, err)
    lines += plan.knowledge.lines if plan.knowledge else []
    if args.dry_run:
        print("\n".join(lines), file=out)
        return EXIT_OK
    for line in lines:
        if "re-evaluating" in line:
            print(f"cpi sweep: {line}", file=err)
    if pending:
        print(
            f"cpi sweep: {len(pending)} to evaluate, {len(done)} already done "
            f"(tasks ready in {time.time() - started:.1f} s)",
            file=err,
        )
    else:
        print(f"cpi sweep: all {len(done)} steps already evaluated; rendering", file=err)
    if pending and args.workers > 1 and not args.worker and not args.dry_run:
        _launch_workers(args, len(pending), err)  # then take over what they left
    failures = evaluate_pending(plan, pending, done, err) if pending else []
    failures += probes.evaluate_remaining(plan, err, skip={f["step"] for f in failures})
    forget_stale_results(plan, failures, err)
    return report(plan, done, failures, out, err)


def _finish(plan: SweepPlan, done, failures, out, err) -> int:
    """A follower's last step: as a sweep ends (stale files of failed steps, the table)."""
    forget_stale_results(plan, failures, err)
    return report(plan, done, failures, out, err)


def _follow_steps(reports: Reports | None) -> follow.SweepSteps:
    """A follower's steps: the sweep's own, its tables written through ``reports``."""
    return follow.SweepSteps(
        plan=functools.partial(plan_sweep, reports=reports),
        split=split_done,
        evaluate=evaluate_pending,
        write_table=write_table,
        finish=_finish,
    )


def main(argv: list[str]) -> int:
    """Evaluate only (a ``--workers`` child): ``cpi sweep`` itself is
    ``harness_ext/commands/sweep.py``, which also writes the tables."""
    return run_entry("sweep", lambda a: run_sweep(parse_args(a)), argv)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The options, plus the command line itself (--workers starts copies of it)."""
    args = build_parser().parse_args(argv)
    args.raw_argv = list(argv)
    return args


if __name__ == "__main__":  # a --workers child: python -m ... --worker
    sys.exit(main(sys.argv[1:]))
