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

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..harness_ext.core import model_files, run_folder
from ..harness_ext.core.errors import CPIError, failure_reason, one_line
from .quantization import check_quantization, quantization_kwargs, quantization_record
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
    argv = list(sys.argv[1:] if argv is None else argv)
    check_config_file(argv, parser)
    try:
        script_args, config, model_args = parser.parse_args_and_config(argv)
    except CPIError:
        raise
    except ValueError as err:  # TRL/transformers validation, unknown flags in a YAML file
        message = one_line(err)
        if "not used by the HfArgumentParser" in message or "Unknown arguments" in message:
            unknown = message.split(":", 1)[1].strip()
            message = f"unknown option(s) {unknown}; see cpi train --help for the option names"
        raise CPIError(message) from None
    check_args(script_args, config, model_args)
    return script_args, config, model_args


def parse_args_train(argv: list[str]) -> tuple[Any, Any, Any]:
    """Option names, types and choices only (``cpi.parse_only``, the docs check): no file is
    read, so a command that names a YAML file or a dataset that is not here still parses."""
    from .config import make_parser

    argv = list(argv)
    if "--config" in argv:  # the file's keys are TRL options too: checked by tests/test_recipes.py
        at = argv.index("--config")
        del argv[at : at + 2]
    return make_parser(description=__doc__).parse_args_into_dataclasses(args=argv)


def check_config_file(argv: list[str], parser: Any) -> None:
    """--config FILE must be a readable YAML mapping of known option names. TRL reads it
    without these checks: a YAML syntax error surfaced as a PyYAML traceback, and an unknown
    key as a list of made-up flags, neither naming the file or the line."""
    if "--config" not in argv:
        return
    index = argv.index("--config") + 1
    if index >= len(argv) or argv[index].startswith("--"):
        raise CPIError("--config needs a YAML file, e.g. --config run.yaml")
    path = Path(argv[index])
    if not path.is_file():
        raise CPIError(f"--config {path} not found; give a YAML file of cpi train options")
    data = _read_yaml(path)
    if not isinstance(data, dict):
        kind = "nothing" if data is None else f"a YAML {type(data).__name__}"
        raise CPIError(
            f"--config {path} holds {kind}, not a mapping; write one 'option: value' per "
            "line, e.g. 'learning_rate: 1.0e-4'"
        )
    known = {action.dest for action in parser._actions} | {"env"}
    unknown = [str(key) for key in data if key not in known]
    if unknown:
        import difflib

        hints = [
            f"{key} -> {close[0]}"
            for key in unknown
            if (close := difflib.get_close_matches(key, known, n=1))
        ]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise CPIError(
            f"--config {path}: unknown option(s) {', '.join(unknown)}{hint}; use the names "
            "that cpi train --help lists, without the leading --"
        )


def _read_yaml(path: Path) -> Any:
    """The parsed YAML file; syntax errors name the line and column."""
    from ..harness_ext.core.files import read_yaml

    return read_yaml(path, "--config", "fix it: one 'option: value' per line")


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
    src = check_model_files(model_args.model_name_or_path, config.trust_remote_code)
    check_quantization(config.finetune, src.kind, model_args)
    if config.eval_task_names:
        eval_callback_class()  # fail now, not after data preparation


