"""Several ``cpi sweep`` processes on one run folder, sharing the work step by step.

Why claims and not one lock per run: a Slurm array, ``accelerate launch`` or
``cpi sweep --workers N`` start several processes on the same run folder (often on a shared
filesystem), and each checkpoint should be evaluated exactly once, by whichever process is
free. So every step is *claimed* through ``RUN_DIR/eval/.step-N.claim``: an exclusive
``flock`` held while that process evaluates the step. The OS drops a flock when its holder
dies, however it dies, so a killed process's step is taken over by the next process that
asks for it; no claim is ever stale.

Each process goes through its pending steps twice: first it takes every free claim and skips
the held ones ("step-4: claimed by pid M, skipping"); then it waits on each skipped claim in
turn. When it gets a claim it first looks whether a peer finished the step meanwhile (a step
file that matches this sweep's provenance, or a fresh failure record) and only evaluates a
step that nobody did. Hence every process ends knowing every step, and each one can write
``inversion.json`` from the step files, under a short lock, idempotently; a table is never
replaced by one with fewer rows of the same settings (:func:`loses_rows`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..core.constants import INVERSION_JSON, eval_file_name
from ..core.errors import CPIError
from ..core.files import atomic_write_json, read_json
from ..core.run_folder import Target

ASSEMBLY_LOCK = ".cpi_inversion.lock"  # in RUN_DIR: held only while inversion.* is written
SINCE_ENV = "CPI_SWEEP_SINCE"  # ns timestamp shared by one --workers launch (see sweep_since)
WORKER_ENV = "CPI_SWEEP_WORKER"  # index of a --workers child, for its log lines

Evaluate = Callable[[Target], dict[str, Any]]
Failure = Callable[[Target, BaseException], dict[str, Any]]
Problem = Callable[[Any, dict[str, Any], int], "str | None"]  # sweep.reuse_problem


# ----------------------------------------------------------------------------- claims


def claim_path(eval_dir: Path, step: int) -> Path:
    """The lock file of one step, next to its result (hidden: not an output)."""
    return eval_dir / f".step-{step}.claim"


def failure_path(eval_dir: Path, step: int) -> Path:
    """Where a process records that it failed a step, so peers neither retry nor forget it."""
    return eval_dir / f".step-{step}.failed.json"


def try_claim(path: Path, block: bool = False) -> tuple[int | None, str]:
    """(fd holding the claim, "") or (None, holder pid). ``block`` waits for the holder to
    finish or die; the fd must be closed (``os.close``) to release the claim."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except OSError as err:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        if err.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return None, holder
    if not _still_linked(fd, path):  # its holder removed it after use: claim the new one
        os.close(fd)
        return try_claim(path, block)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd, ""


