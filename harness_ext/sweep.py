"""``cpi sweep RUN_DIR``: evaluate the base model and every checkpoint of a run in one process.

    cpi sweep runs/tulu-lora --tasks cpi --id_tasks arc_challenge,mmlu,gsm8k,squad_completion
    cpi sweep runs/tiny --tasks cpi_capitals,cpi_quotes --limit 50 --device cpu

Step 0 is the base model named in ``RUN_DIR/cpi_run.json``; step N is ``RUN_DIR/checkpoint-N``.
The lm-eval tasks are indexed and built once; each model is loaded once; a LoRA run loads its
base once and swaps the adapters on it. Each checkpoint's lm-eval results are written
atomically to ``RUN_DIR/eval/step-N.json``; a rerun skips the steps already evaluated with the
same settings, so a sweep killed at any moment resumes and ends with the numbers an
uninterrupted sweep gives. Then ``inversion.json`` (rows per step and a summary) is written
and ``inversion.md``, ``inversion.csv`` and ``inversion.png`` are rendered from it.

A checkpoint that cannot be loaded or evaluated is reported with its path and reason; the
others still run and the exit status is 1. Bad input (no run folder, a malformed manifest,
an unknown task) exits with 2 before any model is loaded.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpi_bench.harness_ext.constants import (
    ADAPTER_CONFIG,
    CHECKPOINT_PREFIX,
    DEFAULT_TASKS,
    EVAL_DIR,
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    RESULT_NEUTRAL_MODEL_ARGS,
    RUN_MANIFEST,
    CPIInputError,
    eval_file_name,
)
from cpi_bench.harness_ext.results import (
    atomic_write_json,
    read_json,
    remove_stale_tmp,
)

_CHECKPOINT_RE = re.compile(rf"^{re.escape(CHECKPOINT_PREFIX)}(\d+)$")
_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True)
class Target:
    """One model of the sweep."""

    step: int  # optimizer step; 0 = the base model
    label: str  # "base" or "checkpoint-N": the name in tables
    path: str  # local folder or hub id
    kind: str  # "base" | "full" | "adapter"


# ----------------------------------------------------------------------------- the run folder


def read_manifest(run_dir: Path, base_override: str | None) -> dict[str, Any]:
    """``cpi_run.json`` checked for what the sweep needs; ``--base_model`` may stand in."""
    path = run_dir / RUN_MANIFEST
    if not path.is_file():
        if base_override:
            return {"base_model": base_override}
        raise CPIInputError(
            f"{path}: not found; is {run_dir} a run folder written by 'cpi train'? For "
            "checkpoints of another trainer pass --base_model MODEL"
        )
    manifest = read_json(path, "run manifest")
    if not isinstance(manifest, dict):
        raise CPIInputError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    if base_override:
        manifest = {**manifest, "base_model": base_override}
    base = manifest.get("base_model")
    if not isinstance(base, str) or not base.strip():
        raise CPIInputError(
            f"{path}: field 'base_model' must be a model path or hub id (got {base!r}); "
            "fix the manifest or pass --base_model"
        )
    finetune = manifest.get("finetune")
    if finetune is not None and finetune not in ("full", "lora", "qk"):
        raise CPIInputError(
            f"{path}: field 'finetune' must be one of full, lora, qk (got {finetune!r})"
        )
    return manifest


def _resolve_base(base: str, run_dir: Path) -> str:
    """A base-model path as written in the manifest: absolute, relative to the current
    folder, or relative to the run folder; anything else is a hub id."""
    p = Path(base).expanduser()
    if p.exists():
        return str(p.resolve())
    if not p.is_absolute() and (run_dir / p).exists():
        return str((run_dir / p).resolve())
    return base


def discover_targets(run_dir: Path, base_model: str, include_base: bool = True) -> list[Target]:
    """Step 0 (the base) and every ``checkpoint-N`` folder, in step order."""
    targets = [Target(0, "base", base_model, "base")] if include_base else []
    found = []
    for child in run_dir.iterdir():
        match = _CHECKPOINT_RE.match(child.name)
        if match and child.is_dir():
            kind = "adapter" if (child / ADAPTER_CONFIG).is_file() else "full"
            found.append(Target(int(match.group(1)), child.name, str(child.resolve()), kind))
    return targets + sorted(found, key=lambda t: t.step)


# ----------------------------------------------------------------------------- model loading


def _has_tokenizer(folder: str) -> bool:
    return any((Path(folder) / f).is_file() for f in _TOKENIZER_FILES)


class ModelLoader:
    """Loads each model once; for adapter checkpoints the base stays loaded and adapters are
    swapped on it (``peft`` ``load_adapter`` / ``set_adapter`` / ``delete_adapter``).

    Args:
        base_model: path or hub id of step 0 and of the adapters' base.
        load_kwargs: ``from_pretrained`` options from ``--model_args`` (dtype, revision, ...).
        device: torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
        chat_template_from: a checkpoint whose tokenizer's chat template step 0 borrows when
            the base tokenizer has none and a chat template is applied.
    """

    def __init__(
        self,
        base_model: str,
        load_kwargs: dict[str, Any],
        device: str,
        chat_template_from: str | None = None,
    ) -> None:
        self.base_model = base_model
        self.load_kwargs = dict(load_kwargs)
        self.device = device
        self.chat_template_from = chat_template_from
        self._base = None  # shared base for adapters
        self._peft = None
        self._active: str | None = None
        self._base_tokenizer = None

    def _from_pretrained(self, path: str):
        try:
            from lm_eval.models.utils_hf import get_dtype
        except ImportError:  # lm-eval < 0.4.10
            from lm_eval.models.utils import get_dtype
        from transformers import AutoModelForCausalLM

        kwargs = dict(self.load_kwargs)
        dtype = get_dtype(kwargs.pop("dtype", kwargs.pop("torch_dtype", "auto")))
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
        model.to(self.device)
        model.eval()
        return model

    def _tokenizer(self, path: str):
        from transformers import AutoTokenizer

        kwargs = {
            k: self.load_kwargs[k]
            for k in ("revision", "trust_remote_code")
            if k in self.load_kwargs
        }
        return AutoTokenizer.from_pretrained(path, **kwargs)

    def base_tokenizer(self, need_chat_template: bool = False):
        if self._base_tokenizer is None:
            tok = self._tokenizer(self.base_model)
            if need_chat_template and not getattr(tok, "chat_template", None):
                donor = self.chat_template_from
                if donor and _has_tokenizer(donor):
                    tok.chat_template = self._tokenizer(donor).chat_template
            self._base_tokenizer = tok
        return self._base_tokenizer

    def load(self, target: Target, need_chat_template: bool = False):
        """(model, tokenizer) for ``target``; models are on ``self.device`` in eval mode."""
        if target.kind == "base":
            if self._peft is not None:
                raise RuntimeError("the base must be evaluated before adapters are attached")
            model = self._base if self._base is not None else self._from_pretrained(target.path)
            return model, self.base_tokenizer(need_chat_template)
        if target.kind == "full":
            tok = (
                self._tokenizer(target.path)
                if _has_tokenizer(target.path)
                else self.base_tokenizer(need_chat_template)
            )
            return self._from_pretrained(target.path), tok
        return self._load_adapter(target, need_chat_template)

    def _load_adapter(self, target: Target, need_chat_template: bool):
        tok = (
            self._tokenizer(target.path)
            if _has_tokenizer(target.path)
            else self.base_tokenizer(need_chat_template)
        )
        if self._base is None:
            self._base = self._from_pretrained(self.base_model)
        if self._peft is None:
            from peft import PeftModel

            base = self._base
            vocab = base.get_input_embeddings().weight.shape[0]
            if len(tok) > vocab:  # adapters trained with added tokens (as lm-eval does)
                base.resize_token_embeddings(len(tok))
            self._peft = PeftModel.from_pretrained(
                base, target.path, adapter_name=target.label, is_trainable=False
            )
        else:
            try:
                self._peft.load_adapter(target.path, adapter_name=target.label, is_trainable=False)
            except Exception:
                if target.label in getattr(self._peft, "peft_config", {}):
                    self._peft.delete_adapter(target.label)
                raise
            self._peft.set_adapter(target.label)
        if self._active and self._active != target.label:
            self._peft.delete_adapter(self._active)
        self._active = target.label
        self._peft.to(self.device)
        self._peft.eval()
        return self._peft, tok

    def release(self, target: Target, model) -> None:
        """Free a full checkpoint's weights before the next one loads (the shared base stays).
        After step 0 of a LoRA run its model is kept as the adapters' base."""
        if target.kind == "base" and self._base is None:
            self._base = model
        del model
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # pragma: no cover
            pass

    def drop_base_unless(self, keep: bool) -> None:
        """Forget the step-0 model when no adapter will reuse it."""
        if not keep:
            self._base = None
            gc.collect()


