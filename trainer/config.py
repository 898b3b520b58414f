"""``cpi train`` options: one dataclass extending TRL's ``SFTConfig``, parsed with ``TrlParser``
together with TRL's ``ScriptArguments`` (``--dataset_name``, ...) and ``ModelConfig``
(``--model_name_or_path``, ``--lora_r``, ...), so every TRL option keeps its TRL name and a
``--config run.yaml`` file can set any of them (command-line flags override the file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser

from ..harness_ext.core.cli_args import (
    OneLineErrors,
    parse_limit,
    positive_number,
    split_list,
)
from ..harness_ext.core.errors import CPIError
from .curation import CURATIONS, parse_curations
from .finetune import FINETUNE_MODES
from .templates import TEMPLATES

PAPER_SAVE_STEPS = 50  # the paper evaluated a checkpoint every 50 steps
PAPER_LORA_R = 128  # the paper's LoRA rank


def _accelerator_has_bf16() -> bool:
    """bf16 mixed precision pays off on GPUs that support it; on CPU it is slow emulation."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return bool(getattr(torch, "xpu", None) and torch.xpu.is_available())


@dataclass
class CPITrainConfig(SFTConfig):
    """SFTConfig plus what the inversion study needs: the finetuning mode, the template, the
    paper's curations and in-training evaluation. Validated in ``__post_init__``: a bad value
    raises ``CPIError`` with one line naming the option and the fix."""

    # Paper defaults that differ from TRL's / transformers'.
    save_steps: float = field(
        default=PAPER_SAVE_STEPS,
        metadata={
            "help": "Save checkpoint-N every this many optimizer steps (the paper "
            "evaluated every 50). Checkpoints are never pruned unless "
            "--save_total_limit is set."
        },
    )
    bf16: bool | None = field(
        default=None,
        metadata={
            "help": "bf16 mixed precision. Default: on when a GPU supports bf16, off on "
            "CPU (where TRL's default of on is slow emulation)."
        },
    )
    assistant_only_loss: bool = field(
        default=True,
        metadata={
            "help": "Compute the loss on the responses only (the assistant turns of the "
            "template). cpi train's default is True; false trains on every "
            "token."
        },
    )

    finetune: str = field(
        default="full",
        metadata={
            "help": "What is trained: 'full' (every weight), 'lora' (peft adapters; "
            "TRL's --lora_* options apply, --lora_r defaults to the paper's 128), "
            "'qk' (only the attention query and key projections; every other "
            "tensor stays bit-identical).",
            "choices": list(FINETUNE_MODES),
        },
    )
    template: str = field(
        default="auto",
        metadata={
            "help": "Instruction template the examples are rendered with and that is "
            "saved as every checkpoint's chat template: 'auto' (by schema: "
            "Alpaca->alpaca, messages->tulu, prompt/completion->"
            "prompt_completion, SQuAD/cpi->squad) or one of " + ", ".join(TEMPLATES) + ".",
            "choices": ["auto", *TEMPLATES],
        },
    )
    curation: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated curations, applied in order: "
            + "; ".join(f"{n}: {c.help}" for n, c in CURATIONS.items())
            + "."
        },
    )
    context_critical_drop: float = field(
        default=0.25,
        metadata={
            "help": "context_critical: fraction in [0, 1) of the examples with a context "
            "to drop (context_critical_all: of all examples), lowest base-model response loss "
            "without context first."
        },
    )
    context_critical_batch_size: int = field(
        default=8,
        metadata={"help": "context_critical: examples per forward pass when scoring."},
    )
    scores_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "context_critical: folder of the score cache (JSON, keyed by model, "
            "template and example). Default: $CPI_CACHE_DIR or "
            "$HF_HOME/cpi_bench/context_critical."
        },
    )
    overlap_entities: str | None = field(
        default=None,
        metadata={"help": "drop_overlap: comma-separated entities (e.g. 'France,Paris')."},
    )
    overlap_file: str | None = field(
        default=None,
        metadata={
            "help": "drop_overlap: entities from a .txt file (one per line) or a cpi "
            "evaluation .json/.jsonl file (its answers and the names in its "
            "questions, e.g. CF_Capitals' countries and capitals)."
        },
    )
    cf_augment_source: str | None = field(
        default=None,
        metadata={
            "help": "cf_augment: counterfactual source, a .jsonl/.json/.parquet file in "
            "the cpi schema (context, question, answer) or SQuAD-style data "
            "(context, question, answers) turned counterfactual by entity "
            "substitution."
        },
    )
    cf_augment_fraction: float = field(
        default=0.1,
        metadata={
            "help": "cf_augment: share in [0, 1) of counterfactual examples in the "
            "curated training set."
        },
    )
    eval_tasks: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated lm-eval task names (e.g. cpi_capitals) to evaluate "
            "during training via cpi_bench.trainer.callback.CPIEvalCallback. "
            "Default: none (evaluate the checkpoints afterwards with cpi sweep)."
        },
    )
    eval_limit: float | None = field(
        default=None,
        metadata={
            "help": "--eval_tasks: items per task, a count (>= 1) or a fraction in (0, 1), as "
            "cpi sweep's --limit. Default: all."
        },
    )
    eval_batch_size: int = field(
        default=8,
        metadata={
            "help": "--eval_tasks: lm-eval batch size. (Replaces TrainingArguments' "
            "read-only eval_batch_size, used only by Trainer-internal evaluation, "
            "which cpi train does not run.)"
        },
    )
    early_stop_on_inversion: float | None = field(
        default=None,
        metadata={
            "help": "--eval_tasks: stop training when the in-training counterfactual accuracy "
            "(cf_acc, mean over the eval tasks) is at least this much (a fraction in (0, 1]; "
            "0.05 = 5 points) below its running peak for --early_stop_patience consecutive "
            "evaluations. cpi_run.json records best_step (the peak) and stop_reason. "
            "Default: never."
        },
    )
    early_stop_patience: int = field(
        default=1,
        metadata={
            "help": "--early_stop_on_inversion: consecutive evaluations (saves) cf_acc must "
            "stay that far below its peak before training stops (>= 1)."
        },
    )

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Replace the run in --output_dir when it holds another run (other model, "
            "data or settings): its checkpoint-N folders, eval/ results and manifest are "
            "deleted first. Only a folder cpi train wrote (it has cpi_run.json) is touched."
        },
    )

    def __post_init__(self) -> None:
        self.validate()
        # transformers renamed gradient_checkpointing* to activation_checkpointing* and warns
        # on the old names, which TRL still sets by default: every run (and every one-line
        # error) printed a FutureWarning. The old names stay cpi train's documented options.
        for old, new in (
            ("gradient_checkpointing", "activation_checkpointing"),
            ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs"),
        ):
            if hasattr(self, new) and getattr(self, new) is None:
                setattr(self, new, getattr(self, old))
        if self.bf16 is None and not self.fp16:
            self.bf16 = _accelerator_has_bf16()
        super().__post_init__()

    def validate(self) -> None:
        """The checks that need no model or data; each error names the option and the fix."""
        if self.finetune not in FINETUNE_MODES:
            raise CPIError(
                f"--finetune {self.finetune!r} is not a mode; use one of "
                f"{', '.join(FINETUNE_MODES)}"
            )
        if self.template != "auto" and self.template not in TEMPLATES:
            raise CPIError(
                f"--template {self.template!r} is unknown; use auto or one of "
                f"{', '.join(TEMPLATES)}"
            )
        names = parse_curations(self.curation)
        if not 0.0 <= self.context_critical_drop < 1.0:
            raise CPIError(
                f"--context_critical_drop {self.context_critical_drop} is outside "
                "[0, 1); give the fraction of examples to drop, e.g. 0.25"
            )
        if not 0.0 <= self.cf_augment_fraction < 1.0:
            raise CPIError(
                f"--cf_augment_fraction {self.cf_augment_fraction} is outside "
                "[0, 1); give the share of counterfactuals, e.g. 0.1"
            )
        if self.context_critical_batch_size < 1:
            raise CPIError("--context_critical_batch_size must be at least 1")
        if "drop_overlap" in names and not (self.overlap_entities or self.overlap_file):
            raise CPIError(
                "--curation drop_overlap needs --overlap_entities 'A,B' or --overlap_file FILE"
            )
        if "cf_augment" in names and not self.cf_augment_source:
            raise CPIError(
                "--curation cf_augment needs --cf_augment_source FILE (cpi schema or SQuAD-style)"
            )
        self.eval_limit = parse_limit(self.eval_limit, "--eval_limit")
        if self.eval_batch_size < 1:
            raise CPIError("--eval_batch_size must be at least 1")
        self._validate_early_stop()
        if self.save_steps is not None and not (
            self.save_steps > 0 and math.isfinite(self.save_steps)
        ):
            raise CPIError("--save_steps must be positive (the paper used 50)")
        self._validate_numbers()

    def _validate_early_stop(self) -> None:
        """--early_stop_on_inversion is a fall in (0, 1] and needs --eval_tasks to watch."""
        drop, patience = self.early_stop_on_inversion, self.early_stop_patience
        if drop is not None:
            if isinstance(drop, bool) or not isinstance(drop, (int, float)):
                raise CPIError(f"--early_stop_on_inversion {drop!r} is not a number")
            if not (math.isfinite(drop) and 0 < drop <= 1):
                raise CPIError(
                    f"--early_stop_on_inversion {drop} is outside (0, 1]; give the fall of "
                    "cf_acc below its peak as a fraction, e.g. 0.05 for 5 points"
                )
            if not self.eval_task_names:
                raise CPIError(
                    "--early_stop_on_inversion needs --eval_tasks (the in-training cf_acc it "
                    "watches), e.g. --eval_tasks cpi_capitals"
                )
        if not _is_count(patience):
            raise CPIError(
                f"--early_stop_patience {patience!r} is invalid (give a whole number >= 1)"
            )

    def _validate_numbers(self) -> None:
        """nan, zero or negative learning rates, batch sizes and lengths are input errors.

        A value from a --config YAML file arrives as YAML typed it (argparse converts only
        strings), so ``max_steps: .nan`` or ``per_device_train_batch_size: 2.5`` reach here
        unconverted: counts are checked to be whole numbers, and nan never compares."""
        positive_number(self.learning_rate, "--learning_rate")
        _positive_count(self.per_device_train_batch_size, "--per_device_train_batch_size")
        _positive_count(self.gradient_accumulation_steps, "--gradient_accumulation_steps")
        positive_number(self.num_train_epochs, "--num_train_epochs")
        positive_number(self.weight_decay, "--weight_decay", allow_zero=True)
        if self.max_steps is not None and self.max_steps != -1 and not _is_count(self.max_steps):
            raise CPIError(
                f"--max_steps {self.max_steps} is invalid (give a positive number of steps, "
                "or -1 to train for --num_train_epochs)"
            )
        if self.max_length is not None:
            _positive_count(self.max_length, "--max_length")

    @property
    def curation_names(self) -> list[str]:
        return parse_curations(self.curation)

    @property
    def eval_task_names(self) -> list[str]:
        return split_list(self.eval_tasks)


