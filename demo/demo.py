"""``cpi demo``: the whole product on a CPU, no downloads, over several seeds.

    cpi demo --out demo-run               # every variant for seeds 0-4 (12-16 min, 2 cores)
    cpi demo --out demo-run --seeds 0,1,2 # fewer seeds
    cpi demo --out demo-run --quick       # seed 0, the first 150 steps only (CI)

Per seed:
1. A seeded synthetic fact world is written into ``OUT/seed-<s>/world`` (``world.py``).
2. A tiny Llama is pretrained on its facts until it recalls them (``base_model.py``; cached
   by config hash under ``OUT/cache``, so a rerun skips it).
3. Each variant is a real ``cpi train`` run on the world's IFT data (Alpaca rows rendered in
   the ``squad`` layout of the evaluation prompts), then a real ``cpi sweep`` over its
   checkpoints on the ``cpisynth_*`` lm-eval tasks (``CPI_DATA_DIR=OUT/seed-<s>/world``), in
   ``OUT/seed-<s>/<variant>/``: ``standard`` (the mixture; only W_q and W_k train, the
   paper's QK finetuning), ``context_only`` (only C points, as many as the mixture has rows:
   the theory's control), ``context_critical_25/50/75`` (the context_critical_all curation dropping
   that percentage of a pool cut down to the mixture's size; ``context_critical_0`` is the
   standard run), ``cf_augment`` (counterfactual
   augmentation) and ``full`` (every weight trains).
``--jobs`` runs (default 2) go at once, each in its own process with one torch thread; each
run's log is ``OUT/seed-<s>/logs/<variant>.log``.

Then ``OUT/demo.md`` (mean ± 95% CI over seeds per variant, the dose-response of the
curation), ``OUT/demo.json`` (every per-seed number) and ``OUT/demo.png`` (mean curves with
their CI bands and the per-seed curves; the dose-response), all from the runs' inversion.json.

Nothing is hidden: every number comes from the same commands a user runs by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..harness_ext.core.cli_args import ArgumentParser, split_list
from ..harness_ext.core.constants import (
    INVERSION_JSON,
)
from ..harness_ext.core.errors import CPIError
from ..harness_ext.core.files import atomic_write_json, claim_output_dir, read_json
from .base_model import PretrainConfig, base_model_dir, cached_base_model
from .environment import environment
from .variants import (
    ABLATIONS,
    ALIASES,
    ALL_VARIANTS,
    VARIANTS,
    DemoRun,
    Variant,
)
from .world import World, WorldConfig

# Seeds of a default run: 5 seeds = 35 runs and 5 pretrainings, 12-16 min of wall time and
# 24-31 CPU-minutes on a 2-core machine (measured; docs/demo.md): about a quarter of an hour.
DEFAULT_SEEDS = "0,1,2,3,4"
QUICK_SEEDS = "0"


SWEEP_TASKS = "cpisynth_cf,cpisynth_cf_choice"
ID_TASKS = "cpisynth_id"


@dataclass(frozen=True)
class Schedule:
    """IFT settings shared by every variant."""

    max_steps: int = 800
    save_steps: int = 50
    learning_rate: float = 3e-4
    # Constant, not decaying: the fall is slow (the C+S points' pull after the C points are
    # fit), and a decaying rate freezes the curve on its plateau (benchmarks/demo_knobs.py).
    lr_scheduler_type: str = "constant"
    batch_size: int = 16
    # The standard variant trains only W_q and W_k, the paper's §5 setting: the only setting
    # of the knob search (benchmarks/demo_knobs.py) in which the miniature's context reliance
    # fell after its rise; with every weight trained it learns a clean copy rule instead.
    finetune: str = "qk"


FULL = Schedule()
# The same world and base model (cached: a later full run skips pretraining), fewer steps.
QUICK = Schedule(max_steps=150, save_steps=25)


@contextlib.contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def train_args(
    base: Path,
    world_paths: dict[str, Path],
    out: Path,
    sched: Schedule,
    seed: int,
    variant: Variant,
) -> list[str]:
    """The ``cpi train`` command line of one variant."""
    args = [
        "--model_name_or_path", str(base),
        "--dataset_name", str(world_paths[variant.data]),
        "--template", "squad",
        "--finetune", sched.finetune,
        "--learning_rate", str(sched.learning_rate),
        "--lr_scheduler_type", sched.lr_scheduler_type,
        "--max_steps", str(sched.max_steps),
        "--save_steps", str(sched.save_steps),
        "--per_device_train_batch_size", str(sched.batch_size),
        "--output_dir", str(out),
        "--seed", str(seed),
        "--report_to", "none",
        "--logging_steps", str(sched.save_steps),
        "--disable_tqdm", "true",
    ]  # fmt: skip
    args += variant.args  # a repeated flag (--finetune full) overrides the one above
    if variant.drop is not None:  # the base model's scores, cached next to it
        args += ["--scores_cache_dir", str(base.parent / "scores")]
    if "cf_augment" in variant.args:
        args += ["--cf_augment_source", str(world_paths["cf_augment"])]
    return args


RUN_STAMP = ".cpi_demo_run.json"  # marks a run folder as the demo's own, and what made it


def prepare_run_dir(run_dir: Path, made_with: dict[str, Any]) -> None:
    """Keep ``run_dir`` for reuse only if it was made with ``made_with``, else empty it.

    ``made_with`` is the train command line and the environment key (environment.py): a
    --quick run's checkpoints must not pass for a full run's, nor an old install's for a new
    one's. A folder the demo did not make is refused, never removed."""
    stamp = run_dir / RUN_STAMP
    if run_dir.exists() and not stamp.is_file():
        raise CPIError(
            f"{run_dir} exists but was not made by cpi demo (move it away or choose another --out)"
        )
    if run_dir.exists() and read_json(stamp, "demo run stamp") != made_with:
        print(f"cpi demo: {run_dir} was made with other settings or versions; running it again")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(stamp, made_with)


