"""Numbers made under different settings are never compared without a word (issue 22).

``cpi gate`` and ``cpi compare`` read every setting that changes a number (task version,
few-shot count, chat template, generation settings, item count/limit, data) for every
compared task, refuse a difference with exit 2 naming it, and accept it only when told
(``--allow-settings-mismatch``), flagging it in the output and in JSON. Before, the gate passed
or failed on such a difference as if it were the model's (exit 0 for every case below).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.reports.settings import SETTING_NAMES, mismatches, task_settings

TASKS = ("cpi_capitals", "cpi_quotes")


def results(model: str, cf: float = 0.6, n: int = 100, **over: Any) -> dict:
    """An lm-eval results JSON with every settings key lm-eval writes."""
    out: dict = {
        "results": {},
        "n-samples": {},
        "versions": dict.fromkeys(TASKS, 2.0),
        "n-shot": dict.fromkeys(TASKS, 0),
        "configs": {
            t: {
                "task": t,
                "output_type": "generate_until",
                "generation_kwargs": {"until": ["\n"], "do_sample": False, "max_gen_toks": 32},
            }
            for t in TASKS
        },
        "config": {"model": "hf", "limit": n, "gen_kwargs": {}},
        "model_name": model,
        "chat_template": None,
        "chat_template_sha": None,
        "system_instruction_sha": None,
        "fewshot_as_multiturn": False,
    }
    for t in TASKS:
        out["results"][t] = {
            "name": t,
            "cf_acc,none": cf,
            "cf_acc_stderr,none": math.sqrt(cf * (1 - cf) / (n - 1)),
            "param_acc,none": 0.2,
            "param_acc_stderr,none": 0.04,
        }
        out["n-samples"][t] = {"original": 500, "effective": n}
    out.update(over)
    return out


def changed(data: dict, path: str, value: Any) -> dict:
    """A copy of ``data`` with the key at ``a/b/c`` set to ``value``."""
    data = copy.deepcopy(data)
    *parents, last = path.split("/")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


BASE = results("org/v1")
CASES = {  # setting -> the candidate made under another value of it
    "task_version": changed(BASE, "versions/cpi_quotes", 3.0),
    "num_fewshot": changed(BASE, "n-shot/cpi_capitals", 5),
    "chat_template": changed(BASE, "chat_template_sha", "ab12cd"),
    "generation_kwargs": changed(BASE, "configs/cpi_capitals/generation_kwargs/max_gen_toks", 64),
    "items": changed(BASE, "n-samples/cpi_quotes/effective", 50),
    "system_instruction": changed(BASE, "system_instruction_sha", "ffee00"),
    "fewshot_as_multiturn": changed(BASE, "fewshot_as_multiturn", True),
}


def write(path: Path, data: dict) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def _gate(tmp_path: Path, cand: dict, *extra: str) -> int:
    base = write(tmp_path / "base.json", BASE)
    cand_path = write(tmp_path / "cand.json", changed(cand, "model_name", "org/v2"))
    return cli.main(
        ["gate", "--baseline", base, "--candidate", cand_path, "--max-drop", "0.05", *extra]
    )


@pytest.mark.parametrize("setting", sorted(CASES))
def test_gate_refuses_results_made_under_other_settings(
    setting: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert _gate(tmp_path, CASES[setting]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cpi gate: error: the results were made under different settings")
    assert f" {setting} (baseline " in err and f"--allow-settings-mismatch {setting}" in err
    assert len(err.strip().splitlines()) == 1


def test_gate_accepts_a_difference_on_purpose_and_flags_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    report = tmp_path / "gate.json"
    code = _gate(
        tmp_path, CASES["num_fewshot"], "--allow-settings-mismatch", "num_fewshot",
        "--json", str(report),
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "Settings differ (accepted with --allow-settings-mismatch): cpi_capitals " in (
        captured.out
    )
    assert "num_fewshot (baseline 0, candidate 5)" in captured.out
    assert "warning: cpi_capitals num_fewshot differs" in captured.err
    flagged = json.loads(report.read_text())["settings_mismatches"]
    assert flagged == [
        {
            "task": "cpi_capitals",
            "setting": "num_fewshot",
            "values": {"baseline": "0", "candidate": "5"},
            "accepted": True,
        }
    ]
    # Accepting another setting does not accept this one; 'all' (the bare flag) does.
    assert _gate(tmp_path, CASES["num_fewshot"], "--allow-settings-mismatch", "items") == 2
    assert _gate(tmp_path, CASES["num_fewshot"], "--allow-settings-mismatch") == 0


def test_gate_same_settings_pass_silently(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _gate(tmp_path, results("org/v2", cf=0.58), "--json", str(tmp_path / "g.json")) == 0
    assert "Settings differ" not in capsys.readouterr().out
    assert json.loads((tmp_path / "g.json").read_text())["settings_mismatches"] == []


def test_unknown_setting_name_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _gate(tmp_path, BASE, "--allow-settings-mismatch", "shots") == 2
    err = capsys.readouterr().err
    assert "unknown setting shots" in err and all(n in err for n in SETTING_NAMES)


def test_compare_refuses_then_flags_in_every_format(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a = write(tmp_path / "a.json", BASE)
    b = write(tmp_path / "b.json", changed(CASES["num_fewshot"], "model_name", "org/five-shot"))
    assert cli.main(["compare", a, b]) == 2
    err = capsys.readouterr().err
    assert "cpi_capitals num_fewshot (org/v1 0, org/five-shot 5)" in err

    flag = ["--allow-settings-mismatch", "num_fewshot"]
    assert cli.main(["compare", a, b, "--format", "md", *flag]) == 0
    md = capsys.readouterr().out
    assert "settings (differ)" in md and "num_fewshot=5" in md and "num_fewshot=0" in md
    assert "Settings differ between these results" in md
    assert cli.main(["compare", a, b, "--format", "json", *flag]) == 0
    board = json.loads(capsys.readouterr().out)
    assert [d["setting"] for d in board["settings_mismatches"]] == ["num_fewshot"]
    assert cli.main(["compare", a, b, "--format", "csv", *flag]) == 0
    assert "num_fewshot=5" in capsys.readouterr().out
    assert cli.main(["compare", a, b, "--format", "html", *flag]) == 0
    assert "num_fewshot=5" in capsys.readouterr().out


def test_compare_reads_a_runs_step_file_for_its_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A swept run's row is compared with the settings of its own eval/step-N.json."""
    from cpi_bench.harness_ext.reports.inversion import build_inversion
    from cpi_bench.harness_ext.reports.run_report import write as write_run_reports

    step = changed(BASE, "versions/cpi_capitals", 3.0)
    step["cpi"] = {"step": 0, "label": "base", "settings": {"limit": 100}}
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    write(run / "eval" / "step-0.json", step)
    write_run_reports(run, build_inversion({0: step}, id_tasks=[], run={"name": "r"}))
    a = write(tmp_path / "a.json", BASE)
    assert cli.main(["compare", a, str(run)]) == 2
    assert "cpi_capitals task_version (org/v1 2, r@0 3)" in capsys.readouterr().err


