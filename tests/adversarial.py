"""Adversarial matrix for the "Numbers you can trust" promises of cpi-bench.

    python benchmarks/adversarial.py                    # the whole matrix (about 10 minutes)
    python benchmarks/adversarial.py --only 'gate|compare'
    python benchmarks/adversarial.py --list             # case names and classes
    python benchmarks/adversarial.py --jobs 2 --json report.json --keep

Every case builds its inputs in its own folder under one temporary folder, runs the real
command line (``python -m cpi_bench.harness_ext.cli ...`` or ``lm_eval ...``) as a subprocess
in its own process group with a timeout, and classifies what happened by an explicit check:

* ``ok``: the promise held;
* ``traceback``: bad input was not reported as promised: a traceback, the catch-all message of
  an uncaught exception, more than one stderr line, the wrong exit status, or a message that
  does not name the file/field/flag or give a fix;
* ``silent-wrong``: a command printed or stored a wrong number with exit 0 (a reused result of
  other weights/data/settings, means over different task sets, bad input accepted, a manifest
  that says "running" for a dead run after a catchable signal);
* ``data-loss``: a file the command did not create was changed or removed (byte comparison);
* ``hang``: the command ran past its timeout (its whole process group is killed).

The classes of cases: ``provenance`` (stored results reused only when made from the same
weights, data and settings), ``isolation`` (never mix runs, never delete user files),
``silent`` (wrong numbers), ``errors`` (one-line errors) and ``interrupt`` (kill and resume).
The table at the end lists every case and the totals per outcome; the exit status is 0 when
every case is ok, else 1.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/helpers, shared with the tests

OK, TRACEBACK, SILENT, LOSS, HANG = "ok", "traceback", "silent-wrong", "data-loss", "hang"
OUTCOMES = (OK, TRACEBACK, SILENT, LOSS, HANG)
_SEVERITY = {OK: 0, TRACEBACK: 1, SILENT: 2, LOSS: 3, HANG: 4}

PY = sys.executable
CLI = [PY, "-m", "cpi_bench.harness_ext.cli"]
TASK = "cpi_capitals_choice"  # a two-choice task: cf_pref differs between tiny checkpoints
SWEEP = ["--tasks", TASK, "--limit", "3", "--device", "cpu", "--threads", "1"]
T_FAST, T_SWEEP, T_TRAIN, T_LM_EVAL = 90, 240, 300, 300  # seconds before a run is a hang
CATCH_ALL = "rerun with CPI_DEBUG=1 for the traceback"  # run_entry's uncaught-exception text
_BAR = re.compile(r"(\d+%\|)|(it/s\])|(s/it\])|(examples/s\])|(model/s)")


# ----------------------------------------------------------------------------- processes


@dataclass
class Result:
    """One finished (or killed) subprocess."""

    cmd: list[str]
    rc: int | None  # None: killed at the timeout
    out: str
    err: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.rc is None

    def err_lines(self) -> list[str]:
        """Non-empty stderr lines, progress bars dropped (their ``\\r`` frames too)."""
        lines = []
        for raw in self.err.splitlines():
            line = raw.split("\r")[-1].strip()
            if line and not _BAR.search(line):
                lines.append(line)
        return lines

    def first_line(self) -> str:
        lines = self.err_lines()
        return lines[0] if lines else (self.out.strip().splitlines() or [""])[0]


def run_proc(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> Result:
    """Run ``cmd`` in a new session; on timeout kill its whole process group."""
    started = time.time()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        rc = None
    return Result(cmd, rc, out, err, time.time() - started)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the process group ``proc`` leads (it was started with a new session)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def base_env(root: Path, data_dir: Path) -> dict[str, str]:
    """Offline, single-threaded, private caches."""
    env = dict(os.environ)
    env.update(
        {
            "CPI_DATA_DIR": str(data_dir),
            "CPI_CACHE_DIR": str(root / "cpi-cache"),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_CACHE": str(root / "hf-datasets"),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONHASHSEED": "0",
            "MPLBACKEND": "Agg",
        }
    )
    for key in ("CPI_DEBUG", "CPI_TRACEBACK", "CPI_AUTOLOAD"):
        env.pop(key, None)
    return env


# ----------------------------------------------------------------------------- verdicts


@dataclass
class Verdict:
    outcome: str
    detail: str = ""


def worst(*verdicts: Verdict | None) -> Verdict:
    """The most severe of several checks (None = nothing to say)."""
    found = [v for v in verdicts if v is not None]
    return max(found, key=lambda v: _SEVERITY[v.outcome]) if found else Verdict(OK)


def crashed(res: Result) -> Verdict | None:
    """hang / traceback / catch-all: a run that did not end the way any promise allows."""
    if res.timed_out:
        return Verdict(HANG, f"no exit after {res.seconds:.0f} s")
    if "Traceback (most recent call last)" in res.err:
        last = [ln for ln in res.err.splitlines() if ln.strip()][-1]
        return Verdict(TRACEBACK, f"traceback: {last.strip()[:160]}")
    if CATCH_ALL in res.err:
        return Verdict(TRACEBACK, f"uncaught exception: {res.first_line()[:160]}")
    return None


def one_line_error(
    res: Result, command: str, must: str | None = None, rc: int = 2, extra_ok: str = ""
) -> Verdict:
    """Exit ``rc`` with exactly one ``cpi <command>: error: <what> (<fix>)`` line on stderr,
    matching ``must`` (what it names). ``extra_ok``: a regex of other lines that may appear
    (the trainer's progress log)."""
    bad = crashed(res)
    if bad:
        return bad
    if res.rc == 0:
        return Verdict(SILENT, "bad input accepted with exit 0")
    head = f"cpi {command}: error: "
    lines = res.err_lines()
    errors = [ln for ln in lines if ln.startswith(head)]
    others = [
        ln for ln in lines if not ln.startswith(head) and not (extra_ok and re.search(extra_ok, ln))
    ]
    problems = []
    if res.rc != rc:
        problems.append(f"exit {res.rc}, expected {rc}")
    if len(errors) != 1:
        problems.append(f"{len(errors)} error lines")
    if others:
        problems.append(f"{len(others)} other stderr line(s): {others[0][:80]!r}")
    message = errors[0][len(head) :] if errors else ""
    if must and not re.search(must, message, re.IGNORECASE):
        problems.append(f"message does not name /{must}/")
    if errors and not re.search(r"\(.+\)|;", message):
        problems.append("no fix given")
    if problems:
        return Verdict(TRACEBACK, "; ".join(problems))
    return Verdict(OK)


def ran_ok(res: Result, rc: int = 0) -> Verdict | None:
    """None when the command ended with ``rc`` and no traceback, else why not."""
    bad = crashed(res)
    if bad:
        return bad
    if res.rc != rc:
        return Verdict(TRACEBACK, f"exit {res.rc}, expected {rc}: {res.first_line()[:140]}")
    return None


# ----------------------------------------------------------------------------- files


TOOL_FILES = {".cpi_sweep.lock"}  # the sweep's own lock file: not a user file


def snapshot(root: Path) -> dict[str, str]:
    """{relative path: sha256 of the bytes, or "<dir>"} for everything under ``root``."""
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    out = {}
    for p in sorted(root.rglob("*")):
        if p.name in TOOL_FILES:
            continue
        rel = str(p.relative_to(root))
        out[rel] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def lost_files(before: dict[str, str], root: Path) -> Verdict | None:
    """data-loss when a file of ``before`` is gone or has other bytes now."""
    after = snapshot(root) if root.exists() else {}
    changed = [p for p, h in before.items() if after.get(p) != h]
    if changed:
        return Verdict(LOSS, f"{len(changed)} user file(s) changed or removed: {changed[:3]}")
    return None


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    return path


def set_manifest(run: Path, **changes: Any) -> None:
    path = run / "cpi_run.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    write_json(path, manifest)


def replace_keep_stat(dst: Path, data: bytes) -> None:
    """Overwrite ``dst`` in place, then give it back its mtime (a size/mtime key misses it)."""
    st = dst.stat()
    dst.write_bytes(data)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def rows_of(run: Path) -> dict[int, dict[str, Any]]:
    """{step: per-task metrics} from ``run/inversion.json``."""
    data = json.loads((run / "inversion.json").read_text())
    return {r["step"]: r["tasks"] for r in data["rows"]}


def differ(got: Any, want: Any, tol: float = 1e-9, where: str = "") -> str | None:
    """Where two JSON-like values differ beyond ``tol`` (None when equal)."""
    if isinstance(want, dict) and isinstance(got, dict):
        for key in sorted(set(want) | set(got)):
            diff = differ(got.get(key), want.get(key), tol, f"{where}.{key}")
            if diff:
                return diff
        return None
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        if math.isclose(got, want, rel_tol=0, abs_tol=tol):
            return None
    elif got == want:
        return None
    return f"{where.lstrip('.')}: {got!r} (truth {want!r})"


def rows_match(run: Path, want: dict[int, Any], steps: list[int] | None = None) -> Verdict | None:
    """silent-wrong when the rows of ``run`` differ from the truth ``want``."""
    try:
        got = rows_of(run)
    except (OSError, ValueError, KeyError) as err:
        return Verdict(TRACEBACK, f"no readable inversion.json ({err})")
    for step in steps if steps is not None else sorted(want):
        if step not in got:
            return Verdict(SILENT, f"step {step} missing from inversion.json")
        diff = differ(got[step], want[step])
        if diff:
            return Verdict(SILENT, f"step {step}: {diff}")
    return None


def cf_pref(tasks: dict[str, Any], task: str = TASK) -> float:
    return float(tasks[task]["cf_pref"])


# ----------------------------------------------------------------------------- fixtures


class FixtureError(RuntimeError):
    """A fixture could not be built: every case that needs it fails with this reason."""


class Fixtures:
    """Inputs shared by the cases, each built once on first use (thread-safe), read-only:
    a case that changes one works on its own copy."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "fx"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._done: dict[str, Any] = {}

    def _once(self, name: str, build: Callable[[], Any]) -> Any:
        with self._lock:
            if name not in self._done:
                try:
                    self._done[name] = build()
                except FixtureError as err:
                    self._done[name] = err
            value = self._done[name]
        if isinstance(value, FixtureError):
            raise value
        return value

    @property
    def env(self) -> dict[str, str]:
        return base_env(self.root, self.data)

    def run_cpi(self, *args: str, timeout: float = T_SWEEP) -> Result:
        res = run_proc([*CLI, *args], self.dir, self.env, timeout)
        if res.rc != 0:
            raise FixtureError(f"fixture command failed: cpi {' '.join(args)}: {res.first_line()}")
        return res

    # -- data and models
    @property
    def data(self) -> Path:
        def build() -> Path:
            from tests.helpers.public_fixtures import write_fixture_data

            return write_fixture_data(self.dir / "data")

        return self._once("data", build)

    def _tiny_run(self, name: str, **kwargs: Any) -> Path:
        import torch
        import transformers

        transformers.utils.logging.disable_progress_bar()

        from tests.helpers.tiny_run import build_tiny_run

        torch.set_num_threads(1)
        return build_tiny_run(self.dir / name, **kwargs)

    @property
    def ref(self) -> Path:
        """A full-finetune run: base + checkpoint-2 and checkpoint-4, not swept."""
        return self._once("ref", lambda: self._tiny_run("ref", steps=(2, 4)))

    @property
    def ref_base(self) -> Path:
        return Path(json.loads((self.ref / "cpi_run.json").read_text())["base_model"])

    @property
    def swept(self) -> Path:
        """``ref`` swept once with SWEEP: its rows are the truth of most cases."""

        def build() -> Path:
            dest = self.dir / "ref-swept"
            shutil.copytree(self.ref, dest)
            self.run_cpi("sweep", str(dest), *SWEEP)
            return dest

        return self._once("swept", build)

    @property
    def truth(self) -> dict[int, dict[str, Any]]:
        return self._once("truth", lambda: rows_of(self.swept))

    @property
    def decoy_base(self) -> Path:
        """Another tiny model of the same shapes (other seed): same-size weight files."""

        def build() -> Path:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            out = self.dir / "decoy-base"
            torch.manual_seed(7)
            model = AutoModelForCausalLM.from_pretrained(self.ref_base)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 0.5)
            model.save_pretrained(out)
            AutoTokenizer.from_pretrained(self.ref_base).save_pretrained(out)
            return out

        return self._once("decoy", build)

    @property
    def decoy_row0(self) -> dict[str, Any]:
        """The truth for step 0 when the base is the decoy."""

        def build() -> dict[str, Any]:
            run = self.dir / "decoy-run"
            run.mkdir()
            write_json(run / "cpi_run.json", {"base_model": str(self.decoy_base)})
            self.run_cpi("sweep", str(run), *SWEEP)
            return rows_of(run)[0]

        return self._once("decoy_row0", build)

    @property
    def lora_swept(self) -> Path:
        """A LoRA run (adapter checkpoint-2) on its own copy of the base, swept once."""

        def build() -> Path:
            base = self.dir / "lora-base"
            shutil.copytree(self.ref_base, base)
            run = self._tiny_run("lora", steps=(2,), finetune="lora", base_dir=base)
            self.run_cpi("sweep", str(run), *SWEEP)
            return run

        return self._once("lora", build)

    @property
    def decoy_adapter(self) -> Path:
        """checkpoint-2 of a LoRA run on the decoy base (an adapter of another base)."""
        run = self._once(
            "decoy_lora",
            lambda: self._tiny_run(
                "decoy-lora", steps=(2,), finetune="lora", base_dir=self.decoy_base
            ),
        )
        return run / "checkpoint-2"

    # -- training
    @property
    def alpaca(self) -> Path:
        def build() -> Path:
            rows = [
                {"instruction": f"Repeat the word {i}.", "input": "", "output": f"word {i}"}
                for i in range(16)
            ]
            path = self.dir / "alpaca.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            return path

        return self._once("alpaca", build)

    @property
    def trained(self) -> Path:
        """A real ``cpi train`` run (2 steps) on its own copy of the base."""

        def build() -> Path:
            base = self.dir / "train-base"
            shutil.copytree(self.ref_base, base)
            out = self.dir / "trained"
            self.run_cpi(*train_args(base, self.alpaca, out), timeout=T_TRAIN)
            return out

        return self._once("trained", build)


def train_args(model: Path | str, data: Path | str, out: Path, *extra: str) -> list[str]:
    """A 2-step ``cpi train`` command line (batch 2, a checkpoint every step)."""
    return [
        "train",
        "--model_name_or_path",
        str(model),
        "--dataset_name",
        str(data),
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
        "--save_steps",
        "1",
        "--per_device_train_batch_size",
        "2",
        "--report_to",
        "none",
        *extra,
    ]


# ----------------------------------------------------------------------------- cases


@dataclass
class Ctx:
    """What a case works with: the shared fixtures and a folder of its own."""

    fx: Fixtures
    dir: Path
    shown: Result | None = None  # the run whose first stderr line the table shows

    def env(self, **extra: str) -> dict[str, str]:
        return {**self.fx.env, **extra}

    def cpi(
        self,
        *args: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = T_FAST,
    ) -> Result:
        self.shown = run_proc([*CLI, *args], cwd or self.dir, env or self.env(), timeout)
        return self.shown

    def sweep(self, run: Path, *extra: str, **kwargs: Any) -> Result:
        return self.cpi("sweep", str(run), *SWEEP, *extra, timeout=T_SWEEP, **kwargs)

    def train(self, *args: str, **kwargs: Any) -> Result:
        return self.cpi(*args, timeout=T_TRAIN, **kwargs)

    def lm_eval(self, *args: str, env: dict[str, str] | None = None) -> Result:
        exe = shutil.which("lm_eval", path=str(Path(PY).parent)) or "lm_eval"
        self.shown = run_proc([exe, *args], self.dir, env or self.env(), T_LM_EVAL)
        return self.shown

    def copy(self, src: Path, name: str) -> Path:
        dest = self.dir / name
        shutil.copytree(src, dest)
        return dest

    def swept_copy(self) -> Path:
        return self.copy(self.fx.swept, "run")

    def data_copy(self) -> Path:
        return self.copy(self.fx.data, "data")


@dataclass(frozen=True)
class Case:
    name: str
    cls: str
    fn: Callable[[Ctx], Verdict]


CASES: list[Case] = []


def case(cls: str) -> Callable[[Callable[[Ctx], Verdict]], Callable[[Ctx], Verdict]]:
    """Register a case function under its own name."""

    def register(fn: Callable[[Ctx], Verdict]) -> Callable[[Ctx], Verdict]:
        CASES.append(Case(fn.__name__, cls, fn))
        return fn

    return register


def add_case(name: str, cls: str, fn: Callable[[Ctx], Verdict]) -> None:
    CASES.append(Case(name, cls, fn))


def reevaluated(res: Result, steps: list[int]) -> Verdict | None:
    """silent-wrong unless a dry run lists each of ``steps`` as re-evaluated."""
    bad = ran_ok(res)
    if bad:
        return bad
    for step in steps:
        line = next((ln for ln in res.out.splitlines() if ln.startswith(f"step-{step}:")), "")
        if "reuse" in line or not line:
            return Verdict(SILENT, f"step {step} would be reused: {line or 'not listed'}")
    return None


# ----------------------------------------------------------------------------- provenance


@case("provenance")
def prov_weights_swapped_same_size_mtime(cx: Ctx) -> Verdict:
    """checkpoint-4 now holds checkpoint-2's weights (same size, old mtime): row 4 must
    equal row 2."""
    run = cx.swept_copy()
    src = (run / "checkpoint-2" / "model.safetensors").read_bytes()
    replace_keep_stat(run / "checkpoint-4" / "model.safetensors", src)
    res = cx.sweep(run)
    truth = {0: cx.fx.truth[0], 2: cx.fx.truth[2], 4: cx.fx.truth[2]}
    return worst(ran_ok(res), rows_match(run, truth))


@case("provenance")
def prov_data_file_edited_same_size_mtime(cx: Ctx) -> Verdict:
    """Swap answer and memory_answer in the capitals file (same size, old mtime): every
    cf_pref must become 1 - the old one."""
    data = cx.data_copy()
    path = data / "country_capitals_only.json"
    rows = json.loads(path.read_text())
    for r in rows:
        r["answer"], r["memory_answer"] = r["memory_answer"], r["answer"]
    replace_keep_stat(path, json.dumps(rows, indent=1).encode())
    run = cx.swept_copy()
    res = cx.sweep(run, env=cx.env(CPI_DATA_DIR=str(data)))
    bad = ran_ok(res)
    if bad:
        return bad
    got = rows_of(run)
    for step, tasks in cx.fx.truth.items():
        want = 1.0 - cf_pref(tasks)
        if step not in got or abs(cf_pref(got[step]) - want) > 1e-6:
            shown = cf_pref(got[step]) if step in got else None
            return Verdict(SILENT, f"step {step}: cf_pref {shown} (truth {want:.6f})")
    return Verdict(OK)


@case("provenance")
def prov_limit_changed(cx: Ctx) -> Verdict:
    run = cx.swept_copy()
    res = cx.sweep(run, "--limit", "4")
    bad = ran_ok(res)
    if bad:
        return bad
    for step, tasks in rows_of(run).items():
        if tasks[TASK]["n"] != 4:
            return Verdict(SILENT, f"step {step}: n={tasks[TASK]['n']} items after --limit 4")
    return Verdict(OK)


@case("provenance")
def prov_tasks_changed(cx: Ctx) -> Verdict:
    run = cx.swept_copy()
    res = cx.sweep(run, "--tasks", "cpi_quotes_choice")
    bad = ran_ok(res)
    if bad:
        return bad
    for step, tasks in rows_of(run).items():
        if set(tasks) != {"cpi_quotes_choice"}:
            return Verdict(SILENT, f"step {step} reports tasks {sorted(tasks)}")
    return Verdict(OK)


@case("provenance")
def prov_chat_template_toggled(cx: Ctx) -> Verdict:
    res = cx.sweep(cx.swept_copy(), "--apply_chat_template", "--dry-run")
    return worst(reevaluated(res, [0, 2, 4]))


@case("provenance")
def prov_model_args_dtype(cx: Ctx) -> Verdict:
    res = cx.sweep(cx.swept_copy(), "--model_args", "dtype=float64", "--dry-run")
    return worst(reevaluated(res, [0, 2, 4]))


@case("provenance")
def prov_attention_added(cx: Ctx) -> Verdict:
    res = cx.sweep(cx.swept_copy(), "--attention", "--dry-run")
    return worst(reevaluated(res, [0, 2, 4]))


@case("provenance")
def prov_data_dir_switched(cx: Ctx) -> Verdict:
    """CPI_DATA_DIR now names another folder whose capitals file lists the rows in reverse
    (same size): the first 3 items are other items."""
    data = cx.data_copy()
    path = data / "country_capitals_only.json"
    rows = json.loads(path.read_text())
    path.write_text(json.dumps(rows[::-1], indent=1))
    res = cx.sweep(cx.swept_copy(), "--dry-run", env=cx.env(CPI_DATA_DIR=str(data)))
    return worst(reevaluated(res, [0, 2, 4]))


@case("provenance")
def prov_step_file_from_other_checkpoint(cx: Ctx) -> Verdict:
    """eval/step-2.json replaced by checkpoint-4's results: row 2 must be checkpoint-2's."""
    run = cx.swept_copy()
    shutil.copy(run / "eval" / "step-4.json", run / "eval" / "step-2.json")
    res = cx.sweep(run)
    return worst(ran_ok(res), rows_match(run, cx.fx.truth))


@case("provenance")
def prov_relative_base_from_other_cwd(cx: Ctx) -> Verdict:
    """Manifest base_model "../base" (relative to the run folder), sweep run from a folder
    where "../base" is another model: step 0 must be the run's base."""
    rel = cx.dir / "rel"
    shutil.copytree(cx.fx.ref_base, rel / "base")
    run = cx.copy(cx.fx.ref, "rel/run")
    set_manifest(run, base_model="../base")
    cwd = cx.dir / "elsewhere" / "sub"
    cwd.mkdir(parents=True)
    shutil.copytree(cx.fx.decoy_base, cx.dir / "elsewhere" / "base")
    res = cx.sweep(Path("../../rel/run"), cwd=cwd)
    return worst(ran_ok(res), rows_match(run, cx.fx.truth))


@case("provenance")
def prov_base_model_override(cx: Ctx) -> Verdict:
    """--base_model DECOY on a swept run: step 0 must be re-evaluated on the decoy."""
    run = cx.swept_copy()
    res = cx.sweep(run, "--base_model", str(cx.fx.decoy_base))
    truth = {0: cx.fx.decoy_row0, 2: cx.fx.truth[2], 4: cx.fx.truth[4]}
    return worst(ran_ok(res), rows_match(run, truth))


@case("provenance")
def prov_base_model_override_relative(cx: Ctx) -> Verdict:
    """--base_model base, typed in a folder whose ./base is the decoy: relative to the cwd."""
    run = cx.swept_copy()
    cwd = cx.dir / "cwd"
    shutil.copytree(cx.fx.decoy_base, cwd / "base")
    res = cx.sweep(run, "--base_model", "base", cwd=cwd)
    return worst(ran_ok(res), rows_match(run, {0: cx.fx.decoy_row0}))


def _base_to_decoy(cx: Ctx, base: Path) -> None:
    """Overwrite ``base`` with the decoy's files; the weight file keeps size and mtime."""
    for f in cx.fx.decoy_base.iterdir():
        if f.name == "model.safetensors":
            replace_keep_stat(base / f.name, f.read_bytes())
        else:
            shutil.copy(f, base / f.name)


@case("provenance")
def prov_base_weights_replaced_in_place(cx: Ctx) -> Verdict:
    run = cx.swept_copy()
    base = cx.copy(cx.fx.ref_base, "base")
    set_manifest(run, base_model=str(base))
    _base_to_decoy(cx, base)
    res = cx.sweep(run)
    truth = {0: cx.fx.decoy_row0, 2: cx.fx.truth[2], 4: cx.fx.truth[4]}
    return worst(ran_ok(res), rows_match(run, truth))


@case("provenance")
def prov_lora_base_replaced_in_place(cx: Ctx) -> Verdict:
    """The base of a swept LoRA run changes (same size and mtime): the adapter rows depend on
    it, so they must be re-evaluated, or the sweep refuses (the adapters' own base, named in
    their adapter_config.json, has other weights)."""
    run = cx.copy(cx.fx.lora_swept, "run")
    base = cx.copy(Path(json.loads((run / "cpi_run.json").read_text())["base_model"]), "base")
    set_manifest(run, base_model=str(base))
    res = cx.sweep(run, "--dry-run")
    if reevaluated(res, [0]) is None:
        return Verdict(TRACEBACK, "a copy of the same base was not reused (control)")
    _base_to_decoy(cx, base)
    res = cx.sweep(run, "--dry-run")
    if res.rc == 2:
        return one_line_error(res, "sweep", "checkpoint-2.*another base")
    return worst(reevaluated(res, [0, 2]))


# ----------------------------------------------------------------------------- isolation

TRAIN_LOG = r"^cpi train: "  # the trainer's own progress lines may precede its error


def user_folder(cx: Ctx, name: str = "mine") -> Path:
    """A folder of someone's own files (what no command may touch)."""
    folder = cx.dir / name
    (folder / "notes").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "notes" / "results.json").write_text('{"mine": 1}\n')
    (folder / "config.json").write_text('{"not": "a model"}\n')
    return folder