def run_variant(
    name: str, base: Path, world_paths: dict[str, Path], out: Path, sched: Schedule, seed: int
) -> dict:
    """``cpi train`` then ``cpi sweep`` for one variant; return its inversion.json."""
    from ..harness_ext.commands import sweep
    from ..trainer import train

    run_dir = out / name
    args = train_args(base, world_paths, run_dir, sched, seed, ALL_VARIANTS[name])
    prepare_run_dir(run_dir, {"args": args, "environment": environment()})
    if not (run_dir / INVERSION_JSON).is_file():
        done = run_dir / f"checkpoint-{sched.max_steps}"
        if not done.is_dir():
            code = train.main(args)
            if code:
                raise RuntimeError(f"cpi train failed for variant {name} (exit {code})")
        with _env(CPI_DATA_DIR=str(world_paths["cf"].parent)):
            code = sweep.main(
                [
                    str(run_dir),
                    "--tasks",
                    SWEEP_TASKS,
                    "--id_tasks",
                    ID_TASKS,
                    "--device",
                    "cpu",
                    "--batch_size",
                    "64",
                ]
            )
        if code:
            raise CPIError(
                f"cpi sweep failed for variant {name} (exit {code}; its log says why)", code
            )
    return read_json(run_dir / INVERSION_JSON, "inversion.json")


# --- parallel runs: worker processes with one torch thread each ---------------------------


