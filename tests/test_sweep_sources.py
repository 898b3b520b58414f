"""Sweeps of checkpoints ``cpi train`` did not make (``harness_ext/evaluation/targets.py``):

* ``--model ORG/NAME --revisions ...``: hub revisions from a hub cache built here (refs and
  snapshots of tiny random models), offline: one row per revision, steps from the names,
  results keyed by the commit (a moved branch is re-evaluated), bad revisions exit 2;
* ``--checkpoints FILE.yaml``: full models and peft adapters, numbers equal to the sweep of
  the run folder holding the same checkpoints; every malformed file exits 2 naming the field;
* a folder of ``checkpoint-N`` without ``cpi_run.json`` (another trainer) with
  ``--base_model`` and ``--out``: the folder itself is left untouched;
* each output folder works with ``cpi table``, ``cpi flips``, ``cpi compare`` and ``cpi gate``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.constants import EVAL_DIR, INVERSION_JSON, RUN_MANIFEST
from cpi_bench.harness_ext.models.revisions import step_from_name
from tests.helpers.env import offline_env
from tests.helpers.hub_cache import add_revision

TASKS = "cpi_capitals,cpi_capitals_choice"
COMMON = ["--tasks", TASKS, "--limit", "4", "--device", "cpu", "--batch_size", "4"]
REPO = "org/tiny-trajectory"


@pytest.fixture(scope="module", autouse=True)
def _offline(fixture_data_dir: Path):
    """The conftest's data, offline, one torch thread (2 shared cores)."""
    import torch

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CPI_DATA_DIR", str(fixture_data_dir))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A full run and a LoRA run (checkpoints 2, 4, 6) over one base, each swept."""
    from tests.helpers.tiny_run import build_tiny_run

    root = tmp_path_factory.mktemp("sources")
    base = root / "base"
    full = build_tiny_run(root / "full", steps=(2, 4, 6), finetune="full", base_dir=base)
    lora = build_tiny_run(root / "lora", steps=(2, 4, 6), finetune="lora", base_dir=base)
    for run in (full, lora):
        assert cli.main(["sweep", str(run), *COMMON]) == 0
    return {"full": full, "lora": lora, "base": base, "root": root}


