"""One test per fix found by ``benchmarks/adversarial.py`` (issue "Numbers you can trust").

Each test fails without its fix: a SIGTERM that left a run "running", reports that wrote over
their own input or died on an unwritable path, a table that printed a NaN, a folder of runs
taken for a run, a sweep that overwrote a user's file, evaluated on the wrong or a broken
base, or kept a stale row for a checkpoint whose weights changed.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.errors import CPIError
from cpi_bench.harness_ext.core.files import check_output_file
from cpi_bench.harness_ext.core.run_folder import Target, read_manifest
from cpi_bench.harness_ext.evaluation import guards
from cpi_bench.harness_ext.evaluation.sweep import _batch_size
from cpi_bench.harness_ext.models.source import model_fingerprint
from cpi_bench.harness_ext.reports.inversion import build_inversion, load_inversion
from cpi_bench.harness_ext.reports.run_report import write as write_run_reports

TASKS = ["--tasks", "cpi_capitals_choice", "--limit", "3", "--device", "cpu", "--threads", "1"]


def _one_error_line(err: str, command: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"cpi {command}: error: ")
    assert "CPI_DEBUG" not in lines[0]  # not the catch-all of an uncaught exception
    return lines[0]


def _results(values: dict[str, float]) -> dict:
    return {
        "results": {t: {"cf_acc,none": v, "cf_acc_stderr,none": 0.05} for t, v in values.items()},
        "config": {"model_args": "pretrained=m"},
    }


# ----------------------------------------------------------------------------- signals


def test_sigterm_runs_the_same_clean_up_as_ctrl_c(tmp_path: Path) -> None:
    """A SIGTERM'd command runs its ``finally`` blocks (where cpi train marks its manifest
    failed) and exits 143 with one line; before the fix the process just died."""
    marker = tmp_path / "cleaned-up"
    script = textwrap.dedent(
        f"""
        import os, signal, sys, time
        from cpi_bench.harness_ext.core.errors import run_entry

        def entry(argv):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)
            finally:
                open({str(marker)!r}, "w").write("done")

        sys.exit(run_entry("train", entry, []))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 143
    assert marker.read_text() == "done"
    assert proc.stderr.strip().startswith("cpi train: terminated")


# ----------------------------------------------------------------------------- report outputs


def test_gate_refuses_to_write_its_report_over_the_baseline(tmp_path: Path, capsys) -> None:
    base = tmp_path / "base.json"
    base.write_text(json.dumps(_results({"cpi_capitals": 0.5})))
    cand = tmp_path / "cand.json"
    cand.write_text(json.dumps(_results({"cpi_capitals": 0.5})))
    before = base.read_bytes()
    argv = ["gate", "--baseline", str(base), "--candidate", str(cand), "--max-drop", "0.05"]
    assert cli.main([*argv, "--json", str(base)]) == 2
    out, err = capsys.readouterr()
    assert "--json" in _one_error_line(err, "gate") and out == ""
    assert base.read_bytes() == before


def test_report_outputs_under_a_file_are_one_line_errors(tmp_path: Path, capsys) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    res = tmp_path / "r.json"
    res.write_text(json.dumps(_results({"cpi_capitals": 0.5})))
    assert cli.main(["compare", str(res), "--output", str(plain / "board.md")]) == 2
    assert "--output" in _one_error_line(capsys.readouterr().err, "compare")
    with pytest.raises(CPIError, match="--json .*cannot write there"):
        check_output_file(plain / "gate.json", "--json")


def test_table_refuses_to_overwrite_its_input(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    write_run_reports(run, build_inversion({}, id_tasks=[]))
    before = (run / "inversion.json").read_bytes()
    assert cli.main(["table", str(run), "--output", str(run / "inversion.json")]) == 2
    assert "input file" in _one_error_line(capsys.readouterr().err, "table")
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
    line = _one_error_line(capsys.readouterr().err, "table")
    assert "step 2: task cpi_capitals: cf_acc is NaN" in line


def test_compare_missing_path_says_how_to_fix_it(tmp_path: Path, capsys) -> None:
    assert cli.main(["compare", str(tmp_path / "nope.json")]) == 2
    assert "(check the path)" in _one_error_line(capsys.readouterr().err, "compare")


# ----------------------------------------------------------------------------- run folders


def test_a_folder_of_runs_is_refused_with_their_names(tmp_path: Path) -> None:
    for name in ("alpha", "beta", "nested/gamma"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "cpi_run.json").write_text('{"base_model": "x"}')
    with pytest.raises(CPIError, match=r"holds 3 run folder\(s\): alpha, beta, nested/gamma"):
        read_manifest(tmp_path / "runs")
    with pytest.raises(CPIError, match="alpha"):  # also with --base_model
        read_manifest(tmp_path / "runs", base_override="some/model")


def _fake_model(folder: Path, weights: bytes, tokenizer: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(weights)
    if tokenizer:
        (folder / "tokenizer.json").write_text("{}")
    return folder


def test_sweep_checks_the_base_model_before_loading_anything(tmp_path: Path) -> None:
    targets = [Target(0, "base", "unused", "base")]
    with pytest.raises(CPIError, match="src: model path .*gone does not exist"):
        guards.check_base_model(str(tmp_path / "gone"), "src", targets)
    broken = _fake_model(tmp_path / "broken", b"w")
    (broken / "config.json").write_text("{ not json")
    with pytest.raises(CPIError, match=r"config\.json is not readable JSON"):
        guards.check_base_model(str(broken), "src", targets)
    bare = _fake_model(tmp_path / "bare", b"w", tokenizer=False)
    with pytest.raises(CPIError, match="has no tokenizer files"):
        guards.check_base_model(str(bare), "src", targets)
    guards.check_base_model(str(bare), "src", [])  # --skip_base, no adapter: not needed


def test_a_base_that_changed_since_training_is_refused(tmp_path: Path) -> None:
    base = _fake_model(tmp_path / "base", b"trained-on")
    manifest = {
        "base_model": str(base),
        "base_fingerprint": model_fingerprint(base, weights_only=True),
    }
    guards.check_base_fingerprint(tmp_path, manifest, str(base))
    (base / "model.safetensors").write_bytes(b"other-one")  # same size
    with pytest.raises(CPIError, match="other weights than the run was trained from"):
        guards.check_base_fingerprint(tmp_path, manifest, str(base))


def test_an_adapter_of_another_base_is_refused(tmp_path: Path) -> None:
    base = _fake_model(tmp_path / "base", b"base-weights")
    copy = tmp_path / "copy-of-base"
    shutil.copytree(base, copy)
    other = _fake_model(tmp_path / "other", b"other-weight")
    adapter = tmp_path / "run" / "checkpoint-2"
    adapter.mkdir(parents=True)
    target = Target(2, "checkpoint-2", str(adapter), "adapter")
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(copy)}))
    guards.check_adapters_match_base([target], str(base))  # a copy of the base is fine
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(other)})
    )
    with pytest.raises(CPIError, match="an adapter of another base model"):
        guards.check_adapters_match_base([target], str(base))


