"""``cpi gate``: pass/fail on the mean counterfactual accuracy of two lm-eval results files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.reports.gate import gate

TASKS = ("cpi_world_facts", "cpi_capitals", "cpi_bio", "cpi_quotes")


def lm_eval_results(
    cf: dict[str, float], param: float = 0.2, n: int = 200, model: str = "org/model"
) -> dict:
    """An lm-eval results JSON as ``lm_eval --output_path`` writes it (the parts we read)."""
    results, samples = {}, {}
    for task, value in cf.items():
        se = math.sqrt(value * (1 - value) / (n - 1))
        results[task] = {
            "name": task,
            "alias": task,
            "sample_len": n,
            "cf_acc,none": value,
            "cf_acc_stderr,none": se,
            "param_acc,none": param,
            "param_acc_stderr,none": 0.02,
        }
        samples[task] = {"original": n, "effective": n}
    results["cpi"] = {"alias": "cpi", "name": "cpi", "cf_acc,none": sum(cf.values()) / len(cf)}
    return {
        "results": results,
        "groups": {"cpi": results["cpi"]},
        "group_subtasks": {"cpi": list(cf)},
        "n-samples": samples,
        "config": {"model": "hf", "model_args": {"pretrained": model}},
        "model_name": model,
    }


def write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    return write(
        tmp_path / "baseline.json", lm_eval_results({t: 0.60 for t in TASKS}, model="org/v1")
    )


def test_gate_fails_a_20_point_drop(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cand = write(tmp_path / "cand.json", lm_eval_results({t: 0.40 for t in TASKS}, model="org/v2"))
    code = cli.main(
        ["gate", "--baseline", str(baseline), "--candidate", str(cand), "--max-drop", "0.05"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL: mean cf_acc dropped by 20.0 points (allowed: 5.0)" in out
    for task in TASKS:  # per-task report
        assert task in out and "-20.0" in out
    assert "org/v1" in out and "org/v2" in out


def test_gate_passes_a_2_point_drop(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cand = write(tmp_path / "cand.json", lm_eval_results({t: 0.58 for t in TASKS}))
    code = cli.main(
        [
            "gate",
            "--baseline",
            str(baseline),
            "--candidate",
            str(cand),
            "--max-drop",
            "0.05",
            "--metric",
            "cf_acc",
        ]
    )
    assert code == 0
    assert "PASS: mean cf_acc dropped by 2.0 points" in capsys.readouterr().out


def test_gate_averages_tasks_and_ignores_the_group(tmp_path: Path) -> None:
    base = lm_eval_results({"cpi_capitals": 0.8, "cpi_quotes": 0.4})
    # One task falls 10 points, the other rises 4: the mean falls 3 points.
    cand = lm_eval_results({"cpi_capitals": 0.7, "cpi_quotes": 0.44})
    report = gate(base, cand, "cf_acc", max_drop=0.05)
    assert report["passed"] and report["drop"] == pytest.approx(0.03)
    assert [r["task"] for r in report["tasks"]] == ["cpi_capitals", "cpi_quotes"]
    assert not gate(base, cand, "cf_acc", max_drop=0.02)["passed"]
    # A drop equal to the allowance passes (float noise must not flip it).
    assert gate(base, cand, "cf_acc", max_drop=0.03)["passed"]


def test_gate_improvement_passes_with_zero_allowance(baseline: Path, tmp_path: Path) -> None:
    cand = write(tmp_path / "cand.json", lm_eval_results({t: 0.7 for t in TASKS}))
    assert (
        cli.main(
            [
                "gate",
                "--baseline",
                str(baseline),
                "--candidate",
                str(cand),
                "--max_drop",
                "0",
                "--json",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] and report["drop"] == pytest.approx(-0.1)


def test_gate_accepts_an_lm_eval_output_folder(baseline: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out" / "org__v2"
    folder.mkdir(parents=True)
    write(folder / "results_2025-01-01T00-00-00.json", lm_eval_results({t: 0.1 for t in TASKS}))
    write(folder / "results_2025-02-01T00-00-00.json", lm_eval_results({t: 0.59 for t in TASKS}))
    assert (
        cli.main(
            [
                "gate",
                "--baseline",
                str(baseline),
                "--candidate",
                str(tmp_path / "out"),
                "--max-drop",
                "0.05",
            ]
        )
        == 0
    )  # the newest file


def test_gate_bad_inputs_exit_2(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["gate", "--baseline", str(baseline), "--max-drop", "0.05", "--candidate"]
    assert cli.main([*args, str(tmp_path / "missing.json")]) == 2
    assert "no such file" in capsys.readouterr().err

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert cli.main([*args, str(broken)]) == 2
    assert "not valid JSON" in capsys.readouterr().err

    write(tmp_path / "other.json", {"rows": []})
    assert cli.main([*args, str(tmp_path / "other.json")]) == 2
    assert "no 'results' object" in capsys.readouterr().err

    partial = write(tmp_path / "partial.json", lm_eval_results({"cpi_capitals": 0.9}))
    assert cli.main([*args, str(partial)]) == 2
    err = capsys.readouterr().err
    assert "lacks cf_acc for task(s) cpi_bio, cpi_quotes, cpi_world_facts" in err

    cand = write(tmp_path / "cand.json", lm_eval_results({t: 0.6 for t in TASKS}))
    assert (
        cli.main(["gate", "--baseline", str(baseline), "--candidate", str(cand), "--max-drop", "5"])
        == 2
    )
    assert "fractions" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "gate",
                "--baseline",
                str(baseline),
                "--candidate",
                str(cand),
                "--max-drop",
                "0.05",
                "--metric",
                "cf_pref",
            ]
        )
        == 2
    )
    assert "no task with metric 'cf_pref'" in capsys.readouterr().err
