"""harness_ext/core/errors.py: how a command ends. A SIGTERM runs the same clean-up as Ctrl-C
and exits 143; a bad option ends in one line ``cpi <command>: error: <what> (<fix>)``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.errors import CPIError
from cpi_bench.harness_ext.evaluation import guards
from cpi_bench.harness_ext.evaluation.sweep import _batch_size
from tests.helpers.cli_errors import one_error_line


def test_sigterm_runs_the_same_clean_up_as_ctrl_c(tmp_path: Path) -> None:
    """A SIGTERM'd command runs its ``finally`` blocks (where cpi train marks its manifest
    failed) and exits 143 with one line, instead of dying where it stood."""
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


def test_sweep_option_errors_name_a_fix(tmp_path: Path, capsys) -> None:
    with pytest.raises(CPIError, match=r"--batch_size '0' is invalid \(use a positive"):
        _batch_size("0")
    with pytest.raises(CPIError, match="--use_cache .*not writable"):
        (tmp_path / "f").write_text("x")
        guards.check_cache_dir(str(tmp_path / "f" / "cache"))
    assert cli.main(["sweep", str(tmp_path), "--threads", "0"]) == 2
    assert "(give a whole number >= 1)" in one_error_line(capsys.readouterr().err, "sweep")


def test_theory_unknown_option_is_one_line(tmp_path: Path, capsys) -> None:
    assert cli.main(["theory", "--out", str(tmp_path), "--no_such_flag=1"]) == 2
    assert "--no_such_flag=1" in one_error_line(capsys.readouterr().err, "theory")