def check_model_files(spec: str, trust_remote_code: bool = False) -> Any:
    """Resolve --model_name_or_path and read what a local model's files promise: config.json
    is a config transformers knows, the weights' headers parse, tokenizer files exist. Why
    now: transformers finds these problems only after data preparation (minutes with
    context_critical), and its messages (a repo-id error for a missing folder, "header too
    large") name no fix."""
    import importlib.util

    from ..harness_ext.models.source import resolve_model

    src = resolve_model(spec)
    folder = src.local_dir
    if folder is not None and model_files.is_adapter_only(folder):
        raise CPIError(
            f"--model_name_or_path {folder} is a peft adapter, not a whole model; train from "
            "its base (adapter_config.json's base_model_name_or_path), or merge it first "
            "(peft's merge_and_unload, then save_pretrained) and train from that folder"
        )
    if src.kind == "gguf":
        if importlib.util.find_spec("gguf") is None:
            raise CPIError(f"model {src} is a GGUF file; reading it needs: pip install gguf")
        _check_gguf_magic(Path(str(src)))
    elif folder is not None and (folder / "config.json").is_file():
        _check_json_file(folder / "config.json")
        with _model_load_errors(src, "config"):
            from transformers import AutoConfig

            AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
        _check_safetensors(src)
        if not model_files.has_tokenizer(folder):
            names = model_files.VOCABULARY_FILES
            raise CPIError(
                f"model folder {folder} has no tokenizer files ({', '.join(names[:3])}"
                f", ...); save the tokenizer next to the model (tokenizer.save_pretrained) or "
                "copy the base model's tokenizer files into it"
            )
    return src


def _check_json_file(path: Path) -> None:
    problem = model_files.json_problem(path)
    if problem:
        raise CPIError(
            f"model {path.parent}: {problem}; re-save the model with save_pretrained or "
            "re-download it"
        )


def _check_safetensors(src: Any) -> None:
    """Open each .safetensors file's header (no tensor is read): a damaged or truncated file
    fails here, named, instead of deep inside from_pretrained."""
    from safetensors import safe_open

    from ..harness_ext.models.source import weights_files

    for path in weights_files(src):
        if path.suffix != ".safetensors":
            continue
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception as err:  # noqa: BLE001 - SafetensorError, OSError, ...
            raise CPIError(
                f"model weights {path} are not a readable safetensors file "
                f"({one_line(err)}); the file is damaged or incomplete: re-download it or "
                "re-save the model"
            ) from None


def _check_gguf_magic(path: Path) -> None:
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise CPIError(
            f"model file {path} is not a GGUF file (it does not start with 'GGUF'); the file is "
            "damaged or incomplete: download it again"
        )


def eval_callback_class() -> type:
    """harness_ext's in-training evaluation callback, imported only when --eval_tasks is set."""
    try:
        from .callback import CPIEvalCallback
    except ImportError as err:
        raise CPIError(
            f"--eval_tasks needs cpi_bench.trainer.callback ({err}); update "
            "cpi-bench or drop --eval_tasks and evaluate with cpi sweep"
        ) from None
    return CPIEvalCallback


def prepare_data(script_args: Any, config: Any, model_args: Any) -> PreparedData:
    """Load, recognise, curate and render the training set (main process first under
    accelerate, so scores are computed once and the others read the cache)."""
    from .curation import apply_curations
    from .schema import detect_schema, load_source, to_canonical
    from .templates import get_template

    name = script_args.dataset_name
    raw = load_source(name, script_args.dataset_train_split, script_args.dataset_config)
    if len(raw) == 0:
        raise CPIError(f"dataset {name} has no rows; give a file with examples")
    schema = detect_schema(raw.column_names, name)
    canonical, dropped = to_canonical(raw, schema, source=name)
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
    ctx = curation_context(config, model_args, template)
    curated, report = apply_curations(canonical, config.curation_names, ctx, source=name)
    rendered = curated.map(
        lambda row: {MESSAGES: template.to_messages(row)},
        remove_columns=curated.column_names,
        desc="Rendering messages",
    )
    return PreparedData(rendered, schema.name, template, report, dropped)


