"""Training throughput of ``cpi train`` against a plain TRL ``SFTTrainer``, in the same run.

    python benchmarks/bench_train_throughput.py                 # tiny Llama on CPU, ~5 minutes
    python benchmarks/bench_train_throughput.py --model path/to/model --dataset alpaca.jsonl \\
        --finetune qk --max_steps 50 --rounds 3

Both sides train the same model on the same rendered examples (the Alpaca template, loss on
the responses), with the same SFTConfig values, seed and batches, and no checkpoint saving.
``cpi train`` runs through its real entry point (``main(argv)``, manifest included); the
plain side builds ``SFTTrainer`` directly. Tokens are counted by the Trainer
(``--include_num_input_tokens_seen true``: every position of the padded batches, identical on
both sides).

Two throughputs per run, both over the time inside ``Trainer.train`` (loading and data
preparation are outside it on both sides):

* ``step``: the median over optimizer steps (after 2 warm-up steps) of tokens / step time. A
  burst of other work on a shared machine slows a few steps, not the median, so this is the
  figure the ratio is taken on.
* ``total``: tokens / ``train_runtime``, reported for reference.

The sides alternate (cpi, plain, plain, cpi, ...) and the medians over rounds are compared.
Exit status 1 when ``cpi / plain`` (step throughput) is below ``--min_ratio``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/helpers, shared with the tests

WARMUP_STEPS = 2


def make_timer() -> Any:
    """A TrainerCallback recording (tokens, seconds) of every optimizer step."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.steps: list[tuple[int, float]] = []
            self.t0 = 0.0
            self.tokens0 = 0

        def on_step_begin(self, args, state, control, **kwargs):
            self.t0, self.tokens0 = time.perf_counter(), state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kwargs):
            dt = time.perf_counter() - self.t0
            self.steps.append((state.num_input_tokens_seen - self.tokens0, dt))

        def on_train_end(self, args, state, control, **kwargs):
            self.total = (state.num_input_tokens_seen, time.perf_counter())

    return StepTimer()


def step_throughput(timer: Any) -> float:
    rates = [tokens / dt for tokens, dt in timer.steps[WARMUP_STEPS:] if dt > 0]
    return statistics.median(rates)


def common_args(ns: argparse.Namespace, model: str, dataset: str, out: Path) -> list[str]:
    """The settings both trainers get, under TRL's names."""
    settings = {
        "model_name_or_path": model,
        "dataset_name": dataset,
        "output_dir": out,
        "max_steps": ns.max_steps,
        "per_device_train_batch_size": ns.batch_size,
        "max_length": ns.max_length,
        "learning_rate": 1e-4,
        "seed": 0,
        "gradient_checkpointing": "false",
        "bf16": "false",
        "save_strategy": "no",
        "logging_steps": 1000,
        "report_to": "none",
        "disable_tqdm": "true",
        "include_num_input_tokens_seen": "true",
        "dataloader_pin_memory": "false",
    }
    if ns.finetune == "lora":
        settings["lora_r"] = 16
    return [item for key, value in settings.items() for item in (f"--{key}", str(value))]


def run_cpi(ns: argparse.Namespace, model: str, dataset: str, out: Path) -> tuple[float, float]:
    """(step, total) tokens/s of ``cpi train`` run through ``main(argv)``."""
    import cpi_bench.trainer.train as cpi_train

    timer, build = make_timer(), cpi_train.build_trainer

    def build_with_timer(*args: Any, **kwargs: Any) -> Any:
        trainer = build(*args, **kwargs)
        trainer.add_callback(timer)
        return trainer

    cpi_train.build_trainer = build_with_timer
    try:
        argv = [*common_args(ns, model, dataset, out), "--finetune", ns.finetune]
        assert cpi_train.main(argv) == 0, "cpi train failed"
    finally:
        cpi_train.build_trainer = build
    import json

    metrics = json.loads((out / "cpi_run.json").read_text())["train_metrics"]
    return step_throughput(timer), metrics["num_input_tokens_seen"] / metrics["train_runtime"]


