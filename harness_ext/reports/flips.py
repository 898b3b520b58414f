"""``cpi flips RUN``: which items changed their answer between two checkpoints.

    cpi flips runs/tulu-lora                       # peak -> final step of inversion.json
    cpi flips runs/tulu-lora --from 0 --to 400 --examples 5
    cpi flips runs/tulu-lora --json                # the 2x2 tables as JSON

A fall of counterfactual accuracy from 62% to 48% can hide many items moving both ways. For
each task this reads the per-item records of the two steps (``eval/step-N.items.jsonl``,
written by ``cpi sweep`` and the training callback), pairs the items by ``item_id`` and shows:

* the 2x2 table of the context answer (``cf``): stated at both steps, lost (stated at FROM,
  not at TO), gained, neither; the same for the memorised answer (``param``);
* an exact two-sided McNemar test of cf lost vs cf gained (a binomial test on the discordant
  items: is the change more than items flickering both ways?);
* the items that moved from the context answer to the memorised one (FROM: context answer
  only; TO: memorised answer only) and back, per category (capital / other for world facts);
* examples of moved items with both outputs and, for generation tasks, the scoring rule that
  decided each (``reason`` of the per-item records, ``tasks/scoring/``).

``--json`` prints ``{"from", "to", "tasks": {task: {"n", "cf_both", "cf_lost", "cf_gained",
"cf_neither", "param_both", "param_lost", "param_gained", "param_neither", "mcnemar_p"}},
"details": {task: {"unpaired", "to_memorised", "to_context", "by_category", "examples"}}}``.

The same pairing gives ``inversion.json`` its per-item summaries (``run_report.py``) and
their lines under ``inversion.md`` (:func:`item_notes`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..core.cli_args import ArgumentParser
from ..core.constants import EVAL_DIR, eval_file_name
from ..core.errors import EXIT_OK, CPIError
from ..core.files import dump_json
from ..core.items import by_task, load_checked_items
from . import stats

COUNT_KEYS = tuple(
    f"{side}_{cell}" for side in ("cf", "param") for cell in ("both", "lost", "gained", "neither")
)
DEFAULT_EXAMPLES = 3
_CAT_KEYS = ("n", "cf_lost", "cf_gained", "to_memorised", "to_context")


# ----------------------------------------------------------------------------- the tables


def _cells(a: int, b: int) -> str:
    """Which 2x2 cell an item falls in: hit at FROM (a) and at TO (b)."""
    return {(1, 1): "both", (1, 0): "lost", (0, 1): "gained", (0, 0): "neither"}[(a, b)]


def _move(ra: dict[str, Any], rb: dict[str, Any]) -> str | None:
    """``to_memorised`` (context answer only -> memorised answer only), ``to_context`` (the
    reverse) or None."""
    a = (ra.get("cf_hit"), ra.get("param_hit"))
    b = (rb.get("cf_hit"), rb.get("param_hit"))
    if a == (1, 0) and b == (0, 1):
        return "to_memorised"
    if a == (0, 1) and b == (1, 0):
        return "to_context"
    return None


def _example(item_id: int, ra: dict[str, Any], rb: dict[str, Any], move: str) -> dict:
    """One moved item: its answers and what each step said (outputs, or log-probs)."""
    ex = {"item_id": item_id, "category": ra.get("category"), "move": move}
    ex.update({k: ra[k] for k in ("cf_answer", "param_answer") if k in ra})
    for side, rec in (("from", ra), ("to", rb)):
        if "output" in rec:
            ex[f"{side}_output"] = rec["output"]
            if rec.get("reason"):
                ex[f"{side}_reason"] = rec["reason"]
        else:
            ex[f"{side}_logprobs"] = [rec.get("logprob_cf"), rec.get("logprob_param")]
    return ex


def compare_task(
    a: dict[int, dict[str, Any]], b: dict[int, dict[str, Any]], n_examples: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the 2x2 counts and McNemar p, the details) of one task's records at FROM (``a``)
    and TO (``b``), keyed by item_id; only items present at both steps are paired."""
    counts = dict.fromkeys(COUNT_KEYS, 0)
    moves: dict[str, list[int]] = {"to_memorised": [], "to_context": []}
    cats: dict[str, dict[str, int]] = {}
    examples: list[dict[str, Any]] = []
    shared = sorted(set(a) & set(b))
    for i in shared:
        ra, rb = a[i], b[i]
        for side in ("cf", "param"):
            counts[f"{side}_{_cells(int(ra[side + '_hit']), int(rb[side + '_hit']))}"] += 1
        move = _move(ra, rb)
        cat = cats.setdefault(str(ra.get("category")), dict.fromkeys(_CAT_KEYS, 0))
        cat["n"] += 1
        cat["cf_lost"] += int(ra["cf_hit"] == 1 and rb["cf_hit"] == 0)
        cat["cf_gained"] += int(ra["cf_hit"] == 0 and rb["cf_hit"] == 1)
        if move:
            moves[move].append(i)
            cat[move] += 1
            if sum(e["move"] == move for e in examples) < n_examples:
                examples.append(_example(i, ra, rb, move))
    table = {"n": len(shared), **counts}
    table["mcnemar_p"] = stats.mcnemar_exact_p(counts["cf_lost"], counts["cf_gained"])
    details = {
        "unpaired": len(set(a) ^ set(b)),
        **moves,
        "by_category": cats if set(cats) != {"None"} else {},
        "examples": examples,
    }
    return table, details