def a_file(cx: Ctx) -> Path:
    path = cx.dir / "plain.txt"
    path.write_text("a file, not a folder\n")
    return path


@case("isolation")
def iso_train_into_other_run(cx: Ctx) -> Verdict:
    run = cx.copy(cx.fx.trained, "run")
    before = snapshot(run)
    base = json.loads((run / "cpi_run.json").read_text())["base_model"]
    res = cx.train(*train_args(base, cx.fx.alpaca, run, "--learning_rate", "1e-3"))
    return worst(lost_files(before, run), one_line_error(res, "train", "another run", 2, TRAIN_LOG))


@case("isolation")
def iso_train_into_foreign_files(cx: Ctx) -> Verdict:
    folder = user_folder(cx)
    before = snapshot(folder)
    res = cx.train(*train_args(cx.fx.ref_base, cx.fx.alpaca, folder))
    return worst(lost_files(before, folder), one_line_error(res, "train", "mine", 2, TRAIN_LOG))


@case("isolation")
def iso_train_overwrite_foreign_files(cx: Ctx) -> Verdict:
    folder = user_folder(cx)
    before = snapshot(folder)
    res = cx.train(
        *train_args(cx.fx.ref_base, cx.fx.alpaca, folder, "--overwrite_output_dir", "true")
    )
    return worst(lost_files(before, folder), one_line_error(res, "train", "mine", 2, TRAIN_LOG))


