"""Reports from JSON only: the inversion summary, ``cpi table`` and ``cpi compare``; they never
write over their input, refuse a NaN, and end bad paths in one line."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.constants import (
    INVERSION_JSON,
    SUMMARY_KEYS,
)
from cpi_bench.harness_ext.core.errors import CPIError
from cpi_bench.harness_ext.core.files import check_output_file
from cpi_bench.harness_ext.reports.inversion import (
    build_inversion,
    load_inversion,
    row_from_results,
    summarize,
)
from cpi_bench.harness_ext.reports.run_report import write as write_run_reports
from tests.helpers.cli_errors import one_error_line


def step_results(
    step: int,
    cf: dict[str, float],
    param: dict[str, float],
    n: int = 100,
    id_scores: dict[str, float] | None = None,
) -> dict:
    """A per-checkpoint file as the sweep writes it (lm-eval results + our cpi block)."""
    results, samples = {}, {}
    for task in cf:
        results[task] = {
            "name": task,
            "sample_len": n,
            "cf_acc,none": cf[task],
            "cf_acc_stderr,none": math.sqrt(cf[task] * (1 - cf[task]) / (n - 1)),
            "param_acc,none": param[task],
            "param_acc_stderr,none": math.sqrt(param[task] * (1 - param[task]) / (n - 1)),
        }
        samples[task] = {"original": 500, "effective": n}
    for task, value in (id_scores or {}).items():
        results[task] = {
            "name": task,
            "acc,none": value,
            "acc_stderr,none": 0.01,
            "acc_norm,none": 0.99,
        }
    return {
        "results": results,
        "n-samples": samples,
        "group_subtasks": {},
        "cpi": {
            "step": step,
            "label": "base" if step == 0 else f"checkpoint-{step}",
            "settings": {"tasks": sorted(cf), "limit": n},
            "attention": None,
        },
    }


# The paper's shape: cf rises, peaks at step 200, then falls.
CURVE = {0: 0.30, 100: 0.55, 200: 0.70, 300: 0.60, 400: 0.50}


@pytest.fixture
def inversion() -> dict:
    by_step = {
        s: step_results(
            s,
            {"cpi_capitals": v, "cpi_quotes": v - 0.1},
            {"cpi_capitals": 0.5 - v / 2, "cpi_quotes": 0.3},
            id_scores={"arc_challenge": 0.4 + s / 2000},
        )
        for s, v in CURVE.items()
    }
    return build_inversion(by_step, id_tasks=["arc_challenge"], run={"name": "demo"})


def test_rows_are_means_over_cpi_tasks_with_stderr(inversion: dict) -> None:
    row = inversion["rows"][2]
    assert row["step"] == 200 and row["checkpoint"] == "checkpoint-200"
    assert row["cf_acc"] == pytest.approx((0.70 + 0.60) / 2)
    se1, se2 = (math.sqrt(p * (1 - p) / 99) for p in (0.70, 0.60))
    assert row["cf_acc_stderr"] == pytest.approx(math.sqrt(se1**2 + se2**2) / 2)
    assert row["param_acc"] == pytest.approx((0.15 + 0.3) / 2)
    assert row["id_acc"] == pytest.approx(0.5)  # arc_challenge acc (not acc_norm)
    assert row["id_tasks"]["arc_challenge"]["metric"] == "acc,none"
    assert set(row["tasks"]) == {"cpi_capitals", "cpi_quotes"}
    assert inversion["cpi_tasks"] == ["cpi_capitals", "cpi_quotes"]


def test_summary_finds_rise_peak_and_drop(inversion: dict) -> None:
    s = inversion["summary"]
    for key in SUMMARY_KEYS:
        assert key in s
    assert s["initial_cf_acc"] == pytest.approx(0.25)
    assert s["peak_cf_acc"] == pytest.approx(0.65) and s["peak_step"] == 200
    assert s["final_cf_acc"] == pytest.approx(0.45)
    assert s["rise"] == pytest.approx(0.40) and s["drop"] == pytest.approx(0.20)
    peak, final = inversion["rows"][2], inversion["rows"][4]
    assert s["drop_stderr"] == pytest.approx(
        math.hypot(peak["cf_acc_stderr"], final["cf_acc_stderr"])
    )
    assert s["drop_exceeds_stderr"] is True


def test_summary_edge_cases() -> None:
    flat = [{"step": s, "cf_acc": 0.5, "cf_acc_stderr": 0.05} for s in (0, 10, 20)]
    s = summarize(flat)
    assert s["peak_step"] == 0 and s["drop"] == 0 and s["drop_exceeds_stderr"] is False
    small = [
        {"step": 0, "cf_acc": 0.5, "cf_acc_stderr": 0.05},
        {"step": 5, "cf_acc": 0.52, "cf_acc_stderr": 0.05},
        {"step": 9, "cf_acc": 0.5, "cf_acc_stderr": 0.05},
    ]
    assert summarize(small)["drop_exceeds_stderr"] is False  # 2 points < 7 points of noise
    assert summarize([{"step": 0, "cf_acc": None}])["peak_cf_acc"] is None
    no_se = [
        {"step": 0, "cf_acc": 0.2, "cf_acc_stderr": None},
        {"step": 1, "cf_acc": 0.1, "cf_acc_stderr": None},
    ]
    assert summarize(no_se)["drop_exceeds_stderr"] is None


def test_id_acc_is_null_when_a_benchmark_is_missing() -> None:
    data = step_results(0, {"cpi_capitals": 0.5}, {"cpi_capitals": 0.2}, id_scores={"mmlu": 0.6})
    row = row_from_results(data, 0, ["mmlu", "gsm8k"])
    assert row["id_acc"] is None and row["id_tasks"]["gsm8k"]["value"] is None
    row = row_from_results(data, 0, ["mmlu:acc_norm"])  # an explicit metric wins over acc
    assert row["id_acc"] == pytest.approx(0.99) and row["id_acc_stderr"] is None
    assert row_from_results(data, 0, ["mmlu:f1"])["id_acc"] is None  # not reported


def test_run_reports_and_table_formats(
    inversion: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    paths = write_run_reports(tmp_path, inversion)
    assert [p.name for p in paths] == [
        "inversion.json",
        "inversion.md",
        "inversion.csv",
        "inversion.png",
        "inversion.html",
    ]
    md = (tmp_path / "inversion.md").read_text()
    assert "| 200 | 65.0 ± " in md and "peak 65.0% at step 200" in md
    assert "exceeds its standard error" in md and "ID acc (%)" in md

    assert cli.main(["table", str(tmp_path), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["step"]) for r in rows] == list(CURVE)
    assert float(rows[2]["cf_acc"]) == pytest.approx(0.65)
    assert float(rows[2]["cpi_quotes/cf_acc"]) == pytest.approx(0.60)
    assert float(rows[2]["arc_challenge/id"]) == pytest.approx(0.5)

    assert cli.main(["table", str(tmp_path / INVERSION_JSON), "--format", "latex"]) == 0
    latex = capsys.readouterr().out
    assert latex.startswith("\\begin{tabular}{l") and "65.0 $\\pm$" in latex
    assert "cpi\\_quotes" in latex and latex.count("\\\\") == 1 + len(CURVE)

    assert cli.main(["table", str(tmp_path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["peak_step"] == 200

    out = tmp_path / "t.md"
    assert (
        cli.main(["table", str(tmp_path), "--output", str(out), "--plot", str(tmp_path / "p.png")])
        == 0
    )
    assert out.read_text() == md
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_table_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["table", str(tmp_path)]) == 2
    assert "run 'cpi sweep" in capsys.readouterr().err
    (tmp_path / INVERSION_JSON).write_text('{"rows": [{"cf_acc": 1}]}')
    assert cli.main(["table", str(tmp_path)]) == 2
    assert "rows[0] has no integer 'step'" in capsys.readouterr().err


def _lm_eval_file(folder: Path, model: str, cf: float, date: str = "2025-01-01T00-00-00") -> Path:
    data = step_results(
        0, {"cpi_capitals": cf, "cpi_quotes": cf / 2}, {"cpi_capitals": 0.1, "cpi_quotes": 0.2}
    )
    del data["cpi"]
    data["model_name"] = model
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"results_{date}.json"
    path.write_text(json.dumps(data))
    return path


def test_compare_lists_every_model_sorted(
    inversion: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a = _lm_eval_file(tmp_path / "a", "org/alpha", 0.40)
    _lm_eval_file(tmp_path / "out" / "org__beta", "org/beta", 0.80)
    _lm_eval_file(tmp_path / "out" / "org__gamma", "org/gamma", 0.10, "2025-01-01T00-00-00")
    _lm_eval_file(tmp_path / "out" / "org__gamma", "org/gamma", 0.20, "2025-03-01T00-00-00")
    run = tmp_path / "run"
    write_run_reports(run, inversion)
    code = cli.main(["compare", str(a), str(tmp_path / "out"), str(run), "--format", "md"])
    assert code == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("| ") and "rank" not in ln]
    models = [ln.split(" | ")[1] for ln in lines]
    assert models == ["org/beta", "demo@400", "org/alpha", "org/gamma"]
    assert "cpi_capitals cf" in out and "mean cf" in out
    assert "| 1 | org/beta | 80.0 | 10.0 | 40.0 | 20.0 | 60.0 ± " in out
    assert lines[3].startswith("| 4 | org/gamma | 20.0 | 10.0 | 10.0 |")  # its newest file

    assert cli.main(["compare", str(run), "--run_step", "peak", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["model"] == "demo@200" and float(rows[0]["mean_cf_acc"]) == pytest.approx(0.65)

    assert cli.main(["compare", str(a), str(run), "--format", "latex"]) == 0
    assert capsys.readouterr().out.startswith("\\begin{tabular}{ll")


def test_compare_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["compare", str(tmp_path / "none.json")]) == 2
    assert "no such results JSON" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["compare", str(tmp_path / "empty")]) == 2
    assert "no results*.json inside" in capsys.readouterr().err


# ----------------------------------------------------------------------------- shared tasks


def _results_file(path: Path, model: str, cf: dict[str, float]) -> Path:
    """An lm-eval results JSON for ``model`` with the given cf_acc per task (param 0.2)."""
    data = step_results(0, cf, dict.fromkeys(cf, 0.2))
    del data["cpi"]
    data["model_name"] = model
    path.write_text(json.dumps(data))
    return path


def test_compare_ranks_on_the_tasks_every_model_shares(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """alpha has an extra, easy task: over all its tasks alpha's mean (65) beats beta's (60);
    over the two both report, beta (60) beats alpha (50). The ranking must use the latter."""
    alpha = _results_file(
        tmp_path / "alpha.json",
        "org/alpha",
        {"cpi_capitals": 0.5, "cpi_quotes": 0.5, "cpi_bio": 0.95},
    )
    beta = _results_file(
        tmp_path / "beta.json", "org/beta", {"cpi_capitals": 0.6, "cpi_quotes": 0.6}
    )
    assert cli.main(["compare", str(alpha), str(beta), "--format", "md"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("| ") and "rank" not in ln]
    assert [ln.split(" | ")[1] for ln in lines] == ["org/beta", "org/alpha"]
    assert lines[0].startswith("| 1 | org/beta | – | – | 60.0 | 20.0 | 60.0 | 20.0 | 60.0 ± ")
    assert "| 50.0 ± " in lines[1] and "| 65.0" not in lines[1]
    assert lines[0].endswith("| cpi_bio |") and lines[1].endswith("| – |")  # missing column
    assert "over the 2 task(s) every model reports: cpi_capitals, cpi_quotes." in out
    assert "org/beta lacks cpi_bio" in out

    assert cli.main(["compare", str(alpha), str(beta), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["model"] for r in rows] == ["org/beta", "org/alpha"]
    assert float(rows[1]["mean_cf_acc"]) == pytest.approx(0.5)
    assert rows[0]["mean_over_tasks"] == "cpi_capitals;cpi_quotes"
    assert rows[0]["missing_tasks"] == "cpi_bio" and rows[1]["missing_tasks"] == ""

    assert cli.main(["compare", str(alpha), str(beta), "--format", "json"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert board["shared_tasks"] == ["cpi_capitals", "cpi_quotes"]
    assert [m["missing_tasks"] for m in board["models"]] == [["cpi_bio"], []]

    assert cli.main(["compare", str(alpha), str(beta), "--format", "latex"]) == 0
    assert "every model reports: cpi\\_capitals, cpi\\_quotes" in capsys.readouterr().out


def test_compare_exits_2_when_no_task_is_shared(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a = _results_file(tmp_path / "a.json", "org/a", {"cpi_capitals": 0.5})
    b = _results_file(tmp_path / "b.json", "org/b", {"cpi_quotes": 0.9})
    assert cli.main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cpi compare: error: the models share no cpi task")
    assert "org/a: cpi_capitals" in err and "org/b: cpi_quotes" in err


@pytest.mark.parametrize(
    ("value", "shown"),
    [(float("nan"), "NaN"), ("N/A", '"N/A"'), (None, "null"), (True, "true"), (1.5, "1.5")],
)
def test_compare_exits_2_on_a_wrong_value_in_a_results_file(
    value: object, shown: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Before: NaN and "N/A" became a silently empty cell (and a mean over one task less);
    1.5 was ranked as 150%."""
    good = _results_file(tmp_path / "good.json", "org/good", {"cpi_capitals": 0.5})
    data = json.loads(
        _results_file(tmp_path / "bad.json", "org/bad", {"cpi_capitals": 0.5}).read_text()
    )
    data["results"]["cpi_capitals"]["cf_acc,none"] = value
    (tmp_path / "bad.json").write_text(json.dumps(data))
    assert cli.main(["compare", str(good), str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"cpi compare: error: {tmp_path / 'bad.json'}: task cpi_capitals: ")
    assert f"cf_acc is {shown}," in err and len(err.splitlines()) == 1


def test_compare_exits_2_on_a_wrong_value_in_an_inversion_json(
    inversion: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_run_reports(tmp_path, inversion)
    data = json.loads((tmp_path / INVERSION_JSON).read_text())
    data["rows"][-1]["tasks"]["cpi_quotes"]["param_acc"] = float("nan")
    (tmp_path / INVERSION_JSON).write_text(json.dumps(data))
    assert cli.main(["compare", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / INVERSION_JSON}: step 400: task cpi_quotes: param_acc is NaN" in err
    data["rows"][-1]["tasks"]["cpi_quotes"]["param_acc"] = 0.3
    data["rows"][1]["cf_acc"] = -0.5  # a row mean the peak would be chosen on
    (tmp_path / INVERSION_JSON).write_text(json.dumps(data))
    assert cli.main(["compare", str(tmp_path), "--run_step", "peak"]) == 2
    assert "step 100: cf_acc is -0.5" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the plot


def _run_with_steps(steps: list[int], name: str = "tulu-lora") -> dict:
    by_step = {
        s: step_results(
            s,
            {"cpi_capitals": 0.3 + 0.4 * (i % 5) / 5, "cpi_quotes": 0.4},
            {"cpi_capitals": 0.5, "cpi_quotes": 0.3 - 0.01 * i},
            id_scores={"arc_challenge": 0.4 + 0.001 * i},
        )
        for i, s in enumerate(steps)
    }
    return build_inversion(by_step, id_tasks=["arc_challenge"], run={"name": name})


@pytest.mark.parametrize("n_steps", [1, 25])
def test_inversion_plot_is_readable(n_steps: int) -> None:
    """The PNG decodes; at most 8 integer step ticks whose labels do not overlap (the old
    plot printed "100150200"); title, units, legend below the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from cpi_bench.harness_ext.reports.plots import inversion_figure, inversion_png

    # Uneven spacing, as checkpoints saved often early on: 0, 10, 20, 30, 50, 100, 150, ...
    steps = [0, 10, 20, 30, *range(50, 50 * (n_steps - 3), 50)][:n_steps]
    data = _run_with_steps(steps)
    png = inversion_png(data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.imread(io.BytesIO(png)).shape[:2] == (600, 864)  # 7.2 x 5 inches at 120 dpi

    fig = inversion_figure(data)
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert 1 <= len(ticks) <= 8 and all(float(t).is_integer() for t in ticks)
        boxes = [lab.get_window_extent() for lab in ax.get_xticklabels() if lab.get_text() != ""]
        assert all(not a.overlaps(b) for a, b in zip(boxes, boxes[1:], strict=False))
        assert ax.get_title() == "Context reliance during finetuning: tulu-lora"
        assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "accuracy (fraction)"
        assert fig.axes[1].get_ylabel() == "ID accuracy (fraction)"  # the second axis
        legend = fig.legends[0]
        labels = [t.get_text() for t in legend.get_texts()]
        assert labels[0].startswith("counterfactual acc") and "± stderr" in labels[1]
        assert legend.get_window_extent().y1 <= ax.get_window_extent().y0  # below the curves
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == (2 if n_steps > 1 else 0)  # cf and param ± stderr
    finally:
        plt.close(fig)


def test_plot_title_without_a_run_name() -> None:
    from cpi_bench.harness_ext.reports.plots import plot_title

    assert plot_title({"run": {}}) == "Context reliance during finetuning"


# ----------------------------------------------------------------------------- outputs and inputs


def test_report_outputs_under_a_file_are_one_line_errors(tmp_path: Path, capsys) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    res = _results_file(tmp_path / "r.json", "m", {"cpi_capitals": 0.5})
    assert cli.main(["compare", str(res), "--output", str(plain / "board.md")]) == 2
    assert "--output" in one_error_line(capsys.readouterr().err, "compare")
    with pytest.raises(CPIError, match="--json .*cannot write there"):
        check_output_file(plain / "gate.json", "--json")


def test_table_refuses_to_overwrite_its_input(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    write_run_reports(run, build_inversion({}, id_tasks=[]))
    before = (run / "inversion.json").read_bytes()
    assert cli.main(["table", str(run), "--output", str(run / "inversion.json")]) == 2
    assert "input file" in one_error_line(capsys.readouterr().err, "table")
    assert (run / "inversion.json").read_bytes() == before


def test_table_refuses_nan_and_recomputes_the_summary(tmp_path: Path, capsys) -> None:
    rows = [
        {"step": 0, "cf_acc": 0.2, "cf_acc_stderr": 0.01, "tasks": {}},
        {"step": 2, "cf_acc": 0.6, "cf_acc_stderr": 0.01, "tasks": {}},
    ]
    path = tmp_path / "inversion.json"
    path.write_text(json.dumps({"rows": rows, "summary": {"peak_cf_acc": 0.99}}))
    assert load_inversion(path)["summary"]["peak_cf_acc"] == 0.6  # never the stored one
    rows[1]["tasks"] = {"cpi_capitals": {"cf_acc": math.nan, "n": 3}}
    path.write_text(json.dumps({"rows": rows}))
    assert cli.main(["table", str(path), "--format", "csv"]) == 2
    line = one_error_line(capsys.readouterr().err, "table")
    assert "step 2: task cpi_capitals: cf_acc is NaN" in line


def test_compare_missing_path_says_how_to_fix_it(tmp_path: Path, capsys) -> None:
    assert cli.main(["compare", str(tmp_path / "nope.json")]) == 2
    assert "(check the path)" in one_error_line(capsys.readouterr().err, "compare")
