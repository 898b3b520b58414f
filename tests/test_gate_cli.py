"""``cpi gate``: pass/fail on the mean counterfactual accuracy of two lm-eval results files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.reports.gate import gate
from tests.helpers.cli_errors import one_error_line

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


def test_gate_refuses_to_write_its_report_over_the_baseline(tmp_path: Path, capsys) -> None:
    base = write(tmp_path / "base.json", lm_eval_results({"cpi_capitals": 0.5}))
    cand = write(tmp_path / "cand.json", lm_eval_results({"cpi_capitals": 0.5}))
    before = base.read_bytes()
    argv = ["gate", "--baseline", str(base), "--candidate", str(cand), "--max-drop", "0.05"]
    assert cli.main([*argv, "--json", str(base)]) == 2
    out, err = capsys.readouterr()
    assert "--json" in one_error_line(err, "gate") and out == ""
    assert base.read_bytes() == before


# ----------------------------------------------------------------------------- wrong numbers

BAD_VALUES = {
    "nan": float("nan"),  # json.dumps writes NaN, as lm-eval does
    "na_text": "N/A",
    "null": None,
    "bool": True,
    "string": "0.6",
    "above_one": 1.5,
    "negative": -0.1,
}


def _with_value(data: dict, task: str, key: str, value: object) -> dict:
    data["results"][task][key] = value
    return data


@pytest.mark.parametrize("role", ["baseline", "candidate"])
@pytest.mark.parametrize("kind", list(BAD_VALUES))
def test_gate_exits_2_on_a_wrong_value(
    role: str, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Every wrong-value kind, in either file, is exit 2 naming the file, task and metric
    (before: NaN/null/"N/A" in the baseline dropped the task silently; 1.5 and -0.1 were
    averaged; a bool counted as 1)."""
    good = lm_eval_results({t: 0.6 for t in TASKS})
    bad = _with_value(
        lm_eval_results({t: 0.6 for t in TASKS}), "cpi_bio", "cf_acc,none", BAD_VALUES[kind]
    )
    files = {"baseline": good, "candidate": good}
    files[role] = bad
    paths = {r: write(tmp_path / f"{r}.json", d) for r, d in files.items()}
    code = cli.main(
        [
            "gate",
            "--baseline",
            str(paths["baseline"]),
            "--candidate",
            str(paths["candidate"]),
            "--max-drop",
            "0.05",
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cpi gate: error: ")
    assert f"{paths[role]}: task cpi_bio: cf_acc is " in err
    assert "PASS" not in captured.out and "FAIL" not in captured.out


@pytest.mark.parametrize("stderr", [float("nan"), -0.01, "wide", False, float("inf")])
def test_gate_exits_2_on_a_wrong_stderr(
    stderr: object, baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = _with_value(
        lm_eval_results({t: 0.6 for t in TASKS}), "cpi_quotes", "cf_acc_stderr,none", stderr
    )
    cand = write(tmp_path / "cand.json", data)
    args = ["gate", "--baseline", str(baseline), "--candidate", str(cand), "--max-drop", "0.05"]
    assert cli.main(args) == 2
    assert f"{cand}: task cpi_quotes: cf_acc_stderr is " in capsys.readouterr().err


@pytest.mark.parametrize("stderr", [None, "N/A"])
def test_gate_accepts_a_stderr_lm_eval_did_not_compute(
    stderr: object, baseline: Path, tmp_path: Path
) -> None:
    """lm-eval writes "N/A" for a stderr it did not compute (1 item, --bootstrap_iters 0)."""
    data = _with_value(
        lm_eval_results({t: 0.6 for t in TASKS}), "cpi_quotes", "cf_acc_stderr,none", stderr
    )
    cand = write(tmp_path / "cand.json", data)
    report = tmp_path / "r.json"
    args = ["gate", "--baseline", str(baseline), "--candidate", str(cand), "--max-drop", "0"]
    assert cli.main([*args, "--json", str(report)]) == 0
    assert json.loads(report.read_text())["candidate_stderr"] is None


def test_gate_exits_2_on_a_missing_task(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Better on the three tasks it has, the candidate would pass if the gate averaged them."""
    cand = write(tmp_path / "cand.json", lm_eval_results({t: 0.9 for t in TASKS[:3]}))
    args = ["gate", "--baseline", str(baseline), "--candidate", str(cand), "--max-drop", "0.05"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert f"{cand}: the candidate lacks cf_acc for task(s) cpi_quotes" in err
    assert "--allow-missing" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.1", "5", "abc", ""])
def test_gate_exits_2_on_a_bad_max_drop(
    value: str, baseline: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["gate", "--baseline", str(baseline), "--candidate", str(baseline)]
    assert cli.main([*args, f"--max-drop={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cpi gate: error: ") and "max" in err and len(err.splitlines()) == 1


def test_allow_missing_compares_the_shared_tasks(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """cpi_quotes is missing: the candidate equals the baseline on the other three, so the
    gate passes on them; averaging cpi_quotes (0.99) into the baseline alone would fail it."""
    base_cf = {t: 0.5 for t in TASKS[:3]} | {"cpi_quotes": 0.99}
    base = write(tmp_path / "base.json", lm_eval_results(base_cf))
    cand = write(tmp_path / "cand.json", lm_eval_results({t: 0.5 for t in TASKS[:3]}))
    report = tmp_path / "r.json"
    args = ["gate", "--baseline", str(base), "--candidate", str(cand), "--max-drop", "0.01"]
    assert cli.main([*args, "--allow-missing", "--json", str(report)]) == 0
    captured = capsys.readouterr()
    assert "Skipped (the candidate lacks them; --allow-missing): cpi_quotes." in captured.out
    assert "warning: the candidate lacks cpi_quotes" in captured.err
    data = json.loads(report.read_text())
    assert data["missing_tasks"] == ["cpi_quotes"] and data["passed"]
    assert [r["task"] for r in data["tasks"]] == ["cpi_bio", "cpi_capitals", "cpi_world_facts"]
    assert data["baseline_mean"] == pytest.approx(0.5) and data["drop"] == pytest.approx(0.0)

    # A real drop on the shared tasks still fails.
    worse = write(tmp_path / "worse.json", lm_eval_results({t: 0.4 for t in TASKS[:3]}))
    args = ["gate", "--baseline", str(base), "--candidate", str(worse), "--max-drop", "0.05"]
    assert cli.main([*args, "--allow-missing"]) == 1


def test_allow_missing_still_needs_a_shared_task_and_good_values(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    other = write(tmp_path / "other.json", lm_eval_results({"cpi_synth": 0.9}))
    args = ["gate", "--baseline", str(baseline), "--max-drop", "0.05", "--allow-missing"]
    assert cli.main([*args, "--candidate", str(other)]) == 2
    assert "shares no task with cf_acc" in capsys.readouterr().err

    bad = _with_value(lm_eval_results({t: 0.6 for t in TASKS[:2]}), TASKS[0], "cf_acc,none", None)
    cand = write(tmp_path / "cand.json", bad)
    assert cli.main([*args, "--candidate", str(cand)]) == 2  # a null is never "missing"
    assert f"{cand}: task {TASKS[0]}: cf_acc is null" in capsys.readouterr().err


def test_gate_help_documents_the_exit_codes(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["gate", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "0  pass" in out and "1  regression" in out and "2  invalid input" in out
    assert "--allow-missing" in out and "NaN" in out