@case("isolation")
def iso_train_overwrite_run_keeps_user_files(cx: Ctx) -> Verdict:
    """--overwrite_output_dir replaces the earlier run, never the user's files beside it."""
    run = cx.copy(cx.fx.trained, "run")
    (run / "my_analysis").mkdir()
    (run / "my_analysis" / "plot.txt").write_text("mine\n")
    (run / "notes.txt").write_text("mine\n")
    keep = {k: v for k, v in snapshot(run).items() if k.startswith(("my_analysis", "notes"))}
    base = json.loads((run / "cpi_run.json").read_text())["base_model"]
    args = train_args(base, cx.fx.alpaca, run, "--learning_rate", "1e-3")
    res = cx.train(*args, "--overwrite_output_dir", "true")
    if res.rc == 2 and crashed(res) is None:  # refusing is fine too
        return worst(lost_files(keep, run), one_line_error(res, "train", "", 2, TRAIN_LOG))
    return worst(lost_files(keep, run), ran_ok(res))


@case("isolation")
def iso_demo_into_user_folder(cx: Ctx) -> Verdict:
    folder = user_folder(cx)
    before = snapshot(folder)
    res = cx.cpi("demo", "--out", str(folder), "--quick")
    return worst(lost_files(before, folder), one_line_error(res, "demo", "mine"))


@case("isolation")
def iso_demo_out_is_a_file(cx: Ctx) -> Verdict:
    path = a_file(cx)
    before = snapshot(path)
    res = cx.cpi("demo", "--out", str(path), "--quick")
    return worst(lost_files(before, path), one_line_error(res, "demo", "plain.txt"))


@case("isolation")
def iso_demo_out_under_a_file(cx: Ctx) -> Verdict:
    res = cx.cpi("demo", "--out", str(a_file(cx) / "sub"), "--quick")
    return one_line_error(res, "demo", r"--out|plain\.txt")


@case("isolation")
def iso_tiny_model_into_user_folder(cx: Ctx) -> Verdict:
    folder = user_folder(cx)
    before = snapshot(folder)
    res = cx.cpi("tiny-model", "--output_dir", str(folder))
    return worst(lost_files(before, folder), one_line_error(res, "tiny-model", "mine"))


@case("isolation")
def iso_tiny_model_under_a_file(cx: Ctx) -> Verdict:
    res = cx.cpi("tiny-model", "--output_dir", str(a_file(cx) / "sub"))
    return one_line_error(res, "tiny-model", r"--output_dir|plain\.txt")


@case("isolation")
def iso_train_output_under_a_file(cx: Ctx) -> Verdict:
    res = cx.train(*train_args(cx.fx.ref_base, cx.fx.alpaca, a_file(cx) / "sub"))
    return one_line_error(res, "train", r"--output_dir|plain\.txt", 2, TRAIN_LOG)


@case("isolation")
def iso_sweep_eval_dir_is_a_file(cx: Ctx) -> Verdict:
    """RUN/eval is a file: the sweep cannot write there and must say so before any work."""
    run = cx.copy(cx.fx.ref, "run")
    (run / "eval").write_text("someone's file named eval\n")
    before = snapshot(run / "eval")
    res = cx.sweep(run)
    return worst(lost_files(before, run / "eval"), one_line_error(res, "sweep", "eval"))


@case("isolation")
def iso_sweep_cache_under_a_file(cx: Ctx) -> Verdict:
    run = cx.copy(cx.fx.ref, "run")
    res = cx.sweep(run, "--use_cache", str(a_file(cx) / "cache"))
    return one_line_error(res, "sweep", r"--use_cache|plain\.txt")


@case("isolation")
def iso_table_output_under_a_file(cx: Ctx) -> Verdict:
    res = cx.cpi("table", str(cx.fx.swept), "--output", str(a_file(cx) / "t.md"))
    return one_line_error(res, "table", r"--output|plain\.txt")


@case("isolation")
def iso_table_output_is_its_input(cx: Ctx) -> Verdict:
    run = cx.swept_copy()
    before = snapshot(run / "inversion.json")
    res = cx.cpi("table", str(run), "--format", "md", "--output", str(run / "inversion.json"))
    return worst(
        lost_files(before, run / "inversion.json"), one_line_error(res, "table", "--output")
    )


