"""harness_ext/core/files.py: output-folder claims and their ownership marker (exclusive,
shared and atomic), the lock of a run, stale temporary files of dead writers, content hashes
and their cache. Each test fails when the promise it names breaks."""

from __future__ import annotations

import multiprocessing
import os
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
from tests.helpers.small_train import train_argv

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


def _user_folder(path: Path) -> dict[str, bytes]:
    path.mkdir(parents=True)
    (path / "theory.json").write_text('{"mine": true}\n')
    (path / "notes.txt").write_text("my notes\n")
    return {p.name: p.read_bytes() for p in path.iterdir()}


@pytest.mark.parametrize(
    "argv",
    [
        ["theory", "--out", "{dir}", "--steps", "5"],
        ["tiny-model", "--output_dir", "{dir}"],
        ["demo", "--out", "{dir}", "--quick"],
        ["models", "fetch", "--out", "{parent}", "--model", "smollm2-135m-instruct"],
    ],
    ids=["theory", "tiny-model", "demo", "models fetch"],
)
def test_every_command_refuses_a_folder_it_did_not_create(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The one claim: a non-empty folder without cpi's marker is refused in one line, and
    not one byte in it changes."""
    folder = tmp_path / "smollm2-135m-instruct"
    before = _user_folder(folder)
    args = [a.format(dir=folder, parent=tmp_path) for a in argv]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not created by cpi" in err[0], err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_demo_refuses_a_user_folder_before_any_work(tmp_path: Path, capsys) -> None:
    foreign = tmp_path / "results"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert cli.main(["demo", "--out", str(foreign), "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cpi demo: error:")
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_tiny_model_never_writes_into_a_user_folder(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    assert cli.main(["tiny-model", "--output_dir", str(mine)]) == 2
    assert (mine / "config.json").read_text() == '{"mine": true}'
    assert "not created by cpi" in capsys.readouterr().err


def test_theory_writes_into_its_own_folder_and_marks_it(tmp_path: Path) -> None:
    out = tmp_path / "theory"
    assert cli.main(["theory", "--out", str(out), "--steps", "5"]) == 0
    assert (out / OWNER_MARKER).is_file() and (out / "theory.json").is_file()
    assert cli.main(["theory", "--out", str(out), "--steps", "5"]) == 0  # its own: rerun


# ----------------------------------------------------------------------------- atomic claims


def _claim_and_hold(folder: str, barrier, results, hold: float) -> None:
    barrier.wait()
    try:
        with claim_output_dir(folder, "test", "--out"):
            results.put("won")
            time.sleep(hold)
    except CPIError as err:
        results.put(str(err))


def test_of_several_claims_at_one_moment_exactly_one_wins(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    folder = str(tmp_path / "new")
    procs = [
        ctx.Process(target=_claim_and_hold, args=(folder, barrier, results, 2.0)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert got.count("won") == 1, got
    assert all("in use by cpi test (pid" in g for g in got if g != "won"), got


def test_shared_claims_refuse_only_an_exclusive_holder(tmp_path: Path) -> None:
    """Sweeps share an --out folder (their steps have their own locks); a command that holds
    a folder exclusively excludes them, and they exclude it."""
    out = tmp_path / "out"
    with claim_output_dir(out, "sweep", "--out", shared=True):
        with claim_output_dir(out, "sweep", "--out", shared=True):
            pass
        with pytest.raises(CPIError, match="in use by"):
            with claim_output_dir(out, "theory", "--out"):
                pass
    with claim_output_dir(out, "theory", "--out"):
        with pytest.raises(CPIError, match="in use by cpi theory"):
            with claim_output_dir(out, "sweep", "--out", shared=True):
                pass


def test_cpi_train_into_a_folder_another_command_holds_exits_2(
    small_llama: Path, alpaca_file: Path, tmp_path: Path, offline_env
) -> None:
    """The claim holds for the whole command: a cpi train started meanwhile on the same
    --output_dir exits 2 naming it, and writes nothing there."""
    out = tmp_path / "run"
    with claim_output_dir(out, "train", "--output_dir"):
        res = subprocess.run(
            [sys.executable, "-m", "cpi_bench.harness_ext.cli", "train"]
            + train_argv(small_llama, alpaca_file, out),
            capture_output=True,
            text=True,
            env=offline_env(),
            timeout=300,
        )
    assert res.returncode == 2, res.stderr[-500:]
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("cpi train: error:")]
    assert len(err) == 1 and str(out) in err[0] and "in use by cpi train" in err[0]
    assert sorted(p.name for p in out.iterdir()) == [OWNER_MARKER]


# ----------------------------------------------------------------------------- run locks


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


# ----------------------------------------------------------------------------- temporary files


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


# ----------------------------------------------------------------------------- content hashes


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
