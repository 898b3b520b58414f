"""``cpi sweep RUN --follow``: evaluating a live run's checkpoints as they land
(``harness_ext/evaluation/follow.py``).

* Which checkpoints are finished (``core/run_folder.finished_checkpoints``): never one whose
  ``trainer_state.json`` (written last by HF Trainer) is missing, unreadable or of another
  step, unless a later checkpoint exists.
* ``cpi train`` accepts an output folder that a follower started first has written into.
* Two followers started beside a real ``cpi train`` end by themselves with the rows of a
  sweep afterwards, every step evaluated once between them.
* A simulated trainer (checkpoints copied in, ``trainer_state.json`` last): a half-written
  checkpoint is not evaluated; a follower killed with -9 is resumed by a new one, which
  reuses the finished steps.
* ``--idle_timeout``: a run whose manifest still says ``running`` ends the follower.
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
from types import SimpleNamespace

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core import run_folder
from cpi_bench.harness_ext.core.constants import EVAL_DIR, INVERSION_JSON, RUN_MANIFEST
from cpi_bench.harness_ext.core.errors import CPIError
from tests.helpers.env import offline_env

TASKS = ["--tasks", "cpi_capitals,cpi_capitals_choice", "--limit", "4"]
COMMON = [*TASKS, "--device", "cpu", "--batch_size", "4"]
EVALUATED = re.compile(r"step-(\d+): evaluated by pid (\d+)")


def _rows(folder: Path) -> list[dict]:
    return json.loads((folder / INVERSION_JSON).read_text())["rows"]


def _evaluations(log: str) -> Counter:
    return Counter(int(m.group(1)) for m in EVALUATED.finditer(log))


def _trainer_state(folder: Path, step: int) -> None:
    (folder / run_folder.TRAINER_STATE).write_text(json.dumps({"global_step": step}))


def _set_status(run: Path, status: str) -> None:
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    run_folder.write_manifest(run, {**manifest, "status": status})


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run (checkpoints 2, 4, 6, each with its trainer_state.json)."""
    from tests.helpers.tiny_run import build_tiny_run

    root = tmp_path_factory.mktemp("follow")
    run = build_tiny_run(root / "run", steps=(2, 4, 6), base_dir=root / "base")
    for step in (2, 4, 6):
        _trainer_state(run / f"checkpoint-{step}", step)
    return run


# ----------------------------------------------------------------------------- finished


def test_a_checkpoint_is_finished_only_once_its_trainer_state_is(pristine: Path, tmp_path):
    run = Path(shutil.copytree(pristine, tmp_path / "run"))
    found, waiting = run_folder.finished_checkpoints(run)
    assert [t.step for t in found] == [2, 4, 6] and waiting == []

    (run / "checkpoint-6" / run_folder.TRAINER_STATE).unlink()  # still being written
    found, waiting = run_folder.finished_checkpoints(run)
    assert [t.step for t in found] == [2, 4]
    assert waiting == ["checkpoint-6: no complete trainer_state.json yet"]

    (run / "checkpoint-6" / run_folder.TRAINER_STATE).write_text('{"global_step": 6, "lo')
    assert [t.step for t in run_folder.finished_checkpoints(run)[0]] == [2, 4]
    _trainer_state(run / "checkpoint-6", 4)  # an older state copied along: not this step's
    assert "not the one of step 6" in run_folder.finished_checkpoints(run)[1][0]

    (run / "checkpoint-4" / run_folder.TRAINER_STATE).unlink()  # a later one exists: finished
    assert [t.step for t in run_folder.finished_checkpoints(run)[0]] == [2, 4]

    (run / "checkpoint-8").mkdir()  # the next save is being written: its index is partial
    (run / "checkpoint-8" / "config.json").write_text("{}")
    (run / "checkpoint-8" / "model.safetensors.index.json").write_text('{"weight_map": {"a"')
    found, waiting = run_folder.finished_checkpoints(run)
    assert [t.step for t in found] == [2, 4]
    assert waiting[0].startswith("checkpoint-8: incomplete checkpoint (unreadable")
    assert waiting[1].startswith("checkpoint-6: trainer_state.json is not the one")

    shutil.rmtree(run / "checkpoint-8")  # a complete later checkpoint: 6 was finished
    shutil.copytree(run / "checkpoint-6", run / "checkpoint-8")
    found, waiting = run_folder.finished_checkpoints(run)
    assert [t.step for t in found] == [2, 4, 6] and len(waiting) == 1


