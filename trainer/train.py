"""``cpi train``: instruction-finetune a model with TRL's SFTTrainer, keeping checkpoints.

    cpi tiny-model --output_dir tiny
    cpi train --model_name_or_path tiny --dataset_name alpaca.jsonl --finetune qk \\
        --max_steps 4 --save_steps 2 --output_dir runs/qk
    cpi train --config run.yaml --learning_rate 1e-4          # a YAML file, flags override it
    accelerate launch --num_processes 2 -m cpi_bench.trainer.train --config run.yaml  # 2 GPUs

Data: --dataset_name is tatsu-lab/alpaca, allenai/tulu-v2-sft-mixture,
HuggingFaceH4/ultrachat_200k, rajpurkar/squad or a local .jsonl/.json/.parquet file in one of
those schemas (recognised by its columns). Each is rendered with its instruction template and
the loss is on the responses only; the template is saved as the chat template of every
checkpoint's tokenizer, so ``lm_eval --apply_chat_template`` evaluates in the training format.

Output: OUTPUT_DIR/checkpoint-N every --save_steps (default 50, never pruned) and
OUTPUT_DIR/cpi_run.json, the manifest ``cpi sweep`` reads (base model = step 0).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpi_bench.harness_ext.core import run_folder
from cpi_bench.harness_ext.core.errors import CPIError

from .schema import MESSAGES

logger = logging.getLogger("cpi_bench.trainer")


@dataclass
class PreparedData:
    """The curated training set, rendered, and what the manifest says about it."""

    dataset: Any  # datasets.Dataset with one "messages" column
    schema: str
    template: Any  # templates.Template
    curations: list[dict[str, Any]]
    dropped_without_response: int


def parse_args(argv: list[str] | None) -> tuple[Any, Any, Any]:
    """(ScriptArguments, CPITrainConfig, ModelConfig) from argv and an optional --config YAML."""
    from .config import make_parser

    parser = make_parser(description=__doc__)
    try:
        script_args, config, model_args = parser.parse_args_and_config(argv)
    except CPIError:
        raise
    except ValueError as err:  # TRL/transformers validation, unknown flags in a YAML file
        message = str(err).strip().splitlines()[0]
        if "not used by the HfArgumentParser" in message or "Unknown arguments" in message:
            unknown = message.split(":", 1)[1].strip()
            message = f"unknown option(s) {unknown}; see cpi train --help for the option names"
        raise CPIError(message) from None
    check_args(script_args, config, model_args)
    return script_args, config, model_args


def check_args(script_args: Any, config: Any, model_args: Any) -> None:
    """Cross-option checks (the dataclasses validate their own fields)."""
    if not model_args.model_name_or_path:
        raise CPIError(
            "--model_name_or_path is required (a hub id or a local model folder, "
            "e.g. one written by cpi tiny-model)"
        )
    if not script_args.dataset_name:
        raise CPIError(
            "--dataset_name is required (tatsu-lab/alpaca, "
            "allenai/tulu-v2-sft-mixture, HuggingFaceH4/ultrachat_200k, "
            "rajpurkar/squad or a .jsonl/.json/.parquet file)"
        )
    if model_args.use_peft and config.finetune != "lora":
        raise CPIError(
            f"--use_peft contradicts --finetune {config.finetune}; use --finetune lora for LoRA"
        )
    if config.finetune == "lora":
        model_args.use_peft = True
    if config.eval_task_names:
        eval_callback_class()  # fail now, not after data preparation


def eval_callback_class() -> type:
    """harness_ext's in-training evaluation callback, imported only when --eval_tasks is set."""
    try:
        from cpi_bench.harness_ext.evaluation.callback import CPIEvalCallback
    except ImportError as err:
        raise CPIError(
            f"--eval_tasks needs cpi_bench.harness_ext.evaluation.callback ({err}); update "
            "cpi-bench or drop --eval_tasks and evaluate with cpi sweep"
        ) from None
    return CPIEvalCallback