def _init_worker() -> None:
    """Each worker is one of ``--jobs`` processes on a shared CPU: one thread, no denormals."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # subnormal floats make CPU training ~4x slower


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", encoding="utf-8") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _pretrain_job(
    world_cfg: WorldConfig, pre_cfg: PretrainConfig, cache: Path, log: Path
) -> tuple[Path, float, float]:
    """(base model folder, fact recall, seconds), in a worker; output to ``log``."""
    from .base_model import pretrain_base_model

    start = time.time()
    with _output_to(log):
        base, recall = pretrain_base_model(World(world_cfg), pre_cfg, cache)
    return base, recall, time.time() - start


def _variant_job(name: str, base: Path, paths: dict[str, Path], seed_dir: Path,
                 sched: Schedule, seed: int) -> tuple[dict, float, bool]:  # fmt: skip
    """(inversion.json, seconds, whether an earlier run had made it), in a worker."""
    start = time.time()
    with _output_to(seed_dir / "logs" / f"{name}.log"):
        result = run_variant(name, base, paths, seed_dir, sched, seed)
    made = (seed_dir / name / INVERSION_JSON).stat().st_mtime
    return result, time.time() - start, made < start  # older than this job: reused


class _Inline:
    """``--jobs 1``: run each job at once in this process (a Future-returning stand-in for
    the process pool; also what tests monkeypatch through)."""

    def __init__(self) -> None:
        _init_worker()

    def submit(self, fn: Callable, *args: object) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as err:  # re-raised by fut.result()
            fut.set_exception(err)
        return fut

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _executor(jobs: int) -> ProcessPoolExecutor | _Inline:
    if jobs == 1:
        return _Inline()
    ctx = multiprocessing.get_context("spawn")  # no forked torch state in the workers
    return ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker)


def _stop(pool: ProcessPoolExecutor | _Inline) -> None:
    """Cancel the queued jobs and end the running workers now (an interrupted run resumes
    from its checkpoints on the next ``cpi demo``)."""
    workers = getattr(pool, "_processes", None) or {}  # pid -> Process of this pool
    for proc in list(workers.values()):
        proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _short(res: dict) -> str:
    s = res["summary"]
    return f"peak {s['peak_cf_acc']:.2f} at {s['peak_step']}, final {s['final_cf_acc']:.2f}"


def run_demo(
    out: Path,
    world_cfg: WorldConfig,
    pre_cfg: PretrainConfig,
    sched: Schedule,
    seeds: list[int],
    names: list[str],
    jobs: int = 2,
    log: Callable[[str], None] = print,
    cache: Path | None = None,
) -> DemoRun:
    """Per seed: the world (OUT/seed-<s>/world), the base model (cached), then ``cpi train`` +
    ``cpi sweep`` per variant (OUT/seed-<s>/<variant>), ``jobs`` runs at a time."""
    cache = cache or out / "cache"
    run = DemoRun({s: {} for s in seeds}, {}, {})
    start = time.time()
    say = lambda msg: log(f"[{time.time() - start:5.0f} s] {msg}")  # noqa: E731
    with _executor(jobs) as pool:
        pending: dict = {}

        def submit_variants(seed: int) -> None:
            for name in names:
                args = (name, run.bases[seed][0], run.paths[seed], out / f"seed-{seed}")
                fut = pool.submit(_variant_job, *args, sched, seed)
                pending[fut] = (seed, name)

        for seed in seeds:
            w, p = replace(world_cfg, seed=seed), replace(pre_cfg, seed=seed)
            drops = tuple(d for n in names if (d := ALL_VARIANTS[n].pool_drop))
            run.paths[seed] = World(w).write(out / f"seed-{seed}" / "world", drops)
            recall = cached_base_model(World(w), p, cache)
            if recall is not None:
                run.bases[seed] = (base_model_dir(World(w), p, cache), recall)
                say(f"seed {seed}: base model cached (fact recall {recall:.3f})")
                submit_variants(seed)
            else:
                log_file = out / f"seed-{seed}" / "logs" / "pretrain.log"
                pending[pool.submit(_pretrain_job, w, p, cache, log_file)] = (seed, None)
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    seed, name = pending.pop(fut)
                    if name is None:
                        *run.bases[seed], secs = fut.result()
                        say(f"seed {seed}: base model pretrained in {secs:.0f} s "
                            f"(fact recall {run.bases[seed][1]:.3f})")  # fmt: skip
                        submit_variants(seed)
                    else:
                        run.results[seed][name], secs, reused = fut.result()
                        run.reused += reused
                        say(f"seed {seed} {name}: {_short(run.results[seed][name])} ({secs:.0f} s)")
        except BaseException:
            _stop(pool)
            raise
    return run


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]  # duplicates refused below
    except ValueError:
        raise CPIError(f"--seeds {text!r}: give comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise CPIError(f"--seeds {text!r}: give at least one seed, each once")
    return seeds


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="cpi demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="cpi-demo", help="output folder (default: cpi-demo)")
    parser.add_argument(
        "--seeds",
        default=None,
        help=f"comma-separated seeds of the worlds and all training (default: "
        f"{DEFAULT_SEEDS}; with --quick: {QUICK_SEEDS})",
    )
    parser.add_argument("--seed", type=int, default=None, help="one seed (= --seeds N)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK.max_steps} IFT steps instead of {FULL.max_steps}, seed {QUICK_SEEDS} "
        "only (for CI; about 2 minutes on 2 cores)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated subset of {', '.join([*VARIANTS, *ALIASES])} (default: all "
        f"of these), or the dose-response ablations {', '.join(ABLATIONS)}",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="runs at once, one torch thread each (default: 2)"
    )
    return parser


def _chosen_variants(text: str) -> list[str]:
    names = split_list(text)
    unknown = [v for v in names if v not in ALL_VARIANTS and v not in ALIASES]
    if unknown:
        choices = [*ALL_VARIANTS, *ALIASES]
        raise CPIError(f"unknown --variants {unknown}; choose from {choices}", exit_code=2)
    runs = {ALIASES.get(v, v) for v in names}
    return [v for v in ALL_VARIANTS if v in runs]


def _run_claimed(
    args: Any, argv: list[str], out: Path, seeds: list[int], names: list[str], start: float
) -> None:
    """The demo's runs and report, once ``out`` is claimed (core/files.py)."""
    from .report import write_report

    sched = QUICK if args.quick else FULL
    world_cfg, pre_cfg = WorldConfig(), PretrainConfig()
    print(f"cpi demo: seeds {seeds}, variants {names}, {sched.max_steps} steps, "
          f"{args.jobs} runs at a time; logs in {out}/seed-<s>/logs/")  # fmt: skip
    # a SIGTERM arrives as KeyboardInterrupt (errors.run_entry): run_demo ends its workers
    run = run_demo(out, world_cfg, pre_cfg, sched, seeds, names, jobs=args.jobs)
    command = "cpi demo " + " ".join(argv)
    text = write_report(out, run, sched, world_cfg, pre_cfg, command, time.time() - start)
    print(text)
    print(
        f"wrote {out / 'demo.md'}, {out / 'demo.json'} and {out / 'demo.png'} "
        f"({time.time() - start:.0f} s); runs in {out}/seed-<s>/<variant>/"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    return _parser().parse_args(argv)


def main(argv: list[str]) -> int:

    args = parse_args(argv)
    names = _chosen_variants(args.variants)
    if args.seed is not None and args.seeds is not None:
        raise CPIError("give --seed or --seeds, not both", exit_code=2)
    seeds = _parse_seeds(
        str(args.seed) if args.seed is not None else args.seeds or
        (QUICK_SEEDS if args.quick else DEFAULT_SEEDS)
    )  # fmt: skip
    if args.jobs < 1:
        raise CPIError("--jobs must be at least 1", exit_code=2)
    start = time.time()
    with claim_output_dir(args.out, "demo") as out:
        _run_claimed(args, argv, out, seeds, names, start)
    return 0