def _pairable(records: dict[int, dict[str, Any]]) -> bool:
    """Records that carry both hits (generation and _choice tasks, not closed-book probes)."""
    return any("cf_hit" in r and "param_hit" in r for r in records.values())


def step_records(run_dir: Path, step: int) -> dict[str, dict[int, dict[str, Any]]]:
    """``{task: {item_id: record}}`` of ``eval/step-N.items.jsonl``, checked to belong to
    ``eval/step-N.json`` (:class:`CPIError` otherwise)."""
    path = Path(run_dir) / EVAL_DIR / eval_file_name(step)
    if not path.is_file():
        raise CPIError(f"{path}: no results for step {step}; is it a step of this run?")
    return {t: r for t, r in by_task(load_checked_items(path)).items() if _pairable(r)}


def flips_report(
    run_dir: Path, from_step: int, to_step: int, n_examples: int = DEFAULT_EXAMPLES
) -> dict[str, Any]:
    """The ``--json`` document for two steps of a run (see the module docstring)."""
    a, b = step_records(run_dir, from_step), step_records(run_dir, to_step)
    shared = sorted(set(a) & set(b))
    if not shared:
        raise CPIError(
            f"{run_dir}: steps {from_step} and {to_step} share no task with per-item records"
        )
    report: dict[str, Any] = {"from": from_step, "to": to_step, "tasks": {}, "details": {}}
    for task in shared:
        report["tasks"][task], report["details"][task] = compare_task(a[task], b[task], n_examples)
    return report


# ----------------------------------------------------------------------------- steps


def resolve_step(spec: str | None, inversion: dict[str, Any] | None, default: str) -> int:
    """A ``--from`` / ``--to`` value as a step: an integer, or ``peak``, ``final``,
    ``initial`` (from ``inversion.json``'s summary); None means ``default``."""
    spec = default if spec is None else str(spec).strip()
    if spec.isdigit():
        return int(spec)
    key = {"peak": "peak_step", "final": "final_step", "initial": "initial_step"}.get(spec)
    if key is None:
        raise CPIError(f"step {spec!r}: give a step number, peak, final or initial")
    summary = (inversion or {}).get("summary") or {}
    if not isinstance(summary.get(key), int):
        raise CPIError(
            f"step {spec!r} needs the run's inversion.json (run 'cpi sweep' first) or give "
            "--from/--to as step numbers"
        )
    return summary[key]


# ----------------------------------------------------------------------------- rendering


def _p(value: float) -> str:
    return f"{value:.3g}" if value >= 0.001 else f"{value:.1e}"


def _table_lines(t: dict[str, Any], d: dict[str, Any], a: int, b: int) -> list[str]:
    """The 2x2 tables, the McNemar test and the moves of one task, as text lines."""
    lines = [f"  {'':<26}{'context answer':>16}{'memorised answer':>18}"]
    labels = {
        "both": "at both steps",
        "lost": f"lost (at {a}, not at {b})",
        "gained": f"gained (at {b}, not at {a})",
        "neither": "at neither",
    }
    for cell, label in labels.items():
        lines.append(f"  {label:<26}{t['cf_' + cell]:>16}{t['param_' + cell]:>18}")
    lines.append(
        f"  exact McNemar test, context answer lost {t['cf_lost']} vs gained "
        f"{t['cf_gained']}: p = {_p(t['mcnemar_p'])} (two-sided)"
    )
    lines.append(
        f"  moved context -> memorised answer: {len(d['to_memorised'])}; "
        f"memorised -> context: {len(d['to_context'])}"
        + (f"; {d['unpaired']} item(s) not at both steps" if d["unpaired"] else "")
    )
    for cat, c in sorted(d["by_category"].items()):
        lines.append(
            f"    {cat}: n {c['n']}, context answer lost {c['cf_lost']}, gained "
            f"{c['cf_gained']}; -> memorised {c['to_memorised']}, -> context {c['to_context']}"
        )
    return lines


