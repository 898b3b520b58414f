"""``cpi gate`` in CI formats: vLLM-shape YAML baselines, JUnit XML, the GitHub step summary,
and the ready CI files under docs/ci/."""

from __future__ import annotations

import json
import math
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.reports.baseline_yaml import load_yaml_baseline
from cpi_bench.harness_ext.reports.gate import build_parser

REPO = Path(__file__).resolve().parents[1]


def results(values: dict[str, dict[str, float]], n: int = 200, **over) -> dict:
    """An lm-eval results JSON: ``{task: {"metric,filter": value}}`` and the settings keys."""
    out: dict = {"results": {}, "n-samples": {}, "n-shot": {}, "versions": {}}
    for task, metrics in values.items():
        entry = {"name": task}
        for key, value in metrics.items():
            name, _, filt = key.partition(",")
            entry[key] = value
            entry[f"{name}_stderr,{filt}"] = math.sqrt(value * (1 - value) / (n - 1))
        out["results"][task] = entry
        out["n-samples"][task] = {"original": 1000, "effective": n}
        out["n-shot"][task] = 0
        out["versions"][task] = 2.0
    out["config"] = {"model": "hf", "limit": n, "gen_kwargs": {}}
    out["model_name"] = "org/candidate"
    out.update(over)
    return out


BASELINE = """\
# made with: lm_eval --model hf --model_args pretrained=org/v1 --tasks cpi_capitals,cpi_quotes
model_name: "org/v1"
tasks:
- name: "cpi_capitals"
  metrics:
  - name: "cf_acc,none"
    value: 0.60
- name: "cpi_quotes"
  metrics:
  - name: "cf_acc"
    value: 0.50
  - name: "param_acc,none"
    value: 0.20
rtol: 0.1
limit: 200
num_fewshot: 0
max_model_len: 4096
"""


def _files(tmp_path: Path, cand: dict, baseline: str = BASELINE) -> tuple[str, str]:
    (tmp_path / "base.yaml").write_text(baseline)
    (tmp_path / "cand.json").write_text(json.dumps(cand))
    return str(tmp_path / "base.yaml"), str(tmp_path / "cand.json")


def _gate(base: str, cand: str, *extra: str) -> int:
    return cli.main(["gate", "--baseline", base, "--candidate", cand, *extra])


CAND = {"cpi_capitals": {"cf_acc,none": 0.55}, "cpi_quotes": {"cf_acc,none": 0.44,
        "param_acc,none": 0.30}}  # fmt: skip


def test_yaml_baseline_checks_every_task_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """rtol 0.1: capitals 0.55 >= 0.54 passes, quotes 0.44 < 0.45 fails: exit 1."""
    base, cand = _files(tmp_path, results(CAND))
    junit = tmp_path / "junit.xml"
    assert _gate(base, cand, "--junit", str(junit), "--json", str(tmp_path / "g.json")) == 1
    out = capsys.readouterr().out
    assert "tolerance rtol 0.1 (from the file)" in out
    assert "PASS  cpi_capitals cf_acc,none: measured 0.550 (95% CI [" in out
    assert "FAIL  cpi_quotes cf_acc: measured 0.440" in out and "< threshold 0.450" in out
    assert "Read past (vLLM launch options): max_model_len." in out
    assert "FAIL: 2 of 3 task metric(s)" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("cpi_gate.cf_acc,none", "cpi_capitals"),
        ("cpi_gate.cf_acc", "cpi_quotes"),
        ("cpi_gate.param_acc,none", "cpi_quotes"),
    ]
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    failure = cases[1].find("failure")
    assert failure is not None and cases[0].find("failure") is None
    message = failure.get("message")
    assert "measured 0.440" in message and "threshold 0.450" in message
    assert "baseline 0.500" in message and "95% CI [0.373, 0.509], n=200" in message
    report = json.loads((tmp_path / "g.json").read_text())
    assert report["mode"] == "per_metric" and not report["passed"]


def test_yaml_tolerance_default_and_max_drop(tmp_path: Path, capsys) -> None:
    no_rtol = BASELINE.replace("rtol: 0.1\n", "")
    base, cand = _files(tmp_path, results(CAND), no_rtol)
    assert _gate(base, cand) == 1  # 0.55 < 0.6 * 0.92 = 0.552
    assert "rtol 0.08 (vLLM's default)" in capsys.readouterr().out
    assert _gate(base, cand, "--max-drop", "0.07") == 0  # 0.55 >= 0.53, 0.44 >= 0.43
    assert "tolerance --max-drop 0.07" in capsys.readouterr().out


