"""The reference board: real small models on every cpi_* task available offline, rendered
with ``cpi compare`` as Markdown (for the README) and HTML (for docs/).

Three rows, each one plain ``lm_eval`` run (the exact commands are written next to the
results):

* ``smollm2-135m-instruct``: SmolLM2-135M-Instruct, prompts as plain text;
* ``smollm2-135m-instruct+chat-template``: the same model with ``--apply_chat_template``;
* ``gemma-3-270m``: Gemma 3 270M base.

Tasks: every ``cpi_*`` task under ``tasks/`` (core, ``_instructed``, ``_choice``,
``_closedbook``, NQ-Swap, ConflictQA, memo-trap) whose public data file is in
``CPI_DATA_DIR`` (tasks whose file is missing are listed as skipped), each on its first
``--limit`` items (lm-eval's ``--limit``; default 200, all items where a task has fewer).
The models are read from ``--models-dir`` (folders ``smollm2-135m-instruct`` and
``gemma-3-270m``: ``cpi models fetch --out DIR`` writes them); lm_eval runs inside that folder
so that the results name each model by its folder name, not by a machine's path.

Written under ``--out`` (default ``benchmarks/results``):

* ``<row>/results_<date>.json``: lm-eval's own results file per row (a row whose folder holds
  a results file with the same tasks and limit is reused, so a stopped run resumes);
* ``.request-cache/<row>/<fingerprint>_rank0.db``: lm-eval's request cache (``--use_cache``),
  so that a row stopped part-way resumes from the requests already answered (not committed);
* ``COMMANDS.md``: every command verbatim, the model fingerprints (SHA-256 of the weights,
  config and tokenizer files), the data files' SHA-256, versions, wall time per row and the
  machine's load;
* ``board.md`` and ``board.html``: ``cpi compare`` of the three rows (the chat template
  differs between rows on purpose: ``--allow-settings-mismatch chat_template``).

Time: the ``smollm2-135m-instruct`` row on the 20 tasks available offline at ``--limit 8``
took 846 s on 2 CPU cores shared with other jobs (load 2.4 to 5.1): 120 generation requests
at 5.4 s each and 80 log-likelihood requests at 2.3 s each. At ``--limit 200`` that is about
25 times the requests: roughly 6 hours for that row under the same load, more with the chat
template (longer prompts), so plan on the order of a day for the three rows on 2 busy cores
(``--rows`` runs one row: run the rows on separate machines, copy their folders into one
``--out`` and run once more with every row: each is reused and the board rendered).

Run (COMMANDS.md records the measured times)::

    CPI_DATA_DIR=/path/to/public/data python benchmarks/reference_board.py \\
        --models-dir models --limit 200
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from cpi_bench.harness_ext.core.errors import CPIError, run_entry
from cpi_bench.harness_ext.core.files import atomic_write_text, file_sha256
from cpi_bench.harness_ext.models.source import model_fingerprint
from cpi_bench.tasks.sources import DATA_DIR_ENV, SOURCES, find_in_data_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/helpers, shared with the tests
from tests.helpers.env import offline_env  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TASKS_DIR = REPO / "tasks"
CACHE_DIR = ".request-cache"  # under --out; not committed (see .gitignore)
RUN_INFO = "run_info.json"  # per row: the command, wall time and load that made its results
# row name -> (model folder under --models-dir, extra lm_eval arguments)
ROWS: dict[str, tuple[str, list[str]]] = {
    "smollm2-135m-instruct": ("smollm2-135m-instruct", []),
    "smollm2-135m-instruct+chat-template": ("smollm2-135m-instruct", ["--apply_chat_template"]),
    "gemma-3-270m": ("gemma-3-270m", []),
}


class _TagLoader(yaml.SafeLoader):
    """Reads lm-eval task YAMLs without running them: ``!function x`` stays the text x."""


_TagLoader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _task_config(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A task YAML with its ``include`` chain merged in (the file's own keys win)."""
    if path in seen:
        raise CPIError(f"{path}: include cycle")
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_TagLoader) or {}
    includes = data.pop("include", None) or []
    merged: dict[str, Any] = {}
    for inc in [includes] if isinstance(includes, str) else includes:
        merged.update(_task_config((path.parent / inc).resolve(), (*seen, path)))
    merged.update(data)
    return merged


