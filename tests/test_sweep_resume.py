"""Crash safety and in-training evaluation of the sweep.

* ``kill -9`` in the middle of ``cpi sweep``, then a rerun, ends with the rows of an
  uninterrupted sweep (subprocesses, like a real crash).
* :class:`CPIEvalCallback` inside a real ``transformers.Trainer`` writes the per-checkpoint
  files that the sweep then reuses, with the numbers a sweep of the saved checkpoints gives.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.constants import (
    EVAL_DIR,
    INVERSION_JSON,
)
from tests.helpers.env import offline_env


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: on a shared 2-core machine, 2 threads spin against other processes
    and make tiny-model evaluation 10x slower (numbers are the same)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _env(data_dir: Path) -> dict[str, str]:
    return offline_env(CPI_DATA_DIR=str(data_dir), OMP_NUM_THREADS="1")


def _sweep_cmd(run: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cpi_bench.harness_ext.cli",
        "sweep",
        str(run),
        "--tasks",
        "cpi_capitals,cpi_capitals_choice",
        "--limit",
        "4",
        "--device",
        "cpu",
        "--batch_size",
        "4",
    ]


@pytest.mark.slow
def test_kill9_mid_sweep_resumes_to_the_uninterrupted_rows(
    tmp_path: Path, cpi_data_dir: Path
) -> None:
    from tests.helpers.tiny_run import build_tiny_run

    steps = (2, 4, 6, 8, 10)
    run = build_tiny_run(tmp_path / "run", steps=steps, finetune="full", base_dir=tmp_path / "base")
    ref = Path(shutil.copytree(run, tmp_path / "ref"))
    env = _env(cpi_data_dir)

    proc = subprocess.Popen(
        _sweep_cmd(run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    eval_dir = run / EVAL_DIR
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if eval_dir.is_dir() and any(eval_dir.glob("step-*.json")):
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"sweep ended before it could be killed: {proc.stderr.read()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = sorted(p.name for p in eval_dir.glob("step-*.json"))
    assert 1 <= len(finished) < len(steps) + 1, finished  # really interrupted
    assert not (run / INVERSION_JSON).exists()
    for f in finished:  # what is there is complete JSON, never a torn write
        assert json.loads((eval_dir / f).read_text())["cpi"]["step"] >= 0

    resumed = subprocess.run(_sweep_cmd(run), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(finished)} already done" in resumed.stderr
    assert not list(eval_dir.glob(".*.tmp"))  # stale temporary files are cleaned

    clean = subprocess.run(_sweep_cmd(ref), env=env, capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr
    rows = json.loads((run / INVERSION_JSON).read_text())["rows"]
    ref_rows = json.loads((ref / INVERSION_JSON).read_text())["rows"]
    assert [r["step"] for r in rows] == [0, *steps]
    assert rows == ref_rows
    assert (
        json.loads((run / INVERSION_JSON).read_text())["summary"]
        == json.loads((ref / INVERSION_JSON).read_text())["summary"]
    )


class _TokenDataset:
    """Fixed-length random token sequences: a causal-LM training set for a tiny model."""

    def __init__(self, n: int, length: int, vocab: int, seed: int = 0) -> None:
        import torch

        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(3, vocab, (n, length), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.ids[i].clone()}


def test_callback_in_trainer_writes_files_the_sweep_reuses(
    tmp_path: Path,
    cpi_data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from cpi_bench.harness_ext.models.tiny import build_tiny_model
    from cpi_bench.trainer.callback import CPIEvalCallback
    from tests.helpers.tiny_run import write_manifest

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = build_tiny_model(tmp_path / "base", seed=1)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base)
    tok = AutoTokenizer.from_pretrained(base)
    run = tmp_path / "run"
    tasks = ["cpi_capitals", "cpi_capitals_choice"]
    callback = CPIEvalCallback(tasks, limit=2, batch_size=4, output_dir=str(run))
    args = TrainingArguments(
        output_dir=str(run),
        max_steps=2,
        save_steps=1,
        save_strategy="steps",
        per_device_train_batch_size=4,
        learning_rate=5e-2,
        report_to=[],
        use_cpu=True,
        logging_strategy="no",
        seed=0,
        save_only_model=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_TokenDataset(8, 16, len(tok)),
        processing_class=tok,
        callbacks=[callback],
    )
    trainer.train()
    assert sorted(p.name for p in (run / EVAL_DIR).iterdir()) == [
        "step-1.items.jsonl",
        "step-1.json",
        "step-2.items.jsonl",
        "step-2.json",
    ]
    live = json.loads((run / EVAL_DIR / "step-2.json").read_text())
    assert live["cpi"]["source"] == "callback" and live["cpi"]["label"] == "checkpoint-2"

    write_manifest(run, str(base), "full")
    before = (run / EVAL_DIR / "step-2.json").stat().st_mtime_ns
    sweep = ["--tasks", ",".join(tasks), "--limit", "2", "--device", "cpu", "--batch_size", "4"]
    assert cli.main(["sweep", str(run), *sweep]) == 0
    assert "1 to evaluate, 2 already done" in capsys.readouterr().err
    assert (run / EVAL_DIR / "step-2.json").stat().st_mtime_ns == before
    rows = json.loads((run / INVERSION_JSON).read_text())["rows"]
    assert [r["step"] for r in rows] == [0, 1, 2]

    # The live model's numbers are those of the saved checkpoint, reloaded by the sweep.
    assert cli.main(["sweep", str(run), *sweep, "--force"]) == 0
    reloaded = json.loads((run / EVAL_DIR / "step-2.json").read_text())
    assert reloaded["cpi"]["source"] == "sweep"
    assert reloaded["results"] == live["results"]
    # Training changed the model: the curve is not flat.
    prefs = [r["tasks"]["cpi_capitals_choice"]["cf_pref"] for r in rows]
    assert len(set(prefs)) == 3
