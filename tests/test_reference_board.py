"""``benchmarks/reference_board.py``: task discovery (fast) and the whole board end to end on a
tiny random model at limit 2 (slow): three lm_eval rows, COMMANDS.md, board.md/html."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "reference_board.py"


def _module():
    spec = importlib.util.spec_from_file_location("reference_board", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_discovers_every_cpi_task_whose_data_is_offline(tmp_path: Path, fixture_data_dir) -> None:
    board = _module()
    every, skipped = board.discover_tasks(REPO / "tasks", fixture_data_dir)
    assert not skipped  # the fixtures hold every public file name
    for family in ("", "_instructed", "_choice", "_closedbook"):
        assert f"cpi_capitals{family}" in every
    assert {"cpi_nqswap", "cpi_conflictqa_chatgpt", "cpi_quotes_science"} <= set(every)
    assert "cpi" not in every and "cpisuite" not in every
    assert not [t for t in every if not t.startswith("cpi_")]

    only = tmp_path / "data"
    only.mkdir()
    (only / "country_capitals_only.json").write_text("[]")
    found, skipped = board.discover_tasks(REPO / "tasks", only)
    assert found == [
        "cpi_capitals",
        "cpi_capitals_choice",
        "cpi_capitals_closedbook",
        "cpi_capitals_instructed",
    ]
    assert "famous_biographies.jsonl is not in" in skipped["cpi_bio"]


@pytest.mark.slow
def test_reference_board_end_to_end_on_a_tiny_model(
    tmp_path: Path, tiny_llama: Path, fixture_data_dir: Path, offline_env
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    for name in ("smollm2-135m-instruct", "gemma-3-270m"):
        (models / name).symlink_to(tiny_llama, target_is_directory=True)
    out = tmp_path / "results"
    command = [
        sys.executable, str(SCRIPT), "--models-dir", str(models), "--data-dir",
        str(fixture_data_dir), "--out", str(out), "--limit", "2",
        "--tasks", "cpi_capitals,cpi_capitals_choice", "--timeout", "400",
    ]  # fmt: skip
    env = offline_env(OMP_NUM_THREADS="1")
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = ["smollm2-135m-instruct", "smollm2-135m-instruct+chat-template", "gemma-3-270m"]
    for row in rows:
        (results,) = (out / row).glob("results_*.json")
        data = json.loads(results.read_text())
        assert set(data["results"]) == {"cpi_capitals", "cpi_capitals_choice"}
        assert data["n-samples"]["cpi_capitals"]["effective"] == 2
        assert data["model_name"] in ("smollm2-135m-instruct", "gemma-3-270m")
        assert (data["chat_template_sha"] is not None) == row.endswith("chat-template")
    commands = (out / "COMMANDS.md").read_text()
    assert commands.count("lm_eval --model hf --model_args pretrained=") == 3
    assert "--apply_chat_template" in commands and "cpi compare" in commands
    assert "Model fingerprints" in commands and "country_capitals_only.json" in commands
    board = (out / "board.md").read_text()
    lines = [ln for ln in board.splitlines() if ln.startswith("| ") and "rank" not in ln]
    assert len(lines) == 3 and "chat_template=on" in board and "chat_template=off" in board
    html = (out / "board.html").read_text()
    assert html.count('<td class="text model">') == 3

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("reusing") == 3
    assert "(not recorded)" not in (out / "COMMANDS.md").read_text()  # times kept on reuse
