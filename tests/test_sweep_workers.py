"""Several sweeps of one run folder share the steps (``harness_ext/evaluation/workers.py``).

* ``cpi sweep RUN --workers 2`` gives every metric of a one-process sweep, and each step is
  evaluated by exactly one process (the logs say which).
* A sweep killed with ``kill -9`` while it holds a step's claim: the other sweep, which had
  skipped that step, takes it over (or reuses it, when the kill landed after the step's file
  was written) and ends with the one-process rows.
* The claim itself: held steps are reported with the holder's pid, a dead holder's claim is
  free; ``--workers`` children get their own thread share; a table never loses rows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from cpi_bench.harness_ext.core.constants import INVERSION_JSON
from cpi_bench.harness_ext.evaluation import workers
from tests.helpers.env import offline_env

STEPS = (2, 4, 6, 8)
EVALUATED = re.compile(r"step-(\d+): evaluated by pid (\d+)")


def _env(data_dir: Path, cache: Path) -> dict[str, str]:
    return offline_env(CPI_DATA_DIR=str(data_dir), CPI_CACHE_DIR=str(cache), OMP_NUM_THREADS="1")


def _sweep_cmd(run: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cpi_bench.harness_ext.commands.sweep",  # the module runs as a command (python -m)
        str(run),
        "--tasks",
        "cpi_capitals,cpi_capitals_choice",
        "--limit",
        "4",
        "--device",
        "cpu",
        "--batch_size",
        "4",
        *extra,
    ]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory, fixture_data_dir: Path) -> dict:
    """A tiny run with 4 checkpoints, a pristine copy, and its one-process inversion.json."""
    from tests.helpers.tiny_run import build_tiny_run

    root = tmp_path_factory.mktemp("workers")
    run = build_tiny_run(root / "run", steps=STEPS, base_dir=root / "base")
    pristine = Path(shutil.copytree(run, root / "pristine"))
    env = _env(fixture_data_dir, root / "cache")
    one = subprocess.run(
        _sweep_cmd(run, "--threads", "1"), env=env, capture_output=True, text=True, timeout=300
    )
    assert one.returncode == 0, one.stderr
    return {"root": root, "pristine": pristine, "env": env, "ref": _table(run)}


def _table(run: Path) -> dict:
    data = json.loads((run / INVERSION_JSON).read_text())
    return {"rows": data["rows"], "summary": data["summary"], "failures": data["failures"]}


def _evaluations(log: str) -> Counter:
    return Counter(int(m.group(1)) for m in EVALUATED.finditer(log))


REUSED = re.compile(r"step-(\d+): already evaluated by another process, reusing")


@pytest.mark.slow
def test_two_workers_give_the_one_process_rows_each_step_once(swept: dict) -> None:
    run = Path(shutil.copytree(swept["pristine"], swept["root"] / "two"))
    proc = subprocess.run(
        _sweep_cmd(run, "--workers", "2"),
        env=swept["env"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 workers (CPU, " in proc.stderr
    assert _evaluations(proc.stderr) == Counter({s: 1 for s in (0, *STEPS)}), proc.stderr
    pids = {int(m.group(2)) for m in EVALUATED.finditer(proc.stderr)}
    assert len(pids) <= 2 and proc.stderr.count("--worker") == 0
    assert _table(run) == swept["ref"]


def _read_lines(stream, lines: list[str]) -> None:
    for line in iter(stream.readline, ""):
        lines.append(line)


SKIP = re.compile(r"step-(\d+): claimed by pid (\d+), skipping")


def _start(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, list[str]]:
    """A sweep whose stderr lines are collected as they come."""
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=_read_lines, args=(proc.stderr, lines), daemon=True).start()
    return proc, lines


def _first_skip(logs: list[list[str]], procs: list[subprocess.Popen]) -> tuple[int, int]:
    """(step, holder pid) of the first "claimed by pid M, skipping" line of either sweep."""
    deadline = time.time() + 240
    while time.time() < deadline:
        for lines in logs:
            for line in list(lines):
                if m := SKIP.search(line):
                    return int(m.group(1)), int(m.group(2))
        assert all(p.poll() is None for p in procs), "".join(sum(logs, []))
        time.sleep(0.005)
    raise AssertionError("no sweep ever skipped a claimed step")


@pytest.mark.slow
def test_kill9_of_a_claim_holder_is_taken_over(swept: dict) -> None:
    """Two sweeps started together (a Slurm array); the first time one skips a step claimed
    by the other, the holder is killed with -9 in the middle of that step."""
    run = Path(shutil.copytree(swept["pristine"], swept["root"] / "killed"))
    started = [_start(_sweep_cmd(run), swept["env"]) for _ in range(2)]
    procs, logs = [p for p, _ in started], [lines for _, lines in started]
    try:
        step, holder = _first_skip(logs, procs)
        os.kill(holder, signal.SIGKILL)
        killed = next(i for i, p in enumerate(procs) if p.pid == holder)
        survivor = procs[1 - killed]
        assert procs[killed].wait(timeout=30) == -signal.SIGKILL
        assert survivor.wait(timeout=300) == 0, "".join(logs[1 - killed])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    time.sleep(0.2)  # the reader threads drain the pipes
    dead_log, live_log = "".join(logs[killed]), "".join(logs[1 - killed])
    done = _evaluations(dead_log + live_log)
    # A step of this tiny model takes ~0.3 s: the kill can land after the holder wrote the
    # step's results and before it logged "evaluated"; the survivor then reuses that complete
    # file ("already evaluated by another process"). Only the killed step can be such a one.
    unlogged = {int(s) for s in REUSED.findall(live_log)} - set(done)
    assert unlogged <= {step}, dead_log + live_log
    done.update(unlogged)
    assert done == Counter({s: 1 for s in (0, *STEPS)}), dead_log + live_log
    if step not in _evaluations(dead_log) and step not in unlogged:  # killed mid-step: taken over
        assert f"step-{step}: evaluated by pid {survivor.pid}" in live_log, live_log
    assert _table(run) == swept["ref"]


def test_a_held_claim_names_its_holder_and_dies_with_it(tmp_path: Path) -> None:
    path = tmp_path / ".step-4.claim"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from cpi_bench.harness_ext.evaluation.workers import try_claim\n"
        f"fd, _ = try_claim(Path({str(path)!r}))\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        assert workers.try_claim(path) == (None, str(child.pid))
    finally:
        child.kill()
        child.wait()
    fd, holder = workers.try_claim(path, block=True)  # the OS freed the dead holder's claim
    assert fd is not None and holder == ""
    assert path.read_text() == str(os.getpid())
    os.close(fd)


def test_worker_command_lines_split_devices_and_drop_workers() -> None:
    argv = ["runs/x", "--workers", "2", "--limit", "4"]
    cpu = workers.worker_argv(argv, 1, 2, gpus=0)
    assert cpu[1:3] == ["-m", "cpi_bench.harness_ext.evaluation.sweep"]
    assert "--workers" not in cpu and cpu[-1] == "--worker" and "--threads" in cpu
    gpu = workers.worker_argv(["runs/x", "--workers=3"], 2, 3, gpus=2)
    assert gpu[3:] == ["runs/x", "--device", "cuda:0", "--worker"]
    own = workers.worker_argv(["runs/x", "--threads", "1"], 0, 2, gpus=0)
    assert own.count("--threads") == 1


def test_a_table_never_loses_rows_of_the_same_settings(tmp_path: Path) -> None:
    old = {"settings": {"limit": 4}, "rows": [{"step": 0}, {"step": 2}, {"step": 4}]}
    (tmp_path / INVERSION_JSON).write_text(json.dumps(old))
    new = {"settings": {"limit": 4}, "rows": [{"step": 0}, {"step": 2}]}
    assert workers.loses_rows(tmp_path, new, set(), {0, 2, 4}) == [4]
    assert workers.loses_rows(tmp_path, new, {4}, {0, 2, 4}) == []  # step 4 failed now
    assert workers.loses_rows(tmp_path, new, set(), {0, 2}) == []  # checkpoint-4 removed
    assert workers.loses_rows(tmp_path, {**new, "settings": {"limit": 5}}, set(), {4}) == []


def test_rank_env_of_accelerate(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv(workers.WORKER_ENV, raising=False)
    monkeypatch.setattr(workers, "_cuda_count", lambda: 0)
    args = argparse.Namespace(device=None, threads=None, worker=False)
    workers.apply_rank_env(args)
    assert args.worker and args.threads >= 1 and args.device is None
    monkeypatch.setattr(workers, "_cuda_count", lambda: 2)
    args = argparse.Namespace(device=None, threads=None, worker=False)
    workers.apply_rank_env(args)
    assert args.device == "cuda:1"