def _still_linked(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file we locked: a finished holder unlinks its claim
    file (while holding it), so a lock won on the old file claims nothing."""
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def release(fd: int, path: Path) -> None:
    """Remove the claim file, then drop the lock (in this order: see _still_linked)."""
    try:
        if _still_linked(fd, path):
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def sweep_since(args: Any) -> int:
    """When this sweep (or the --workers launch it belongs to) started, in ns: a step file
    or failure record written after it was made by a peer of this sweep, even under --force."""
    since = getattr(args, "since", None)
    return int(since) if since else time.time_ns()


def reusable_result(
    path: Path, expected: dict[str, Any], attention_limit: int, reuse_problem: Problem
) -> dict[str, Any] | None:
    """The results file at ``path`` when it may be reused under the provenance ``expected``
    (``reuse_problem``, the sweep's rule) with its per-item records; None when it is absent,
    unreadable, stale or without usable records. Shared by peers and the training callback."""
    from ..core.items import items_problem

    try:
        data = read_json(path, "per-checkpoint results file")
    except (OSError, CPIError):
        return None
    if reuse_problem(data, expected, attention_limit) or items_problem(path):
        return None
    return data


def _peer_result(plan: Any, target: Target, reuse_problem: Problem) -> dict[str, Any] | None:
    """The step's results when a peer (or an earlier sweep, unless --force) already wrote
    them with this sweep's provenance; else None."""
    path = plan.eval_dir / eval_file_name(target.step)
    try:
        if plan.args.force and path.stat().st_mtime_ns < sweep_since(plan.args):
            return None
    except OSError:
        return None
    expected = plan.expected[target.step]
    return reusable_result(path, expected, plan.attention_limit, reuse_problem)


def _peer_failure(plan: Any, step: int) -> dict[str, Any] | None:
    """A failure record of this step written during this sweep (older ones are ignored)."""
    path = failure_path(plan.eval_dir, step)
    try:
        if path.stat().st_mtime_ns < sweep_since(plan.args):
            return None
        data = read_json(path, "failure record")
    except (OSError, CPIError):
        return None
    return data if isinstance(data, dict) and data.get("step") == step else None


# ----------------------------------------------------------------------------- the loop


def _who() -> str:
    worker = os.environ.get(WORKER_ENV)
    return f"pid {os.getpid()}" + (f" (worker {worker})" if worker else "")


def _resolve_claimed(
    plan: Any, target: Target, state: dict[str, Any], run: Evaluate, failure: Failure
) -> str:
    """With the step's claim held: reuse a peer's result or failure, else evaluate it.
    Returns the log line."""
    step, fail_file = target.step, failure_path(plan.eval_dir, target.step)
    peer = _peer_result(plan, target, state["problem"])
    if peer is not None:
        state["done"][step] = peer
        return f"step-{step}: already evaluated by another process, reusing"
    record = _peer_failure(plan, step)
    if record is not None:
        state["failures"].append(record)
        return f"step-{step}: failed in another process ({record.get('reason')})"
    started = time.time()
    try:
        state["done"][step] = run(target)
    except Exception as exc:  # noqa: BLE001 - reported per checkpoint, exit status 1
        state["failures"].append(failure(target, exc))
        atomic_write_json(fail_file, state["failures"][-1])
        return f"step-{step}: FAILED in {_who()}: {state['failures'][-1]['reason']}"
    fail_file.unlink(missing_ok=True)
    return f"step-{step}: evaluated by {_who()} ({time.time() - started:.1f} s)"


def evaluate_claimed(
    plan: Any,
    pending: list[Target],
    done: dict[int, dict[str, Any]],
    err: Any,
    run: Evaluate,
    failure: Failure,
    reuse_problem: Problem,
    after_each: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Resolve every pending step (see the module docstring) into ``done``; return the
    failures (this process's and its peers'). ``reuse_problem`` is the sweep's rule for
    whether a step file may be reused (passed in: this module must not import sweep);
    ``after_each`` runs after each resolved step, its claim released."""
    from tqdm import tqdm

    state: dict[str, Any] = {"done": done, "failures": [], "problem": reuse_problem}
    state["after_each"] = after_each
    bar = tqdm(total=len(pending), desc="checkpoints", unit="model", file=err, dynamic_ncols=True)
    waiting: list[tuple[Target, str]] = []
    for target in pending:
        fd, holder = try_claim(claim_path(plan.eval_dir, target.step))
        if fd is None:
            tqdm.write(
                f"cpi sweep: step-{target.step}: claimed by pid {holder}, skipping", file=err
            )
            waiting.append((target, holder))
            continue
        _finish(plan, target, fd, state, run, failure, bar, err)
    for target, _holder in waiting:  # wait for each holder to finish (or die: taken over)
        fd, _ = try_claim(claim_path(plan.eval_dir, target.step), block=True)
        _finish(plan, target, fd, state, run, failure, bar, err)
    bar.close()
    return state["failures"]


def _finish(
    plan: Any,
    target: Target,
    fd: int | None,
    state: dict[str, Any],
    run: Evaluate,
    failure: Failure,
    bar: Any,
    err: Any,
) -> None:
    """Resolve one claimed step, log it, release the claim."""
    from tqdm import tqdm

    try:
        bar.set_postfix_str(target.label)
        tqdm.write(f"cpi sweep: {_resolve_claimed(plan, target, state, run, failure)}", file=err)
    finally:
        if fd is not None:
            release(fd, claim_path(plan.eval_dir, target.step))
        bar.update(1)
    if state.get("after_each"):
        state["after_each"]()


# ----------------------------------------------------------------------------- assembly


@contextlib.contextmanager
def assembly_lock(run_dir: Path) -> Iterator[None]:
    """A short blocking lock around reading the step files and writing ``inversion.*``, so
    two finishing processes never interleave their writes."""
    fd = os.open(run_dir / ASSEMBLY_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def collect_peers(
    plan: Any,
    done: dict[int, dict[str, Any]],
    failures: list[dict[str, Any]],
    reuse_problem: Problem,
) -> list[dict[str, Any]]:
    """Add to ``done`` the step files peers wrote, and return ``failures`` plus theirs, so
    whichever process assembles writes the same table."""
    failed = {f["step"] for f in failures}
    out = list(failures)
    for target in plan.targets:
        if target.step in done or target.step in failed:
            continue
        data = _peer_result(plan, target, reuse_problem)
        if data is not None:
            done[target.step] = data
        elif (record := _peer_failure(plan, target.step)) is not None:
            out.append(record)
    return sorted(out, key=lambda f: f["step"])


def loses_rows(run_dir: Path, new: dict[str, Any], failed: set[int], steps: set[int]) -> list[int]:
    """Steps of the existing ``inversion.json`` (same settings) that ``new`` would drop
    although they are still checkpoints of the run and did not fail: writing ``new`` would
    replace a more complete table by a less complete one."""
    try:
        old = read_json(run_dir / INVERSION_JSON)
    except CPIError:
        return []
    if not isinstance(old, dict) or old.get("settings") != new.get("settings"):
        return []
    old_steps = {r.get("step") for r in old.get("rows") or [] if isinstance(r, dict)}
    new_steps = {r["step"] for r in new["rows"]}
    return sorted(s for s in old_steps - new_steps - failed if s in steps)


# ----------------------------------------------------------------------------- launching


def rank_env() -> tuple[int, int, int, int]:
    """(rank, world size, local rank, local world size) from torchrun/accelerate's variables;
    (0, 1, 0, 1) for a plain process."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1") or 1)
    rank = int(env.get("RANK", "0") or 0)
    local = int(env.get("LOCAL_RANK", str(rank)) or 0)
    return rank, world, local, int(env.get("LOCAL_WORLD_SIZE", str(world)) or world)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def apply_rank_env(args: Any) -> None:
    """Under ``accelerate launch``/``torchrun``: one GPU per local rank, or CPU threads split
    between the local ranks; ranks other than 0 only evaluate (rank 0 assembles, and waits
    on every claim before it does, so its table is complete)."""
    rank, world, local, local_world = rank_env()
    if world <= 1:
        return
    os.environ.setdefault(WORKER_ENV, str(rank))
    if args.device is None and _cuda_count() > 0:
        args.device = f"cuda:{local % _cuda_count()}"
    elif args.threads is None and (args.device or "cpu") == "cpu":
        args.threads = max(1, _cpus() // max(1, local_world))
    if rank != 0:
        args.worker = True


def _cuda_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:  # pragma: no cover - torch ships with the evaluation extra
        return 0


def worker_argv(argv: list[str], index: int, workers: int, gpus: int) -> list[str]:
    """The command line of worker ``index``: the user's, without ``--workers``, marked
    ``--worker``, with its own GPU (``cuda:i``) or its share of the CPU threads."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if not arg.startswith("--workers="):
            out.append(arg)
    has = {a.split("=")[0] for a in out}
    if gpus and "--device" not in has:
        out += ["--device", f"cuda:{index % gpus}"]
    elif not gpus and "--threads" not in has:
        out += ["--threads", str(max(1, _cpus() // workers))]
    return [sys.executable, "-m", "cpi_bench.harness_ext.evaluation.sweep", *out, "--worker"]


def spawn_workers(args: Any, count: int, err: Any) -> list[int]:
    """Start ``count`` worker processes of this sweep and wait for all; their exit codes.
    They share ``since`` so a --force rerun still counts their step files as this sweep's."""
    argv = getattr(args, "raw_argv", None)
    if argv is None:
        raise CPIError("--workers needs the command line (call sweep.main, not run_sweep)")
    gpus = _cuda_count() if args.device is None else 0
    procs = []
    for i in range(count):
        env = dict(os.environ, **{SINCE_ENV: str(args.since), WORKER_ENV: str(i)})
        procs.append(subprocess.Popen(worker_argv(argv, i, count, gpus), env=env))
    where = f"{gpus} GPU(s)" if gpus else f"CPU, {max(1, _cpus() // count)} thread(s) each"
    print(
        f"cpi sweep: {count} workers ({where}): pids " + " ".join(str(p.pid) for p in procs),
        file=err,
    )
    try:
        return [p.wait() for p in procs]
    finally:
        for p in procs:  # Ctrl-C / SIGTERM of the launcher: stop the workers too
            if p.poll() is None:
                p.terminate()
                p.wait()