def _example_lines(examples: list[dict[str, Any]], a: int, b: int) -> list[str]:
    """Moved items with their answers and both steps' outputs."""
    lines = []
    for ex in examples:
        arrow = "context -> memorised" if ex["move"] == "to_memorised" else "memorised -> context"
        cat = f" [{ex['category']}]" if ex.get("category") else ""
        answers = f"context {ex.get('cf_answer', '?')!r}, memorised {ex.get('param_answer', '?')!r}"
        lines.append(f"    item {ex['item_id']}{cat} ({arrow}): {answers}")
        for side, step in (("from", a), ("to", b)):
            said = ex.get(f"{side}_output")
            if said is None:
                said = "log-probs (context, memorised) = " + ", ".join(
                    f"{v:.2f}" for v in ex[f"{side}_logprobs"] if v is not None
                )
            else:
                said = repr(said)
            lines.append(f"      step {step}: {said}")
            if ex.get(f"{side}_reason"):
                lines.append(f"        scored by: {ex[f'{side}_reason']}")
    return lines


def render_flips(report: dict[str, Any], run: str, names: tuple[str, str] = ("", "")) -> str:
    """The text report: per task the tables, the test, the moves and the examples;
    ``names`` label the two steps (``peak``, ``final``) when they were chosen by name."""
    a, b = report["from"], report["to"]
    na, nb = (f" ({n})" if n and not n.isdigit() else "" for n in names)
    lines = [f"cpi flips {run}: step {a}{na} -> step {b}{nb} (items paired by item_id)", ""]
    for task, t in report["tasks"].items():
        d = report["details"][task]
        lines.append(f"{task} ({t['n']} items at both steps)")
        lines += _table_lines(t, d, a, b)
        if d["examples"]:
            lines.append("  examples:")
            lines += _example_lines(d["examples"], a, b)
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the command


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="cpi flips",
        description="Items that changed their answer between two checkpoints of a swept run: "
        "2x2 tables (context and memorised answer), an exact McNemar test, moves per "
        "category and examples, from the per-item records eval/step-N.items.jsonl.",
    )
    parser.add_argument("run", help="swept run folder (eval/step-N.items.jsonl inside)")
    parser.add_argument(
        "--from",
        dest="from_step",
        default=None,
        help="step number, peak, final or initial (default: peak, from inversion.json)",
    )
    parser.add_argument(
        "--to",
        dest="to_step",
        default=None,
        help="step number, peak, final or initial (default: final)",
    )
    parser.add_argument("--json", action="store_true", help="print the tables as JSON")
    parser.add_argument(
        "--examples", type=int, default=DEFAULT_EXAMPLES,
        help=f"moved items shown per direction and task (default {DEFAULT_EXAMPLES})",
    )  # fmt: skip
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str]) -> int:
    """``cpi flips``: 0 ok, 2 bad input (one line)."""
    args = parse_args(argv)
    run = Path(args.run)
    if not run.is_dir():
        raise CPIError(f"{run}: no such run folder")
    if args.examples < 0:
        raise CPIError(f"--examples {args.examples} must be >= 0")
    inversion = _inversion_or_none(run)
    names = (args.from_step or "peak", args.to_step or "final")
    from_step = resolve_step(names[0], inversion, "peak")
    to_step = resolve_step(names[1], inversion, "final")
    report = flips_report(run, from_step, to_step, args.examples)
    sys.stdout.write(dump_json(report) if args.json else render_flips(report, str(run), names))
    return EXIT_OK


def _inversion_or_none(run: Path) -> dict[str, Any] | None:
    from ..core.constants import INVERSION_JSON
    from .inversion import load_inversion

    return load_inversion(run) if (run / INVERSION_JSON).is_file() else None


def flip_line(task: str, t: dict[str, Any], a: int, b: int) -> str:
    """One sentence per task for inversion.md."""
    return (
        f"- {task}: of {t['n']} items, {t['cf_lost']} lost the context answer from step {a} "
        f"to {b} and {t['cf_gained']} gained it (exact McNemar p = {_p(t['mcnemar_p'])}); "
        f"{t.get('to_memorised', 0)} moved from the context answer to the memorised one, "
        f"{t.get('to_context', 0)} back."
    )


def item_notes(data: dict[str, Any]) -> str:
    """Markdown lines under the inversion table: the drop's interval and the flips."""
    lines = []
    interval = data.get("drop_interval")
    if interval:
        low, high = interval["ci95"]
        lines.append(
            f"Drop from step {interval['from']} to {interval['to']} on the paired items: "
            f"{100 * interval['drop']:.1f} points, 95% interval [{100 * low:.1f}, "
            f"{100 * high:.1f}] ({interval['method']})."
        )
    flips = data.get("flips")
    if flips:
        head = (
            f"Items that changed from the peak (step {flips['from']}) to the final step "
            f"({flips['to']}) (`cpi flips` shows them):\n\n"
        )
        items = [flip_line(t, v, flips["from"], flips["to"]) for t, v in flips["tasks"].items()]
        lines.append(head + "\n".join(items))
    return ("\n" + "\n\n".join(lines) + "\n") if lines else ""