def curation_context(config: Any, model_args: Any, template: Any) -> Any:
    """What the chosen curations need, loaded up front (only for the curations asked for:
    the scorer loads the base model, the sources are files that may not exist otherwise)."""
    from .curation import CURATIONS, CurationContext, load_counterfactuals, load_entities
    from .response_loss import ResponseLossScorer

    names = config.curation_names
    scorer = None
    if any(CURATIONS[name].needs_scorer for name in names):
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
    entities: tuple[str, ...] = ()
    if "drop_overlap" in names:
        entities = load_entities(config.overlap_entities, config.overlap_file)
    counterfactuals = []
    if "cf_augment" in names:
        counterfactuals = load_counterfactuals(config.cf_augment_source, config.seed)
    return CurationContext(
        template=template,
        seed=config.seed,
        context_critical_drop=config.context_critical_drop,
        scorer=scorer,
        entities=entities,
        counterfactuals=counterfactuals,
        cf_augment_fraction=config.cf_augment_fraction,
    )


def load_model_and_tokenizer(config: Any, model_args: Any, template: Any) -> tuple[Any, Any]:
    """The base model (dtype/attention from ModelConfig) and its tokenizer with the template.

    Loaded through harness_ext.models.source, so a model folder, a .gguf file (or a folder
    holding one) and a hub id load the same way as in cpi sweep; a load failure is one line
    naming the model."""
    from ..harness_ext.models.source import load_model, load_tokenizer, resolve_model

    src = resolve_model(model_args.model_name_or_path)
    common = {"revision": model_args.model_revision, "trust_remote_code": config.trust_remote_code}
    with _model_load_errors(src, "tokenizer"):
        tokenizer = load_tokenizer(src, **common)
    tokenizer.chat_template = template.chat_template
    kwargs = dict(config.model_init_kwargs or {})
    dtype = kwargs.pop("dtype", model_args.dtype)
    if model_args.attn_implementation:
        kwargs.setdefault("attn_implementation", model_args.attn_implementation)
    kwargs.update(quantization_kwargs(model_args))  # --load_in_4bit/8bit (checked in check_args)
    with _model_load_errors(src, "weights"):
        model = load_model(src, dtype=dtype, **common, **kwargs)
    return model, tokenizer


@contextlib.contextmanager
def _model_load_errors(src: Any, what: str) -> Iterator[None]:
    """transformers' load errors (OSError, ValueError, SafetensorError, ...) as one CPIError."""
    try:
        yield
    except CPIError:
        raise
    except Exception as err:  # noqa: BLE001 - from_pretrained raises many types
        raise CPIError(
            f"could not load the model {what} from {src} ({failure_reason(err)}); check "
            "--model_name_or_path (a folder save_pretrained wrote, a .gguf file or a hub id)"
        ) from err


def resume_requested(config: Any) -> str | None:
    """--resume_from_checkpoint as given, or None when it asks for no resume."""
    value = config.resume_from_checkpoint
    if not value or str(value).lower() in {"false", "none"}:
        return None
    return str(value)


def resolve_resume(config: Any) -> str | None:
    """--resume_from_checkpoint: a path, or last/latest/true for the newest checkpoint-N that
    training can resume from (run_folder.checkpoint_problem with resume: readable weights
    and trainer_state.json). A newer one cut short during its save is named in a warning,
    and its step is trained and written again."""
    value = resume_requested(config)
    if value is None:
        return None
    if value.lower() in {"last", "latest", "true"}:
        last, skipped = run_folder.last_complete_checkpoint(config.output_dir)
        if last is None:
            raise CPIError(
                f"--resume_from_checkpoint {value}: no complete checkpoint-N in "
                f"{config.output_dir} (start without it or give a checkpoint path)"
            )
        for line in skipped:
            logger.warning("%s; resuming from %s instead", line, Path(last).name)
        return last
    if not Path(value).is_dir():
        raise CPIError(
            f"--resume_from_checkpoint {value} is not a folder; give a "
            "checkpoint-N folder or 'last'"
        )
    problem = run_folder.checkpoint_problem(Path(value), resume=True)
    if problem:
        raise CPIError(
            f"--resume_from_checkpoint {value}: cannot resume from it ({problem}); give "
            "another checkpoint, or 'last' for the newest complete one"
        )
    return value


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
    from ..harness_ext.models.source import hub_commit
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
        "base_revision": hub_commit(model_args.model_name_or_path, model_args.model_revision),
        "resumed_from": resumed_from,
        "status": run_folder.RUNNING,
    }