def prepare_data(script_args: Any, config: Any, model_args: Any) -> PreparedData:
    """Load, recognise, curate and render the training set (main process first under
    accelerate, so scores are computed once and the others read the cache)."""
    from .curation import (
        CurationContext,
        apply_curations,
        load_counterfactuals,
        load_entities,
    )
    from .schema import detect_schema, load_source, to_canonical
    from .scoring import ResponseLossScorer
    from .templates import get_template

    name = script_args.dataset_name
    raw = load_source(name, script_args.dataset_train_split, script_args.dataset_config)
    schema = detect_schema(raw.column_names, name)
    if len(raw) == 0:
        raise CPIError(f"dataset {name} has no rows; give a file with examples")
    canonical, dropped = to_canonical(raw, schema)
    if dropped:
        logger.warning(
            "%d of %d rows of %s have no response and were skipped", dropped, len(raw), name
        )
    if len(canonical) == 0:
        raise CPIError(
            f"no row of {name} has a response ({schema.name} schema); check the "
            "file's response column"
        )
    template = get_template(schema.template if config.template == "auto" else config.template)

    names = config.curation_names
    scorer = None
    if "context_critical" in names:
        scorer = ResponseLossScorer(
            model_args.model_name_or_path,
            template,
            revision=model_args.model_revision,
            batch_size=config.context_critical_batch_size,
            max_length=config.max_length,
            cache_dir=config.scores_cache_dir,
            trust_remote_code=config.trust_remote_code,
            dtype=model_args.dtype,
        )
    ctx = CurationContext(
        template=template,
        seed=config.seed,
        context_critical_drop=config.context_critical_drop,
        scorer=scorer,
        entities=(
            load_entities(config.overlap_entities, config.overlap_file)
            if "drop_overlap" in names
            else ()
        ),
        counterfactuals=(
            load_counterfactuals(config.cf_augment_source, config.seed)
            if "cf_augment" in names
            else []
        ),
        cf_augment_fraction=config.cf_augment_fraction,
    )
    curated, report = apply_curations(canonical, names, ctx, source=name)
    rendered = curated.map(
        lambda row: {MESSAGES: template.to_messages(row)},
        remove_columns=curated.column_names,
        desc="Rendering messages",
    )
    return PreparedData(rendered, schema.name, template, report, dropped)


