"""``cpi train`` for a few optimizer steps on a tiny model, in this process: the flags of a
small run (2 steps, a checkpoint at every step, no progress bars or loggers) and the call."""

from __future__ import annotations

from pathlib import Path

FAST = [
    "--per_device_train_batch_size",
    "4",
    "--max_length",
    "128",
    "--learning_rate",
    "1e-3",
    "--disable_tqdm",
    "true",
    "--report_to",
    "none",
    "--gradient_checkpointing",
    "false",
]


def train_argv(model: str | Path, data: Path, out: Path, *extra: str) -> list[str]:
    """The flags of a 2-step run of ``model`` on ``data`` into ``out``, saving every step,
    then ``extra``."""
    return [
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
        *FAST,
        *extra,
    ]


def train(*argv: str) -> int:
    """Run ``cpi train`` with ``argv`` in this process; return its exit code."""
    from cpi_bench.trainer.train import main

    return main(list(argv))
