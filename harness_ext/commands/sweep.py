"""``cpi sweep``: evaluate a run's base model and checkpoints, then write its inversion report.

    cpi sweep runs/tulu-lora --tasks cpi --id_tasks arc_challenge,mmlu,gsm8k,squad_completion
    cpi sweep runs/tiny --dry-run        # what would be reused, what re-evaluated, and why
    cpi sweep runs/live --follow         # evaluate each checkpoint as a live training saves it
    cpi sweep --model EleutherAI/pythia-160m --revisions 'step*' --out sweeps/pythia
    cpi sweep --checkpoints ckpts.yaml --out sweeps/other-trainer
    accelerate launch --num_processes 4 -m cpi_bench.harness_ext.commands.sweep runs/tulu-lora

The one place where running meets reporting: ``evaluation/sweep.py`` evaluates and writes
``eval/step-N.json``, and this command hands it the report writers of ``reports/run_report.py``
(``inversion.json``, ``.md``, ``.csv``, ``.png``, ``.html``), so that neither of the two
imports the other. Options and behaviour: ``docs/sweeps.md``.
"""

from __future__ import annotations

import sys

from ..core.errors import run_entry
from ..evaluation.sweep import Reports, parse_args, run_sweep
from ..reports import run_report
from ..reports.tables import summary_sentence

REPORTS = Reports(build=run_report.build, write=run_report.write, summary=summary_sentence)


def main(argv: list[str]) -> int:
    """``cpi sweep``: 0 ok, 1 a checkpoint failed, 2 bad input (one line, no traceback)."""
    return run_entry("sweep", lambda a: run_sweep(parse_args(a), reports=REPORTS), argv)


if __name__ == "__main__":  # python -m ... / accelerate launch -m ...: one process per rank
    sys.exit(main(sys.argv[1:]))