def discover_tasks(tasks_dir: Path, data_dir: Path) -> tuple[list[str], dict[str, str]]:
    """(every ``cpi_*`` task whose data file is in ``data_dir``, sorted; ``{task: why}`` for
    the ``cpi_*`` tasks skipped). Groups (``cpi``, ``cpisuite``) are not tasks."""
    found, skipped = [], {}
    for path in sorted(tasks_dir.rglob("*.yaml")):
        config = _task_config(path.resolve())
        name = config.get("task")
        if not isinstance(name, str) or not name.startswith("cpi_") or "group" in config:
            continue
        source = (config.get("dataset_kwargs") or {}).get("source")
        spec = SOURCES.get(source)
        if spec is None:
            skipped[name] = f"unknown source {source!r}"
        elif find_in_data_dir(data_dir, spec.file_name) is None:
            skipped[name] = f"{spec.file_name} is not in {data_dir}"
        else:
            found.append(name)
    return sorted(found), skipped


def lm_eval_command(row: str, args: argparse.Namespace, tasks: list[str]) -> list[str]:
    """The lm_eval command of one row (run inside --models-dir; writes under --out/row)."""
    folder, extra = ROWS[row]
    out = Path(args.out).resolve() / row / "results.json"  # lm-eval: <out>/<row>/results_<date>
    lm_eval = ["lm_eval"] if shutil.which("lm_eval") else [sys.executable, "-m", "lm_eval"]
    return [
        *lm_eval,
        "--model",
        "hf",
        "--model_args",
        f"pretrained={folder},dtype=float32",
        "--tasks",
        ",".join(tasks),
        "--limit",
        str(args.limit),
        "--batch_size",
        str(args.batch_size),
        "--output_path",
        str(out),
        *(["--log_samples"] if args.log_samples else []),
        "--use_cache",
        str(request_cache(row, args)),
        *extra,
    ]


def request_cache(row: str, args: argparse.Namespace) -> Path:
    """lm-eval's per-request cache of one row (``--use_cache``; written as each request is
    answered), so a stopped row resumes where it stopped. Its name carries the model's
    fingerprint: other weights in the same folder never reuse these answers."""
    folder, _ = ROWS[row]
    fingerprint = _fingerprint(Path(args.models_dir) / folder)
    if fingerprint == "?":
        raise CPIError(f"--models-dir {args.models_dir}: cannot fingerprint {folder}")
    return Path(args.out).resolve() / CACHE_DIR / row / fingerprint[:16]


def finished(row_dir: Path, tasks: list[str], limit: int) -> Path | None:
    """The newest results file of a row that already covers ``tasks`` at ``limit``."""
    for path in sorted(row_dir.glob("results_*.json"), reverse=True):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        config = data.get("config") or {}
        if set(tasks) <= set(data.get("results") or {}) and config.get("limit") == limit:
            return path
    return None