def test_sweep_never_writes_over_a_users_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    targets = [Target(0, "base", "b", "base"), Target(2, "checkpoint-2", "c", "full")]
    write_run_reports(run, build_inversion({}, id_tasks=[]))  # our own renderings: fine
    guards.check_outputs_are_ours(run, targets)
    (run / "eval").mkdir()
    (run / "eval" / "step-2.json").write_text('{"results": {"mine": {}}}')
    with pytest.raises(CPIError, match=r"step-2\.json was not written by cpi sweep"):
        guards.check_outputs_are_ours(run, targets)
    (run / "eval" / "step-2.json").unlink()
    (run / "inversion.md").write_text("# my notes\n")
    with pytest.raises(CPIError, match=r"inversion\.md was not written by cpi sweep"):
        guards.check_outputs_are_ours(run, targets)


def test_sweep_option_errors_name_a_fix(tmp_path: Path, capsys) -> None:
    with pytest.raises(CPIError, match=r"--batch_size '0' is invalid \(use a positive"):
        _batch_size("0")
    with pytest.raises(CPIError, match="--use_cache .*not writable"):
        (tmp_path / "f").write_text("x")
        guards.check_cache_dir(str(tmp_path / "f" / "cache"))
    assert cli.main(["sweep", str(tmp_path), "--threads", "0"]) == 2
    assert "(give a whole number >= 1)" in _one_error_line(capsys.readouterr().err, "sweep")


def test_theory_unknown_option_is_one_line(tmp_path: Path, capsys) -> None:
    assert cli.main(["theory", "--out", str(tmp_path), "--no_such_flag=1"]) == 2
    assert "--no_such_flag=1" in _one_error_line(capsys.readouterr().err, "theory")


# ----------------------------------------------------------------------------- stale rows


@pytest.fixture(scope="module")
def swept_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.tiny_run import build_tiny_run

    run = build_tiny_run(tmp_path_factory.mktemp("adv") / "run", steps=(2, 4))
    assert cli.main(["sweep", str(run), *TASKS]) == 0
    return run


def test_a_failed_checkpoint_leaves_no_stale_row_or_file(
    swept_run: Path, tmp_path: Path, capsys
) -> None:
    """checkpoint-4's weights change and now fail to load: its old numbers must go from
    inversion.json and eval/ (before the fix the more complete old table was kept)."""
    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    shutil.copytree(swept_run, run)
    weights = run / "checkpoint-4" / "model.safetensors"
    tensors = load_file(str(weights))
    tensors.pop(sorted(k for k in tensors if "layers.1." in k)[0])
    save_file(tensors, str(weights), metadata={"format": "pt"})
    assert cli.main(["sweep", str(run), *TASKS]) == 1
    assert "FAILED step 4" in capsys.readouterr().err
    assert [r["step"] for r in load_inversion(run)["rows"]] == [0, 2]
    assert not (run / "eval" / "step-4.json").exists()
    assert (run / "eval" / "step-2.json").exists()


@pytest.mark.parametrize("bad", [["Porto"], True, 7, {"city": "Porto"}])
def test_task_data_answer_must_be_text(tmp_path, monkeypatch, bad):
    """str() of a list/bool would silently become the answer "['Porto']" / "True"."""
    from cpi_bench.harness_ext.core.errors import CPIError
    from cpi_bench.tasks.sources import SOURCES, load_rows

    rows = [{"context": "c", "question": "q", "answer": bad, "memory_answer": "Lisbon"}]
    path = tmp_path / "country_capitals_only.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(CPIError, match="row 1: field 'answer' is a"):
        load_rows(SOURCES["capitals"], path)


def test_task_data_not_utf8_names_the_file(tmp_path):
    from cpi_bench.harness_ext.core.errors import CPIError
    from cpi_bench.tasks.sources import SOURCES, load_rows

    path = tmp_path / "country_capitals_only.json"
    path.write_bytes(b'[{"context": "\xff"}]')
    with pytest.raises(CPIError, match=r"country_capitals_only.json: not UTF-8 text"):
        load_rows(SOURCES["capitals"], path)


def test_tiny_model_never_writes_into_a_user_folder(tmp_path, capsys):
    from cpi_bench.harness_ext import cli

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    assert cli.main(["tiny-model", "--output_dir", str(mine)]) == 2
    assert (mine / "config.json").read_text() == '{"mine": true}'
    assert "not created by cpi" in capsys.readouterr().err
