"""OUT/demo.json, OUT/demo.md and OUT/demo.png of ``cpi demo``, from the runs' inversion.json
files (and, for the dose-response, the base model's context_critical scores and the world's
ift_kinds.json)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..harness_ext.core.files import (
    atomic_write_json,
    atomic_write_text,
    read_json,
    read_jsonl,
)
from .aggregate import (
    CI_TEXT,
    NOISE_TEXT,
    fmt,
    mean_ci,
    seed_record,
    summarize,
)
from .variants import (
    ABLATIONS,
    ALIASES,
    ALL_VARIANTS,
    DOSE_CURATION,
    DOSE_RESPONSE,
    DemoRun,
    Variant,
)

KINDS = ("C", "C+S", "S")


def removed_shares(base: Path, paths: dict[str, Path], variant: Variant) -> dict[str, float]:
    """Share of each kind (C, C+S, S) of a curated variant's data (its pool, or the mixture)
    that its curation removes: the trainer's own curation function and scorer (its cache,
    next to the base model, makes this a lookup), applied to the data with its kinds attached."""
    from ..trainer.curation import CURATIONS, CurationContext
    from ..trainer.response_loss import ResponseLossScorer
    from ..trainer.schema import CONTEXT, INSTRUCTION, RESPONSE, canonical_dataset
    from ..trainer.templates import get_template

    kinds = read_json(paths[variant.kinds], "world file")
    rows = read_jsonl(paths[variant.data], "world file")
    ds = canonical_dataset(
        [{INSTRUCTION: r["instruction"], CONTEXT: r["input"], RESPONSE: r["output"]} for r in rows]
    ).add_column("kind", kinds)
    template = get_template("squad")
    scorer = ResponseLossScorer(
        str(base), template, cache_dir=base.parent / "scores", show_progress=False
    )
    ctx = CurationContext(template=template, context_critical_drop=variant.drop, scorer=scorer)
    kept, total = Counter(CURATIONS[variant.curation].fn(ds, ctx)["kind"]), Counter(kinds)
    return {k: (1 - kept[k] / total[k]) if total[k] else math.nan for k in KINDS}


def _runs_as(name: str) -> str:
    return ALIASES.get(name, name)


def _variant_block(name: str, run: DemoRun, out: Path) -> dict[str, Any] | None:
    target = _runs_as(name)
    seeds = [s for s in run.results if target in run.results[s]]
    if not seeds:
        return None
    per_seed = {}
    for s in seeds:
        rec = seed_record(run.results[s][target])
        rec["run_dir"] = str((out / f"seed-{s}" / target).relative_to(out))
        per_seed[s] = rec
    about = (
        ALL_VARIANTS[target].about if name == target else f"= {target} (dropping 0% is no curation)"
    )
    return {
        "about": about,
        "runs_as": target,
        "per_seed": per_seed,
        "summary": summarize(list(per_seed.values())),
    }


def _dose_response(
    variants: dict[str, Any], run: DemoRun, names: tuple[str, ...] = DOSE_RESPONSE
) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        if name not in variants:
            continue
        variant = ALL_VARIANTS[_runs_as(name)]
        drop = variant.drop or 0.0
        none = dict.fromkeys(KINDS, 0.0)
        shares = {
            s: removed_shares(run.bases[s][0], run.paths[s], variant) if drop else none
            for s in variants[name]["per_seed"]
        }
        mean = {k: sum(v[k] for v in shares.values()) / len(shares) for k in KINDS}
        summary = variants[name]["summary"]
        standard = variants.get("standard", {}).get("per_seed", {})
        # paired by seed (same world, base model and data order): the seed-to-seed spread of
        # the drop, which both runs share, cancels
        paired = [
            standard[s]["drop"] - rec["drop"]
            for s, rec in variants[name]["per_seed"].items()
            if s in standard
        ]
        rows.append(
            {
                "variant": name,
                "drop_fraction": drop,
                "removed_share_mean": mean,
                "removed_share_per_seed": shares,
                "drop": summary["drop"],
                "drop_reduction_paired": mean_ci(paired),
                "final": summary["final"],
                "n_drop_exceeds_noise": summary["n_drop_exceeds_noise"],
                "n_seeds": summary["n_seeds"],
            }
        )
    return rows


def build_report(out: Path, run: DemoRun, settings: dict[str, Any]) -> dict[str, Any]:
    """The content of OUT/demo.json: every per-seed number and the across-seed summaries."""
    names = [*ALL_VARIANTS]
    names.insert(names.index("context_critical_25"), "context_critical_0")
    variants = {n: b for n in names if (b := _variant_block(n, run, out)) is not None}
    return {
        **settings,
        "seeds": sorted(run.results),
        "runs": sum(len(v) for v in run.results.values()),
        "runs_reused": run.reused,
        "ci": CI_TEXT,
        "noise": NOISE_TEXT,
        "base_models": {
            s: {"path": str(p), "fact_recall": r} for s, (p, r) in sorted(run.bases.items())
        },
        "variants": variants,
        "dose_response": _dose_response(variants, run),
        "ablations": _dose_response(variants, run, tuple(ABLATIONS)),
    }


def _variant_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "| variant | cf acc at 0 | peak | final | rise | drop | seeds with drop > noise "
        "| final param acc | final ID acc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, block in report["variants"].items():
        s = block["summary"]
        lines.append(
            f"| {name} | {fmt(s['initial'])} | {fmt(s['peak'])} | {fmt(s['final'])} "
            f"| {fmt(s['rise'], signed=True)} | {fmt(s['drop'])} "
            f"| {s['n_drop_exceeds_noise']} of {s['n_seeds']} | {fmt(s['final_param_acc'])} "
            f"| {fmt(s['final_id_acc']) if s['final_id_acc']['n'] else 'n/a'} |"
        )
    return lines


def _seed_table(report: dict[str, Any]) -> list[str]:
    seeds = report["seeds"]
    lines = [
        "| variant | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "|---|" + "---:|" * len(seeds),
    ]
    for name, block in report["variants"].items():
        cells = []
        for s in seeds:
            rec = block["per_seed"].get(s)
            if rec is None:
                cells.append("–")
                continue
            mark = ">" if rec["drop_exceeds_noise"] else "≤"
            cells.append(f"{rec['drop']:.2f} {mark} {rec['noise']:.2f} (peak @{rec['peak_step']})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _dose_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| variant | examples dropped | C+S removed | C removed | S removed | drop "
        "| drop reduction vs standard (paired by seed) | final cf acc | seeds with drop > noise |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        share = row["removed_share_mean"]
        lines.append(
            f"| {row['variant']} | {row['drop_fraction']:.0%} | {share['C+S']:.0%} "
            f"| {share['C']:.0%} | {share['S']:.0%} | {fmt(row['drop'])} "
            f"| {fmt(row['drop_reduction_paired'], signed=True)} | {fmt(row['final'])} "
            f"| {row['n_drop_exceeds_noise']} of {row['n_seeds']} |"
        )
    return lines


def _environment_line(env: dict[str, Any] | None) -> str:
    """The versions the numbers were made with: other versions give other numbers."""
    if not env:
        return "Library versions: not recorded."
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    return (
        f"Made with {versions}; CPU kernels {env.get('cpu')}; code digest {env['code']} "
        "(demo.json: environment)."
    )


def render_markdown(report: dict[str, Any]) -> str:
    """OUT/demo.md: the variants' across-seed table, the per-seed drops, the dose-response."""
    sched, seeds = report["schedule"], report["seeds"]
    recalls = ", ".join(f"{b['fact_recall']:.2f}" for b in report["base_models"].values())
    lines = [
        "# cpi demo: context-parametric inversion in miniature",
        "",
        f"Seeds {', '.join(map(str, seeds))}: per seed a world, a 1-layer 1-head Llama pretrained "
        f"on it (fact recall {recalls}) and one IFT run per variant ({sched['max_steps']} steps, "
        f"lr {sched['learning_rate']:g} {sched['lr_scheduler_type']}, batch "
        f"{sched['batch_size']}). `{report['command']}`: {report['wall_seconds']:.0f} s"
        + (
            f" ({report['runs_reused']} of {report['runs']} runs reused from an earlier "
            "cpi demo in this folder)."
            if report["runs_reused"]
            else "."
        ),  # fmt: skip
        "",
        _environment_line(report.get("environment")),
        "",
        f"Each cell: {CI_TEXT} (n = {len(seeds)}). cf acc: the context's answer is given on "
        "counterfactual items; param acc: the memorised answer is; ID acc: held-out C, C+S "
        "and recall items. rise = peak - cf acc at 0; drop = peak - final.",
        "",
        *_variant_table(report),
        "",
        f"Drop per seed against its noise, {NOISE_TEXT}:",
        "",
        *_seed_table(report),
    ]
    if report["dose_response"]:
        lines += [
            "",
            f"Dose-response of the {DOSE_CURATION} curation, each dose cutting its own pool "
            "(the mixture plus rows of the same shares) down to the mixture's size: the share "
            "of each kind of the pool removed (mean over seeds; from the pool's kinds file and "
            "the base model's scores), the drop that remains, and the standard drop minus "
            "this drop per seed:",
            "",
            *_dose_table(report["dose_response"]),
        ]
    if report.get("ablations"):
        lines += [
            "",
            "Ablations of the dose-response (named with --variants): context_critical_paper_* "
            "is the paper's curation (examples with a context only; S points kept), "
            "context_critical_nopool_* is context_critical_all; both cut the mixture itself, "
            "so fewer examples are left and each is seen more often:",
            "",
            *_dose_table(report["ablations"]),
        ]
    lines += ["", "Every run: OUT/seed-<s>/<variant>/inversion.{json,md,png}; all numbers: "
              "OUT/demo.json.", ""]  # fmt: skip
    return "\n".join(lines)


def write_report(
    out: Path, run: DemoRun, sched: Any, world_cfg: Any, pre_cfg: Any, command: str, wall: float
) -> str:
    """Write OUT/demo.json, OUT/demo.md and OUT/demo.png; return the markdown."""
    from .environment import environment
    from .plots import plot_demo

    settings = {
        "command": command,
        "wall_seconds": wall,
        "schedule": asdict(sched),
        "world": {k: v for k, v in asdict(world_cfg).items() if k != "seed"},
        "pretrain": {k: v for k, v in asdict(pre_cfg).items() if k != "seed"},
        "environment": environment(),  # the numbers move with these (environment.py)
    }
    report = build_report(out, run, settings)
    atomic_write_json(out / "demo.json", report)
    text = render_markdown(report)
    atomic_write_text(out / "demo.md", text)
    plot_demo(report, out / "demo.png")
    return text
