"""``cpi sweep`` end to end on tiny run folders (in-process, CPU, seconds per sweep)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.constants import (
    EVAL_DIR,
    INVERSION_CSV,
    INVERSION_JSON,
    INVERSION_MD,
    INVERSION_PNG,
    RUN_MANIFEST,
    SUMMARY_KEYS,
)

TASKS = "cpi_capitals,cpi_quotes,cpi_capitals_choice"
COMMON = ["--tasks", TASKS, "--limit", "4", "--device", "cpu", "--batch_size", "4"]


@pytest.fixture(scope="module", autouse=True)
def _data_env(fixture_data_dir: Path):
    """The synthetic public files of conftest.py (12 capitals, 16 quotes), offline."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CPI_DATA_DIR", str(fixture_data_dir))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # 2 threads on a shared 2-core machine: 10x slower
        yield
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A full-finetune run and a LoRA run over one tiny base, checkpoints 2, 4, 6."""
    from tests.helpers.tiny_run import build_tiny_run

    root = tmp_path_factory.mktemp("runs")
    base = root / "base"
    full = build_tiny_run(root / "full", steps=(2, 4, 6), finetune="full", base_dir=base)
    lora = build_tiny_run(root / "lora", steps=(2, 4, 6), finetune="lora", base_dir=base)
    return {"full": full, "lora": lora, "base": base}


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(EVAL_DIR, "inversion.*"))
    return dst


@pytest.fixture(scope="module")
def swept_full(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = _copy_run(runs["full"], tmp_path_factory.mktemp("swept") / "full")
    assert cli.main(["sweep", str(run), *COMMON]) == 0
    return run


def test_sweep_writes_rows_summary_and_renderings(swept_full: Path) -> None:
    data = json.loads((swept_full / INVERSION_JSON).read_text())
    assert [r["step"] for r in data["rows"]] == [0, 2, 4, 6]
    assert [r["checkpoint"] for r in data["rows"]] == [
        "base",
        "checkpoint-2",
        "checkpoint-4",
        "checkpoint-6",
    ]
    for key in SUMMARY_KEYS:
        assert key in data["summary"]
    assert data["cpi_tasks"] == ["cpi_capitals", "cpi_quotes"]
    for row in data["rows"]:
        assert 0.0 <= row["cf_acc"] <= 1.0 and 0.0 <= row["param_acc"] <= 1.0
        assert row["id_acc"] is None  # no --id_tasks
        assert set(row["tasks"]) == {"cpi_capitals", "cpi_quotes", "cpi_capitals_choice"}
        assert row["tasks"]["cpi_capitals"]["n"] == 4
        assert "cf_acc_stderr" in row["tasks"]["cpi_capitals"]
    # The checkpoints differ, and the evaluation sees it (cf_pref is continuous).
    prefs = [r["tasks"]["cpi_capitals_choice"]["cf_pref"] for r in data["rows"]]
    assert len(set(prefs)) == 4
    assert sorted(p.name for p in (swept_full / EVAL_DIR).iterdir()) == [
        name for s in (0, 2, 4, 6) for name in (f"step-{s}.items.jsonl", f"step-{s}.json")
    ]
    assert (swept_full / INVERSION_MD).read_text().startswith("| step |")
    csv_lines = (swept_full / INVERSION_CSV).read_text().splitlines()
    assert csv_lines[0].startswith("step,checkpoint,cf_acc") and len(csv_lines) == 5
    assert (swept_full / INVERSION_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_files_are_lm_eval_results(swept_full: Path) -> None:
    step = json.loads((swept_full / EVAL_DIR / "step-4.json").read_text())
    assert step["results"]["cpi_capitals"]["cf_acc,none"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert "cf_acc_stderr,none" in step["results"]["cpi_quotes"]
    assert step["cpi"]["step"] == 4 and step["cpi"]["label"] == "checkpoint-4"
    assert step["cpi"]["settings"]["limit"] == 4
    assert step["n-samples"]["cpi_capitals"]["effective"] == 4


def test_table_latex_prints_a_tabular(swept_full: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["table", str(swept_full), "--format", "latex"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("\\begin{tabular}") and out.rstrip().endswith("\\end{tabular}")
    assert "cpi\\_capitals" in out and out.count("\\\\") == 5  # header + 4 steps


def test_rerun_skips_finished_steps(swept_full: Path, capsys: pytest.CaptureFixture) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in (swept_full / EVAL_DIR).iterdir()}
    rows_before = json.loads((swept_full / INVERSION_JSON).read_text())["rows"]
    assert cli.main(["sweep", str(swept_full), *COMMON]) == 0
    assert "already evaluated" in capsys.readouterr().err
    after = {p.name: p.stat().st_mtime_ns for p in (swept_full / EVAL_DIR).iterdir()}
    assert after == before
    assert json.loads((swept_full / INVERSION_JSON).read_text())["rows"] == rows_before


def test_changed_settings_reevaluate(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = _copy_run(runs["full"], tmp_path / "run")
    shutil.rmtree(run / "checkpoint-4")
    shutil.rmtree(run / "checkpoint-6")
    args = ["--tasks", "cpi_capitals_choice", "--device", "cpu"]
    assert cli.main(["sweep", str(run), *args, "--limit", "2"]) == 0
    assert cli.main(["sweep", str(run), *args, "--limit", "3"]) == 0
    err = capsys.readouterr().err
    assert "step-0: re-evaluating, limit changed (2 -> 3)" in err
    data = json.loads((run / INVERSION_JSON).read_text())
    assert [r["tasks"]["cpi_capitals_choice"]["n"] for r in data["rows"]] == [3, 3]


def test_broken_checkpoint_is_reported_others_run(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = _copy_run(runs["full"], tmp_path / "run")
    shutil.rmtree(run / "checkpoint-6")
    (run / "checkpoint-4" / "model.safetensors").write_bytes(b"not a safetensors file")
    code = cli.main(
        ["sweep", str(run), "--tasks", "cpi_capitals_choice", "--limit", "2", "--device", "cpu"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert f"{run.resolve() / 'checkpoint-4'}" in err and "FAILED step 4" in err
    data = json.loads((run / INVERSION_JSON).read_text())
    assert [r["step"] for r in data["rows"]] == [0, 2]
    assert data["failures"][0]["step"] == 4 and data["failures"][0]["reason"]


def test_lora_sweep_swaps_adapters_like_fresh_loads(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Adapters swapped on one base give the numbers of a fresh base + PeftModel per step."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cpi_bench.harness_ext.evaluation.evaluator import CheckpointEvaluator

    run = _copy_run(runs["lora"], tmp_path / "lora")
    assert (
        cli.main(
            [
                "sweep",
                str(run),
                "--tasks",
                "cpi_capitals,cpi_capitals_choice",
                "--limit",
                "3",
                "--device",
                "cpu",
                "--attention",
                "--attention_limit",
                "2",
            ]
        )
        == 0
    )
    data = json.loads((run / INVERSION_JSON).read_text())
    assert [r["step"] for r in data["rows"]] == [0, 2, 4, 6]
    assert data["has_attention"]
    for row in data["rows"]:
        assert 0.0 < row["attn_ctx"] <= 1.0
    swept = json.loads((run / EVAL_DIR / "step-4.json").read_text())["results"]

    evaluator = CheckpointEvaluator(
        tasks=["cpi_capitals", "cpi_capitals_choice"], limit=3, batch_size=8
    )
    base = AutoModelForCausalLM.from_pretrained(runs["base"], dtype=torch.float32)
    fresh = PeftModel.from_pretrained(base, run / "checkpoint-4")
    tok = AutoTokenizer.from_pretrained(run / "checkpoint-4")
    direct = evaluator.evaluate(fresh, tok, step=4, label="checkpoint-4")[0]["results"]
    for task in ("cpi_capitals", "cpi_capitals_choice"):
        assert {k: v for k, v in swept[task].items()} == {k: v for k, v in direct[task].items()}


def test_bad_input_exits_2_with_one_line(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert cli.main(["sweep", str(tmp_path / "nope")]) == 2
    assert "no such run folder" in capsys.readouterr().err

    run = tmp_path / "run"
    run.mkdir()
    assert cli.main(["sweep", str(run)]) == 2
    assert "cpi_run.json: not found" in capsys.readouterr().err

    (run / RUN_MANIFEST).write_text(json.dumps({"finetune": "full"}))
    assert cli.main(["sweep", str(run)]) == 2
    err = capsys.readouterr().err
    assert "'base_model'" in err and "Traceback" not in err

    (run / RUN_MANIFEST).write_text("{oops")
    assert cli.main(["sweep", str(run)]) == 2
    assert "not valid JSON" in capsys.readouterr().err

    good = _copy_run(runs["full"], tmp_path / "good")
    assert cli.main(["sweep", str(good), "--tasks", "cpi_nonexistent", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "unknown lm-eval task(s): cpi_nonexistent" in err
    assert not (good / EVAL_DIR).exists() or not any((good / EVAL_DIR).iterdir())


def test_base_only_run_and_base_model_override(runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "bare"
    run.mkdir()
    code = cli.main(
        [
            "sweep",
            str(run),
            "--base_model",
            str(runs["base"]),
            "--tasks",
            "cpi_capitals",
            "--limit",
            "2",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    data = json.loads((run / INVERSION_JSON).read_text())
    assert [r["step"] for r in data["rows"]] == [0]
    assert data["summary"]["peak_step"] == 0 and data["summary"]["drop"] == 0.0


def test_default_tasks_are_the_cpi_group(
    runs: dict[str, Path], tmp_path: Path, cpi_data_dir: Path
) -> None:
    """No --tasks: the cpi group's four generation tasks (all from the conftest fixtures);
    the group itself is an aggregate, not a row task."""
    run = _copy_run(runs["full"], tmp_path / "run")
    for step in (4, 6):
        shutil.rmtree(run / f"checkpoint-{step}")
    assert cli.main(["sweep", str(run), "--limit", "2", "--device", "cpu"]) == 0
    data = json.loads((run / INVERSION_JSON).read_text())
    core = ["cpi_bio", "cpi_capitals", "cpi_quotes", "cpi_world_facts"]
    assert data["settings"]["tasks"] == ["cpi"]
    assert data["cpi_tasks"] == core
    assert [sorted(r["tasks"]) for r in data["rows"]] == [core, core]


def test_id_tasks_chat_template_and_per_checkpoint_cache(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    run = _copy_run(runs["lora"], tmp_path / "run")
    for step in (4, 6):
        shutil.rmtree(run / f"checkpoint-{step}")
    cache = tmp_path / "cache"
    args = [
        "sweep",
        str(run),
        "--tasks",
        "cpi_capitals",
        "--id_tasks",
        "cpi_capitals_choice:acc",
        "--limit",
        "2",
        "--device",
        "cpu",
        "--apply_chat_template",
        "--use_cache",
        str(cache),
    ]
    assert cli.main(args) == 0
    data = json.loads((run / INVERSION_JSON).read_text())
    assert data["settings"]["apply_chat_template"] is True
    assert data["id_tasks"] == ["cpi_capitals_choice"]
    for row in data["rows"]:
        choice = row["id_tasks"]["cpi_capitals_choice"]
        assert choice["metric"] == "acc,none" and row["id_acc"] == choice["value"]
        assert "cpi_capitals_choice" not in row["tasks"]
    # One cache file per checkpoint, never shared between them.
    dbs = sorted(p.name for p in cache.iterdir())
    assert len(dbs) == 2 and dbs[0].startswith("run-base-") and "checkpoint-2" in dbs[1]
    # A forced rerun answers from those caches and gives the same rows.
    assert cli.main([*args, "--force"]) == 0
    assert json.loads((run / INVERSION_JSON).read_text())["rows"] == data["rows"]


# ----------------------------------------------------------------------------- failed checkpoints

STALE_TASKS = [
    "--tasks",
    "cpi_capitals_choice",
    "--limit",
    "3",
    "--device",
    "cpu",
    "--threads",
    "1",
]


@pytest.fixture(scope="module")
def swept_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of conftest's run (checkpoints 2 and 4), swept once."""
    run = shutil.copytree(tiny_run, tmp_path_factory.mktemp("swept_once") / "run")
    assert cli.main(["sweep", str(run), *STALE_TASKS]) == 0
    return run


def test_a_failed_checkpoint_leaves_no_stale_row_or_file(
    swept_run: Path, tmp_path: Path, capsys
) -> None:
    """checkpoint-4's weights change and now fail to load: its old numbers go from
    inversion.json and eval/, so no table shows a row of weights that are gone."""
    from safetensors.torch import load_file, save_file

    from cpi_bench.harness_ext.reports.inversion import load_inversion

    run = tmp_path / "run"
    shutil.copytree(swept_run, run)
    weights = run / "checkpoint-4" / "model.safetensors"
    tensors = load_file(str(weights))
    tensors.pop(sorted(k for k in tensors if "layers.1." in k)[0])
    save_file(tensors, str(weights), metadata={"format": "pt"})
    assert cli.main(["sweep", str(run), *STALE_TASKS]) == 1
    assert "FAILED step 4" in capsys.readouterr().err
    assert [r["step"] for r in load_inversion(run)["rows"]] == [0, 2]
    assert not (run / "eval" / "step-4.json").exists()
    assert (run / "eval" / "step-2.json").exists()