def test_yaml_confidence_fails_only_a_sure_drop(tmp_path: Path) -> None:
    """On 20 items 0.44 is 1 point under 0.45: not a drop with 95% confidence."""
    few = BASELINE.replace("limit: 200", "limit: 20")
    base, cand = _files(tmp_path, results(CAND, n=20), few)
    assert _gate(base, cand) == 1
    assert _gate(base, cand, "--confidence", "0.95") == 0
    assert _gate(base, cand, "--confidence", "0.4") == 2


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (('model_name: "org/v1"\n', ""), "'model_name' (text) is required"),
        (("value: 0.60", "value: N/A"), 'cf_acc,none is "N/A"'),
        (("value: 0.60", "value: 1.5"), "cf_acc,none is 1.5"),
        (("rtol: 0.1", "rtol: 2"), "rtol 2 must be a number in [0, 1)"),
        (
            ("num_fewshot: 0", "num_fewshot: 5"),
            "cpi_capitals num_fewshot (baseline 5, candidate 0)",
        ),
        (("limit: 200", "limit: 250"), "limit (baseline 250, candidate 200)"),
        (('- name: "cpi_quotes"', '- name: "cpi_bio"'), "the candidate lacks cpi_bio cf_acc"),
        (("tasks:", "tasks: []\nx:"), "'tasks' must be a non-empty list"),
        (('model_name: "org/v1"', "model_name: [org"), "not valid YAML at line"),
    ],
)
def test_yaml_bad_input_exits_2(tmp_path: Path, capsys, edit: tuple, said: str) -> None:
    base, cand = _files(tmp_path, results(CAND), BASELINE.replace(*edit))
    assert _gate(base, cand) == 2
    err = capsys.readouterr().err
    assert err.startswith("cpi gate: error: ") and said in err, err
    assert len(err.strip().splitlines()) == 1


def test_yaml_allow_missing_skips_and_lists(tmp_path: Path, capsys) -> None:
    base, cand = _files(tmp_path, results({"cpi_capitals": {"cf_acc,none": 0.59}}))
    junit = tmp_path / "j.xml"
    assert _gate(base, cand, "--allow-missing", "--junit", str(junit)) == 0
    assert "Skipped (--allow-missing): cpi_quotes cf_acc, cpi_quotes param_acc,none" in (
        capsys.readouterr().out
    )
    skipped = ET.parse(junit).getroot().findall(".//testcase/skipped")
    assert len(skipped) == 2


def test_a_vllm_config_verbatim(tmp_path: Path) -> None:
    """vLLM's own file shape (Meta-Llama-3-8B-Instruct.yaml) against a gsm8k results file."""
    vllm = (
        "# bash .buildkite/lm-eval-harness/run-lm-eval-gsm-hf-baseline.sh -m x -b 32 -l 250 -f 5\n"
        'model_name: "meta-llama/Meta-Llama-3-8B-Instruct"\ntasks:\n- name: "gsm8k"\n'
        '  metrics:\n  - name: "exact_match,strict-match"\n    value: 0.756\n'
        '  - name: "exact_match,flexible-extract"\n    value: 0.752\nlimit: 250\nnum_fewshot: 5\n'
    )
    cand = results(
        {"gsm8k": {"exact_match,strict-match": 0.74, "exact_match,flexible-extract": 0.75}},
        n=250,
    )
    cand["n-shot"]["gsm8k"] = 5
    base, cand_path = _files(tmp_path, cand, vllm)
    assert _gate(base, cand_path) == 0  # within vLLM's default rtol 0.08


