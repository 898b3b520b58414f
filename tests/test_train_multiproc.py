"""cpi train under ``accelerate launch`` with 2 CPU processes (DDP over gloo).

``accelerate launch --cpu --num_processes 2`` starts ONE process (accelerate's simple launcher;
multi-CPU there means MPI). Two CPU processes need the torchrun launcher, i.e.
``accelerate launch --multi_gpu --num_processes 2 ... --use_cpu true`` (or ``torchrun``):
``--use_cpu`` makes accelerate pick DistributedType.MULTI_CPU with the gloo backend.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers import fixtures

LAUNCH_TIMEOUT_S = 300  # a healthy run takes well under a minute on 2 shared cores
MARKER_ENV = "CPI_TEST_LAUNCH_ID"  # inherited by every process the launcher starts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def marked_processes(marker: str) -> list[int]:
    """Live processes whose environment carries ``MARKER_ENV=marker``. torchrun starts each
    worker in a session (and process group) of its own, and a worker whose launcher was
    killed is re-parented to init, so neither the launcher's group nor its children list
    finds them all; the inherited environment does."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def kill_launch(proc: subprocess.Popen, marker: str) -> list[int]:
    """SIGKILL the launcher's process group and every marked process's group; return the pids
    found. Never our own group (the launcher has its own session, workers theirs)."""
    pids = [proc.pid, *marked_processes(marker)]
    groups = set()
    for pid in pids:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            continue
    for group in groups - {os.getpgrp()}:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def run_launch(
    cmd: list[str], env: dict[str, str], timeout: int, grace_s: float = 10.0
) -> tuple[int, str, str]:
    """Run a launcher so that it can never hang the suite or outlive the test: its own
    session, a deadline, and on timeout (or an interrupt) every process of the launch is
    killed and the test fails with the output so far. On success nothing may be left."""
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, MARKER_ENV: marker},
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pids = kill_launch(proc, marker)
        out, err = proc.communicate()
        pytest.fail(
            f"{cmd[0]} did not finish in {timeout}s; killed processes {pids}\n"
            f"--- stdout (end) ---\n{out[-3000:]}\n--- stderr (end) ---\n{err[-6000:]}"
        )
    except BaseException:
        kill_launch(proc, marker)
        proc.communicate()
        raise
    deadline = time.monotonic() + grace_s  # workers exit with (or just before) their launcher
    while (left := marked_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        kill_launch(proc, marker)
        pytest.fail(f"the launch left processes {left} running after it exited\n{err[-6000:]}")
    return proc.returncode, out, err


# A launcher that starts a worker in a session of its own (as torchrun does), writes the
# worker's pid, prints, then either hangs or exits leaving the worker behind (with its output
# elsewhere: a worker that keeps the pipes open makes the launch time out instead).
FAKE_LAUNCHER = """
import subprocess, sys, time
out = subprocess.DEVNULL if sys.argv[2] == "leave" else None
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                          start_new_session=True, stdout=out, stderr=out)
open(sys.argv[1], "w").write(str(worker.pid))
print("launched", flush=True)
if sys.argv[2] == "hang":
    time.sleep(600)
"""


def gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the launch's processes in /proc")
@pytest.mark.parametrize("mode", ["hang", "leave"])
def test_a_hung_or_leaky_launch_fails_and_leaves_no_process(tmp_path, mode):
    """The guard itself: a launch that hangs is killed (workers in their own sessions too)
    and the test fails with its output; one that exits but leaves a worker fails as well."""
    pid_file = tmp_path / "worker.pid"
    cmd = [sys.executable, "-c", FAKE_LAUNCHER, str(pid_file), mode]
    expected = "did not finish in 3s" if mode == "hang" else "left processes"
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=expected) as failed:
        run_launch(cmd, dict(os.environ), timeout=3, grace_s=1)
    assert time.monotonic() - started < 30
    if mode == "hang":
        assert "launched" in str(failed.value)  # the output so far is in the failure
    assert gone(int(pid_file.read_text()))


def test_end_distributed_drops_the_ddp_reducer_before_the_process_group(monkeypatch):
    """The exit hang's fix, without a second process: DDP's Reducer (and the Logger that
    shares it) must be gone before ``trainer.end()`` destroys the process group, so that the
    Reducer never holds the group's last reference (see train.end_distributed)."""
    import torch.distributed as dist

    from cpi_bench.trainer.train import end_distributed

    ddp = SimpleNamespace(reducer=object(), logger=object(), module="m")
    seen = []

    class Trainer:
        model_wrapped = ddp
        model = "m"
        accelerator = SimpleNamespace(_models=[ddp])

        def end(self):
            seen.append(sorted(vars(ddp)))

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    end_distributed(Trainer())
    assert seen == [["module"]]


@pytest.mark.slow
def test_two_cpu_processes_ddp_qk_gpt2(tmp_path):
    import torch
    from safetensors.torch import load_file

    from cpi_bench.harness_ext.models.tiny import build_tiny_model

    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    if accelerate is None:
        pytest.skip("accelerate launcher not installed")
    tiny = build_tiny_model(tmp_path / "gpt2", arch="gpt2", hidden=32, layers=2, heads=2)
    data = fixtures.write_jsonl(tmp_path / "alpaca.jsonl", fixtures.alpaca_rows())
    run = tmp_path / "run"
    launch = (
        "--multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no"
    )
    train = (
        "--use_cpu true --finetune qk --max_steps 4 --save_steps 2 --per_device_train_batch_size 2 "
        "--gradient_checkpointing false --max_length 256 --learning_rate 1e-3 --disable_tqdm true "
        "--ddp_timeout 120"  # a collective waiting for a dead rank fails instead of waiting 30 min
    )
    cmd = [
        accelerate,
        "launch",
        *launch.split(),
        "--main_process_port",
        str(free_port()),
        "-m",
        "cpi_bench.trainer.train",
        "--model_name_or_path",
        str(tiny),
        "--dataset_name",
        str(data),
        *train.split(),
        "--output_dir",
        str(run),
    ]
    # gloo on one CPU host: bind to loopback. Left to pick an interface by host name, the
    # first all-reduce hung now and then on this machine (seen in 2 of 7 runs, never in 4 with lo).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    code, _, err = run_launch(cmd, env, LAUNCH_TIMEOUT_S)
    assert code == 0, err[-3000:]
    state = json.loads((run / "checkpoint-4" / "trainer_state.json").read_text())
    # 8 examples, 2 per process, 2 processes: 2 steps per epoch, so 4 steps are 2 epochs
    assert state["epoch"] == 2.0
    manifest = json.loads((run / "cpi_run.json").read_text())
    assert manifest["status"] == "finished" and manifest["global_step"] == 4
    base, tuned = (
        load_file(str(tiny / "model.safetensors")),
        load_file(str(run / "checkpoint-4" / "model.safetensors")),
    )
    for key in base:
        if "attn.c_attn" in key:
            assert torch.equal(base[key][..., 64:], tuned[key][..., 64:])  # value slice
            assert not torch.equal(base[key][..., :64], tuned[key][..., :64])
        else:
            assert torch.equal(base[key], tuned[key]), key
