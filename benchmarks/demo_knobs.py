"""Search the miniature's knobs for the inversion: which settings make counterfactual accuracy
rise and then fall while in-distribution accuracy holds?

    python benchmarks/demo_knobs.py --out knobs --configs A,B --seeds 0
    python benchmarks/demo_knobs.py --list

Every configuration runs the real pipeline of ``cpi demo`` (world, cached base model,
``cpi train``, ``cpi sweep``) for the chosen variants and prints each curve (cf / param / ID
accuracy per checkpoint) and the summary. Results land in OUT/<config>-s<seed>/; a rerun reuses
finished runs. The figures in the README and the issue notes come from this script.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from cpi_bench.harness_ext.base_model import PretrainConfig
from cpi_bench.harness_ext.demo import FULL, run_demo
from cpi_bench.harness_ext.world import WorldConfig

# name: (world overrides, pretraining overrides, schedule overrides, what it tests)
CONFIGS: dict[str, tuple[dict, dict, dict, str]] = {
    "base": ({}, {}, {}, "the demo's defaults"),
    "A": (
        {},
        {},
        {"max_steps": 900, "save_steps": 75},
        "many epochs: C points get memorised (Proposition 3)",
    ),
    "B": (
        {"c_fraction": 0.15, "s_fraction": 0.5},
        {},
        {"max_steps": 600, "save_steps": 50},
        "more S points (Proposition 2)",
    ),
    "C": (
        {"reading_fraction": 0.5},
        {},
        {"max_steps": 600, "save_steps": 50},
        "more reading passages in pretraining: reading before recall",
    ),
    "D": (
        {"reading_fraction": 0.5},
        {"num_layers": 1, "num_heads": 1},
        {"max_steps": 600, "save_steps": 50, "finetune": "qk", "learning_rate": 1e-3},
        "the theory's setting: 1 layer, 1 head, W_KQ trained",
    ),
    "E": (
        {"c_fraction": 0.1, "s_fraction": 0.3, "n_ift": 1000},
        {},
        {"max_steps": 900, "save_steps": 75},
        "a small IFT set repeated (Proposition 3) with few C points",
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="knobs")
    parser.add_argument("--configs", default="base")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--variants", default="standard")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.list:
        for name, (*_, what) in CONFIGS.items():
            print(f"{name}: {what}")
        return
    for name in args.configs.split(","):
        world_o, pre_o, sched_o, what = CONFIGS[name]
        for seed in [int(s) for s in args.seeds.split(",")]:
            world_cfg = replace(WorldConfig(seed=seed), **world_o)
            pre_cfg = replace(PretrainConfig(seed=seed), **pre_o)
            sched = replace(FULL, **sched_o)
            out = Path(args.out) / f"{name}-s{seed}"
            results, meta = run_demo(
                out, world_cfg, pre_cfg, sched, seed, args.variants.split(","), log=lambda *_: None
            )
            for variant, res in results.items():
                s = res["summary"]
                print(
                    f"\n{name} ({what}) seed {seed} {variant}: recall {meta['recall']:.2f}; "
                    f"rise {s['rise']:+.2f} drop {s['drop']:.2f} peak step {s['peak_step']}"
                )
                print("  step  " + " ".join(f"{r['step']:>5}" for r in res["rows"]))
                for key in ("cf_acc", "param_acc", "id_acc"):
                    print(
                        f"  {key[:5]:<5} "
                        + " ".join(
                            f"{r[key]:5.2f}" if r[key] is not None else "  n/a" for r in res["rows"]
                        )
                    )
            (out / "knobs.json").write_text(
                json.dumps(
                    {
                        "config": name,
                        "seed": seed,
                        "meta": meta,
                        "summaries": {v: r["summary"] for v, r in results.items()},
                    },
                    indent=2,
                )
            )


if __name__ == "__main__":
    main()