def test_data_hashes_and_limit_are_settings() -> None:
    prov = {"provenance": {"tasks": {"cpi_capitals": {"data": {"capitals.json": "aa"}}}}}
    a = task_settings({"cpi": prov, "config": {"limit": 100}}, ["cpi_capitals"])
    other = json.loads(json.dumps(prov).replace('"aa"', '"bb"'))
    b = task_settings({"cpi": other, "config": {"limit": 200}}, ["cpi_capitals"])
    found = {d["setting"] for d in mismatches({"a": a, "b": b})}
    assert found == {"data", "limit"}  # no item counts on either side: the limit stands in
    a_items = task_settings({"config": {"limit": 100}, "n-samples": {"cpi_capitals":
                             {"effective": 40}}}, ["cpi_capitals"])  # fmt: skip
    b_items = task_settings({"config": {"limit": 200}, "n-samples": {"cpi_capitals":
                             {"effective": 40}}}, ["cpi_capitals"])  # fmt: skip
    assert mismatches({"a": a_items, "b": b_items}) == []  # same 40 items: same numbers


def test_a_setting_that_differs_on_many_tasks_is_said_once() -> None:
    from cpi_bench.harness_ext.reports.settings import mismatch_lines

    on_off = {"a": "off", "b": "on"}
    found = [
        {"task": "cpi_bio", "setting": "chat_template", "values": on_off},
        {"task": "cpi_quotes", "setting": "chat_template", "values": dict(on_off)},
        {"task": "cpi_quotes", "setting": "num_fewshot", "values": {"a": "0", "b": "5"}},
        {"task": "cpi_nqswap", "setting": "chat_template", "values": {"a": "on", "b": "off"}},
    ]
    assert mismatch_lines(found) == [
        "cpi_bio, cpi_quotes chat_template (a off, b on)",
        "cpi_quotes num_fewshot (a 0, b 5)",
        "cpi_nqswap chat_template (a on, b off)",
    ]
