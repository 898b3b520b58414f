"""Benchmark: ``cpi sweep`` against the naive one-``lm_eval``-per-checkpoint loop.

    python benchmarks/bench_sweep.py --threads 1                 # K = 7 models, full and LoRA
    python benchmarks/bench_sweep.py --models 7,20 --threads 1   # K = 7 and K = 20, one call

For each K in ``--models``, builds two tiny runs in a temporary folder (a full-finetune run and
a LoRA run over the same base: step 0 plus K - 1 checkpoints each), then measures, in this one
invocation:

* the naive loop: ``lm_eval --model hf --model_args pretrained=CKPT ...`` once per model
  (LoRA: ``pretrained=BASE,peft=CKPT,tokenizer=CKPT``), each a fresh process;
* ``cpi sweep RUN`` on the same checkpoints, tasks, limit and batch size, one process.

Every metric of every task and step must be identical (exact float equality) between the two;
the script exits 1 otherwise. It prints the wall-clock times and their ratio per K and run,
the number of metric values compared, and the machine's load average (1/5/15 min) before
and after, since other jobs change wall times. Reads the cpi task data from ``--data_dir`` /
``CPI_DATA_DIR``; without either it writes small synthetic files in the public schemas
(testing/public_fixtures.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/helpers, shared with the tests
from tests.helpers.env import offline_env  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TASKS = "cpi_capitals,cpi_quotes,cpi_capitals_choice,cpi_quotes_choice"


def _env(args: argparse.Namespace) -> dict[str, str]:
    env = offline_env(CPI_DATA_DIR=str(args.data_dir))
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    return env


def _run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return seconds


def naive_loop(
    run: Path, base: Path, steps: list[int], lora: bool, out: Path, args: argparse.Namespace
) -> tuple[float, dict[int, Path]]:
    """One ``lm_eval`` process per model; returns (seconds, {step: results file})."""
    from cpi_bench.harness_ext.lm_eval_plugin.autoload import tasks_dir

    lm_eval = str(Path(sys.executable).with_name("lm_eval"))
    files: dict[int, Path] = {}
    total = 0.0
    for step in steps:
        ckpt = run / f"checkpoint-{step}"
        if step == 0:
            model_args = f"pretrained={base}"
        elif lora:
            model_args = f"pretrained={base},peft={ckpt},tokenizer={ckpt}"
        else:
            model_args = f"pretrained={ckpt}"
        dest = out / f"step-{step}"
        cmd = [
            lm_eval,
            "--model",
            "hf",
            "--model_args",
            model_args,
            "--tasks",
            args.tasks,
            "--limit",
            str(args.limit),
            "--device",
            "cpu",
            "--batch_size",
            str(args.batch_size),
            "--include_path",
            str(tasks_dir()),
            "--output_path",
            str(dest),
        ]
        total += _run(cmd, _env(args))
        (found,) = sorted(dest.rglob("results_*.json"))
        files[step] = found
    return total, files


def sweep(run: Path, args: argparse.Namespace) -> float:
    cmd = [
        sys.executable,
        "-m",
        "cpi_bench.harness_ext.cli",
        "sweep",
        str(run),
        "--tasks",
        args.tasks,
        "--limit",
        str(args.limit),
        "--device",
        "cpu",
        "--batch_size",
        str(args.batch_size),
    ]
    return _run(cmd, _env(args))


def compare(naive: dict[int, Path], run: Path, tasks: list[str]) -> tuple[list[str], int]:
    """(differences between the naive results and the sweep's step files, values compared)."""
    problems = []
    n_values = 0
    for step, path in sorted(naive.items()):
        ours = json.loads((run / "eval" / f"step-{step}.json").read_text())["results"]
        theirs = json.loads(path.read_text())["results"]
        for task in tasks:
            a, b = theirs.get(task, {}), ours.get(task, {})
            keys = sorted(k for k in a if "," in k)
            if not keys:
                problems.append(f"step {step} {task}: no metrics in lm_eval's results")
            for key in keys:
                n_values += 1
                if a[key] != b.get(key):
                    problems.append(
                        f"step {step} {task} {key}: lm_eval {a[key]!r} vs sweep {b.get(key)!r}"
                    )
    print(
        f"  compared {n_values} metric values over {len(naive)} models: "
        f"{'identical' if not problems else f'{len(problems)} differ'}"
    )
    return problems, n_values


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models",
        default="7",
        help="models per run, base included, comma-separated for several settings in one "
        "call (default 7: base + 6 checkpoints; 7,20 also measures K = 20)",
    )
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help="comma-separated cpi tasks")
    parser.add_argument("--limit", type=int, default=10, help="items per task")
    parser.add_argument("--batch_size", type=int, default=8, help="lm-eval batch size")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OMP_NUM_THREADS for every process (default: unset)",
    )
    parser.add_argument(
        "--data_dir",
        type=Path,
        default=Path(os.environ["CPI_DATA_DIR"]) if os.environ.get("CPI_DATA_DIR") else None,
        help="folder with the cpi task data (default: CPI_DATA_DIR, else generated fixtures)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to build the runs (default: a temporary folder, removed)",
    )
    parser.add_argument("--skip_lora", action="store_true", help="only the full-finetune run")
    args = parser.parse_args()
    args.ks = [int(k) for k in args.models.split(",") if k.strip()]
    if not args.ks or min(args.ks) < 2:
        parser.error("--models: give whole numbers >= 2 (base + at least one checkpoint)")
    return args


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return (
        f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min), {os.cpu_count()} CPUs"
    )


