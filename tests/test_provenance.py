"""harness_ext/evaluation/provenance.py: a sweep reuses a result only when it was made from the
same weights (by content), data, task versions and settings, and says why it evaluates again."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.evaluation.provenance import provenance_mismatch

TASKS = ["--tasks", "cpi_capitals_choice", "--limit", "3", "--device", "cpu"]


def test_changed_weights_data_and_version_each_reevaluate_with_a_reason(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = shutil.copytree(tiny_run, tmp_path / "run")
    assert cli.main(["sweep", str(run), *TASKS]) == 0
    capsys.readouterr()
    # same weights, same everything: every step reused
    assert cli.main(["sweep", str(run), *TASKS, "--dry-run"]) == 0
    assert capsys.readouterr().out.count("reuse") == 3
    # weights: same size and mtime, other bytes (a path/size/mtime key would miss this)
    weights = next((run / "checkpoint-4").glob("*.safetensors"))
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cli.main(["sweep", str(run), *TASKS, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "step-4: re-evaluating, weights changed" in out and "step-2: reuse" in out


def test_edited_data_file_reevaluates(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from tests.helpers.public_fixtures import write_fixture_data

    data_dir = write_fixture_data(tmp_path / "data")
    monkeypatch.setenv("CPI_DATA_DIR", str(data_dir))
    run = shutil.copytree(tiny_run, tmp_path / "run")
    assert cli.main(["sweep", str(run), *TASKS]) == 0
    capitals = next(data_dir.rglob("country_capitals_only.json"))
    rows = json.loads(capitals.read_text())
    rows[0]["answer"] = rows[0]["answer"] + "x"
    capitals.write_text(json.dumps(rows))
    capsys.readouterr()
    assert cli.main(["sweep", str(run), *TASKS, "--dry-run"]) == 0
    assert "cpi_capitals_choice: data file changed" in capsys.readouterr().out


def test_provenance_mismatch_names_the_change() -> None:
    base = {"model": {"weights": "a"}, "tasks": {"t": {"version": 1.0}}, "settings": {"limit": 2}}
    assert provenance_mismatch(base, json.loads(json.dumps(base))) is None
    assert provenance_mismatch(None, base) == "made before results recorded their provenance"
    changed = {**base, "tasks": {"t": {"version": 2.0}}}
    assert provenance_mismatch(base, changed) == "t: task version changed"
    assert provenance_mismatch(base, {**base, "settings": {"limit": 3}}) == "limit changed (2 -> 3)"