def _is_count(value: object) -> bool:
    """A whole number >= 1 (an int, or a float such as 4.0 from a YAML file)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and value >= 1 and float(value).is_integer()


def _positive_count(value: object, flag: str) -> None:
    if value is not None and not _is_count(value):
        raise CPIError(f"{flag} {value!r} is invalid (give a whole number >= 1)")


class CPITrainParser(OneLineErrors, TrlParser):
    """TRL's parser; a usage error (an unknown choice, 'nan' for an integer option) is one
    CPIError line with exit status 2, not argparse's 160-line usage block."""


def make_parser(prog: str = "cpi train", description: str | None = None) -> TrlParser:
    """TRL's parser over (ScriptArguments, CPITrainConfig, ModelConfig), --lora_r = 128."""
    import argparse

    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        """Show defaults, keep the description's paste-able commands as written."""

    parser = CPITrainParser(
        (ScriptArguments, CPITrainConfig, ModelConfig),
        prog=prog,
        description=description,
        formatter_class=Formatter,
    )
    parser.set_defaults(lora_r=PAPER_LORA_R)
    for action in parser._actions:  # argparse's set_defaults leaves the help text stale
        if action.dest == "lora_r":
            action.help = "LoRA rank (cpi train uses the paper's 128 unless set)."
    return parser
