"""Benchmark: ``cpi sweep RUN`` in one process against ``cpi sweep RUN --workers 2``.

    python benchmarks/bench_sweep_workers.py                  # K=8 tiny checkpoints + base
    python benchmarks/bench_sweep_workers.py --checkpoints 8 --limit 20 --workers 2

Builds one tiny full-finetune run (step 0 plus ``--checkpoints`` checkpoints) in a temporary
folder, copies it, then times on the two copies, in this one invocation:

* one process with all the CPU threads (``--threads`` = the CPUs this process may use);
* ``--workers N``: N processes sharing the steps through their claims, the threads split.

Every metric of every row must be identical between the two (the script exits 1 otherwise).
It prints both wall-clock times and their ratio. Each worker pays the start-up (imports,
task index, data) again, so the gain needs evaluation time per model well above start-up;
on a shared machine the numbers move with the other load: run it more than once.
Needs the cpi task data: ``CPI_DATA_DIR``, or synthetic fixture data is generated.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/helpers, shared with the tests
from tests.helpers.env import offline_env  # noqa: E402

DEFAULT_TASKS = "cpi_capitals,cpi_quotes,cpi_capitals_choice,cpi_quotes_choice"


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _env(data_dir: Path, cache: Path) -> dict[str, str]:
    """Offline and deterministic, as the tests run the sweep."""
    return offline_env(CPI_DATA_DIR=str(data_dir), CPI_CACHE_DIR=str(cache))


def _sweep(run: Path, args: argparse.Namespace, env: dict[str, str], *extra: str) -> float:
    """Wall-clock seconds of one ``cpi sweep`` (exits on failure)."""
    cmd = [sys.executable, "-m", "cpi_bench.harness_ext.commands.sweep", str(run)]
    cmd += ["--tasks", args.tasks, "--limit", str(args.limit), "--device", "cpu"]
    cmd += ["--batch_size", str(args.batch_size), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"sweep failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return seconds


def _data_dir(tmp: Path) -> Path:
    """The caller's CPI_DATA_DIR, else generated fixture data in the public schemas."""
    if os.environ.get("CPI_DATA_DIR"):
        return Path(os.environ["CPI_DATA_DIR"])
    from tests.helpers.public_fixtures import (
        write_fixture_data,
        write_suite_fixture_data,
    )

    data = write_fixture_data(tmp / "data")
    write_suite_fixture_data(data)
    return data


def _rows(run: Path) -> list[dict]:
    return json.loads((run / "inversion.json").read_text())["rows"]


def main(argv: list[str] | None = None) -> int:
    """Build the run, time both ways, check the rows are identical, print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=8, help="K checkpoints (plus base)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", default=DEFAULT_TASKS)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument(
        "--one_threads",
        type=int,
        default=None,
        help="torch threads of the one-process sweep (default: every CPU; 1 is the fair "
        "baseline on a busy machine, where 2 threads spin against other load)",
    )
    args = parser.parse_args(argv)
    from tests.helpers.tiny_run import build_tiny_run

    with tempfile.TemporaryDirectory(prefix="cpi-bench-workers-") as tmp_name:
        tmp = Path(tmp_name)
        env = _env(_data_dir(tmp), tmp / "cache")
        steps = range(1, args.checkpoints + 1)
        one = build_tiny_run(tmp / "one", steps=steps, base_dir=tmp / "base")
        many = Path(shutil.copytree(one, tmp / "many"))
        threads = args.one_threads or max(1, _cpus())
        t_one = _sweep(
            one, args, {**env, "OMP_NUM_THREADS": str(threads)}, "--threads", str(threads)
        )
        t_many = _sweep(many, args, env, "--workers", str(args.workers))
        same = _rows(one) == _rows(many)
        print(
            f"{args.checkpoints} checkpoints + base, {args.tasks}, limit {args.limit}, "
            f"{_cpus()} CPUs (load average {os.getloadavg()[0]:.1f})"
        )
        print(f"1 process, {threads} threads : {t_one:7.1f} s")
        print(f"{args.workers} processes (--workers): {t_many:7.1f} s")
        print(f"ratio 1-process / {args.workers}-process: {t_one / t_many:.2f}x")
        print(f"every metric identical: {same}")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
