"""harness_ext/core/run_folder.py and core/model_files.py: which checkpoints a run folder
holds (complete ones only, strict names), resuming from the last complete one, a manifest's
relative base path, and a folder of runs taken for one run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cpi_bench.harness_ext.core.errors import CPIError
from cpi_bench.harness_ext.core.run_folder import (
    RUN_MANIFEST,
    checkpoint_problem,
    last_complete_checkpoint,
    list_checkpoints,
    read_manifest,
    resolve_base,
)
from tests.helpers.small_train import train, train_argv

# ----------------------------------------------------------------------------- the run folder


def test_relative_base_in_manifest_is_relative_to_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "runs" / "r1"
    (run.parent / "base").mkdir(parents=True)
    run.mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base").mkdir()  # a decoy with the same relative name under the cwd
    assert resolve_base("../base", run) == str((run.parent / "base").resolve())
    assert resolve_base("base", run) == "base"  # not under the run folder: left as a hub id


def test_a_folder_of_runs_is_refused_with_their_names(tmp_path: Path) -> None:
    for name in ("alpha", "beta", "nested/gamma"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "cpi_run.json").write_text('{"base_model": "x"}')
    with pytest.raises(CPIError, match=r"holds 3 run folder\(s\): alpha, beta, nested/gamma"):
        read_manifest(tmp_path / "runs")
    with pytest.raises(CPIError, match="alpha"):  # also with --base_model
        read_manifest(tmp_path / "runs", base_override="some/model")


# ----------------------------------------------------------------------------- checkpoints


def test_incomplete_checkpoints_are_skipped_and_odd_names_refused(
    tiny_run: Path, tmp_path: Path
) -> None:
    run = shutil.copytree(tiny_run, tmp_path / "run")
    (run / "checkpoint-4" / "config.json").unlink()
    found, warnings = list_checkpoints(run)
    assert [t.step for t in found] == [2]
    assert warnings == ["skipping checkpoint-4: incomplete checkpoint (no config.json)"]
    shutil.copytree(run / "checkpoint-2", run / "checkpoint-02")
    with pytest.raises(CPIError, match="checkpoint-02: not a checkpoint-<step> name"):
        list_checkpoints(run)


def _truncate(path: Path) -> None:
    """Replace ``path`` by its first half (a new file, as a save does: a process that
    memory-maps the old one keeps it whole)."""
    data = path.read_bytes()
    cut = path.with_name(path.name + ".cut")
    cut.write_bytes(data[: len(data) // 2])
    cut.replace(path)


def test_complete_means_readable_not_only_present(small_llama: Path, tmp_path: Path) -> None:
    """A checkpoint whose weights are present but cut short is incomplete for the sweep and
    for resuming; without trainer_state.json it cannot be resumed from."""
    good = tmp_path / "run" / "checkpoint-2"
    shutil.copytree(small_llama, good)
    (good / "trainer_state.json").write_text("{}")
    cut = tmp_path / "run" / "checkpoint-4"
    shutil.copytree(small_llama, cut)
    _truncate(cut / "model.safetensors")
    found, warnings = list_checkpoints(tmp_path / "run")
    assert [t.step for t in found] == [2] and "checkpoint-4" in warnings[0]
    assert "model.safetensors is truncated" in checkpoint_problem(cut)
    assert checkpoint_problem(good) is None and checkpoint_problem(good, resume=True) is None
    (cut / "model.safetensors").write_bytes(b"not a safetensors file")
    assert checkpoint_problem(cut) is None  # damaged, not cut short: its load fails (exit 1)
    assert "not a safetensors file" in checkpoint_problem(cut, resume=True)
    shutil.copy(small_llama / "model.safetensors", cut / "model.safetensors")
    assert checkpoint_problem(cut) is None  # evaluable
    assert "no trainer_state.json" in checkpoint_problem(cut, resume=True)
    last, skipped = last_complete_checkpoint(tmp_path / "run")
    assert last == str(good.resolve()) and "checkpoint-4" in skipped[0]


@pytest.mark.slow
def test_resume_last_after_a_kill_during_save_rewrites_that_step(
    small_llama: Path, alpaca_file: Path, tmp_path: Path
) -> None:
    """checkpoint-4 holds a truncated model.safetensors and no trainer_state.json (killed in
    its save): --resume_from_checkpoint last resumes from checkpoint-2 and writes step 4
    again, with the weights an uninterrupted run wrote."""
    from safetensors.torch import load_file

    run = tmp_path / "run"
    argv = train_argv(small_llama, alpaca_file, run)
    argv[argv.index("--max_steps") + 1], argv[argv.index("--save_steps") + 1] = "4", "2"
    assert train(*argv) == 0
    want = {k: v.clone() for k, v in load_file(run / "checkpoint-4" / "model.safetensors").items()}
    _truncate(run / "checkpoint-4" / "model.safetensors")
    (run / "checkpoint-4" / "trainer_state.json").unlink()
    assert train(*argv, "--resume_from_checkpoint", "last") == 0
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    assert manifest["resumed_from"].endswith("checkpoint-2") and manifest["global_step"] == 4
    assert checkpoint_problem(run / "checkpoint-4", resume=True) is None
    got = load_file(run / "checkpoint-4" / "model.safetensors")
    for key in want:
        assert (got[key] - want[key]).abs().max() < 1e-5, key
