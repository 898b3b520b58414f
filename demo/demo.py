"""``cpi demo``: the whole product on a CPU, no downloads.

    cpi demo --out demo --seed 0          # the standard run and three mitigations
    cpi demo --out demo --quick           # the first 150 steps only (CI; about 1 minute)

1. A seeded synthetic fact world is written into ``OUT/world`` (``world.py``).
2. A tiny Llama is pretrained on its facts until it recalls them (``base_model.py``; cached
   by config hash under ``OUT/cache``, so a rerun skips it).
3. Each variant is a real ``cpi train`` run on the world's IFT mixture (Alpaca rows rendered
   in the ``squad`` layout of the evaluation prompts), then a real ``cpi sweep`` over its
   checkpoints on the ``cpisynth_*`` lm-eval tasks (``CPI_DATA_DIR=OUT/world``):
   ``standard`` (the mixture), ``context_critical`` (its context_critical curation), ``qk``
   (``--finetune qk``) and ``cf_augment`` (counterfactual augmentation).
4. ``OUT/demo.md`` puts the variants side by side and ``OUT/demo.png`` overlays their
   counterfactual-accuracy curves; both are rendered from the variants' ``inversion.json``.

Nothing is hidden: every number comes from the same commands a user runs by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cpi_bench.harness_ext.core.cli_args import ArgumentParser
from cpi_bench.harness_ext.core.constants import (
    INVERSION_JSON,
)
from cpi_bench.harness_ext.core.errors import CPIError
from cpi_bench.harness_ext.core.files import atomic_write_json, atomic_write_text, claim_output_dir

VARIANTS: dict[str, list[str]] = {
    # name: extra `cpi train` arguments
    "standard": [],
    "context_critical": ["--curation", "context_critical"],
    "cf_augment": ["--curation", "cf_augment", "--cf_augment_fraction", "0.2"],
    "full": ["--finetune", "full"],  # every weight trained, for contrast
}
SWEEP_TASKS = "cpisynth_cf,cpisynth_cf_choice"
ID_TASKS = "cpisynth_id"


@dataclass(frozen=True)
class Schedule:
    """IFT settings shared by every variant."""

    max_steps: int = 800
    save_steps: int = 50
    learning_rate: float = 3e-4
    lr_scheduler_type: str = "linear"
    batch_size: int = 16
    context_critical_drop: float = 0.25  # the paper's 25%
    # The standard variant trains only W_q and W_k, the paper's §5 setting: the only setting
    # of the knob search (benchmarks/demo_knobs.py) in which the miniature's context reliance
    # fell after its rise; with every weight trained it learns a clean copy rule instead.
    finetune: str = "qk"


FULL = Schedule()
# The same world and base model (cached: a later full run skips pretraining), fewer steps.
QUICK = Schedule(max_steps=150, save_steps=25)


@contextlib.contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def train_args(
    base: Path,
    world_paths: dict[str, Path],
    out: Path,
    sched: Schedule,
    seed: int,
    extra: list[str],
) -> list[str]:
    args = [
        "--model_name_or_path",
        str(base),
        "--dataset_name",
        str(world_paths["ift"]),
        "--template",
        "squad",
        "--finetune",
        sched.finetune,
        "--learning_rate",
        str(sched.learning_rate),
        "--lr_scheduler_type",
        sched.lr_scheduler_type,
        "--max_steps",
        str(sched.max_steps),
        "--save_steps",
        str(sched.save_steps),
        "--per_device_train_batch_size",
        str(sched.batch_size),
        "--output_dir",
        str(out),
        "--seed",
        str(seed),
        "--report_to",
        "none",
        "--logging_steps",
        str(sched.save_steps),
        "--disable_tqdm",
        "true",
    ]
    args += ["--context_critical_drop", str(sched.context_critical_drop)]  # used if curated
    args += extra
    if "cf_augment" in extra:
        args += ["--cf_augment_source", str(world_paths["cf_augment"])]
    return args


def run_variant(
    name: str, base: Path, world_paths: dict[str, Path], out: Path, sched: Schedule, seed: int
) -> dict:
    """``cpi train`` then ``cpi sweep`` for one variant; return its inversion.json."""
    from cpi_bench.harness_ext.evaluation import sweep
    from cpi_bench.trainer import train

    run_dir = out / name
    args = train_args(base, world_paths, run_dir, sched, seed, VARIANTS[name])
    # A finished or interrupted run is reused only if it was made with the same settings
    # (base model, schedule, seed): a --quick run's checkpoints must not pass for a full run's.
    stamp = run_dir / ".cpi_demo_run.json"  # marks the folder as the demo's own
    if run_dir.exists() and not stamp.is_file():
        raise CPIError(
            f"{run_dir} exists but was not made by cpi demo (move it away or choose another --out)"
        )
    if run_dir.exists() and json.loads(stamp.read_text()) != args:
        print(f"cpi demo: {run_dir} was made with other settings; rerunning {name}")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(stamp, args)
    if not (run_dir / INVERSION_JSON).is_file():
        done = run_dir / f"checkpoint-{sched.max_steps}"
        if not done.is_dir():
            code = train.main(args)
            if code:
                raise RuntimeError(f"cpi train failed for variant {name} (exit {code})")
        with _env(CPI_DATA_DIR=str(world_paths["cf"].parent)):
            code = sweep.main(
                [
                    str(run_dir),
                    "--tasks",
                    SWEEP_TASKS,
                    "--id_tasks",
                    ID_TASKS,
                    "--device",
                    "cpu",
                    "--batch_size",
                    "64",
                ]
            )
        if code:
            raise RuntimeError(f"cpi sweep failed for variant {name} (exit {code})")
    return json.loads((run_dir / INVERSION_JSON).read_text())


def render_markdown(results: dict[str, dict], meta: dict) -> str:
    """The side-by-side table (paper Figures 4b and 5), from the inversion.json files only."""
    lines = [
        "# cpi demo: context-parametric inversion in miniature",
        "",
        f"Base model: a {meta['layers']}-layer Llama pretrained on the synthetic world "
        f"(fact recall {meta['recall']:.2f}); IFT {meta['steps']} steps; seed {meta['seed']}.",
        "",
        "| variant | cf acc at 0 | peak (step) | final | rise | drop | final param acc | "
        "final ID acc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, res in results.items():
        s, last = res["summary"], res["rows"][-1]
        id_acc = "n/a" if last.get("id_acc") is None else f"{last['id_acc']:.2f}"
        lines.append(
            f"| {name} | {s['initial_cf_acc']:.2f} | {s['peak_cf_acc']:.2f} ({s['peak_step']}) "
            f"| {s['final_cf_acc']:.2f} | {s['rise']:+.2f} | {s['drop']:.2f} | "
            f"{last['param_acc']:.2f} | {id_acc} |"
        )
    lines += [
        "",
        "cf acc: the context's answer is given on counterfactual items; param acc: "
        "the memorised answer is; ID acc: held-out C, C+S and recall items. Each "
        "variant's full curve is in OUT/<variant>/inversion.md and .png.",
        "",
    ]
    return "\n".join(lines)


def plot_overlay(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, res in results.items():
        rows = res["rows"]
        ax.plot(
            [r["step"] for r in rows], [r["cf_acc"] for r in rows], marker="o", ms=3, label=name
        )
    ax.set_xlabel("instruction-finetuning step")
    ax.set_ylabel("counterfactual accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("context reliance on knowledge conflicts during IFT")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_demo(
    out: Path,
    world_cfg,
    pre_cfg,
    sched: Schedule,
    seed: int,
    names: list[str],
    log=print,
    cache: Path | None = None,
) -> tuple[dict[str, dict], dict]:
    """World, base model, then ``cpi train`` + ``cpi sweep`` per variant; return the
    variants' inversion.json contents and the run's description."""
    from cpi_bench.demo.base_model import pretrain_base_model
    from cpi_bench.demo.world import World

    world = World(world_cfg)
    paths = world.write(out / "world")
    base, recall = pretrain_base_model(world, pre_cfg, cache or out / "cache", log=log)
    results = {}
    for name in names:
        log(f"== variant {name}: cpi train + cpi sweep")
        results[name] = run_variant(name, base, paths, out, sched, seed)
    meta = {"layers": pre_cfg.num_layers, "recall": recall, "steps": sched.max_steps, "seed": seed}
    return results, meta


def main(argv: list[str]) -> int:
    import torch

    from cpi_bench.demo.base_model import PretrainConfig
    from cpi_bench.demo.world import WorldConfig

    parser = ArgumentParser(
        prog="cpi demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="cpi-demo", help="output folder (default: cpi-demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the world and all training")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="150 IFT steps instead of 800 (about 1 minute on 2 cores; for CI)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated subset of {', '.join(VARIANTS)}",
    )
    args = parser.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        print(
            f"cpi demo: error: unknown --variants {unknown}; choose from {list(VARIANTS)}",
            file=sys.stderr,
        )
        return 2

    start = time.time()
    torch.set_flush_denormal(True)
    out = claim_output_dir(args.out, "demo")
    world_cfg = WorldConfig(seed=args.seed)
    pre_cfg = PretrainConfig(seed=args.seed)
    sched = QUICK if args.quick else FULL
    results, meta = run_demo(out, world_cfg, pre_cfg, sched, args.seed, names)
    atomic_write_text(out / "demo.md", render_markdown(results, meta))
    plot_overlay(results, out / "demo.png")
    print(render_markdown(results, meta))
    print(
        f"wrote {out / 'demo.md'} and {out / 'demo.png'} "
        f"({time.time() - start:.0f} s); per-variant curves in {out}/<variant>/"
    )
    return 0