def run_row(row: str, args: argparse.Namespace, tasks: list[str]) -> dict[str, Any]:
    """Run (or reuse) one row; its command, wall time (s), load before and the results file."""
    row_dir = Path(args.out) / row
    command = lm_eval_command(row, args, tasks)
    done = finished(row_dir, tasks, args.limit)
    if done is not None:
        print(f"{row}: reusing {done} (same tasks and limit)")
        info = _run_info(row_dir, done)
        return {"row": row, "command": command, "results": str(done), "reused": True, **info}
    row_dir.mkdir(parents=True, exist_ok=True)
    cached = cached_requests(request_cache(row, args))
    load = os.getloadavg()[0]
    started = time.monotonic()
    env = offline_env(**{DATA_DIR_ENV: str(args.data_dir)})
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    print(f"{row}: {' '.join(command)}", flush=True)
    with open(row_dir / "lm_eval.log", "w", encoding="utf-8") as log:
        try:
            proc = subprocess.run(
                command,
                cwd=args.models_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=args.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CPIError(f"{row}: lm_eval ran past --timeout {args.timeout} s") from None
    if proc.returncode != 0:
        raise CPIError(f"{row}: lm_eval exited {proc.returncode}; see {row_dir / 'lm_eval.log'}")
    done = finished(row_dir, tasks, args.limit)
    if done is None:
        raise CPIError(f"{row}: lm_eval wrote no results file covering the tasks in {row_dir}")
    wall = time.monotonic() - started
    print(f"{row}: {wall:.0f} s -> {done}", flush=True)
    info = {"results_file": done.name, "wall_s": wall, "load": load, "command": command}
    info["cached_at_start"] = cached  # requests answered by an earlier, stopped attempt
    info["threads"] = args.threads  # OMP_NUM_THREADS of lm_eval (None: unset)
    atomic_write_text(row_dir / RUN_INFO, json.dumps(info, indent=2) + "\n")
    return {"row": row, "results": str(done), **info}


def cached_requests(cache: Path) -> int:
    """How many requests lm-eval's cache of a row already holds (0 when there is none)."""
    db = cache.with_name(cache.name + "_rank0.db")  # the name lm-eval gives it
    if not db.is_file():
        return 0
    with contextlib.closing(sqlite3.connect(db)) as con:
        return con.execute("SELECT COUNT(*) FROM unnamed").fetchone()[0]  # sqlitedict's table


def _run_info(row_dir: Path, results: Path) -> dict[str, Any]:
    """The wall time and load recorded when ``results`` was made (a reused row keeps them)."""
    try:
        info = json.loads((row_dir / RUN_INFO).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    if info.get("results_file") != results.name:
        return {}
    keep = ("wall_s", "load", "command", "cached_at_start", "threads")
    return {k: info[k] for k in keep if k in info}


def _fingerprint(folder: Path) -> str:
    try:
        return model_fingerprint(folder) or "?"
    except CPIError:  # not (yet) a model folder
        return "?"


def _fingerprints(args: argparse.Namespace) -> dict[str, str]:
    folders = sorted({ROWS[r][0] for r in args.rows})
    return {f: _fingerprint(Path(args.models_dir) / f) for f in folders}


def _data_hashes(args: argparse.Namespace, tasks: list[str]) -> dict[str, str]:
    out = {}
    for spec in SOURCES.values():
        path = find_in_data_dir(Path(args.data_dir), spec.file_name)
        if path is not None and spec.url is not None:
            out[spec.file_name] = file_sha256(path)
    return out


def _versions() -> dict[str, str]:
    """The installed libraries that decide a number (the package's one list of them)."""
    from cpi_bench.harness_ext.core.run_folder import library_versions

    return {k: v for k, v in library_versions().items() if v}


def _shown(command: list[str]) -> str:
    """A command as text, paths inside this checkout written as ``$REPO/...``."""
    root = str(REPO) + os.sep
    return " ".join(a.replace(root, "$REPO/") for a in command)


def commands_markdown(
    args: argparse.Namespace,
    tasks: list[str],
    skipped: dict[str, str],
    runs: list[dict[str, Any]],
    compare: list[list[str]],
) -> str:
    """COMMANDS.md: how every file here was made, verbatim, with what must match to rerun."""
    lines = [
        "# Reference board: how these files were made",
        "",
        f"Run by `benchmarks/reference_board.py --limit {args.limit}` on an "
        f"{platform.machine()} machine with {os.cpu_count()} CPU "
        "cores (`OMP_NUM_THREADS` per row in the table), Python "
        f"{platform.python_version()}. Commands ran inside the models folder "
        f"(`cd {Path(args.models_dir).resolve()}`), with `{DATA_DIR_ENV}` set to the public "
        "data files below and `HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1`; `$REPO` is the "
        "cpi-bench checkout, and `cpi compare` ran there.",
        "",
        "| row | command | threads | wall time | load (1 min) before | requests cached at start |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        wall = f"{r['wall_s']:.0f} s" if "wall_s" in r else "(not recorded)"
        load = f"{r['load']:.2f}" if "load" in r else ""
        cached = r.get("cached_at_start", "")
        threads = r.get("threads") or ("unset" if "threads" in r else "(not recorded)")
        lines.append(
            f"| {r['row']} | `{_shown(r['command'])}` | {threads} | {wall} | {load} | {cached} |"
        )
    lines += [
        "",
        "A row's wall time is that of the run that wrote its results; requests cached at start",
        "were answered by an earlier attempt of the same row that was stopped (lm-eval's",
        "`--use_cache`), so its time is not in the figure; such an attempt may have used",
        "another `--batch_size` (a row killed for memory is rerun with a smaller one), and the",
        "greedy answers taken from the cache are the earlier attempt's.",
    ]
    lines += ["", "Rendered with:", ""]
    lines += [f"    {_shown(c)}" for c in compare]
    lines += ["", f"Tasks ({len(tasks)}): {', '.join(tasks)}.", ""]
    if skipped:
        lines.append("Skipped (data file not available offline): " + "; ".join(
            f"{t} ({why})" for t, why in sorted(skipped.items())) + ".")  # fmt: skip
        lines.append("")
    lines += ["Model fingerprints (SHA-256 over weight, config and tokenizer files):", ""]
    lines += [f"- `{m}`: `{h}`" for m, h in _fingerprints(args).items()]
    lines += ["", "Data files (SHA-256):", ""]
    lines += [f"- `{n}`: `{h}`" for n, h in _data_hashes(args, tasks).items()]
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in _versions().items()) + "."]
    return "\n".join(lines) + "\n"


def render_board(args: argparse.Namespace, runs: list[dict[str, Any]]) -> list[list[str]]:
    """``cpi compare`` the rows into board.md and board.html; the commands it ran."""
    cpi = [sys.executable, "-m", "cpi_bench.harness_ext.cli", "compare"]
    rows = [str(Path(r["results"]).resolve()) for r in runs]
    shown = []
    for fmt in ("md", "html"):
        out = Path(args.out).resolve() / f"board.{fmt}"
        cmd = [*rows, "--allow-settings-mismatch", "chat_template", "--format", fmt]
        cmd += ["--output", str(out)]
        proc = subprocess.run([*cpi, *cmd], cwd=REPO, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise CPIError(f"cpi compare failed: {proc.stderr.strip()}")
        shown.append(["cpi", "compare", *cmd])
    return shown


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models-dir", default="models", type=Path, help="where `cpi models fetch` wrote them"
    )
    parser.add_argument("--data-dir", default=os.environ.get(DATA_DIR_ENV), type=Path)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--limit", type=int, default=200, help="items per task (all if fewer)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for lm_eval")
    parser.add_argument("--tasks", default=None, help="comma list (default: every cpi_* task)")
    parser.add_argument("--rows", default=",".join(ROWS), help="which rows, comma list")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per row")
    parser.add_argument(
        "--log-samples",
        action="store_true",
        help="also write lm-eval's per-item samples (large: not meant to be committed)",
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.data_dir is None or not Path(args.data_dir).is_dir():
        raise CPIError(f"set {DATA_DIR_ENV} (or --data-dir) to the folder of public data files")
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    if unknown := [r for r in args.rows if r not in ROWS]:
        raise CPIError(f"--rows: unknown {', '.join(unknown)} (choose from {', '.join(ROWS)})")
    for folder in {ROWS[r][0] for r in args.rows}:
        if not (Path(args.models_dir) / folder / "config.json").is_file():
            raise CPIError(
                f"--models-dir {args.models_dir}: no model folder {folder} "
                f"(`cpi models fetch --out {args.models_dir} --model all` writes it)"
            )
    tasks, skipped = discover_tasks(TASKS_DIR, Path(args.data_dir))
    if args.tasks:
        wanted = [t.strip() for t in args.tasks.split(",") if t.strip()]
        if missing := [t for t in wanted if t not in tasks]:
            raise CPIError(f"--tasks: not available offline: {', '.join(missing)}")
        tasks = wanted
    print(f"{len(tasks)} task(s): {', '.join(tasks)}; skipped: {', '.join(skipped) or 'none'}")
    runs = [run_row(row, args, tasks) for row in args.rows]
    compare = render_board(args, runs)
    text = commands_markdown(args, tasks, skipped, runs, compare)
    atomic_write_text(Path(args.out) / "COMMANDS.md", text)
    print(f"wrote {Path(args.out) / 'board.md'}, board.html and COMMANDS.md")
    return 0


if __name__ == "__main__":
    sys.exit(run_entry("reference_board", main, sys.argv[1:]))
