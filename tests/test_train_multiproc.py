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
import socket
import subprocess
import sys

import pytest

from cpi_bench.harness_ext.testing import fixtures


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_processes_ddp_qk_gpt2(tmp_path):
    import torch
    from safetensors.torch import load_file

    from cpi_bench.harness_ext.testing.tiny_model import build_tiny_model

    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    if accelerate is None:
        pytest.skip("accelerate launcher not installed")
    tiny = build_tiny_model(tmp_path / "gpt2", arch="gpt2", hidden=32, layers=2, heads=2)
    data = fixtures.write_jsonl(tmp_path / "alpaca.jsonl", fixtures.alpaca_rows())
    run = tmp_path / "run"
    cmd = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        "-m",
        "cpi_bench.trainer.train",
        "--model_name_or_path",
        str(tiny),
        "--dataset_name",
        str(data),
        "--use_cpu",
        "true",
        "--finetune",
        "qk",
        "--max_steps",
        "4",
        "--save_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        "--gradient_checkpointing",
        "false",
        "--max_length",
        "256",
        "--learning_rate",
        "1e-3",
        "--disable_tqdm",
        "true",
        "--output_dir",
        str(run),
    ]
    # gloo on one CPU host: bind to loopback. Left to pick an interface by host name, the
    # first all-reduce hung now and then on this machine (seen in 2 of 7 runs, never in 4 with lo).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
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