def test_cpi_train_accepts_a_folder_a_follower_wrote_first(tmp_path: Path) -> None:
    """Fails on the old claim: eval/ and inversion.* without cpi_run.json were 'files that
    cpi train did not write'."""
    from cpi_bench.trainer.train import claim_run_dir

    out = tmp_path / "run"
    (out / EVAL_DIR).mkdir(parents=True)
    (out / EVAL_DIR / "step-0.json").write_text("{}")
    (out / INVERSION_JSON).write_text("{}")
    (out / ".cpi_inversion.lock").write_text("")
    config = SimpleNamespace(output_dir=str(out), overwrite_output_dir=False)
    with claim_run_dir(config, {"base_model": "x"}, resuming=False):
        pass
    assert (out / EVAL_DIR / "step-0.json").read_text() == "{}"  # untouched

    (out / "notes.txt").write_text("mine")
    with pytest.raises(CPIError, match="holds files that cpi train did not write"):
        with claim_run_dir(config, {"base_model": "x"}, resuming=False):
            pass


# ----------------------------------------------------------------------------- in-process


@pytest.fixture(scope="module", autouse=True)
def _offline(fixture_data_dir: Path):
    """In-process sweeps: the conftest's data, offline, one torch thread (2 shared cores)."""
    import torch

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CPI_DATA_DIR", str(fixture_data_dir))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(threads)