def measure(k: int, work: Path, base: Path, args: argparse.Namespace) -> list[tuple]:
    """Both runs of one K: [(K, run kind, naive s, sweep s, values compared, identical)]."""
    from tests.helpers.tiny_run import build_tiny_run

    steps = [2 * i for i in range(1, k)]
    kinds = ["full"] if args.skip_lora else ["full", "lora"]
    print(f"[K={k}] building tiny runs in {work}: base + checkpoints {steps}", flush=True)
    out = []
    for kind in kinds:
        run = build_tiny_run(work / f"{kind}-{k}", steps=steps, finetune=kind, base_dir=base)
        print(f"[K={k} {kind}] naive loop: {k} x lm_eval ... ({_load()})", flush=True)
        t_naive, files = naive_loop(
            run, base, [0, *steps], kind == "lora", work / f"naive-{kind}-{k}", args
        )
        print(f"[K={k} {kind}] cpi sweep ...", flush=True)
        t_sweep = sweep(run, args)
        problems, n_values = compare(files, run, args.tasks.split(","))
        for p in problems[:20]:
            print("   ", p)
        print(
            f"[K={k} {kind}] naive {t_naive:.1f} s ({t_naive / k:.1f} s/model), "
            f"sweep {t_sweep:.1f} s ({t_sweep / k:.1f} s/model): "
            f"{t_naive / t_sweep:.1f}x faster",
            flush=True,
        )
        out.append((k, kind, t_naive, t_sweep, n_values, not problems))
    return out


def main() -> int:
    args = _parse()
    if args.data_dir is None:
        from tests.helpers.public_fixtures import write_fixture_data

        args.data_dir = write_fixture_data(Path(tempfile.mkdtemp(prefix="bench_sweep_data_")))
    if not args.data_dir.is_dir():
        sys.exit(f"no task data at {args.data_dir}; set CPI_DATA_DIR or --data_dir")
    os.environ["CPI_DATA_DIR"] = str(args.data_dir)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    print(
        f"tasks {args.tasks}, limit {args.limit}, batch size {args.batch_size}, "
        f"OMP_NUM_THREADS={args.threads or 'unset'}; at start: {_load()}"
    )
    results = []
    for k in args.ks:
        results += measure(k, work, work / "base", args)
    print(f"\nsummary (wall-clock seconds, one invocation; at end: {_load()})")
    print("| K (models) | run | naive lm_eval loop | cpi sweep | speed-up | metric values |")
    print("|---:|---|---:|---:|---:|---|")
    for k, kind, t_naive, t_sweep, n_values, same in results:
        print(
            f"| {k} | {kind} | {t_naive:.1f} ({t_naive / k:.1f}/model) | {t_sweep:.1f} "
            f"({t_sweep / k:.1f}/model) | {t_naive / t_sweep:.1f}x | {n_values}, "
            f"{'all identical' if same else 'DIFFER'} |"
        )
    failed = not all(r[-1] for r in results)
    print("metrics identical: " + ("NO" if failed else "yes"))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
