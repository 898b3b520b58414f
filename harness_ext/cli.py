"""The ``cpi`` console script: one entry point, one subcommand per job.

    cpi tasks-path                       # folder to pass to lm_eval --include_path
    cpi register                         # editable installs: let lm_eval find cpi_* tasks by itself
    cpi tiny-model --output_dir tiny     # a tiny random Llama + tokenizer for smoke runs

Each subcommand lives in its own module with a ``main(argv) -> int`` and is imported only when
called, so ``cpi tasks-path`` stays instant. Add a subcommand by adding one row to COMMANDS.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module under cpi_bench, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "tasks-path": (
        "harness_ext.registry",
        "print the absolute lm-eval task folder of the cpi tasks",
    ),
    "register": ("harness_ext.registry", "install/remove the lm-eval auto-registration .pth"),
    "tiny-model": ("harness_ext.tiny_model", "write a tiny random-weight model and tokenizer"),
    "demo": ("harness_ext.demo", "pretrain, finetune and sweep a miniature on a CPU, no downloads"),
    "theory": ("harness_ext.theory", "simulate the paper's one-layer model of the inversion"),
    "train": ("trainer.train", "instruction-finetune a model with TRL SFT, saving checkpoints"),
    "sweep": ("harness_ext.sweep", "evaluate a run's base and checkpoints into inversion.json"),
    "table": ("harness_ext.report", "re-render a swept run's inversion table (md/csv/latex/json)"),
    "compare": ("harness_ext.report", "leaderboard of cf/param accuracy across models or runs"),
    "gate": ("harness_ext.gate", "exit 1 when a candidate's counterfactual accuracy drops too far"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items())
    return (
        f"usage: cpi <command> [options]\n\ncommands:\n{rows}\n\n"
        "'cpi <command> --help' for options."
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"cpi: unknown command {name!r}.\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"cpi_bench.{COMMANDS[name][0]}")
    entry = getattr(module, "main_" + name.replace("-", "_"), None) or module.main
    code = entry(rest)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
