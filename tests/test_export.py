"""``cpi export``: the Hugging Face Hub's ``.eval_results/`` YAML, checked field by field
against the schema the Hub documents (https://huggingface.co/docs/hub/eval-results and
https://github.com/huggingface/hub-docs/blob/main/eval_results.yaml), written down here."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.reports.inversion import build_inversion
from cpi_bench.harness_ext.reports.run_report import write as write_run_reports

# The documented schema: for each object, its required and optional keys and their types.
SCHEMA: dict[str, dict[str, dict[str, Any]]] = {
    "entry": {
        "required": {"dataset": dict, "value": (int, float)},
        "optional": {"verifyToken": str, "date": str, "source": dict, "notes": str},
    },
    "dataset": {
        "required": {"id": str, "task_id": str},
        "optional": {"revision": str},
    },
    "source": {
        "required": {"url": str},
        "optional": {"name": str, "user": str},
    },
}
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def _check_object(obj: Any, kind: str, where: str) -> None:
    spec = SCHEMA[kind]
    assert isinstance(obj, dict), f"{where}: {kind} is not a mapping"
    allowed = {**spec["required"], **spec["optional"]}
    assert set(obj) <= set(allowed), f"{where}: unknown keys {set(obj) - set(allowed)}"
    for key in spec["required"]:
        assert key in obj, f"{where}: {kind}.{key} is required"
    for key, value in obj.items():
        assert isinstance(value, allowed[key]) and not isinstance(value, bool), (where, key)


def validate_eval_results(text: str, where: str = "file") -> list[dict]:
    """Every rule of the documented format, or AssertionError naming the field."""
    entries = yaml.safe_load(text)
    assert isinstance(entries, list) and entries, f"{where}: not a non-empty YAML list"
    for i, entry in enumerate(entries):
        here = f"{where}[{i}]"
        _check_object(entry, "entry", here)
        _check_object(entry["dataset"], "dataset", here)
        assert HUB_ID.match(entry["dataset"]["id"]), f"{here}: dataset.id is not owner/name"
        assert entry["dataset"]["task_id"].strip()
        assert math.isfinite(entry["value"])
        if "date" in entry:  # ISO-8601 date or datetime
            dt.datetime.fromisoformat(entry["date"].replace("Z", "+00:00"))
        if "source" in entry:
            _check_object(entry["source"], "source", here)
            assert entry["source"]["url"].startswith(("https://", "http://"))
    return entries


def results(cf: dict[str, float], n: int = 200) -> dict:
    out: dict = {"results": {}, "n-samples": {}, "n-shot": {}, "versions": {}}
    for task, value in cf.items():
        out["results"][task] = {"name": task, "cf_acc,none": value, "cf_acc_stderr,none": 0.03,
                                "param_acc,none": 0.1}  # fmt: skip
        out["n-samples"][task] = {"original": 500, "effective": n}
        out["n-shot"][task] = 0
        out["versions"][task] = 2.0
    out |= {"date": 1736937000.5, "lm_eval_version": "0.4.13", "chat_template_sha": None}
    return out


def test_export_writes_valid_eval_results(tmp_path: Path, capsys) -> None:
    src = tmp_path / "results_2025-01-15T10-30-00.json"
    src.write_text(json.dumps(results({"cpi_capitals": 0.615, "cpi_quotes": 0.25})))
    out = tmp_path / ".eval_results"
    code = cli.main(
        ["export", str(src), "--dataset-id", "org/cpi-bench", "--output-dir", str(out),
         "--task-id", "cpi_quotes=quotes", "--source-url", "https://example.org/logs",
         "--source-name", "Eval logs", "--dataset-revision", "abc123"]
    )  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["cpi_capitals.yaml", "quotes.yaml"]
    cap = validate_eval_results((out / "cpi_capitals.yaml").read_text(), "cpi_capitals.yaml")
    assert cap[0]["dataset"] == {"id": "org/cpi-bench", "task_id": "cpi_capitals",
                                 "revision": "abc123"}  # fmt: skip
    assert cap[0]["value"] == 0.615  # exactly what lm-eval wrote
    assert cap[0]["date"] == "2025-01-15T10:30:00Z"
    assert cap[0]["source"] == {"url": "https://example.org/logs", "name": "Eval logs"}
    notes = cap[0]["notes"]
    assert "metric cf_acc" in notes and "200 items, 95% CI [0.546, 0.680]" in notes
    assert "few-shot 0" in notes and "chat template off" in notes and "lm-eval 0.4.13" in notes
    quotes = validate_eval_results((out / "quotes.yaml").read_text())
    assert quotes[0]["dataset"]["task_id"] == "quotes" and quotes[0]["value"] == 0.25

    # The Hub's own client parses the files the same way (huggingface_hub >= 1.x).
    try:
        from huggingface_hub import parse_eval_result_entries
    except ImportError:
        return
    parsed = parse_eval_result_entries(cap)
    assert parsed[0].dataset_id == "org/cpi-bench" and parsed[0].value == 0.615


def test_export_a_runs_step(tmp_path: Path, capsys) -> None:
    steps = {0: results({"cpi_capitals": 0.3}), 50: results({"cpi_capitals": 0.7}),
             100: results({"cpi_capitals": 0.5})}  # fmt: skip
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    for s, data in steps.items():
        (run / "eval" / f"step-{s}.json").write_text(json.dumps(data))
    write_run_reports(run, build_inversion(steps, id_tasks=[], run={"name": "r"}))
    for step, value in (("50", 0.7), ("peak", 0.7), ("final", 0.5)):
        out = tmp_path / f"er-{step}"
        args = ["export", str(run), "--step", step, "--dataset-id", "o/b", "--output-dir", str(out)]
        assert cli.main([*args, "--scale", "percent"]) == 0
        entry = validate_eval_results((out / "cpi_capitals.yaml").read_text())[0]
        assert entry["value"] == pytest.approx(100 * value)
        assert "percent of items" in entry["notes"]
    assert cli.main(["export", str(run), "--dataset-id", "o/b"]) == 2
    assert "choose its step with --step" in capsys.readouterr().err
    assert cli.main(["export", str(run), "--step", "7", "--dataset-id", "o/b"]) == 2
    assert "no row for --run_step 7" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--dataset-id", "not an id"], "is not a Hub dataset id"),
        (["--dataset-id", "o/b", "--source-name", "x"], "need --source-url"),
        (["--dataset-id", "o/b", "--tasks", "cpi_bio"], "no cf_acc for cpi_bio"),
        (["--dataset-id", "o/b", "--task-id", "cpi_capitals"], "give TASK=ID"),
    ],
)
def test_export_bad_input_exits_2(tmp_path: Path, capsys, extra: list, said: str) -> None:
    src = tmp_path / "r.json"
    src.write_text(json.dumps(results({"cpi_capitals": 0.5})))
    assert cli.main(["export", str(src), "--output-dir", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cpi export: error: ") and said in err
    assert not (tmp_path / "o" / "cpi_capitals.yaml").exists()


def test_export_never_overwrites(tmp_path: Path, capsys) -> None:
    src = tmp_path / "r.json"
    src.write_text(json.dumps(results({"cpi_capitals": 0.5, "cpi_quotes": 0.4})))
    out = tmp_path / ".eval_results"
    out.mkdir()
    (out / "cpi_quotes.yaml").write_text("mine\n")
    assert cli.main(["export", str(src), "--dataset-id", "o/b", "--output-dir", str(out)]) == 2
    assert "cpi_quotes.yaml already exists" in capsys.readouterr().err
    assert (out / "cpi_quotes.yaml").read_text() == "mine\n"
    assert not (out / "cpi_capitals.yaml").exists()  # nothing written at all
