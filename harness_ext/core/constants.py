"""Names shared by the evaluation (``cpi sweep``, the training callback) and the reports
(``cpi table``, ``cpi compare``, ``cpi gate``).

Running and reporting only meet through JSON files, so every file name, metric name and
schema key they both use is defined here, once.
"""

from __future__ import annotations

# ----------------------------------------------------------------------------- run folder
RUN_MANIFEST = "cpi_run.json"  # written by ``cpi train``
CHECKPOINT_PREFIX = "checkpoint-"  # HF Trainer folders: checkpoint-<global step>
ADAPTER_CONFIG = "adapter_config.json"  # present in a peft (LoRA) checkpoint

EVAL_DIR = "eval"  # RUN_DIR/eval/step-<N>.json: one lm-eval results JSON per checkpoint
EVAL_FILE_PREFIX = "step-"
EVAL_FILE_SUFFIX = ".json"

INVERSION_JSON = "inversion.json"
INVERSION_MD = "inversion.md"
INVERSION_CSV = "inversion.csv"
INVERSION_PNG = "inversion.png"
INVERSION_HTML = "inversion.html"  # the same report as one self-contained page
# Every report a sweep writes into a run folder (and a new run there replaces).
RUN_REPORTS = (INVERSION_JSON, INVERSION_MD, INVERSION_CSV, INVERSION_PNG, INVERSION_HTML)
HTML_GENERATOR = "cpi-bench"  # <meta name="generator">: marks the HTML pages cpi writes

# ----------------------------------------------------------------------------- tasks, metrics
DEFAULT_TASKS = ("cpi",)  # the group over the four core generation tasks
CPI_CORE_TASKS = ("cpi_world_facts", "cpi_capitals", "cpi_bio", "cpi_quotes")

CF_ACC = "cf_acc"  # 1 when the generated answer states the context's (counterfactual) answer
PARAM_ACC = "param_acc"  # 1 when it states the memorised (parametric) answer
CF_PREF = "cf_pref"  # two-choice tasks: p(ctx) / (p(ctx) + p(mem))
REASON_METRIC = "reason"  # generation tasks: per item, the scoring rule that decided cf/param
CPI_METRICS = (CF_ACC, PARAM_ACC)
DEFAULT_FILTER = "none"  # lm-eval writes "<metric>,<filter>" and "<metric>_stderr,<filter>"

# ID (standard-benchmark) accuracy: which lm-eval metric stands for a task, first found wins.
# Override per task with "task:metric,filter" in --id_tasks.
ID_METRIC_PREFERENCE = (
    "acc,none",
    "exact_match,strict-match",
    "exact_match,none",
    "contains,none",
    "acc_norm,none",
    "f1,none",
    "em,none",
)

# --model_args keys that never change a number: not part of the settings a finished
# per-checkpoint file must match to be reused.
RESULT_NEUTRAL_MODEL_ARGS = frozenset({"batch_size", "max_batch_size", "device", "parallelize"})

# ----------------------------------------------------------------------------- schema keys
SCHEMA_VERSION = 1
CPI_KEY = "cpi"  # our block inside a per-checkpoint lm-eval results JSON
SETTINGS_KEY = "settings"
ATTENTION_KEY = "attention"
ATTENTION_COLUMN = "attn_ctx"  # row key: attention mass on context tokens (fraction)
ID_ACC = "id_acc"

SUMMARY_KEYS = (
    "initial_cf_acc",
    "peak_cf_acc",
    "peak_step",
    "final_cf_acc",
    "rise",
    "drop",
    "drop_stderr",
    "drop_exceeds_stderr",
)

# lm-eval's own seeds (its CLI defaults), reset before every checkpoint so that the order and
# the resumption of a sweep never change a number.
RANDOM_SEED = 0
NUMPY_SEED = 1234
TORCH_SEED = 1234
FEWSHOT_SEED = 1234


def eval_file_name(step: int) -> str:
    """``step-<N>.json``: the per-checkpoint results file name for global step ``step``."""
    return f"{EVAL_FILE_PREFIX}{step}{EVAL_FILE_SUFFIX}"