def load_model_and_tokenizer(config: Any, model_args: Any, template: Any) -> tuple[Any, Any]:
    """The base model (dtype/attention from ModelConfig) and its tokenizer with the template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, revision = model_args.model_name_or_path, model_args.model_revision
    tokenizer = AutoTokenizer.from_pretrained(
        path, revision=revision, trust_remote_code=config.trust_remote_code
    )
    tokenizer.chat_template = template.chat_template
    kwargs = dict(config.model_init_kwargs or {})
    kwargs.setdefault("dtype", model_args.dtype)
    if model_args.attn_implementation:
        kwargs.setdefault("attn_implementation", model_args.attn_implementation)
    model = AutoModelForCausalLM.from_pretrained(
        path, revision=revision, trust_remote_code=config.trust_remote_code, **kwargs
    )
    return model, tokenizer


def resolve_resume(config: Any) -> str | None:
    """--resume_from_checkpoint PATH, or 'last'/'true' for the newest checkpoint-N."""
    value = config.resume_from_checkpoint
    if not value or str(value).lower() in {"false", "none"}:
        return None
    if str(value).lower() in {"last", "latest", "true"}:
        last = run_folder.last_complete_checkpoint(config.output_dir)
        if last is None:
            raise CPIError(
                f"--resume_from_checkpoint {value}: no complete checkpoint-N in "
                f"{config.output_dir} (start without it or give a checkpoint path)"
            )
        return last
    if not Path(value).is_dir():
        raise CPIError(
            f"--resume_from_checkpoint {value} is not a folder; give a "
            "checkpoint-N folder or 'last'"
        )
    return str(value)


def n_trained(config: Any, data: PreparedData, trainer: Any) -> int:
    """Examples actually trained on: TRL drops those whose response truncation to
    --max_length removed entirely (warned about here, since it skews the curated mix)."""
    if config.packing:
        return len(data.dataset)
    n = len(trainer.train_dataset)
    if n < len(data.dataset):
        logger.warning(
            "%d of %d examples lost their whole response to --max_length %s and are "
            "not trained on; raise --max_length to keep them",
            len(data.dataset) - n,
            len(data.dataset),
            config.max_length,
        )
    return n


def build_manifest(
    script_args: Any,
    config: Any,
    model_args: Any,
    data: PreparedData,
    trainer: Any,
    resumed_from: str | None,
) -> dict[str, Any]:
    """The manifest contract of manifest.py, at the start of training."""
    from .finetune import trainable_parameter_count

    lora = None
    if config.finetune == "lora":
        peft_cfg = trainer.model.peft_config["default"]
        targets = peft_cfg.target_modules
        lora = {
            "r": peft_cfg.r,
            "alpha": peft_cfg.lora_alpha,
            "target_modules": sorted(targets) if not isinstance(targets, str) else targets,
        }
    return {
        **run_identity_from_args(script_args, config, model_args),
        "dataset_schema": data.schema,
        "template": data.template.name,
        "chat_template": data.template.chat_template,
        "curations": data.curations,
        "n_train_examples": n_trained(config, data, trainer),
        "max_steps": config.max_steps,
        "save_steps": config.save_steps,
        "lora": lora,
        "trainable_parameters": trainable_parameter_count(trainer.model),
        "versions": run_folder.library_versions(),
        "resumed_from": resumed_from,
        "status": run_folder.RUNNING,
    }


def run_identity_from_args(script_args: Any, config: Any, model_args: Any) -> dict[str, Any]:
    """What makes two ``cpi train`` calls the same run (run_folder.IDENTITY_KEYS), from the
    arguments alone: checked before any data or model work. Local paths are made absolute,
    and local weights and data files are identified by their content."""
    from cpi_bench.harness_ext.core.files import file_sha256, weights_fingerprint

    base = run_folder.resolve_base(model_args.model_name_or_path, ".", from_cli=True)
    dataset = script_args.dataset_name
    data_path = Path(dataset).expanduser()
    lora = None
    if config.finetune == "lora":
        targets = model_args.lora_target_modules
        lora = {
            "r": model_args.lora_r,
            "alpha": model_args.lora_alpha,
            "target_modules": sorted(targets) if isinstance(targets, list) else targets,
        }
    return {
        "base_model": base,
        "base_fingerprint": weights_fingerprint(base) if Path(base).exists() else None,
        "finetune": config.finetune,
        "dataset": str(data_path.resolve()) if data_path.is_file() else dataset,
        "dataset_fingerprint": file_sha256(data_path) if data_path.is_file() else None,
        "template_option": config.template,
        "curations_asked": {
            "names": config.curation_names,
            "context_critical_drop": config.context_critical_drop,
            "cf_augment_fraction": config.cf_augment_fraction,
        },
        "seed": config.seed,
        "learning_rate": config.learning_rate,
        "lora_options": lora,
    }


_RUN_OUTPUTS = ("eval", "inversion.json", "inversion.md", "inversion.csv", "inversion.png")


def claim_output_dir(config: Any, identity: dict[str, Any], resuming: bool) -> None:
    """Refuse to mix two runs in one --output_dir, or to write into a folder of someone
    else's files; --overwrite_output_dir replaces an earlier cpi run (only its own files)."""
    import shutil

    from cpi_bench.harness_ext.core.files import OWNER_MARKER, check_writable

    out = Path(config.output_dir)
    check_writable(out, "--output_dir")
    entries = [e for e in out.iterdir() if not e.name.startswith(".cpi")]
    if not entries:
        return
    if not run_folder.manifest_path(out).is_file():
        if resuming and all(run_folder.is_checkpoint_name(e.name) for e in entries):
            return  # a run killed before its manifest was copied along: checkpoints only
        raise CPIError(
            f"--output_dir {out} holds files that cpi train did not write "
            "(choose a new or empty folder; cpi never overwrites files it did not create)"
        )
    old = run_folder.read_manifest(out)
    mismatch = run_folder.identity_mismatch(old, identity)
    if mismatch is None:
        return
    if not config.overwrite_output_dir:
        raise CPIError(
            f"--output_dir {out} holds another run ({mismatch}); resume that run with its "
            "own settings and --resume_from_checkpoint last, choose a new --output_dir, or "
            "pass --overwrite_output_dir to replace it"
        )
    for entry in entries:
        if run_folder.is_checkpoint_name(entry.name) or entry.name in _RUN_OUTPUTS:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    run_folder.manifest_path(out).unlink(missing_ok=True)
    logger.info("--overwrite_output_dir: removed the earlier run in %s (%s)", out, OWNER_MARKER)


def build_trainer(config: Any, model_args: Any, data: PreparedData) -> Any:
    """SFTTrainer over the rendered data with the finetuning mode applied."""
    from transformers import set_seed
    from trl import SFTTrainer, get_peft_config

    from .finetune import apply_qk

    set_seed(config.seed)
    model, tokenizer = load_model_and_tokenizer(config, model_args, data.template)
    callbacks: list[Any] = []
    if config.finetune == "qk":
        targets, callbacks = apply_qk(model)
        if any(t.frozen is not None for t in targets) and (config.fsdp or config.deepspeed):
            raise CPIError(
                f"--finetune qk on {model.config.model_type}'s fused q/k/v "
                "matrix cannot run under FSDP/DeepSpeed (sharded tensors); use "
                "DDP or --finetune full/lora"
            )
        logger.info("qk finetuning: %d tensors train (%s, ...)", len(targets), targets[0].name)
    peft_config = get_peft_config(model_args) if config.finetune == "lora" else None
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=data.dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    if config.eval_task_names:
        trainer.add_callback(
            eval_callback_class()(
                tasks=config.eval_task_names,
                limit=config.eval_limit,
                batch_size=config.eval_batch_size,
                output_dir=config.output_dir,
            )
        )
    return trainer