def run_identity_from_args(script_args: Any, config: Any, model_args: Any) -> dict[str, Any]:
    """What makes two ``cpi train`` calls the same run (run_folder.IDENTITY_KEYS), from the
    arguments alone: checked before any data or model work. Local paths are made absolute,
    and local weights and data files are identified by their content. A local base is
    recorded as exactly what is loaded: a model folder, or a GGUF's own file (never the folder
    it shares with other GGUFs), with the fingerprint of those bytes."""
    from ..harness_ext.core.files import file_sha256
    from ..harness_ext.models.source import model_fingerprint, resolve_model

    src = resolve_model(model_args.model_name_or_path)
    base = (
        str(src)  # folder/name.gguf, also for a folder holding one .gguf
        if src.kind == "gguf"
        else run_folder.resolve_base(model_args.model_name_or_path, ".", from_cli=True)
    )
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
        "base_fingerprint": model_fingerprint(src, weights_only=True),
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
        "quantization": quantization_record(model_args),
    }


def _older_run_folder(resuming: bool) -> Any:
    """What a non-empty --output_dir without the ``.cpi_owner`` marker may hold and still be
    cpi's: what a ``cpi sweep --follow`` started first has written (run_folder.SWEEP_OUTPUTS),
    a run folder of an older cpi train (cpi_run.json), or, when resuming, the checkpoints of
    a run killed before its manifest (plus the sweep's files)."""

    def ours(folder: Path) -> bool:
        if run_folder.manifest_path(folder).is_file():
            return True
        names = [e.name for e in folder.iterdir() if not e.name.startswith(".cpi")]
        return all(
            n in run_folder.SWEEP_OUTPUTS or (resuming and run_folder.is_checkpoint_name(n))
            for n in names
        )

    return ours


@contextlib.contextmanager
def claim_run_dir(config: Any, identity: dict[str, Any], resuming: bool) -> Iterator[None]:
    """Hold --output_dir for this run (core/files.py's claim: one of two cpi train started on
    one folder proceeds, the other exits 2), then refuse to mix two runs in it or to write
    among someone else's files; --overwrite_output_dir replaces an earlier cpi run (only its
    own files: checkpoints, manifest and what cpi sweep wrote)."""
    import shutil

    from ..harness_ext.core.files import claim_output_dir as claim

    ours = _older_run_folder(resuming)
    with claim(config.output_dir, "train", "--output_dir", ours=ours) as out:
        entries = [e for e in out.iterdir() if not e.name.startswith(".cpi")]
        if entries and not run_folder.manifest_path(out).is_file() and not ours(out):
            raise CPIError(
                f"--output_dir {out} holds files that cpi train did not write "
                "(choose a new or empty folder; cpi never overwrites files it did not create)"
            )
        old = run_folder.read_manifest(out) if run_folder.manifest_path(out).is_file() else {}
        mismatch = run_folder.identity_mismatch(old, identity) if old else None
        if mismatch and not config.overwrite_output_dir:
            raise CPIError(
                f"--output_dir {out} holds another run ({mismatch}); resume that run with its "
                "own settings and --resume_from_checkpoint last, choose a new --output_dir, or "
                "pass --overwrite_output_dir to replace it"
            )
        if mismatch:
            for entry in entries:
                if run_folder.is_checkpoint_name(entry.name) or entry.name in (
                    run_folder.SWEEP_OUTPUTS
                ):
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            run_folder.manifest_path(out).unlink(missing_ok=True)
            logger.info("--overwrite_output_dir: removed the earlier run in %s", out)
        yield


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
        callback = eval_callback_class()(
            tasks=config.eval_task_names,
            limit=config.eval_limit,
            batch_size=config.eval_batch_size,
            output_dir=config.output_dir,
            **early_stop_kwargs(config),
        )
        trainer.add_callback(callback)
        if hasattr(callback, "bind"):  # its metrics go through trainer.log (report_to)
            callback.bind(trainer)
    return trainer