def run_plain(ns: argparse.Namespace, model: str, dataset: str, out: Path) -> tuple[float, float]:
    """(step, total) tokens/s of TRL's SFTTrainer with the same settings and data."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import ModelConfig, ScriptArguments, SFTConfig, SFTTrainer, TrlParser, get_peft_config

    from cpi_bench.trainer.schema import detect_schema, load_source, to_canonical
    from cpi_bench.trainer.templates import TEMPLATES

    torch.set_flush_denormal(True)  # cpi train sets it too: same CPU arithmetic on both sides
    parser = TrlParser((ScriptArguments, SFTConfig, ModelConfig))
    argv = [*common_args(ns, model, dataset, out), "--assistant_only_loss", "true"]
    if ns.finetune == "lora":
        argv.append("--use_peft")
    _, config, model_args = parser.parse_args_and_config(argv)

    raw = load_source(dataset)
    schema = detect_schema(raw.column_names, dataset)
    canonical, _ = to_canonical(raw, schema)
    template = TEMPLATES[schema.template]
    messages = canonical.map(
        lambda r: {"messages": template.to_messages(r)}, remove_columns=canonical.column_names
    )
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = template.chat_template
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=model_args.dtype)
    if ns.finetune == "qk":  # the plain equivalent: freeze by name (q_proj/k_proj models)
        for name, p in lm.named_parameters():
            p.requires_grad_(name.split(".")[-2] in {"q_proj", "k_proj"})
    timer = make_timer()
    trainer = SFTTrainer(
        model=lm,
        args=config,
        train_dataset=messages,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        callbacks=[timer],
    )
    result = trainer.train()
    total = trainer.state.num_input_tokens_seen / result.metrics["train_runtime"]
    return step_throughput(timer), total


def build_defaults(ns: argparse.Namespace, work: Path) -> tuple[str, str]:
    """A tiny random Llama and an Alpaca-schema file of ``--n_examples`` rows."""
    from cpi_bench.harness_ext.models.tiny import build_tiny_model
    from tests.helpers.fixtures import alpaca_rows, write_jsonl

    model = ns.model or str(
        build_tiny_model(work / "model", arch="llama", hidden=ns.hidden, layers=ns.layers, heads=4)
    )
    if ns.dataset:
        return model, ns.dataset
    rows = alpaca_rows()
    data = [
        {**rows[i % len(rows)], "output": f"{rows[i % len(rows)]['output']} ({i})"}
        for i in range(ns.n_examples)
    ]
    return model, str(write_jsonl(work / "alpaca.jsonl", data))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", help="model folder or hub id (default: a tiny random Llama)")
    p.add_argument("--dataset", help="training file (default: Alpaca fixture rows)")
    p.add_argument("--finetune", default="full", choices=["full", "lora", "qk"])
    p.add_argument("--hidden", type=int, default=256, help="width of the default tiny model")
    p.add_argument("--layers", type=int, default=4, help="layers of the default tiny model")
    p.add_argument("--n_examples", type=int, default=512)
    p.add_argument("--max_steps", type=int, default=30)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--max_length", type=int, default=512)
    p.add_argument("--rounds", type=int, default=5, help="runs per side (alternating order)")
    p.add_argument("--min_ratio", type=float, default=0.95)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for both sides (0: torch's default). 1 avoids the OpenMP "
        "barrier stalls that make multi-threaded runs on a shared, oversubscribed CPU tens of "
        "times slower at random",
    )
    ns = p.parse_args(argv)
    if ns.threads:
        import torch

        torch.set_num_threads(ns.threads)

    import logging

    import datasets
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    logging.getLogger("cpi_bench").setLevel(logging.WARNING)

    results: dict[str, list[tuple[float, float]]] = {"cpi": [], "plain": []}
    with tempfile.TemporaryDirectory(prefix="cpi-bench-") as tmp:
        work = Path(tmp)
        model, dataset = build_defaults(ns, work)
        run_plain(ns, model, dataset, work / "warmup")  # first-run costs hit neither side
        order = ["cpi", "plain"]
        t0 = time.perf_counter()
        for r in range(ns.rounds):
            for side in order if r % 2 == 0 else order[::-1]:
                fn = run_cpi if side == "cpi" else run_plain
                step, total = fn(ns, model, dataset, work / f"{side}-{r}")
                results[side].append((step, total))
                print(f"round {r} {side:5s} step {step:9.1f} tokens/s  total {total:9.1f} tokens/s")
        elapsed = time.perf_counter() - t0

    def median(side: str, i: int) -> float:
        return statistics.median(x[i] for x in results[side])

    print(
        f"\nfinetune={ns.finetune} steps={ns.max_steps} batch={ns.batch_size} "
        f"max_length={ns.max_length} rounds={ns.rounds} threads={ns.threads} ({elapsed:.0f} s)"
    )
    for side, label in (("cpi", "cpi train       "), ("plain", "plain SFTTrainer")):
        print(
            f"{label} step {median(side, 0):9.1f} tokens/s  total {median(side, 1):9.1f} "
            "tokens/s  (medians over rounds)"
        )
    ratio = median("cpi", 0) / median("plain", 0)
    total_ratio = median("cpi", 1) / median("plain", 1)
    print(
        f"ratio cpi/plain = {ratio:.3f} (step), {total_ratio:.3f} (total); "
        f"required >= {ns.min_ratio} (step)"
    )
    return 0 if ratio >= ns.min_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