def run(script_args: Any, config: Any, model_args: Any) -> int:
    """Prepare data, build the trainer, write the manifest, train, finish the manifest."""
    import torch
    from accelerate import PartialState

    from .finetune import check_qk_supported

    torch.set_flush_denormal(True)  # CPU: denormals made training 4x slower in measurements
    state = PartialState()
    if not state.is_main_process:
        logging.getLogger("cpi_bench").setLevel(logging.WARNING)
    if config.finetune == "qk":
        check_qk_supported(
            model_args.model_name_or_path, model_args.model_revision, config.trust_remote_code
        )
    resumed_from = resolve_resume(config)
    if state.is_main_process:
        identity = run_identity_from_args(script_args, config, model_args)
        claim_output_dir(config, identity, resuming=resumed_from is not None)
    if config.eval_task_names:
        validate_eval_tasks(config)
    with state.main_process_first():
        data = prepare_data(script_args, config, model_args)
    trainer = build_trainer(config, model_args, data)
    logger.info(
        "training %s (%s) on %d %s examples, template %s, output %s",
        model_args.model_name_or_path,
        config.finetune,
        len(data.dataset),
        data.schema,
        data.template.name,
        config.output_dir,
    )

    manifest = build_manifest(script_args, config, model_args, data, trainer, resumed_from)
    if state.is_main_process:
        run_folder.write_manifest(config.output_dir, manifest)
    cpu_start = time.process_time()
    result = train_or_mark_failed(trainer, resumed_from, manifest, config.output_dir, state)
    metrics = dict(result.metrics)
    metrics["train_cpu_seconds"] = time.process_time() - cpu_start  # all threads of this process
    if trainer.state.num_input_tokens_seen and metrics.get("train_runtime"):
        metrics["num_input_tokens_seen"] = trainer.state.num_input_tokens_seen
        metrics["tokens_per_second"] = (
            trainer.state.num_input_tokens_seen / metrics["train_runtime"]
        )
    if state.is_main_process:
        manifest.update(
            status=run_folder.FINISHED,
            max_steps=trainer.state.max_steps,
            global_step=trainer.state.global_step,
            train_metrics=metrics,
        )
        run_folder.write_manifest(config.output_dir, manifest)
    if hasattr(trainer, "end"):  # transformers >= 5.18: close trackers and the process group
        trainer.end()
    return 0


def train_or_mark_failed(
    trainer: Any, resumed_from: str | None, manifest: dict[str, Any], output_dir: str, state: Any
) -> Any:
    """``trainer.train``; if it raises (or is interrupted), the manifest says "failed" and
    why, never "running", before the exception goes on."""
    try:
        return trainer.train(resume_from_checkpoint=resumed_from)
    except BaseException as exc:
        if state.is_main_process:
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
            manifest.update(status=run_folder.FAILED, failure=reason.strip())
            run_folder.write_manifest(output_dir, manifest)
        raise


def validate_eval_tasks(config: Any) -> None:
    """Build --eval_tasks once before step 0, so a typo fails now, not at the first save."""
    from cpi_bench.harness_ext.evaluation.evaluator import CheckpointEvaluator

    CheckpointEvaluator(tasks=config.eval_task_names, limit=config.eval_limit).load_tasks()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (pytest and callers may swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging() -> None:
    """Show cpi's own progress lines (curation counts, dropped rows) once, on stderr."""
    root = logging.getLogger("cpi_bench")
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("cpi train: %(message)s"))
        root.addHandler(handler)
    if root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def _train(argv: list[str]) -> int:
    setup_logging()
    script_args, config, model_args = parse_args(argv)
    return run(script_args, config, model_args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``cpi train`` (argv excludes "train"): 0 on success, 2 on bad input
    (one line on stderr, no traceback)."""
    from cpi_bench.harness_ext.core.errors import run_entry

    return run_entry("train", _train, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":  # accelerate launch -m cpi_bench.trainer.train ...
    sys.exit(main())