def test_mean_gate_junit_and_step_summary(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A results JSON baseline: per-task test cases (numbers only) and the gated mean, whose
    regression is a <failure> with both means, intervals and the drop's interval."""
    base = tmp_path / "b.json"
    base.write_text(json.dumps(results({"cpi_capitals": {"cf_acc,none": 0.6},
                                        "cpi_quotes": {"cf_acc,none": 0.6}})))  # fmt: skip
    cand = tmp_path / "c.json"
    cand.write_text(json.dumps(results({"cpi_capitals": {"cf_acc,none": 0.4},
                                        "cpi_quotes": {"cf_acc,none": 0.6}})))  # fmt: skip
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    junit = tmp_path / "j.xml"
    code = _gate(str(base), str(cand), "--max-drop", "0.05", "--junit", str(junit))
    assert code == 1
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert [c.get("name") for c in cases] == ["cpi_capitals", "cpi_quotes", "mean over 2 task(s)"]
    assert [c.find("failure") is not None for c in cases] == [False, False, True]
    message = cases[2].find("failure").get("message")
    assert "fell from 60.0% (95% CI [" in message and "drop 10.0 points (95% CI [" in message
    assert "allowed 5.0" in message
    assert "more than --max-drop, but the gate is on the mean" in cases[0].find("system-out").text
    text = summary.read_text()
    assert text.startswith("earlier step\n### cpi gate: ❌ FAIL")  # appended, kept the rest
    assert "| mean over 2 task(s) | cf_acc | 60.0 | 50.0 | **regression** |" in text
    assert "| cpi_capitals | cf_acc | 60.0 | 40.0 | (not gated) |" in text


def test_mean_gate_still_needs_max_drop(tmp_path: Path, capsys) -> None:
    base = tmp_path / "b.json"
    base.write_text(json.dumps(results({"cpi_capitals": {"cf_acc,none": 0.6}})))
    assert _gate(str(base), str(base)) == 2
    assert "--max-drop is required with a results JSON baseline" in capsys.readouterr().err


# ----------------------------------------------------------------------------- docs/ci files


def _cpi_gate_calls(commands: list[str]) -> list[list[str]]:
    """The arguments of every ``cpi gate`` command in a CI file's shell commands (as YAML
    parsed them; continuation lines joined)."""
    calls = []
    for command in commands:
        for line in command.replace("\\\n", " ").splitlines():
            if line.strip().startswith("cpi gate "):
                calls.append(shlex.split(line)[2:])
    return calls


def test_github_actions_workflow_is_valid() -> None:
    text = (REPO / "docs/ci/github-actions.yml").read_text()
    doc = yaml.safe_load(text)
    assert doc["name"] and (doc.get("on") or doc.get(True))  # YAML 1.1 reads `on` as True
    for job in doc["jobs"].values():
        assert job["runs-on"] and job["steps"]
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
    runs = [step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step]
    calls = _cpi_gate_calls(runs)
    assert calls and all(build_parser().parse_args(c).junit_out for c in calls)


def test_gitlab_job_is_valid() -> None:
    text = (REPO / "docs/ci/gitlab-ci.yml").read_text()
    doc = yaml.safe_load(text)
    jobs = {k: v for k, v in doc.items() if isinstance(v, dict) and "script" in v}
    assert jobs
    for job in jobs.values():
        assert all(isinstance(line, str) for line in job["script"])
        assert job["artifacts"]["reports"]["junit"]
        assert job["artifacts"]["when"] == "always"
    calls = _cpi_gate_calls([line for job in jobs.values() for line in job["script"]])
    assert calls and all(build_parser().parse_args(c).junit_out for c in calls)


def test_example_baseline_is_valid() -> None:
    baseline = load_yaml_baseline(REPO / "docs/ci/cpi-baseline.yaml")
    assert baseline["tasks"] and baseline["options"]["limit"]


def test_yaml_gen_kwargs_compared_with_the_candidates_override(tmp_path: Path, capsys) -> None:
    """vLLM writes gen_kwargs as lm-eval's text; the candidate records a mapping."""
    with_gen = BASELINE + 'gen_kwargs: "do_sample=False,max_gen_toks=64"\n'
    cand = results(CAND)
    cand["config"]["gen_kwargs"] = {"do_sample": False, "max_gen_toks": 64}
    base, cand_path = _files(tmp_path, cand, with_gen)
    assert _gate(base, cand_path, "--max-drop", "0.2") == 0
    cand["config"]["gen_kwargs"] = {}
    base, cand_path = _files(tmp_path, cand, with_gen)
    assert _gate(base, cand_path, "--max-drop", "0.2") == 2
    assert "generation_kwargs (baseline" in capsys.readouterr().err