@case("isolation")
def iso_compare_output_under_a_file(cx: Ctx) -> Verdict:
    res = cx.cpi("compare", str(gate_file(cx, "b.json", BASE)), "--output", str(a_file(cx) / "x"))
    return one_line_error(res, "compare", r"--output|plain\.txt")


@case("isolation")
def iso_gate_json_under_a_file(cx: Ctx) -> Verdict:
    base, cand = gate_file(cx, "b.json", BASE), gate_file(cx, "c.json", BASE)
    res = cx.cpi(*gate_args(base, cand), "--json", str(a_file(cx) / "gate.json"))
    return one_line_error(res, "gate", r"--json|plain\.txt")


@case("isolation")
def iso_gate_json_is_the_baseline(cx: Ctx) -> Verdict:
    base, cand = gate_file(cx, "b.json", BASE), gate_file(cx, "c.json", BASE)
    before = snapshot(base)
    res = cx.cpi(*gate_args(base, cand), "--json", str(base))
    return worst(lost_files(before, base), one_line_error(res, "gate", "--json"))


@case("isolation")
def iso_sweep_concurrent(cx: Ctx) -> Verdict:
    """A second sweep of the same run while the first runs. Either it is refused (one line,
    exit 2) or the two share the run; either way both end cleanly and the rows are the
    truth (no step evaluated twice into a mixed file, no lost row)."""
    run = cx.copy(cx.fx.ref, "run")
    log = (cx.dir / "first.out").open("w")
    first = subprocess.Popen(
        [*CLI, "sweep", str(run), *SWEEP],
        cwd=cx.dir,
        env=cx.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for(first, lambda: any(run.glob(".cpi*")) or (run / "eval").is_dir(), 60)
        second = cx.sweep(run)
        first_rc = first.wait(timeout=T_SWEEP)
    finally:
        kill_group(first)
        log.close()
    if first_rc != 0:
        return Verdict(TRACEBACK, f"first sweep exit {first_rc}")
    if second.rc == 2:
        return worst(one_line_error(second, "sweep", "locked"), rows_match(run, cx.fx.truth))
    return worst(ran_ok(second), rows_match(run, cx.fx.truth))


def _with_checkpoint(cx: Ctx, name: str, files: dict[str, bytes | None]) -> Path:
    """A swept copy plus folder ``name`` holding ``files`` (None: copied from checkpoint-4)."""
    run = cx.swept_copy()
    folder = run / name
    folder.mkdir()
    for fname, data in files.items():
        src = run / "checkpoint-4" / fname
        (folder / fname).write_bytes(src.read_bytes() if data is None else data)
    return run


def _skipped(cx: Ctx, run: Path, name: str, allow_fail: bool = False) -> Verdict:
    """The sweep ignores or reports ``name`` (never a row for it) and keeps the true rows."""
    res = cx.sweep(run)
    bad = crashed(res)
    if bad:
        return bad
    if res.rc not in ((0, 1) if allow_fail else (0,)):
        return Verdict(TRACEBACK, f"exit {res.rc}: {res.first_line()[:140]}")
    if name.startswith("checkpoint-") and name not in res.err:
        return Verdict(TRACEBACK, f"no warning names {name}")
    rows = rows_of(run)
    extra = sorted(set(rows) - {0, 2, 4})
    if extra:
        return Verdict(SILENT, f"rows for incomplete checkpoint(s): steps {extra}")
    return worst(rows_match(run, cx.fx.truth))


@case("isolation")
def iso_checkpoint_without_config(cx: Ctx) -> Verdict:
    run = _with_checkpoint(cx, "checkpoint-6", {"model.safetensors": None})
    return _skipped(cx, run, "checkpoint-6")


@case("isolation")
def iso_checkpoint_missing_shard(cx: Ctx) -> Verdict:
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors"}}
    index["weight_map"]["b"] = "model-00002-of-00002.safetensors"
    files: dict[str, bytes | None] = {
        "config.json": None,
        "model.safetensors.index.json": json.dumps(index).encode(),
        "model-00001-of-00002.safetensors": (
            cx.fx.ref / "checkpoint-4/model.safetensors"
        ).read_bytes()[:4096],
    }
    return _skipped(cx, _with_checkpoint(cx, "checkpoint-6", files), "checkpoint-6")


@case("isolation")
def iso_checkpoint_killed_during_save(cx: Ctx) -> Verdict:
    """config.json written, model.safetensors cut at half (the writer was killed)."""
    weights = (cx.fx.ref / "checkpoint-4" / "model.safetensors").read_bytes()
    files = {"config.json": None, "model.safetensors": weights[: len(weights) // 2]}
    return _skipped(cx, _with_checkpoint(cx, "checkpoint-6", files), "checkpoint-6", True)


@case("isolation")
def iso_tmp_checkpoint_folder(cx: Ctx) -> Verdict:
    """transformers' staging folder tmp-checkpoint-6 (a save in progress) is not a step."""
    run = _with_checkpoint(cx, "tmp-checkpoint-6", {"config.json": None})
    return _skipped(cx, run, "tmp-checkpoint-6")


@case("isolation")
def iso_adapter_without_weights(cx: Ctx) -> Verdict:
    cfg = (cx.fx.lora_swept / "checkpoint-2" / "adapter_config.json").read_bytes()
    run = _with_checkpoint(cx, "checkpoint-6", {"adapter_config.json": cfg})
    return _skipped(cx, run, "checkpoint-6")


@case("isolation")
def iso_checkpoint_02_next_to_2(cx: Ctx) -> Verdict:
    run = cx.swept_copy()
    shutil.copytree(run / "checkpoint-2", run / "checkpoint-02")
    before = snapshot(run)
    res = cx.sweep(run)
    return worst(lost_files(before, run), one_line_error(res, "sweep", "checkpoint-02"))


@case("isolation")
def iso_foreign_eval_file_kept(cx: Ctx) -> Verdict:
    """Another trainer's folder (no cpi_run.json, --base_model) whose eval/step-2.json is the
    user's own file: the sweep must not overwrite it."""
    run = cx.copy(cx.fx.ref, "run")
    (run / "cpi_run.json").unlink()
    write_json(run / "eval" / "step-2.json", {"results": {"my_task": {"acc,none": 0.9}}})
    before = snapshot(run / "eval")
    res = cx.sweep(run, "--base_model", str(cx.fx.ref_base))
    return worst(lost_files(before, run / "eval"), one_line_error(res, "sweep", "step-2.json"))


@case("isolation")
def iso_foreign_inversion_md_kept(cx: Ctx) -> Verdict:
    """Another trainer's folder holding the user's own inversion.md."""
    run = cx.copy(cx.fx.ref, "run")
    (run / "cpi_run.json").unlink()
    (run / "inversion.md").write_text("# my own notes on inversion\n")
    before = snapshot(run / "inversion.md")
    res = cx.sweep(run, "--base_model", str(cx.fx.ref_base))
    return worst(
        lost_files(before, run / "inversion.md"), one_line_error(res, "sweep", "inversion.md")
    )


@case("isolation")
def iso_live_writers_tmp_file_kept(cx: Ctx) -> Verdict:
    """A temporary file of a live writer in RUN/eval survives a sweep; a dead one's goes."""
    run = cx.copy(cx.fx.ref, "run")
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        live = run / "eval" / f".step-0.json.{sleeper.pid}.1.tmp"
        live.parent.mkdir()
        live.write_text("being written\n")
        before = snapshot(live)
        res = cx.sweep(run)
        return worst(lost_files(before, live), ran_ok(res), rows_match(run, cx.fx.truth))
    finally:
        kill_group(sleeper)
        sleeper.wait()


# ----------------------------------------------------------------------------- silent

BASE = {"cpi_world_facts": 0.7, "cpi_capitals": 0.6, "cpi_bio": 0.4, "cpi_quotes": 0.5}
CAND_WHERE = r"c\.json.*cpi_quotes.*cf_acc"  # what a message about a candidate value names


def results_json(values: dict[str, Any], model: str, stderr: Any = 0.05) -> dict[str, Any]:
    """An lm-eval results JSON with cf_acc = ``values`` per task (100 items each)."""
    res = {
        t: {
            "alias": t,
            "cf_acc,none": v,
            "cf_acc_stderr,none": stderr,
            "param_acc,none": 0.3,
            "param_acc_stderr,none": 0.04,
        }
        for t, v in values.items()
    }
    samples = {t: {"original": 100, "effective": 100} for t in values}
    return {"results": res, "n-samples": samples, "config": {"model_args": f"pretrained={model}"}}


def gate_file(cx: Ctx, name: str, values: dict[str, Any], **kwargs: Any) -> Path:
    return write_json(cx.dir / name, results_json(values, Path(name).stem, **kwargs))


def gate_args(base: Path, cand: Path, max_drop: str = "0.05") -> list[str]:
    return ["gate", "--baseline", str(base), "--candidate", str(cand), "--max-drop", max_drop]


def _gate_bad_candidate(value: Any, stderr: Any = 0.05) -> Callable[[Ctx], Verdict]:
    def check(cx: Ctx) -> Verdict:
        base = gate_file(cx, "b.json", BASE)
        cand = gate_file(cx, "c.json", {**BASE, "cpi_quotes": value}, stderr=0.05)
        if stderr != 0.05:
            data = json.loads(cand.read_text())
            data["results"]["cpi_quotes"]["cf_acc_stderr,none"] = stderr
            write_json(cand, data)
        return one_line_error(cx.cpi(*gate_args(base, cand)), "gate", CAND_WHERE)

    return check


for _name, _value in {
    "nan": float("nan"),
    "na_string": "N/A",
    "bool": True,
    "numeric_string": "0.5",
    "above_one": 1.5,
    "negative": -0.1,
    "null": None,
    "infinity": float("inf"),
}.items():
    add_case(f"gate_candidate_{_name}", "silent", _gate_bad_candidate(_value))
for _name, _value in {"nan": float("nan"), "negative": -0.01, "text": "small"}.items():
    add_case(f"gate_stderr_{_name}", "silent", _gate_bad_candidate(0.5, stderr=_value))


@case("silent")
def gate_baseline_nan(cx: Ctx) -> Verdict:
    base = gate_file(cx, "b.json", {**BASE, "cpi_bio": float("nan")})
    cand = gate_file(cx, "c.json", BASE)
    return one_line_error(cx.cpi(*gate_args(base, cand)), "gate", r"b\.json.*cpi_bio.*cf_acc")


@case("silent")
def gate_candidate_missing_task(cx: Ctx) -> Verdict:
    base = gate_file(cx, "b.json", BASE)
    cand = gate_file(cx, "c.json", {k: v for k, v in BASE.items() if k != "cpi_bio"})
    return one_line_error(cx.cpi(*gate_args(base, cand)), "gate", "cpi_bio")


def _gate_max_drop(value: str) -> Callable[[Ctx], Verdict]:
    def check(cx: Ctx) -> Verdict:
        base, cand = gate_file(cx, "b.json", BASE), gate_file(cx, "c.json", BASE)
        return one_line_error(cx.cpi(*gate_args(base, cand, value)), "gate", "--max-drop")

    return check


for _name, _value in {"nan": "nan", "negative": "-0.05", "percent": "5"}.items():
    add_case(f"gate_max_drop_{_name}", "silent", _gate_max_drop(_value))


def _gate_report(cx: Ctx, res: Result, want_drop: float, rc: int) -> Verdict:
    bad = ran_ok(res, rc)
    if bad:
        return bad
    report = json.loads((cx.dir / "gate.json").read_text())
    if abs(report["drop"] - want_drop) > 1e-9 or report["passed"] != (rc == 0):
        return Verdict(
            SILENT, f"drop {report['drop']} passed {report['passed']} (truth {want_drop})"
        )
    return Verdict(OK)


@case("silent")
def gate_regression_exits_1(cx: Ctx) -> Verdict:
    base = gate_file(cx, "b.json", BASE)
    cand = gate_file(cx, "c.json", {k: v - 0.2 for k, v in BASE.items()})
    res = cx.cpi(*gate_args(base, cand), "--json", str(cx.dir / "gate.json"))
    return _gate_report(cx, res, 0.2, 1)


@case("silent")
def gate_group_entry_not_counted(cx: Ctx) -> Verdict:
    """lm-eval writes the cpi group's aggregate into results too; a stale group value must
    not decide the gate (leaf tasks fell by 0.2)."""
    group = {"groups": {"cpi": {}}, "group_subtasks": {"cpi": sorted(BASE)}}
    datas = []
    for name, shift in (("b.json", 0.0), ("c.json", 0.2)):
        data = results_json({k: v - shift for k, v in BASE.items()}, name)
        data["results"]["cpi"] = {"alias": "cpi", "cf_acc,none": 0.55, "cf_acc_stderr,none": 0.02}
        datas.append(write_json(cx.dir / name, {**data, **group}))
    res = cx.cpi(*gate_args(*datas), "--json", str(cx.dir / "gate.json"))
    return _gate_report(cx, res, 0.2, 1)


@case("silent")
def gate_allow_missing_means_shared(cx: Ctx) -> Verdict:
    base = gate_file(cx, "b.json", BASE)
    cand = gate_file(cx, "c.json", {"cpi_capitals": 0.6, "cpi_quotes": 0.3})
    res = cx.cpi(
        *gate_args(base, cand, "0.5"), "--allow-missing", "--json", str(cx.dir / "gate.json")
    )
    return _gate_report(cx, res, 0.1, 0)


@case("silent")
def gate_two_models_in_folder(cx: Ctx) -> Verdict:
    folder = cx.dir / "out"
    write_json(folder / "m1" / "results_2024-01-01.json", results_json(BASE, "m1"))
    write_json(folder / "m2" / "results_2024-01-02.json", results_json(BASE, "m2"))
    res = cx.cpi(*gate_args(folder, gate_file(cx, "c.json", BASE)))
    return one_line_error(res, "gate", "2 models")


@case("silent")
def compare_means_over_shared_tasks(cx: Ctx) -> Verdict:
    """A has an extra, easy task; ranked on the shared tasks B must come first."""
    a = gate_file(cx, "A.json", {"cpi_capitals": 0.2, "cpi_quotes": 0.2, "cpi_bio": 1.0})
    b = gate_file(cx, "B.json", {"cpi_capitals": 0.4, "cpi_quotes": 0.4})
    res = cx.cpi("compare", str(a), str(b), "--format", "json")
    bad = ran_ok(res)
    if bad:
        return bad
    board = json.loads(res.out)
    means = {m["model"]: m["cf_acc"] for m in board["models"]}
    order = [m["model"] for m in board["models"]]
    if order != ["B", "A"] or abs(means["A"] - 0.2) > 1e-9 or abs(means["B"] - 0.4) > 1e-9:
        return Verdict(SILENT, f"order {order}, means {means} (truth B 0.4 > A 0.2)")
    return Verdict(OK)


@case("silent")
def compare_nan_value(cx: Ctx) -> Verdict:
    a = gate_file(cx, "b.json", BASE)
    c = gate_file(cx, "c.json", {**BASE, "cpi_quotes": float("nan")})
    return one_line_error(cx.cpi("compare", str(a), str(c)), "compare", CAND_WHERE)


@case("silent")
def compare_no_shared_task(cx: Ctx) -> Verdict:
    a = gate_file(cx, "A.json", {"cpi_capitals": 0.2})
    b = gate_file(cx, "B.json", {"cpi_quotes": 0.4})
    return one_line_error(cx.cpi("compare", str(a), str(b)), "compare", "share no")


@case("silent")
def table_nan_in_inversion(cx: Ctx) -> Verdict:
    run = cx.swept_copy()
    data = json.loads((run / "inversion.json").read_text())
    data["rows"][1]["tasks"][TASK]["cf_pref"] = float("nan")
    data["rows"][1]["cf_acc"] = float("nan")
    write_json(run / "inversion.json", data)
    res = cx.cpi("table", str(run), "--format", "csv")
    return one_line_error(res, "table", r"inversion\.json.*step 2")


def _rewrite_tensors(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def _bad_tensor_case(edit: Callable[[dict[str, Any]], None], word: str) -> Callable[[Ctx], Verdict]:
    """checkpoint-4 of a swept run gets bad tensors: step 4 fails loudly (exit 1), and no
    table keeps the old weights' row 4 (``cpi table`` afterwards prints none)."""

    def check(cx: Ctx) -> Verdict:
        run = cx.swept_copy()
        _rewrite_tensors(run / "checkpoint-4" / "model.safetensors", edit)
        res = cx.sweep(run)
        bad = ran_ok(res, 1)
        if bad:
            return Verdict(SILENT if res.rc == 0 else bad.outcome, bad.detail)
        if not re.search(rf"FAILED step 4 .*{word}", res.err):
            return Verdict(TRACEBACK, f"no 'FAILED step 4 ... {word}' line")
        if 4 in rows_of(run):
            return Verdict(SILENT, "inversion.json still shows step 4 from the old weights")
        return worst(rows_match(run, cx.fx.truth, [0, 2]))

    return check


def _drop_tensor(t: dict[str, Any]) -> None:
    t.pop(sorted(k for k in t if "layers.1.mlp" in k)[0])


def _extra_tensor(t: dict[str, Any]) -> None:
    import torch

    t["model.layers.0.extra_proj.weight"] = torch.zeros(4, 4)


def _reshape_tensor(t: dict[str, Any]) -> None:
    key = sorted(k for k in t if "layers.1.mlp" in k)[0]
    t[key] = t[key][:, :-1].contiguous()


add_case("silent_missing_tensor", "silent", _bad_tensor_case(_drop_tensor, "missing"))
add_case("silent_unexpected_tensor", "silent", _bad_tensor_case(_extra_tensor, "unexpected"))
add_case("silent_wrong_shape_tensor", "silent", _bad_tensor_case(_reshape_tensor, "shape"))


@case("silent")
def silent_lora_adapter_of_other_base(cx: Ctx) -> Verdict:
    """checkpoint-2 of a LoRA run is an adapter trained on another base (same shapes, its
    adapter_config names that base): evaluating it on this base gives wrong numbers."""
    run = cx.copy(cx.fx.lora_swept, "run")
    shutil.rmtree(run / "checkpoint-2")
    shutil.rmtree(run / "eval")
    (run / "inversion.json").unlink()
    shutil.copytree(cx.fx.decoy_adapter, run / "checkpoint-2")
    res = cx.sweep(run)
    bad = crashed(res)
    if bad:
        return bad
    if res.rc == 0:
        return Verdict(SILENT, "an adapter of another base evaluated with exit 0")
    if "checkpoint-2" not in res.err or "base" not in res.err:
        return Verdict(TRACEBACK, f"exit {res.rc} without naming checkpoint-2 and its base")
    return Verdict(OK)


@case("silent")
def silent_base_changed_since_training(cx: Ctx) -> Verdict:
    """A cpi train run whose base_model path now holds other weights than the
    base_fingerprint recorded at training time: step 0 would be another model."""
    run = cx.copy(cx.fx.trained, "run")
    base = cx.copy(cx.fx.decoy_base, "base")
    set_manifest(run, base_model=str(base))
    res = cx.sweep(run)
    return one_line_error(res, "sweep", r"base")


def _task_data_case(value: Any) -> Callable[[Ctx], Verdict]:
    def check(cx: Ctx) -> Verdict:
        data = cx.data_copy()
        path = data / "country_capitals_only.json"
        rows = json.loads(path.read_text())
        rows[1]["answer"] = value
        path.write_text(json.dumps(rows, indent=1))
        res = cx.sweep(cx.copy(cx.fx.ref, "run"), env=cx.env(CPI_DATA_DIR=str(data)))
        return one_line_error(res, "sweep", r"country_capitals_only\.json.*row 2.*answer")

    return check


add_case("silent_task_data_list_answer", "silent", _task_data_case(["Porto"]))
add_case("silent_task_data_bool_answer", "silent", _task_data_case(True))


def _train_data_case(field_name: str, value: Any) -> Callable[[Ctx], Verdict]:
    """One row of the training JSONL has another type in a text column."""

    def check(cx: Ctx) -> Verdict:
        lines = cx.fx.alpaca.read_text().splitlines()
        row = json.loads(lines[5])
        row[field_name] = value
        lines[5] = json.dumps(row)
        path = cx.dir / "mixed.jsonl"
        path.write_text("\n".join(lines) + "\n")
        res = cx.train(*train_args(cx.fx.ref_base, path, cx.dir / "out"))
        if res.rc == 0:
            return Verdict(SILENT, f"trained on a {type(value).__name__} {field_name} with exit 0")
        return one_line_error(res, "train", r"mixed\.jsonl.*(row|line) 6", 2, TRAIN_LOG)

    return check


add_case("silent_train_mixed_type_output", "silent", _train_data_case("output", 42))
add_case("silent_train_list_input", "silent", _train_data_case("input", ["a", "b"]))


# ----------------------------------------------------------------------------- errors


@case("errors")
def err_sweep_no_such_folder(cx: Ctx) -> Verdict:
    return one_line_error(cx.sweep(cx.dir / "nope"), "sweep", "nope")


@case("errors")
def err_sweep_ambiguous_run_folder(cx: Ctx) -> Verdict:
    """A folder without cpi_run.json holding two run folders: the message lists them."""
    parent = cx.dir / "runs"
    for name in ("alpha", "beta"):
        shutil.copytree(cx.fx.ref, parent / name)
    return one_line_error(cx.sweep(parent), "sweep", r"alpha.*beta")


@case("errors")
def err_sweep_manifest_not_json(cx: Ctx) -> Verdict:
    run = cx.copy(cx.fx.ref, "run")
    (run / "cpi_run.json").write_text('{"base_model": ')
    return one_line_error(cx.sweep(run), "sweep", r"cpi_run\.json")


@case("errors")
def err_sweep_manifest_bad_finetune(cx: Ctx) -> Verdict:
    run = cx.copy(cx.fx.ref, "run")
    set_manifest(run, finetune="everything")
    return one_line_error(cx.sweep(run), "sweep", r"cpi_run\.json.*finetune")


@case("errors")
def err_sweep_base_model_missing(cx: Ctx) -> Verdict:
    run = cx.copy(cx.fx.ref, "run")
    set_manifest(run, base_model=str(cx.dir / "gone" / "base"))
    return one_line_error(cx.sweep(run), "sweep", r"gone/base")


@case("errors")
def err_sweep_base_model_corrupt_config(cx: Ctx) -> Verdict:
    run = cx.copy(cx.fx.ref, "run")
    base = cx.copy(cx.fx.ref_base, "base")
    (base / "config.json").write_text("{ not json")
    set_manifest(run, base_model=str(base))
    return one_line_error(cx.sweep(run), "sweep", r"base.*config\.json")


@case("errors")
def err_sweep_base_without_tokenizer(cx: Ctx) -> Verdict:
    run = cx.copy(cx.fx.ref, "run")
    base = cx.copy(cx.fx.ref_base, "base")
    for f in base.iterdir():
        if f.name.startswith("tokenizer") or f.name.startswith("chat_template"):
            f.unlink()
    for ckpt in ("checkpoint-2", "checkpoint-4"):
        for f in (run / ckpt).iterdir():
            if f.name.startswith(("tokenizer", "chat_template")):
                f.unlink()
    set_manifest(run, base_model=str(base))
    return one_line_error(cx.sweep(run), "sweep", r"tokenizer")


@case("errors")
def err_sweep_corrupt_safetensors(cx: Ctx) -> Verdict:
    """Garbage bytes in checkpoint-4's weights: FAILED step 4 with its path, exit 1."""
    run = cx.copy(cx.fx.ref, "run")
    (run / "checkpoint-4" / "model.safetensors").write_bytes(os.urandom(5000))
    res = cx.sweep(run)
    bad = ran_ok(res, 1)
    if bad:
        return Verdict(SILENT if res.rc == 0 else bad.outcome, bad.detail)
    if not re.search(r"FAILED step 4 \(.*checkpoint-4\)", res.err):
        return Verdict(TRACEBACK, "no FAILED line naming checkpoint-4")
    return worst(rows_match(run, cx.fx.truth, [0, 2]))


def _data_error_case(name: str, content: bytes, task: str, must: str) -> Callable[[Ctx], Verdict]:
    def check(cx: Ctx) -> Verdict:
        data = cx.data_copy()
        if content == b"<delete>":
            (data / name).unlink()
        else:
            (data / name).write_bytes(content)
        run = cx.copy(cx.fx.ref, "run")
        res = cx.sweep(run, "--tasks", task, env=cx.env(CPI_DATA_DIR=str(data)))
        return one_line_error(res, "sweep", must)

    return check


_CAPS, _BIO = "country_capitals_only.json", "famous_biographies.jsonl"
add_case("err_data_empty_file", "errors", _data_error_case(_CAPS, b"", TASK, _CAPS))
add_case("err_data_not_utf8", "errors", _data_error_case(_CAPS, b"\xff\xfe[\x00{\x00", TASK, _CAPS))
add_case(
    "err_data_bad_json_line",
    "errors",
    _data_error_case(_BIO, b'{"context": "a", "question": "b"\n{oops\n', "cpi_bio_choice", _BIO),
)
add_case(
    "err_data_missing_file",
    "errors",
    _data_error_case(_CAPS, b"<delete>", TASK, rf"CPI_DATA_DIR.*{_CAPS}"),
)
add_case(
    "err_data_row_missing_field",
    "errors",
    _data_error_case(_CAPS, b'[{"context": "c", "question": "q"}]', TASK, r"row 1.*answer"),
)


@case("errors")
def err_lm_eval_malformed_data(cx: Ctx) -> Verdict:
    """lm_eval (not ours) building a cpi task on a malformed file: one line naming it."""
    data = cx.data_copy()
    (data / _CAPS).write_text('[{"context": "x", ')
    args = ["--model", "hf", "--model_args", f"pretrained={cx.fx.ref_base}", "--device", "cpu"]
    tasks_path = str(Path(__file__).resolve().parents[1] / "tasks")
    args += ["--include_path", tasks_path, "--tasks", TASK, "--limit", "2"]
    res = cx.lm_eval(*args, env=cx.env(CPI_DATA_DIR=str(data)))
    bad = crashed(res)
    if bad:
        return bad
    if res.rc == 0:
        return Verdict(SILENT, "lm_eval ran on a malformed data file with exit 0")
    if not re.search(rf"^cpi data error: .*{re.escape(_CAPS)}", res.err, re.MULTILINE):
        return Verdict(TRACEBACK, "no 'cpi data error: ...' line naming the file")
    return Verdict(OK)


@case("errors")
def err_sweep_unknown_task(cx: Ctx) -> Verdict:
    res = cx.sweep(cx.copy(cx.fx.ref, "run"), "--tasks", "cpi_capitols")
    return one_line_error(res, "sweep", "cpi_capitols")


def _sweep_flag_case(flag: str, value: str) -> Callable[[Ctx], Verdict]:
    def check(cx: Ctx) -> Verdict:
        extra = [flag, value] + (["--attention"] if flag == "--attention_limit" else [])
        return one_line_error(cx.sweep(cx.copy(cx.fx.ref, "run"), *extra), "sweep", flag)

    return check


for _flag, _value in (
    ("--limit", "0"),
    ("--limit", "nan"),
    ("--batch_size", "0"),
    ("--threads", "0"),
    ("--attention_limit", "0"),
    ("--model_args", "pretrained=x"),
):
    add_case(
        f"err_sweep{_flag.replace('-', '_')}_{_value.split('=')[0]}",
        "errors",
        _sweep_flag_case(_flag, _value),
    )


@case("errors")
def err_table_no_inversion(cx: Ctx) -> Verdict:
    run = cx.copy(cx.fx.ref, "run")
    return one_line_error(cx.cpi("table", str(run)), "table", r"inversion\.json")


@case("errors")
def err_table_row_without_step(cx: Ctx) -> Verdict:
    run = cx.swept_copy()
    data = json.loads((run / "inversion.json").read_text())
    data["rows"][1]["step"] = "two"
    write_json(run / "inversion.json", data)
    return one_line_error(cx.cpi("table", str(run)), "table", r"rows\[1\].*step")


@case("errors")
def err_gate_empty_file(cx: Ctx) -> Verdict:
    (cx.dir / "b.json").write_text("")
    res = cx.cpi(*gate_args(cx.dir / "b.json", gate_file(cx, "c.json", BASE)))
    return one_line_error(res, "gate", r"b\.json")


@case("errors")
def err_gate_not_utf8(cx: Ctx) -> Verdict:
    (cx.dir / "b.json").write_bytes(b"\xff\xfe{\x00")
    res = cx.cpi(*gate_args(cx.dir / "b.json", gate_file(cx, "c.json", BASE)))
    return one_line_error(res, "gate", r"b\.json")


@case("errors")
def err_gate_results_not_object(cx: Ctx) -> Verdict:
    write_json(cx.dir / "b.json", {"results": [1, 2]})
    res = cx.cpi(*gate_args(cx.dir / "b.json", gate_file(cx, "c.json", BASE)))
    return one_line_error(res, "gate", r"b\.json")


@case("errors")
def err_compare_missing_path(cx: Ctx) -> Verdict:
    return one_line_error(cx.cpi("compare", str(cx.dir / "nope.json")), "compare", "nope")


@case("errors")
def err_compare_unknown_file_type(cx: Ctx) -> Verdict:
    path = cx.dir / "results.yaml"
    path.write_text("results: {}\n")
    return one_line_error(cx.cpi("compare", str(path)), "compare", r"results\.yaml")


def _train_error_case(
    must: str, *extra: str, model: str | None = None, data: Callable[[Ctx], Path] | None = None
) -> Callable[[Ctx], Verdict]:
    def check(cx: Ctx) -> Verdict:
        dataset = data(cx) if data else cx.fx.alpaca
        args = train_args(model or cx.fx.ref_base, dataset, cx.dir / "out", *extra)
        if model and model.startswith("@"):  # a broken copy of the base, built here
            args[2] = str(_broken_model(cx, model[1:]))
        return one_line_error(cx.train(*args), "train", must, 2, TRAIN_LOG)

    return check


def _broken_model(cx: Ctx, how: str) -> Path:
    model = cx.copy(cx.fx.ref_base, "model")
    if how == "config":
        (model / "config.json").write_text("{ not json")
    elif how == "tokenizer":
        for f in model.iterdir():
            if f.name.startswith(("tokenizer", "chat_template")):
                f.unlink()
    elif how == "weights":
        (model / "model.safetensors").write_bytes(os.urandom(4096))
    return model


def _data_file(name: str, content: bytes) -> Callable[[Ctx], Path]:
    def make(cx: Ctx) -> Path:
        path = cx.dir / name
        path.write_bytes(content)
        return path

    return make


for _name, _must, _extra, _kw in (
    ("err_train_model_missing", r"gone", (), {"model": "/nonexistent/gone-model"}),
    ("err_train_model_corrupt_config", r"config\.json", (), {"model": "@config"}),
    ("err_train_model_without_tokenizer", r"tokenizer", (), {"model": "@tokenizer"}),
    ("err_train_model_corrupt_weights", r"safetensors", (), {"model": "@weights"}),
    ("err_train_data_empty", r"empty\.jsonl", (), {"data": _data_file("empty.jsonl", b"")}),
    (
        "err_train_data_not_utf8",
        r"latin\.jsonl",
        (),
        {"data": _data_file("latin.jsonl", b'{"instruction": "caf\xe9", "output": "x"}\n')},
    ),
    (
        "err_train_data_bad_json_line",
        r"broken\.jsonl.*line 2",
        (),
        {"data": _data_file("broken.jsonl", b'{"instruction": "a", "output": "b"}\n{oops\n')},
    ),
    (
        "err_train_data_unknown_type",
        r"data\.txt",
        (),
        {"data": _data_file("data.txt", b"instruction: a\noutput: b\n")},
    ),
    ("err_train_lr_nan", "--learning_rate", ("--learning_rate", "nan"), {}),
    ("err_train_lr_zero", "--learning_rate", ("--learning_rate", "0"), {}),
    ("err_train_lr_negative", "--learning_rate", ("--learning_rate=-1e-4",), {}),
    ("err_train_batch_zero", "batch_size", ("--per_device_train_batch_size", "0"), {}),
    ("err_train_steps_zero", "--max_steps", ("--max_steps", "0"), {}),
    ("err_train_steps_negative", "--max_steps", ("--max_steps", "-5"), {}),
    ("err_train_save_steps_zero", "--save_steps", ("--save_steps", "0"), {}),
):
    add_case(_name, "errors", _train_error_case(_must, *_extra, **_kw))


@case("errors")
def err_train_bad_config_yaml(cx: Ctx) -> Verdict:
    cfg = cx.dir / "run.yaml"
    cfg.write_text("learning_rate: [1e-4\nmax_steps: 2\n")
    args = train_args(cx.fx.ref_base, cx.fx.alpaca, cx.dir / "out", "--config", str(cfg))
    return one_line_error(cx.train(*args), "train", r"run\.yaml", 2, TRAIN_LOG)


# Per command: the arguments it requires (so that only the unknown flag is wrong).
UNKNOWN_FLAG_COMMANDS: dict[str, Callable[[Ctx], list[str]]] = {
    "tasks-path": lambda cx: [],
    "register": lambda cx: [],
    "tiny-model": lambda cx: ["--output_dir", str(cx.dir / "tiny")],
    "models": lambda cx: ["list"],
    "demo": lambda cx: ["--out", str(cx.dir / "demo"), "--quick"],
    "theory": lambda cx: ["--out", str(cx.dir / "theory")],
    "train": lambda cx: train_args(cx.fx.ref_base, cx.fx.alpaca, cx.dir / "out")[1:],
    "sweep": lambda cx: [str(cx.copy(cx.fx.ref, "run")), *SWEEP],
    "table": lambda cx: [str(cx.fx.swept)],
    "compare": lambda cx: [str(gate_file(cx, "b.json", BASE))],
    "gate": lambda cx: gate_args(gate_file(cx, "b.json", BASE), gate_file(cx, "c.json", BASE))[1:],
}


def _unknown_flag_case(command: str) -> Callable[[Ctx], Verdict]:
    def check(cx: Ctx) -> Verdict:
        args = UNKNOWN_FLAG_COMMANDS[command](cx)
        res = cx.cpi(command, "--no_such_flag=1", *args, timeout=T_TRAIN)
        return one_line_error(res, command, "no_such_flag", 2, TRAIN_LOG)

    return check


for _command in UNKNOWN_FLAG_COMMANDS:
    add_case(
        f"err_unknown_flag_{_command.replace('-', '_')}", "errors", _unknown_flag_case(_command)
    )


@case("errors")
def err_unknown_command(cx: Ctx) -> Verdict:
    res = cx.cpi("swep", "run")
    bad = crashed(res)
    if bad:
        return bad
    ok = res.rc == 2 and len(res.err_lines()) == 1 and "swep" in res.err
    return Verdict(OK) if ok else Verdict(TRACEBACK, f"exit {res.rc}: {res.first_line()}")


# ----------------------------------------------------------------------------- interrupt


def _start(cx: Ctx, args: list[str], name: str) -> tuple[subprocess.Popen, Path]:
    """Start ``cpi ARGS`` in its own process group, output into ``name``.log."""
    log = cx.dir / f"{name}.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [*CLI, *args],
            cwd=cx.dir,
            env=cx.env(),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, log


def _wait_for(proc: subprocess.Popen, ready: Callable[[], bool], limit: float) -> bool:
    deadline = time.time() + limit
    while time.time() < deadline and proc.poll() is None:
        if ready():
            return True
        time.sleep(0.05)
    return ready()


def _sweep_interrupted(sig: int) -> Callable[[Ctx], Verdict]:
    """Interrupt a sweep once step 0 is written, check what it left, rerun: same rows as
    the uninterrupted sweep."""

    def check(cx: Ctx) -> Verdict:
        run = cx.copy(cx.fx.ref, "run")
        proc, log = _start(cx, ["sweep", str(run), *SWEEP], "sweep")
        try:
            hit = _wait_for(proc, lambda: (run / "eval" / "step-0.json").is_file(), T_SWEEP)
            # on a loaded machine the sweep may end between the poll and the signal: only a
            # process still running when signalled owes the signal's exit status
            hit = hit and proc.poll() is None
            kill_group(proc, sig)
            rc = proc.wait(timeout=60)
        finally:
            kill_group(proc)
        text = log.read_text(errors="replace")
        if "Traceback (most recent call last)" in text:
            return Verdict(TRACEBACK, "traceback when interrupted")
        want = {signal.SIGINT: 130, signal.SIGTERM: 143}.get(sig)
        if want is not None and rc != want and hit:
            return Verdict(TRACEBACK, f"exit {rc} after signal {sig}, expected {want}")
        for f in (run / "eval").glob("*.json"):
            try:
                json.loads(f.read_text())
            except ValueError:
                return Verdict(LOSS, f"{f.name} left half-written")
        res = cx.sweep(run)
        note = Verdict(OK, "" if hit else "the sweep ended before the signal")
        return worst(ran_ok(res), rows_match(run, cx.fx.truth), note)

    return check


add_case("int_sweep_kill9_then_resume", "interrupt", _sweep_interrupted(signal.SIGKILL))
add_case("int_sweep_ctrl_c_then_resume", "interrupt", _sweep_interrupted(signal.SIGINT))
add_case("int_sweep_sigterm_then_resume", "interrupt", _sweep_interrupted(signal.SIGTERM))


def _train_interrupted(sig: int) -> Callable[[Ctx], Verdict]:
    """Interrupt a long cpi train after its first checkpoint; the manifest must not say
    "running" (kill -9 cannot be caught: there it may, and a sweep of it must still work)."""

    def check(cx: Ctx) -> Verdict:
        out = cx.dir / "run"
        args = train_args(cx.fx.ref_base, cx.fx.alpaca, out)
        args[args.index("--max_steps") + 1] = "2000"
        proc, log = _start(cx, args, "train")
        try:
            hit = _wait_for(proc, lambda: (out / "checkpoint-1").is_dir(), T_TRAIN)
            time.sleep(0.5)
            kill_group(proc, sig)
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            return Verdict(HANG, "cpi train did not stop within 90 s of the signal")
        finally:
            kill_group(proc)
        if not hit:
            return Verdict(TRACEBACK, f"no checkpoint-1: {log.read_text()[-200:]!r}")
        if "Traceback (most recent call last)" in log.read_text(errors="replace"):
            return Verdict(TRACEBACK, "traceback when interrupted")
        status = json.loads((out / "cpi_run.json").read_text()).get("status")
        if sig != signal.SIGKILL and status == "running":
            return Verdict(SILENT, f"manifest says 'running' after signal {sig}")
        res = cx.sweep(out, "--dry-run")
        note = f"manifest status {status!r}" + (" (acceptable after kill -9)" if sig == 9 else "")
        return worst(ran_ok(res), Verdict(OK, note))

    return check


add_case("int_train_ctrl_c", "interrupt", _train_interrupted(signal.SIGINT))
add_case("int_train_sigterm", "interrupt", _train_interrupted(signal.SIGTERM))
add_case("int_train_kill9", "interrupt", _train_interrupted(signal.SIGKILL))


# ----------------------------------------------------------------------------- model specs,
# completeness, adapters, claims, quantisation, model files, limits (issue 22)


def _gguf_models_folder(cx: Ctx) -> Path:
    """~/models as users keep it: the base as a .gguf next to another model's .gguf."""
    from tests.helpers.model_specs import write_tiny_gguf

    gguf = write_tiny_gguf(cx.fx.ref_base, cx.dir / "models" / "tiny.gguf")
    write_tiny_gguf(cx.fx.decoy_base, cx.dir / "models" / "other.gguf")
    return gguf


def _train_then_sweep(cx: Ctx, spec: str, env: dict[str, str] | None = None) -> Verdict:
    """LoRA cpi train from ``spec``, then cpi sweep: both exit 0, every step has a row, and
    every adapter names the base the manifest names."""
    run = cx.dir / "run"
    args = train_args(spec, cx.fx.alpaca, run, "--finetune", "lora", "--lora_r", "4")
    bad = ran_ok(cx.train(*args, env=env))
    if bad:
        return bad
    res = cx.sweep(run, env=env)
    bad = ran_ok(res)
    if bad:
        return bad
    base = json.loads((run / "cpi_run.json").read_text())["base_model"]
    named = json.loads((run / "checkpoint-2" / "adapter_config.json").read_text())
    if named.get("base_model_name_or_path") != base:
        return Verdict(SILENT, f"adapter names {named.get('base_model_name_or_path')}, run {base}")
    missing = {0, 1, 2} - set(rows_of(run))
    return Verdict(SILENT, f"no row for steps {sorted(missing)}") if missing else Verdict(OK)


@case("provenance")
def prov_gguf_base_in_shared_models_folder(cx: Ctx) -> Verdict:
    """cpi train from one .gguf of a folder holding two, then cpi sweep."""
    return _train_then_sweep(cx, str(_gguf_models_folder(cx)))


@case("provenance")
def prov_hub_id_base_from_the_hub_cache(cx: Ctx) -> Verdict:
    """cpi train from a hub id (served offline from a hub cache), then cpi sweep."""
    from tests.helpers.model_specs import install_in_hub_cache

    install_in_hub_cache(cx.fx.ref_base, "cpi-test/tiny", cx.dir / "hub")
    return _train_then_sweep(cx, "cpi-test/tiny", cx.env(HF_HUB_CACHE=str(cx.dir / "hub")))


@case("provenance")
def prov_vocab_txt_tokenizer_edited(cx: Ctx) -> Verdict:
    """checkpoint-4's tokenizer is a vocab.txt (BERT-style); after a sweep its vocab.txt is
    edited (two tokens swapped): step 4 must be re-evaluated, never reused."""
    run = cx.copy(cx.fx.ref, "run")
    ckpt = run / "checkpoint-4"
    for f in ckpt.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            f.unlink()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words += [chr(c) for c in range(33, 127)] + [f"##{chr(c)}" for c in range(97, 123)]
    (ckpt / "vocab.txt").write_text("\n".join(words) + "\n")
    special = {"eos_token": "[SEP]", "bos_token": "[CLS]", "pad_token": "[PAD]"}
    write_json(ckpt / "tokenizer_config.json", {"tokenizer_class": "BertTokenizer", **special})
    bad = ran_ok(cx.sweep(run))
    if bad:
        return bad
    lines = (ckpt / "vocab.txt").read_text().splitlines()
    lines[100], lines[101] = lines[101], lines[100]
    (ckpt / "vocab.txt").write_text("\n".join(lines) + "\n")
    return worst(reevaluated(cx.sweep(run, "--dry-run"), [4]))


@case("interrupt")
def int_train_resume_after_kill_during_save(cx: Ctx) -> Verdict:
    """The newest checkpoint holds a cut model.safetensors and no trainer_state.json (killed
    in its save): --resume_from_checkpoint last resumes from the one before and writes that
    step again."""
    run = cx.copy(cx.fx.trained, "run")
    weights = run / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (run / "checkpoint-2" / "trainer_state.json").unlink()
    base = json.loads((run / "cpi_run.json").read_text())["base_model"]
    args = train_args(base, cx.fx.alpaca, run, "--resume_from_checkpoint", "last")
    bad = ran_ok(cx.train(*args))
    if bad:
        return bad
    manifest = json.loads((run / "cpi_run.json").read_text())
    if not str(manifest.get("resumed_from")).endswith("checkpoint-1"):
        return Verdict(SILENT, f"resumed from {manifest.get('resumed_from')}")
    if not (run / "checkpoint-2" / "trainer_state.json").is_file():
        return Verdict(SILENT, "step 2 was not written again")
    return worst(ran_ok(cx.sweep(run)))


@case("silent")
def silent_adapter_tensors_match_no_module(cx: Ctx) -> Verdict:
    """checkpoint-2's adapter names layers the base lacks (layers.7x): it loads nothing, so
    its row would be the base model's numbers. It must fail, naming the tensors."""
    from safetensors.torch import load_file, save_file

    run = cx.copy(cx.fx.lora_swept, "run")
    shutil.rmtree(run / "eval")
    (run / "inversion.json").unlink()
    weights = run / "checkpoint-2" / "adapter_model.safetensors"
    tensors = {k.replace("layers.", "layers.7"): v for k, v in load_file(weights).items()}
    save_file(tensors, weights, metadata={"format": "pt"})
    res = cx.sweep(run)
    bad = crashed(res)
    if bad:
        return bad
    if res.rc == 0 or 2 in rows_of(run):
        return Verdict(SILENT, f"exit {res.rc}; a row for the adapter that loaded nothing")
    if "layers.7" not in res.err:
        return Verdict(TRACEBACK, "the failure does not name the unmatched tensors")
    return Verdict(OK)


@case("isolation")
def iso_theory_into_user_folder(cx: Ctx) -> Verdict:
    folder = user_folder(cx)
    (folder / "theory.json").write_text('{"my": "own theory"}\n')
    before = snapshot(folder)
    res = cx.cpi("theory", "--out", str(folder), "--steps", "20")
    return worst(lost_files(before, folder), one_line_error(res, "theory", "mine"))


@case("isolation")
def iso_models_fetch_into_user_folder(cx: Ctx) -> Verdict:
    folder = user_folder(cx, "smollm2-135m-instruct")
    before = snapshot(folder)
    res = cx.cpi("models", "fetch", "--out", str(cx.dir), "--model", "smollm2-135m-instruct")
    return worst(lost_files(before, folder), one_line_error(res, "models", "smollm2"))


def _two_at_once(cx: Ctx, args: list[str], command: str, folder: Path) -> Verdict:
    """Start ``cpi ARGS`` twice at the same moment on one new folder: one must succeed, the
    other exit 2 with one line naming the folder."""
    procs = [_start(cx, args, f"{command}-{i}") for i in (1, 2)]
    try:
        rcs = [p.wait(timeout=T_TRAIN) for p, _ in procs]
    except subprocess.TimeoutExpired:
        return Verdict(HANG, f"two cpi {command} did not end within {T_TRAIN} s")
    finally:
        for p, _ in procs:
            kill_group(p)
    logs = [log.read_text(errors="replace") for _, log in procs]
    if sorted(rcs) == [0, 0]:
        return Verdict(SILENT, f"both cpi {command} wrote into {folder.name} (exit 0 twice)")
    if sorted(rcs) != [0, 2]:
        return Verdict(TRACEBACK, f"exits {rcs}: {logs[rcs.index(max(rcs))][-160:]!r}")
    loser = Result([], 2, "", logs[rcs.index(2)], 0.0)
    return one_line_error(loser, command, re.escape(folder.name), 2, TRAIN_LOG)


@case("isolation")
def iso_train_two_at_once_into_one_new_folder(cx: Ctx) -> Verdict:
    out = cx.dir / "run"
    return _two_at_once(cx, train_args(cx.fx.ref_base, cx.fx.alpaca, out), "train", out)


@case("isolation")
def iso_theory_two_at_once_into_one_new_folder(cx: Ctx) -> Verdict:
    out = cx.dir / "theory"
    return _two_at_once(cx, ["theory", "--out", str(out)], "theory", out)


@case("silent")
def silent_train_4bit_without_bitsandbytes(cx: Ctx) -> Verdict:
    """--load_in_4bit where bitsandbytes cannot run (CPU): refused in one line, never a
    silent full-precision run."""
    import importlib.util

    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes"):
        return Verdict(OK, "bitsandbytes and CUDA present: the flag is honoured")
    args = train_args(cx.fx.ref_base, cx.fx.alpaca, cx.dir / "out", "--load_in_4bit", "true")
    res = cx.train(*args, "--finetune", "lora")
    return one_line_error(res, "train", "--load_in_4bit", 2, TRAIN_LOG)


@case("errors")
def err_train_eval_limit_fraction(cx: Ctx) -> Verdict:
    """--eval_limit 0.5 means half of each task, as cpi sweep's --limit 0.5 does."""
    out = cx.dir / "run"
    extra = ("--eval_tasks", TASK, "--eval_limit", "0.5", "--eval_batch_size", "4")
    bad = ran_ok(cx.train(*train_args(cx.fx.ref_base, cx.fx.alpaca, out, *extra)))
    if bad:
        return bad
    limit = json.loads((out / "eval" / "step-2.json").read_text())["cpi"]["settings"]["limit"]
    return Verdict(OK) if limit == 0.5 else Verdict(SILENT, f"limit recorded as {limit!r}")


# ----------------------------------------------------------------------------- runner


@dataclass
class Row:
    case: Case
    verdict: Verdict
    seconds: float
    stderr: str = ""


def run_case(fx: Fixtures, item: Case) -> Row:
    folder = fx.root / "cases" / item.name
    folder.mkdir(parents=True, exist_ok=True)
    cx = Ctx(fx, folder)
    started = time.time()
    try:
        verdict = item.fn(cx)
    except FixtureError as err:
        verdict = Verdict(TRACEBACK, f"fixture: {err}")
    except Exception as err:  # noqa: BLE001 - a harness error is reported, never hidden
        verdict = Verdict(TRACEBACK, f"harness: {type(err).__name__}: {err}")
    first = cx.shown.first_line() if cx.shown else ""
    return Row(item, verdict, time.time() - started, first)


def print_table(rows: list[Row], wall: float, out: TextIO = sys.stdout) -> None:
    width = max(len(r.case.name) for r in rows)
    print(f"\n{'case':<{width}}  {'class':<11} {'outcome':<12} {'sec':>5}  detail", file=out)
    for r in rows:
        detail = " | ".join(x for x in (r.verdict.detail, r.stderr) if x)
        print(
            f"{r.case.name:<{width}}  {r.case.cls:<11} {r.verdict.outcome:<12} "
            f"{r.seconds:>5.1f}  {detail[:230]}",
            file=out,
        )
    totals = {o: sum(r.verdict.outcome == o for r in rows) for o in OUTCOMES}
    print(
        "\ntotals: "
        + ", ".join(f"{o} {n}" for o, n in totals.items())
        + f"  ({len(rows)} cases, wall {wall:.0f} s)",
        file=out,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=None, help="regex on case name or class")
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", default=None, help="also write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cases = [c for c in CASES if not args.only or re.search(args.only, f"{c.name} {c.cls}")]
    if args.list:
        print("\n".join(f"{c.name:<44} {c.cls}" for c in cases) + f"\n{len(cases)} cases")
        return 0
    # Started in the background (nohup, `&` in a script) this process inherits SIGINT
    # ignored, and so would every command it runs: Ctrl-C would then be a no-op in the cases
    # that send it. A handler of our own is reset to the default in each child at exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    root = Path(tempfile.mkdtemp(prefix="cpi-adversarial-"))
    started = time.time()
    fx = Fixtures(root)
    rows: list[Row] = []
    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
            for row in pool.map(lambda c: run_case(fx, c), cases):
                print(
                    f"[{row.seconds:6.1f} s] {row.verdict.outcome:<12} {row.case.name}", flush=True
                )
                rows.append(row)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    wall = time.time() - started
    print_table(rows, wall)
    if args.json:
        report = [
            {
                "case": r.case.name,
                "class": r.case.cls,
                "outcome": r.verdict.outcome,
                "detail": r.verdict.detail,
                "stderr": r.stderr,
                "seconds": round(r.seconds, 1),
            }
            for r in rows
        ]
        Path(args.json).write_text(
            json.dumps({"wall_seconds": round(wall, 1), "cases": report}, indent=1)
        )
    return 0 if all(r.verdict.outcome == OK for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