def early_stop_kwargs(config: Any) -> dict[str, Any]:
    """The callback's early-stop arguments, only when --early_stop_on_inversion is set."""
    if config.early_stop_on_inversion is None:
        return {}
    return {
        "early_stop_on_inversion": config.early_stop_on_inversion,
        "early_stop_patience": config.early_stop_patience,
    }


def early_stop_record(trainer: Any) -> dict[str, Any]:
    """The manifest keys of the in-training early stop (best_step, stop_reason, early_stop;
    see harness_ext/core/run_folder.py), or {} when it was not asked for."""
    for callback in trainer.callback_handler.callbacks:
        stopper = getattr(callback, "stopper", None)
        if stopper is not None and hasattr(stopper, "manifest_fields"):
            return stopper.manifest_fields()
    return {}


def run(script_args: Any, config: Any, model_args: Any) -> int:
    """Claim --output_dir (main process), then prepare data, build the trainer, write the
    manifest, train, finish the manifest."""
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
    claim: Any = contextlib.nullcontext()
    if state.is_main_process:
        identity = run_identity_from_args(script_args, config, model_args)
        resuming = bool(resume_requested(config))
        claim = claim_run_dir(config, identity, resuming=resuming)
    with claim:
        return _run_claimed(script_args, config, model_args, state)


def _run_claimed(script_args: Any, config: Any, model_args: Any, state: Any) -> int:
    """:func:`run` once the output folder is this run's."""
    resumed_from = resolve_resume(config)
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
            **early_stop_record(trainer),
        )
        run_folder.write_manifest(config.output_dir, manifest)
    end_distributed(trainer)
    return 0


def end_distributed(trainer: Any) -> None:
    """Close the trackers and the process group so that every rank exits.

    The order matters. DDP's C++ Reducer holds a reference to the process group. If the
    group is destroyed first (``trainer.end()``), the Reducer holds the last reference, so the
    group's destructor runs under the GIL and joins gloo's worker threads while one of them
    waits for the GIL: the rank hangs after the last checkpoint. Dropping the Reducer while
    the group is still registered leaves the last reference to Python's ProcessGroup object,
    whose binding releases the GIL before destroying the group.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        wrappers = [getattr(trainer, "model_wrapped", None)]
        wrappers += list(getattr(trainer.accelerator, "_models", []))
        for wrapped in wrappers:
            for name in ("reducer", "logger"):  # DDP's Reducer and the Logger sharing it
                if wrapped is not None and name in vars(wrapped):
                    delattr(wrapped, name)
    if hasattr(trainer, "end"):  # transformers >= 5.18: trackers and destroy_process_group
        trainer.end()
    elif dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def train_or_mark_failed(
    trainer: Any, resumed_from: str | None, manifest: dict[str, Any], output_dir: str, state: Any
) -> Any:
    """``trainer.train``; if it raises (or is interrupted), the manifest says "failed" and
    why, never "running", before the exception goes on."""
    try:
        return trainer.train(resume_from_checkpoint=resumed_from)
    except BaseException as exc:
        if state.is_main_process:
            manifest.update(status=run_folder.FAILED, failure=failure_reason(exc))
            run_folder.write_manifest(output_dir, manifest)
        raise


def validate_eval_tasks(config: Any) -> None:
    """Build --eval_tasks once before step 0, so a typo fails now, not at the first save."""
    from ..harness_ext.evaluation.evaluator import CheckpointEvaluator

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
    from ..harness_ext.core.errors import run_entry

    return run_entry("train", _train, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":  # accelerate launch -m cpi_bench.trainer.train ...
    sys.exit(main())
