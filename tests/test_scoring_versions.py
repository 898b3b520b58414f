"""Scoring changes change numbers: the tasks it scores carry a bumped ``metadata.version``,
and a swept result recorded under an older version is evaluated again, with the reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.constants import EVAL_DIR

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"
# the templates scored by tasks/scoring/'s judge (3.0: the asserted answer, reason,
# cf_contains) and the one scored by its param_acc (closed-book acc)
SCORED = {"_generate_yaml": 3.0, "cpi.yaml": 3.0, "cpisuite.yaml": 3.0}
SCORED_CLOSEDBOOK = {"closedbook/_closedbook_yaml": 2.0, "synth/cpisynth_cf.yaml": 3.0}
UNCHANGED = {"_choice_yaml": 2.0, "synth/_template_yaml": 2.0}  # log-likelihoods, score_answer


def _version(name: str) -> float:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: None)
    return yaml.load((TASKS_DIR / name).read_text(), Loader=Loader)["metadata"]["version"]


@pytest.mark.parametrize(
    ("name", "version"), sorted({**SCORED, **SCORED_CLOSEDBOOK, **UNCHANGED}.items())
)
def test_versions_follow_what_changed(name: str, version: float) -> None:
    assert _version(name) == version


def test_a_result_of_an_older_scoring_version_is_evaluated_again(
    tmp_path: Path, fixture_data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import torch

    from tests.helpers.tiny_run import build_tiny_run

    monkeypatch.setenv("CPI_DATA_DIR", str(fixture_data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = build_tiny_run(tmp_path / "run", steps=(2,))
        args = ["--tasks", "cpi_capitals", "--limit", "3", "--device", "cpu"]
        assert cli.main(["sweep", str(run), *args]) == 0
        step0 = run / EVAL_DIR / "step-0.json"
        data = json.loads(step0.read_text())
        recorded = data["cpi"]["provenance"]["tasks"]["cpi_capitals"]
        assert recorded["version"] == 3.0
        recorded["version"] = 2.0  # as a sweep before the scoring change recorded it
        step0.write_text(json.dumps(data))
        capsys.readouterr()
        assert cli.main(["sweep", str(run), *args, "--dry-run"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "step-0: re-evaluating, cpi_capitals: task version changed" in out
    assert "step-2: reuse" in out
    shutil.rmtree(run)