def test_idle_timeout_ends_a_follower_of_a_run_still_running(
    pristine: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = Path(shutil.copytree(pristine, tmp_path / "run"))
    _set_status(run, run_folder.RUNNING)  # its trainer was killed with -9
    (run / "checkpoint-6" / run_folder.TRAINER_STATE).unlink()
    argv = ["sweep", str(run), "--follow", "--idle_timeout", "2", "--poll_interval", "0.2"]
    started = time.monotonic()
    assert cli.main([*argv, *COMMON]) == 0
    assert time.monotonic() - started < 120
    err = capsys.readouterr().err
    assert "no new checkpoint for" in err and "(--idle_timeout 2)" in err
    assert "not evaluated (still being written when following ended): checkpoint-6" in err
    assert [r["step"] for r in _rows(run)] == [0, 2, 4]
    assert _evaluations(err) == Counter({0: 1, 2: 1, 4: 1})


def test_follow_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    nothing = tmp_path / "never"
    argv = ["sweep", str(nothing), "--follow", "--poll_interval", "0.1", "--idle_timeout", "0.3"]
    assert cli.main([*argv, *COMMON]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"cpi sweep: error: {nothing}: no run to follow appeared")
    assert not nothing.exists()
    for extra, flag in (
        (["--workers", "2"], "--workers"),
        (["--dry-run"], "--dry-run"),
        (["--knowledge_filter"], "--knowledge_filter"),
        (["--poll_interval", "0"], "--poll_interval"),
    ):
        assert cli.main(["sweep", str(nothing), "--follow", *extra]) == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last.startswith("cpi sweep: error:") and flag in last


# ----------------------------------------------------------------------------- subprocesses


def _sweep_cmd(run: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cpi_bench.harness_ext.commands.sweep",
        str(run),
        *COMMON,
        "--threads",
        "1",
        *extra,
    ]


def _follow_cmd(run: Path, *extra: str) -> list[str]:
    return _sweep_cmd(run, "--follow", "--poll_interval", "0.3", "--idle_timeout", "200", *extra)


def _start(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, list[str]]:
    """A process whose stderr lines are collected as they come."""
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    lines: list[str] = []

    def read() -> None:
        for raw in iter(proc.stderr.readline, b""):
            lines.append(raw.decode(errors="replace"))

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def _wait_for(lines: list[str], pattern: str, proc: subprocess.Popen, timeout: float = 240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(re.search(pattern, line) for line in list(lines)):
            return
        assert proc.poll() is None, "".join(lines)
        time.sleep(0.05)
    raise AssertionError(f"no line matching {pattern!r}:\n" + "".join(lines))


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _env(tmp: Path, fixture_data_dir: Path) -> dict[str, str]:
    return offline_env(
        CPI_DATA_DIR=str(fixture_data_dir), CPI_CACHE_DIR=str(tmp / "cache"), OMP_NUM_THREADS="1"
    )


@pytest.mark.slow
def test_two_followers_beside_cpi_train_give_the_sweep_rows_each_step_once(
    tmp_path: Path, fixture_data_dir: Path
) -> None:
    """The followers start before the run folder exists; cpi train saves every step."""
    from cpi_bench.harness_ext.models.tiny import build_tiny_model
    from tests.helpers import fixtures

    tiny = build_tiny_model(tmp_path / "tiny", arch="llama", hidden=32, layers=2, heads=2)
    data = fixtures.write_all(tmp_path / "data")
    run, env = tmp_path / "run", _env(tmp_path, fixture_data_dir)
    followers = [_start(_follow_cmd(run), env) for _ in range(2)]
    train = [sys.executable, "-m", "cpi_bench.trainer.train", "--model_name_or_path", str(tiny)]
    train += ["--dataset_name", str(data["alpaca"]), "--output_dir", str(run)]
    train += ["--max_steps", "6", "--save_steps", "1", "--per_device_train_batch_size", "4"]
    train += ["--max_length", "256", "--disable_tqdm", "true", "--report_to", "none"]
    try:
        trained = subprocess.run(train, env=env, capture_output=True, text=True, timeout=300)
        assert trained.returncode == 0, trained.stderr[-3000:]
        codes = [p.wait(timeout=300) for p, _ in followers]
    finally:
        _stop([p for p, _ in followers])
    time.sleep(0.2)  # the reader threads drain the pipes
    logs = ["".join(lines) for _, lines in followers]
    assert codes == [0, 0], logs
    assert all("the run is finished" in log for log in logs)
    steps = (0, 1, 2, 3, 4, 5, 6)
    assert _evaluations(logs[0] + logs[1]) == Counter({s: 1 for s in steps}), logs
    after = subprocess.run(
        _sweep_cmd(run, "--out", str(tmp_path / "after")),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert after.returncode == 0, after.stderr
    assert _evaluations(after.stderr) == Counter({s: 1 for s in steps})  # evaluated afresh
    assert _rows(run) == _rows(tmp_path / "after")


def _copy_checkpoint(src: Path, dst: Path, finish: bool) -> None:
    """What a trainer's save leaves: the model files, trainer_state.json last (``finish``)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(run_folder.TRAINER_STATE))
    if finish:
        shutil.copy2(src / run_folder.TRAINER_STATE, dst / run_folder.TRAINER_STATE)


@pytest.mark.slow
def test_a_half_written_checkpoint_waits_and_a_killed_follower_resumes(
    pristine: Path, tmp_path: Path, fixture_data_dir: Path
) -> None:
    run, env = tmp_path / "run", _env(tmp_path, fixture_data_dir)
    run.mkdir()
    shutil.copy2(pristine / RUN_MANIFEST, run / RUN_MANIFEST)
    _set_status(run, run_folder.RUNNING)
    _copy_checkpoint(pristine / "checkpoint-2", run / "checkpoint-2", finish=True)
    first, lines = _start(_follow_cmd(run), env)
    second = None
    try:
        _wait_for(lines, r"step-2: evaluated by", first)
        # checkpoint-4 is being saved: its model files are there, trainer_state.json is not
        _copy_checkpoint(pristine / "checkpoint-4", run / "checkpoint-4", finish=False)
        _wait_for(lines, r"waiting for checkpoint-4: no complete trainer_state.json", first)
        time.sleep(1.0)  # three more polls: still not evaluated
        assert "step-4" not in "".join(lines)
        os.kill(first.pid, signal.SIGKILL)  # the follower dies while it waits
        assert first.wait(timeout=30) == -signal.SIGKILL
        second, lines2 = _start(_follow_cmd(run), env)
        _wait_for(lines2, r"waiting for checkpoint-4", second)
        shutil.copy2(pristine / "checkpoint-4" / "trainer_state.json", run / "checkpoint-4")
        _wait_for(lines2, r"step-4: evaluated by", second)
        _copy_checkpoint(pristine / "checkpoint-6", run / "checkpoint-6", finish=True)
        _set_status(run, run_folder.FINISHED)
        assert second.wait(timeout=240) == 0, "".join(lines2)
    finally:
        _stop([p for p in (first, second) if p is not None])
    time.sleep(0.2)
    log1, log2 = "".join(lines), "".join(lines2)
    assert _evaluations(log1) == Counter({0: 1, 2: 1}), log1
    assert _evaluations(log2) == Counter({4: 1, 6: 1}), log2  # 0 and 2 reused
    reference = tmp_path / "reference"
    after = subprocess.run(
        _sweep_cmd(pristine, "--out", str(reference)),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert after.returncode == 0, after.stderr
    assert [r["step"] for r in _rows(run)] == [0, 2, 4, 6]
    strip = [{k: v for k, v in r.items() if k != "checkpoint"} for r in _rows(run)]
    assert strip == [{k: v for k, v in r.items() if k != "checkpoint"} for r in _rows(reference)]