@pytest.fixture
def hub(runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub cache with the full run as revisions main (the base), step2, step4, step6 and
    stage1-step6-tokens9B (another name for step 6's commit), offline."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    add_revision(cache, REPO, "main", runs["base"])
    for step in (2, 4, 6):
        add_revision(cache, REPO, f"step{step}", runs["full"] / f"checkpoint-{step}")
    add_revision(cache, REPO, "stage1-step6-tokens9B", runs["full"] / "checkpoint-6")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def _inversion(folder: Path) -> dict:
    return json.loads((folder / INVERSION_JSON).read_text())


def _metrics(folder: Path) -> dict[int, dict]:
    """step -> per-task metrics of a swept folder (what must not depend on the source)."""
    return {r["step"]: r["tasks"] for r in _inversion(folder)["rows"]}


def _last_error(capsys: pytest.CaptureFixture) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and "Traceback" not in "\n".join(lines)
    return lines[-1]


def test_steps_are_parsed_from_revision_names() -> None:
    assert step_from_name("step1000") == 1000
    assert step_from_name("stage1-step928646-tokens3896B") == 928646
    assert step_from_name("global_step500") == 500
    assert step_from_name("checkpoint-200") == 200
    assert step_from_name("iter_0001000") == 1000
    assert step_from_name("main") is None


def test_hub_revisions_offline_one_row_per_revision(
    runs: dict[str, Path], hub: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    argv = ["sweep", "--model", REPO, "--revisions", "step*", "--base_revision", "main"]
    assert cli.main([*argv, "--out", str(out), *COMMON]) == 0
    data = _inversion(out)
    assert [(r["step"], r["checkpoint"]) for r in data["rows"]] == [
        (0, "main"),
        (2, "step2"),
        (4, "step4"),
        (6, "step6"),
    ]
    assert _metrics(out) == _metrics(runs["full"])  # the same weights, the same numbers
    refs = hub / f"models--{REPO.replace('/', '--')}" / "refs"
    for step in (2, 4, 6):
        model = json.loads((out / EVAL_DIR / f"step-{step}.json").read_text())["cpi"]
        origin = model["provenance"]["model"]
        assert origin["commit"] == (refs / f"step{step}").read_text()
        assert (origin["hub_id"], origin["revision"]) == (REPO, f"step{step}")
    assert data["run"]["revisions"]["4"]["commit"] == (refs / "step4").read_text()
    capsys.readouterr()

    assert cli.main([*argv, "--out", str(out), *COMMON]) == 0  # rerun: all reused
    assert "all 4 steps already evaluated" in capsys.readouterr().err

    # step4 moves to another commit (step 2's weights): only that step is re-evaluated
    add_revision(hub, REPO, "step4", runs["full"] / "checkpoint-2")
    assert cli.main([*argv, "--out", str(out), *COMMON]) == 0
    err = capsys.readouterr().err
    assert "step-4: re-evaluating, the revision now points to another commit" in err
    assert "1 to evaluate, 3 already done" in err
    assert _metrics(out)[4] == _metrics(runs["full"])[2]


def test_hub_revisions_names_steps_and_base(
    runs: dict[str, Path], hub: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """NAME=STEP, a name whose step is after 'step', and the lowest step as the base."""
    out = tmp_path / "out"
    revisions = "step2,main=1,stage1-step6-tokens9B"
    argv = ["sweep", "--model", REPO, "--revisions", revisions, "--out", str(out)]
    assert cli.main([*argv, *COMMON, "--limit", "2"]) == 0
    rows = _inversion(out)["rows"]
    assert [(r["step"], r["checkpoint"]) for r in rows] == [
        (1, "main"),
        (2, "step2"),
        (6, "stage1-step6-tokens9B"),
    ]
    assert _inversion(out)["summary"]["initial_step"] == 1


@pytest.mark.parametrize(
    ("revisions", "extra", "message"),
    [
        ("step9", [], "--revisions step9: no such revision of org/tiny-trajectory in the local"),
        ("x*", [], "--revisions 'x*': no branch or tag of org/tiny-trajectory in the local hub"),
        ("main", [], "--revisions main: no step in the name; give it as main=STEP"),
        ("step2,step02", [], "--revisions: step2 and step02 both have step 2"),
        ("step2=two", [], "--revisions step2=two: step 'two' is not a whole number >= 0"),
        ("step2", ["--base_revision", "step4"], "--base_revision step4 (step 4): every other"),
        ("step*=3", [], "--revisions step*=3: a pattern cannot take one step"),
    ],
)
def test_bad_revisions_exit_2_in_one_line(
    hub: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    revisions: str,
    extra: list[str],
    message: str,
) -> None:
    out = tmp_path / "out"
    argv = ["sweep", "--model", REPO, "--revisions", revisions, "--out", str(out), *extra]
    assert cli.main(argv) == 2
    assert _last_error(capsys).startswith(f"cpi sweep: error: {message}")
    assert not out.exists()  # nothing created before the input is known to be good


@pytest.mark.slow
def test_hub_revisions_through_the_environment(
    runs: dict[str, Path], tmp_path: Path, fixture_data_dir: Path
) -> None:
    """As a user runs it: HF_HUB_OFFLINE=1 and HF_HUB_CACHE in the environment."""
    cache = tmp_path / "hub"
    for step in (2, 6):
        add_revision(cache, REPO, f"step{step}", runs["full"] / f"checkpoint-{step}")
    env = offline_env(
        CPI_DATA_DIR=str(fixture_data_dir), HF_HUB_CACHE=str(cache), OMP_NUM_THREADS="1"
    )
    cmd = [sys.executable, "-m", "cpi_bench.harness_ext.cli", "sweep", "--model", REPO]
    cmd += ["--revisions", "step*", "--out", str(tmp_path / "out"), *COMMON]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert [r["step"] for r in _inversion(tmp_path / "out")["rows"]] == [2, 6]


# ----------------------------------------------------------------------------- lists


def _write_list(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_checkpoint_list_gives_the_run_sweep_numbers(
    runs: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    """Paths relative to the file's folder; full models and adapters."""
    run = runs[kind]
    shutil.copytree(run, tmp_path / "ckpts", ignore=shutil.ignore_patterns(EVAL_DIR, "inv*"))
    shutil.copytree(runs["base"], tmp_path / "base")
    (tmp_path / "ckpts" / RUN_MANIFEST).unlink()
    lines = [f"  - {{step: {s}, path: ckpts/checkpoint-{s}}}\n" for s in (6, 2, 4)]
    listing = _write_list(
        tmp_path / "list.yaml", "base_model: base\ncheckpoints:\n" + "".join(lines)
    )
    out = tmp_path / "out"
    assert cli.main(["sweep", "--checkpoints", str(listing), "--out", str(out), *COMMON]) == 0
    assert _metrics(out) == _metrics(run)
    rows = _inversion(out)["rows"]
    assert [(r["step"], r["checkpoint"]) for r in rows] == [
        (0, "base"),
        (2, "checkpoint-2"),
        (4, "checkpoint-4"),
        (6, "checkpoint-6"),
    ]
    assert (out / ".cpi_owner").is_file()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("checkpoints:\n  - {step: 2, path: c2}\n", "field 'base_model' is missing"),
        ("base_model: b\ncheckpoint: []\n", "unknown field 'checkpoint'"),
        ("base_model: b\ncheckpoints: []\n", "field 'checkpoints' must be a non-empty list"),
        ("base_model: b\ncheckpoints:\n  - {step: 2, path: nope}\n", "checkpoints[0].path: "),
        ("base_model: b\ncheckpoints:\n  - {step: two, path: c2}\n", "checkpoints[0].step: step"),
        ("base_model: b\ncheckpoints:\n  - {step: 2.5, path: c2}\n", "checkpoints[0].step: step"),
        ("base_model: b\ncheckpoints:\n  - {step: 0, path: c2}\n", "checkpoints[0].step: step 0"),
        (
            "base_model: b\ncheckpoints:\n  - {step: 2, path: c2}\n  - {step: 2, path: c4}\n",
            "checkpoints[1].step: step 2 is also checkpoints[0]'s",
        ),
        ("base_model: b\ncheckpoints:\n  - {path: c2}\n", "checkpoints[0]: field 'step' is"),
        ("base_model: b\ncheckpoints:\n  - {step: 2, pth: c2}\n", "unknown field 'pth'"),
        ("base_model: nope\ncheckpoints:\n  - {step: 2, path: c2}\n", "field 'base_model': "),
        ("base_model: b\ncheckpoints: [\n", "line 3, column 1 is not valid YAML"),
        ("- a\n- b\n", "expected a mapping with base_model and checkpoints"),
    ],
)
def test_bad_checkpoint_lists_exit_2_naming_the_field(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, text: str, message: str
) -> None:
    shutil.copytree(runs["base"], tmp_path / "b")
    shutil.copytree(runs["full"] / "checkpoint-2", tmp_path / "c2")
    shutil.copytree(runs["full"] / "checkpoint-4", tmp_path / "c4")
    listing = _write_list(tmp_path / "list.yaml", text)
    out = tmp_path / "out"
    assert cli.main(["sweep", "--checkpoints", str(listing), "--out", str(out), *COMMON]) == 2
    last = _last_error(capsys)
    assert last.startswith("cpi sweep: error:") and str(listing) in last and message in last
    assert not out.exists()


def test_flag_combinations_exit_2(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for argv, message in (
        (["sweep"], "give one of RUN_DIR, --model ORG/NAME"),
        (["sweep", "--checkpoints", "x.yaml"], "--checkpoints needs --out DIR"),
        (["sweep", "--model", REPO, "--out", "o"], "--model needs --revisions"),
        (["sweep", "run", "--revisions", "step*"], "--revisions needs --model ORG/NAME"),
        (["sweep", "--checkpoints", "x.yaml", "--out", "o", "--follow"], "--follow needs a"),
    ):
        assert cli.main(argv) == 2
        assert message in _last_error(capsys)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not cpi's")
    ckpt = runs["full"] / "checkpoint-2"
    text = f"base_model: {runs['base']}\ncheckpoints:\n  - {{step: 2, path: {ckpt}}}\n"
    listing = _write_list(tmp_path / "l.yaml", text)
    assert cli.main(["sweep", "--checkpoints", str(listing), "--out", str(mine)]) == 2
    assert _last_error(capsys).startswith(f"cpi sweep: error: --out {mine}: folder is not empty")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_other_trainers_folder_with_out_is_left_untouched(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    theirs = tmp_path / "axolotl-run"
    shutil.copytree(runs["full"], theirs, ignore=shutil.ignore_patterns(EVAL_DIR, "inv*"))
    (theirs / RUN_MANIFEST).unlink()
    before = sorted(p.relative_to(theirs) for p in theirs.rglob("*"))
    out = tmp_path / "out"
    argv = ["sweep", str(theirs), "--base_model", str(runs["base"]), "--out", str(out)]
    assert cli.main([*argv, *COMMON]) == 0
    assert sorted(p.relative_to(theirs) for p in theirs.rglob("*")) == before
    assert _metrics(out) == _metrics(runs["full"])
    assert _inversion(out)["run"]["name"] == "axolotl-run"


def test_readers_work_on_a_sweep_out_folder(
    runs: dict[str, Path], hub: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """cpi table, flips, compare and gate read an --out folder as a swept run folder."""
    out = tmp_path / "out"
    argv = ["sweep", "--model", REPO, "--revisions", "step*", "--out", str(out), *COMMON]
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert cli.main(["table", str(out), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("step,checkpoint,")
    assert cli.main(["flips", str(out), "--from", "2", "--to", "6"]) == 0
    assert "step 2 -> step 6" in capsys.readouterr().out
    assert cli.main(["compare", str(out), str(runs["full"]), "--format", "json"]) == 0
    models = [m["model"] for m in json.loads(capsys.readouterr().out)["models"]]
    assert f"{REPO}@6" in models
    gate = ["gate", "--baseline", str(out / EVAL_DIR / "step-2.json"), "--max-drop", "0.05"]
    assert cli.main([*gate, "--candidate", str(out / EVAL_DIR / "step-6.json")]) == 0
    assert "PASS" in capsys.readouterr().out
