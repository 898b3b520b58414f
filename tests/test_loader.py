"""harness_ext/evaluation/loader.py: loading is strict. A checkpoint with missing tensors, or
an adapter whose tensors match no module of the base, fails that checkpoint (the sweep goes on
with the others and exits 1); it never reports numbers of a model it did not load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli

TASKS = ["--tasks", "cpi_capitals_choice", "--limit", "3", "--device", "cpu", "--threads", "1"]


def test_a_checkpoint_with_missing_tensors_fails_loudly(
    tiny_run: Path, tmp_path: Path, capsys
) -> None:
    from safetensors.torch import load_file, save_file

    run = shutil.copytree(tiny_run, tmp_path / "run")
    weights = next((run / "checkpoint-2").glob("*.safetensors"))
    tensors = load_file(weights)
    tensors.pop(sorted(k for k in tensors if "layers.1." in k)[0])
    save_file(tensors, weights, metadata={"format": "pt"})
    assert cli.main(["sweep", str(run), *TASKS]) == 1  # the others still run
    err = capsys.readouterr().err
    assert "FAILED step 2" in err and "1 missing tensor(s)" in err
    assert not (run / "eval" / "step-2.json").exists()


def test_an_adapter_whose_tensors_land_nowhere_fails_that_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """An adapter naming layers the base lacks would load nothing and report the base's
    numbers: that checkpoint fails instead, naming the unmatched tensors."""
    from safetensors.torch import load_file, save_file

    from tests.helpers.tiny_run import build_tiny_run

    run = build_tiny_run(tmp_path / "run", steps=(2, 4), finetune="lora", hidden=32)
    weights = run / "checkpoint-4" / "adapter_model.safetensors"
    tensors = {k.replace("layers.", "layers.7"): v for k, v in load_file(weights).items()}
    save_file(tensors, weights, metadata={"format": "pt"})
    assert cli.main(["sweep", str(run), *TASKS]) == 1
    err = capsys.readouterr().err
    assert "FAILED step 4" in err and "match no module of the base model" in err
    assert "layers.70" in err  # the first unmatched keys are named
    assert (run / "eval" / "step-2.json").is_file() and not (run / "eval" / "step-4.json").exists()