def checkpoint_fingerprint(path: str) -> str:
    """A short hash of a checkpoint's weight files (name, size, mtime): per-checkpoint cache
    files can never serve one checkpoint's answers for another."""
    p = Path(path)
    h = hashlib.sha1(str(p.resolve() if p.exists() else path).encode())
    if p.is_dir():
        for f in sorted(p.iterdir()):
            if f.is_file() and f.suffix in {".safetensors", ".bin", ".pt", ".json"}:
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- the sweep


def _parse_limit(text: str | None) -> int | float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--limit {text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("--limit must be > 0 (items, or a fraction < 1)")
    return int(value) if value >= 1 else value


def _split_list(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cpi sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", help="run folder: cpi_run.json and checkpoint-N folders")
    parser.add_argument(
        "--tasks",
        default=",".join(DEFAULT_TASKS),
        help="comma-separated lm-eval tasks/groups (globs allowed); default: the cpi group",
    )
    parser.add_argument(
        "--id_tasks",
        default="",
        help="standard benchmarks whose mean is the ID accuracy, e.g. "
        "arc_challenge,mmlu,gsm8k,squad_completion; 'task:metric,filter' "
        "picks the metric",
    )
    parser.add_argument(
        "--limit",
        type=_parse_limit,
        default=None,
        help="items per task (a number < 1 is a fraction), for quick sweeps",
    )
    parser.add_argument(
        "--batch_size", default="8", help="lm-eval batch size: an integer or 'auto' (default 8)"
    )
    parser.add_argument(
        "--device",
        default=None,
        help="torch device: cuda, cuda:1, cpu, mps (default: cuda if visible)",
    )
    parser.add_argument(
        "--apply_chat_template",
        nargs="?",
        const=True,
        default=False,
        metavar="NAME",
        help="render prompts with the tokenizer's chat template (optionally "
        "a named one), as lm_eval --apply_chat_template",
    )
    parser.add_argument(
        "--model_args",
        default="",
        help="extra lm-eval model args, e.g. dtype=bfloat16,max_length=2048 "
        "(pretrained/peft/tokenizer come from the run folder)",
    )
    parser.add_argument(
        "--base_model",
        default=None,
        help="override the manifest's base_model (path or hub id) for step 0 and the adapters",
    )
    parser.add_argument(
        "--skip_base", action="store_true", help="do not evaluate step 0 (the base model)"
    )
    parser.add_argument(
        "--include_path", action="append", default=[], help="extra lm-eval task folder (repeatable)"
    )
    parser.add_argument(
        "--attention",
        action="store_true",
        help="add the attention-to-context column (Figure 3b): attention mass "
        "from the answer position onto the context, mean of layers and heads",
    )
    parser.add_argument(
        "--attention_limit",
        type=int,
        default=100,
        help="counterfactual items per task for --attention (default 100)",
    )
    parser.add_argument(
        "--use_cache",
        default=None,
        metavar="DIR",
        help="lm-eval response cache folder; one SQLite file per checkpoint, "
        "keyed by its weight files",
    )
    parser.add_argument(
        "--bootstrap_iters",
        type=int,
        default=100000,
        help="lm-eval bootstrap iterations for non-mean stderrs",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice); 1 is often fastest "
        "for small models on a busy machine",
    )
    parser.add_argument(
        "--force", action="store_true", help="re-evaluate steps that already have results"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show lm-eval's and transformers' logs and progress bars",
    )
    return parser


def _batch_size(text: str) -> int | str:
    if text.isdigit() and int(text) > 0:
        return int(text)
    if text.startswith("auto"):
        return text
    raise CPIInputError(f"--batch_size {text!r}: use a positive integer or 'auto'")


def run_sweep(args: argparse.Namespace, out=None, err=None) -> int:
    """The sweep behind ``cpi sweep`` (argparse namespace in, exit status out)."""
    out = out or sys.stdout
    err = err or sys.stderr
    from cpi_bench.harness_ext.evaluator import eval_file_matches, parse_model_args, settings_dict

    run_dir = Path(args.run_dir).expanduser()
    if not run_dir.is_dir():
        raise CPIInputError(f"{run_dir}: no such run folder")
    manifest = read_manifest(run_dir, args.base_model)
    base_model = _resolve_base(manifest["base_model"], run_dir)
    targets = discover_targets(run_dir, base_model, include_base=not args.skip_base)
    if not any(t.step > 0 for t in targets):
        print(
            f"cpi sweep: note: {run_dir} has no {CHECKPOINT_PREFIX}N folders; evaluating "
            "the base model only",
            file=err,
        )
    tasks, id_tasks = _split_list(args.tasks), _split_list(args.id_tasks)
    batch_size = _batch_size(str(args.batch_size))
    model_args = parse_model_args(args.model_args)
    attention_limit = args.attention_limit if args.attention else 0
    if args.threads is not None and args.threads < 1:
        raise CPIInputError("--threads must be >= 1")
    if args.attention and attention_limit <= 0:
        raise CPIInputError("--attention_limit must be > 0 with --attention")
    settings = settings_dict(
        tasks,
        id_tasks,
        args.limit,
        args.apply_chat_template,
        {k: v for k, v in model_args.items() if k not in RESULT_NEUTRAL_MODEL_ARGS},
    )

    eval_dir = run_dir / EVAL_DIR
    remove_stale_tmp(eval_dir)
    done: dict[int, dict[str, Any]] = {}
    pending: list[Target] = []
    for t in targets:
        f = eval_dir / eval_file_name(t.step)
        if f.is_file() and not args.force:
            try:
                data = read_json(f)
                ok, why = eval_file_matches(data, settings, attention_limit)
            except CPIInputError as exc:
                ok, why = False, str(exc)
            if ok:
                done[t.step] = data
                continue
            print(f"cpi sweep: re-evaluating {t.label}: {f.name} {why}", file=err)
        pending.append(t)

    failures: list[dict[str, Any]] = []
    if pending:
        failures = _evaluate_pending(
            args,
            run_dir,
            base_model,
            pending,
            targets,
            tasks,
            id_tasks,
            batch_size,
            model_args,
            attention_limit,
            done,
            err,
        )
    else:
        print(f"cpi sweep: all {len(targets)} steps already evaluated; rendering", file=err)

    from cpi_bench.harness_ext.inversion import build_inversion
    from cpi_bench.harness_ext.report import summary_sentence, write_run_reports

    run_info = {
        "name": run_dir.resolve().name,
        "base_model": manifest.get("base_model"),
        **{
            k: manifest.get(k) for k in ("finetune", "dataset", "template", "seed") if k in manifest
        },
    }
    inversion = build_inversion(done, id_tasks=id_tasks, run=run_info, failures=failures)
    if done:
        paths = write_run_reports(run_dir, inversion)
        print(summary_sentence(inversion["summary"]), file=out)
        print("wrote " + ", ".join(str(p) for p in paths), file=out)
    for f in failures:
        print(f"cpi sweep: FAILED step {f['step']} ({f['path']}): {f['reason']}", file=err)
    if failures:
        print(
            f"cpi sweep: {len(failures)} of {len(targets)} models failed; fix them and rerun "
            "(finished steps are kept)",
            file=err,
        )
        return EXIT_FAIL
    return EXIT_OK


def _evaluate_pending(
    args,
    run_dir: Path,
    base_model: str,
    pending: list[Target],
    targets: list[Target],
    tasks: list[str],
    id_tasks: list[str],
    batch_size,
    model_args,
    attention_limit: int,
    done: dict[int, dict[str, Any]],
    err,
) -> list[dict[str, Any]]:
    from tqdm import tqdm

    from cpi_bench.harness_ext.evaluator import CheckpointEvaluator, default_device, quiet_logs

    started = time.time()
    if not args.verbose:
        quiet_logs()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    evaluator = CheckpointEvaluator(
        tasks=tasks,
        id_tasks=id_tasks,
        limit=args.limit,
        batch_size=batch_size,
        apply_chat_template=args.apply_chat_template,
        model_args=model_args,
        include_path=args.include_path,
        attention_limit=attention_limit,
        bootstrap_iters=args.bootstrap_iters,
        verbose=args.verbose,
    )
    evaluator.load_tasks()  # bad task names / missing data: exit 2 before loading any model
    first_ckpt = next((t.path for t in targets if t.step > 0), None)
    loader = ModelLoader(
        base_model,
        evaluator.load_kwargs,
        args.device or default_device(),
        chat_template_from=first_ckpt,
    )
    adapters_follow = any(t.kind == "adapter" for t in pending)
    need_chat = bool(args.apply_chat_template)
    failures: list[dict[str, Any]] = []
    eval_dir = run_dir / EVAL_DIR
    print(
        f"cpi sweep: {len(pending)} to evaluate, {len(done)} already done "
        f"(tasks ready in {time.time() - started:.1f} s)",
        file=err,
    )
    bar = tqdm(
        pending, desc="checkpoints", unit="model", file=err, disable=False, dynamic_ncols=True
    )
    for target in bar:
        bar.set_postfix_str(target.label)
        try:
            model, tokenizer = loader.load(target, need_chat_template=need_chat)
        except Exception as exc:
            failures.append(_failure(target, "cannot load", exc))
            tqdm.write(f"cpi sweep: {target.path}: {failures[-1]['reason']}", file=err)
            continue
        try:
            cache_db = None
            if args.use_cache:
                name = f"{run_dir.resolve().name}-{target.label}-"
                name += f"{checkpoint_fingerprint(target.path)}.db"
                cache_db = str(Path(args.use_cache).expanduser() / name)
            results = evaluator.evaluate(
                model,
                tokenizer,
                step=target.step,
                label=target.label,
                source="sweep",
                model_path=target.path,
                cache_db=cache_db,
            )
            atomic_write_json(eval_dir / eval_file_name(target.step), results)
            done[target.step] = results
        except Exception as exc:
            failures.append(_failure(target, "evaluation failed", exc))
            tqdm.write(f"cpi sweep: {target.path}: {failures[-1]['reason']}", file=err)
        finally:
            loader.release(target, model)
            if target.kind == "base":
                loader.drop_base_unless(adapters_follow)
            del model
    bar.close()
    return failures


def _failure(target: Target, what: str, exc: BaseException) -> dict[str, Any]:
    reason = f"{what}: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    return {"step": target.step, "label": target.label, "path": target.path, "reason": reason}


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_sweep(args)
    except CPIInputError as exc:
        print(f"cpi sweep: {exc}", file=sys.stderr)
        return EXIT_USAGE
