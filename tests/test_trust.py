"""Issue "numbers you can trust": provenance-keyed reuse, never mixing runs, never deleting what
is not ours, strict checkpoint discovery. Each test fails if the guarantee it names breaks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.errors import CPIError
from cpi_bench.harness_ext.core.files import (
    OWNER_MARKER,
    claim_output_dir,
    exclusive_lock,
    file_sha256,
    remove_stale_tmp,
)
from cpi_bench.harness_ext.core.run_folder import list_checkpoints, resolve_base
from cpi_bench.harness_ext.evaluation.provenance import provenance_mismatch

TASKS = ["--tasks", "cpi_capitals_choice", "--limit", "3", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.tiny_run import build_tiny_run

    return build_tiny_run(tmp_path_factory.mktemp("trust") / "run", steps=(2, 4))


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


# ----------------------------------------------------------------------------- provenance


def test_changed_weights_data_and_version_each_reevaluate_with_a_reason(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = _copy(tiny_run, tmp_path / "run")
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
    run = _copy(tiny_run, tmp_path / "run")
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


def test_file_hash_is_of_the_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"x" * 9 + b"y")
    assert file_sha256(a) != file_sha256(b)
    assert file_sha256(a) == file_sha256(a)


def test_file_hash_cache_is_one_small_entry_per_file_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cpi_bench.harness_ext.core import files

    monkeypatch.setenv("CPI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(files, "_memo", {})
    paths = [tmp_path / f"w{i}.bin" for i in range(3)]
    for i, path in enumerate(paths):
        path.write_bytes(bytes([i]) * 100)
    digests = [file_sha256(path) for path in paths]
    entries = sorted((tmp_path / "cache" / "file_hashes").rglob("*"))
    entries = [e for e in entries if e.is_file()]
    assert sorted(e.read_text() for e in entries) == sorted(digests)  # one entry per file
    # a new process (empty memo) takes the digest from the entry, without reading the file
    monkeypatch.setattr(files, "_memo", {})
    real_open, watched = open, {str(path) for path in paths}

    def no_weight_reads(file, *args, **kwargs):
        assert str(file) not in watched, f"read {file} again"
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_weight_reads)
    assert [file_sha256(path) for path in paths] == digests
    monkeypatch.setattr("builtins.open", real_open)
    # a damaged entry is recomputed, not trusted
    entries[0].write_text("garbage")
    monkeypatch.setattr(files, "_memo", {})
    assert sorted(file_sha256(path) for path in paths) == sorted(digests)
    assert sorted(e.read_text() for e in entries) == sorted(digests)


def test_relative_base_in_manifest_is_relative_to_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "runs" / "r1"
    (run.parent / "base").mkdir(parents=True)
    run.mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base").mkdir()  # a decoy with the same relative name under the cwd
    assert resolve_base("../base", run) == str((run.parent / "base").resolve())
    assert resolve_base("base", run) == "base"  # not under the run folder: left as a hub id


# ----------------------------------------------------------------------------- ownership


def test_claim_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not delete")
    with pytest.raises(CPIError, match="not created by cpi"):
        with claim_output_dir(foreign, "demo"):
            pass
    assert (foreign / "thesis.tex").read_text() == "do not delete"
    with claim_output_dir(tmp_path / "new", "demo") as fresh:
        assert (fresh / OWNER_MARKER).is_file()
    with claim_output_dir(fresh, "demo") as again:  # ours: accepted again
        assert again == fresh


def test_demo_refuses_a_user_folder_before_any_work(tmp_path: Path, capsys) -> None:
    foreign = tmp_path / "results"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert cli.main(["demo", "--out", str(foreign), "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cpi demo: error:")
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_stale_tmp_of_a_live_writer_is_kept(tmp_path: Path) -> None:
    live = tmp_path / f".step-2.json.{os.getpid() + 0}.1.tmp"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        other_live = tmp_path / f".step-4.json.{proc.pid}.1.tmp"
        dead = tmp_path / ".step-6.json.999999999.1.tmp"
        for f in (live, other_live, dead):
            f.write_text("{}")
        remove_stale_tmp(tmp_path)
        assert other_live.exists() and live.exists() and not dead.exists()
    finally:
        proc.kill()
        proc.wait()


def test_a_second_sweep_on_the_same_run_is_refused(tmp_path: Path) -> None:
    lock = tmp_path / ".cpi_sweep.lock"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from cpi_bench.harness_ext.core.files import exclusive_lock\n"
            f"with exclusive_lock({str(lock)!r}, 'run'):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(CPIError, match=f"locked by pid {child.pid}"):
            with exclusive_lock(lock, "run"):
                pass
    finally:
        child.kill()
        child.wait()
    deadline = time.time() + 10
    while True:  # the OS released the dead holder's lock: no stale lock
        try:
            with exclusive_lock(lock, "run"):
                break
        except CPIError:
            assert time.time() < deadline
            time.sleep(0.1)


# ----------------------------------------------------------------------------- checkpoints


def test_incomplete_checkpoints_are_skipped_and_odd_names_refused(
    tiny_run: Path, tmp_path: Path
) -> None:
    run = _copy(tiny_run, tmp_path / "run")
    (run / "checkpoint-4" / "config.json").unlink()
    found, warnings = list_checkpoints(run)
    assert [t.step for t in found] == [2]
    assert warnings == ["skipping checkpoint-4: incomplete checkpoint (no config.json)"]
    shutil.copytree(run / "checkpoint-2", run / "checkpoint-02")
    with pytest.raises(CPIError, match="checkpoint-02: not a checkpoint-<step> name"):
        list_checkpoints(run)


def test_a_checkpoint_with_missing_tensors_fails_loudly(
    tiny_run: Path, tmp_path: Path, capsys
) -> None:
    from safetensors.torch import load_file, save_file

    run = _copy(tiny_run, tmp_path / "run")
    weights = next((run / "checkpoint-2").glob("*.safetensors"))
    tensors = load_file(weights)
    tensors.pop(sorted(k for k in tensors if "layers.1." in k)[0])
    save_file(tensors, weights, metadata={"format": "pt"})
    assert cli.main(["sweep", str(run), *TASKS]) == 1  # the others still run
    err = capsys.readouterr().err
    assert "FAILED step 2" in err and "1 missing tensor(s)" in err
    assert not (run / "eval" / "step-2.json").exists()
