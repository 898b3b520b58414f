"""The run folder contract: ``cpi_run.json`` and ``checkpoint-N``, written by ``cpi train``
and read by ``cpi sweep``, the demo and the reports. This module is its only owner.

``cpi_run.json`` is written atomically before the first step with ``status: "running"``,
rewritten at the end with ``"finished"``, or with ``"failed"`` and a ``failure`` reason.
Keys: the run's identity (IDENTITY_KEYS: base_model = exactly what was loaded: an absolute
model folder, a GGUF's own file (folder/name.gguf), or a hub id; base_fingerprint = content
hash of the base weights and configs (None for a hub id), finetune in FINETUNE_MODES,
dataset, dataset_fingerprint, template_option, curations_asked, seed, learning_rate,
lora_options, quantization), then template, chat_template, curations [{name, kept, total}],
n_train_examples, max_steps, save_steps, lora (null or {r, alpha, target_modules}),
trainable_parameters, versions, status, base_revision (the hub commit loaded, when
transformers names one). Extra keys: dataset_schema, global_step,
resumed_from, train_metrics, failure. With ``--early_stop_on_inversion`` (written when
training ends): best_step (the step of the running cf_acc peak of the in-training
evaluations), stop_reason (why training stopped early; null when it ran to the end) and
early_stop {drop, patience, stopped, stop_step, best_cf_acc, cf_acc_by_step}.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from . import model_files
from .constants import (
    ADAPTER_CONFIG,
    CHECKPOINT_PREFIX,
    EVAL_DIR,
    RUN_MANIFEST,
    RUN_REPORTS,
)
from .errors import CPIError
from .files import atomic_write_json, read_json
from .model_files import folder_problem, resume_problem

RUNNING, FINISHED, FAILED = "running", "finished", "failed"
STATUSES = (RUNNING, FINISHED, FAILED)
FINETUNE_MODES = ("full", "lora", "qk")

# What ``cpi sweep`` writes into a run folder, possibly while ``cpi train`` is writing it
# (``cpi sweep RUN --follow``): the trainer's output-dir claim accepts these names as not its
# own and never takes them for someone else's files.
SWEEP_OUTPUTS = (EVAL_DIR, *RUN_REPORTS)

# HF Trainer (and TRL, axolotl, LLaMA-Factory, which save through it) writes this file last
# into checkpoint-N, after the weights, optimizer and RNG states: its presence with
# ``global_step`` N says the checkpoint is finished (core/model_files.py owns the name).
TRAINER_STATE = model_files.TRAINER_STATE

# Keys that say *which* run a folder holds: a second `cpi train` into the same folder must
# agree on all of them to resume it (else it would mix two runs' checkpoints).
IDENTITY_KEYS = (
    "base_model",
    "base_fingerprint",
    "finetune",
    "dataset",
    "dataset_fingerprint",
    "template_option",  # the --template option (auto or a name); template is what it became
    "curations_asked",
    "seed",
    "learning_rate",
    "lora_options",  # the LoRA options asked for; lora is what peft built
    "quantization",  # --load_in_4bit/8bit: null, or {method, bits, quant_type, ...}
)

# manifest key -> distribution name
_DISTRIBUTIONS = {
    "torch": "torch",
    "transformers": "transformers",
    "tokenizers": "tokenizers",
    "trl": "trl",
    "peft": "peft",
    "accelerate": "accelerate",
    "datasets": "datasets",
    "numpy": "numpy",
    "lm_eval": "lm_eval",
    "cpi_bench": "cpi-bench",
}

_CANONICAL_RE = re.compile(rf"^{re.escape(CHECKPOINT_PREFIX)}(0|[1-9]\d*)$")
_ANY_CKPT_RE = re.compile(rf"^{re.escape(CHECKPOINT_PREFIX)}")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that decide a run's numbers (None if absent)."""
    versions: dict[str, str | None] = {}
    for key, dist in _DISTRIBUTIONS.items():
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def manifest_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / RUN_MANIFEST


def write_manifest(run_dir: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Write the manifest atomically, so a reader never sees half a file."""
    if manifest.get("status") not in STATUSES:
        raise ValueError(f"manifest status must be one of {STATUSES}")
    path = manifest_path(run_dir)
    atomic_write_json(path, manifest)
    return path


def read_manifest(run_dir: str | os.PathLike, base_override: str | None = None) -> dict[str, Any]:
    """``cpi_run.json`` checked for what a reader needs; ``base_override`` (a path relative to
    the caller's folder, or a hub id) may stand in for a missing or other base model."""
    run_dir = Path(run_dir)
    path = manifest_path(run_dir)
    if not path.is_file():
        check_not_a_parent_of_runs(run_dir)
        if base_override:
            return {"base_model": base_override}
        raise CPIError(
            f"{path}: not found; is {run_dir} a run folder written by 'cpi train'? "
            "(for checkpoints of another trainer pass --base_model MODEL)"
        )
    manifest = read_json(path, "run manifest")
    if not isinstance(manifest, dict):
        raise CPIError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    if base_override:
        manifest = {**manifest, "base_model": base_override, "base_fingerprint": None}
    base = manifest.get("base_model")
    if not isinstance(base, str) or not base.strip():
        raise CPIError(
            f"{path}: field 'base_model' must be a model path or hub id (got {base!r}); "
            "fix the manifest or pass --base_model"
        )
    finetune = manifest.get("finetune")
    if finetune is not None and finetune not in FINETUNE_MODES:
        raise CPIError(
            f"{path}: field 'finetune' must be one of {', '.join(FINETUNE_MODES)} "
            f"(got {finetune!r})"
        )
    status = manifest.get("status")
    if status is not None and status not in STATUSES:
        raise CPIError(f"{path}: field 'status' must be one of {', '.join(STATUSES)}")
    return manifest


def runs_below(folder: str | os.PathLike, depth: int = 2) -> list[Path]:
    """Run folders (holding ``cpi_run.json``) up to ``depth`` levels below ``folder``,
    sorted; a run's own sub-folders are not searched."""
    found: list[Path] = []
    level = [Path(folder)]
    for _ in range(depth):
        below = []
        for parent in level:
            try:
                children = sorted(c for c in parent.iterdir() if c.is_dir())
            except OSError:
                continue
            for child in children:
                (found if manifest_path(child).is_file() else below).append(child)
        level = below
    return sorted(found)


def check_not_a_parent_of_runs(folder: str | os.PathLike) -> None:
    """A folder without ``cpi_run.json`` or checkpoints that holds run folders is ambiguous:
    raise :class:`CPIError` listing them, so the user picks one (never evaluate a guess)."""
    folder = Path(folder)
    if any(_ANY_CKPT_RE.match(c.name) for c in folder.iterdir() if c.is_dir()):
        return
    runs = runs_below(folder)
    if not runs:
        return
    names = [str(r.relative_to(folder)) for r in runs]
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    example = folder / names[0]
    raise CPIError(
        f"{folder} is not a run folder (no {RUN_MANIFEST}) but holds {len(runs)} run "
        f"folder(s): {shown} (give one of them, e.g. {example})"
    )


def resolve_base(base: str, run_dir: str | os.PathLike, from_cli: bool = False) -> str:
    """The base model as an absolute local path, or a hub id.

    A relative path written in the manifest is relative to the run folder, never to the
    caller's current folder; one given on the command line (``from_cli``) is relative to the
    caller's folder, as every path a user types is."""
    p = Path(base).expanduser()
    if p.is_absolute():
        return str(p) if p.exists() else base
    anchor = Path.cwd() if from_cli else Path(run_dir)
    if (anchor / p).exists():
        return str((anchor / p).resolve())
    return base


def identity_mismatch(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """The first identity key on which two manifests differ, as ``key: old -> new``."""
    for key in IDENTITY_KEYS:
        if key in old and old.get(key) != new.get(key):
            return f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
    return None


# ----------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Target:
    """One model of a sweep."""

    step: int  # optimizer step; 0 = the base model
    label: str  # "base" or "checkpoint-N": the name in tables
    path: str  # local folder or hub id
    kind: str  # "base" | "full" | "adapter"


def checkpoint_problem(folder: Path, resume: bool = False) -> str | None:
    """Why a ``checkpoint-N`` folder is incomplete (killed during its save: missing or
    truncated weights, no config), or with ``resume`` also why training cannot resume from it
    (damaged weights or config, no readable trainer_state.json); None when it is complete.
    The rules are model_files.folder_problem / resume_problem: whole, not only present."""
    return resume_problem(folder) if resume else folder_problem(folder)


def list_checkpoints(
    run_dir: str | os.PathLike, resume: bool = False
) -> tuple[list[Target], list[str]]:
    """The complete ``checkpoint-N`` folders in step order, and a warning per incomplete one
    (complete: evaluable, or with ``resume`` resumable; see :func:`checkpoint_problem`).

    A folder named ``checkpoint-`` plus anything but a canonical integer (``checkpoint-02``,
    ``checkpoint-best``) is an error: it would silently replace or hide a row."""
    run_dir = Path(run_dir)
    found: list[Target] = []
    warnings: list[str] = []
    for child in sorted(run_dir.iterdir()):
        if not child.is_dir() or not _ANY_CKPT_RE.match(child.name):
            continue
        match = _CANONICAL_RE.match(child.name)
        if not match:
            raise CPIError(
                f"{child}: not a checkpoint-<step> name (a step is an integer without leading "
                "zeros); rename it or move it out of the run folder"
            )
        problem = checkpoint_problem(child, resume)
        if problem:
            warnings.append(f"skipping {child.name}: incomplete checkpoint ({problem})")
            continue
        kind = "adapter" if (child / ADAPTER_CONFIG).is_file() else "full"
        found.append(Target(int(match.group(1)), child.name, str(child.resolve()), kind))
    return sorted(found, key=lambda t: t.step), warnings


def last_complete_checkpoint(run_dir: str | os.PathLike) -> tuple[str | None, list[str]]:
    """The newest checkpoint training can resume from (what ``last`` means), and a line per
    newer or other incomplete checkpoint (whose steps training then writes again)."""
    if not Path(run_dir).is_dir():
        return None, []
    complete, warnings = list_checkpoints(run_dir, resume=True)
    return (complete[-1].path if complete else None), warnings


def is_checkpoint_name(name: str) -> bool:
    """``checkpoint-<step>`` as the trainer names it."""
    return bool(_CANONICAL_RE.match(name))


def checkpoint_unfinished(folder: Path, step: int, later_exists: bool) -> str | None:
    """Why a complete-looking ``checkpoint-N`` (see :func:`checkpoint_problem`) may still be
    being written by a live trainer, or None when it is finished: its ``trainer_state.json``
    (written last) parses with ``global_step`` N, or a later checkpoint exists (trainers save
    one checkpoint at a time)."""
    problem = checkpoint_problem(folder)
    if problem:
        return problem
    if later_exists:
        return None
    try:
        state = read_json(folder / TRAINER_STATE, "trainer state")
    except CPIError:
        return f"no complete {TRAINER_STATE} yet"
    if not isinstance(state, dict) or state.get("global_step") != step:
        return f"{TRAINER_STATE} is not the one of step {step} yet"
    return None


def finished_checkpoints(run_dir: str | os.PathLike) -> tuple[list[Target], list[str]]:
    """The checkpoints a live run has finished writing (:func:`checkpoint_unfinished`), in
    step order, and one line per checkpoint folder that is not (yet) complete or finished."""
    complete, incomplete = list_checkpoints(run_dir)
    found: list[Target] = []
    waiting = [line.removeprefix("skipping ") for line in incomplete]
    for i, target in enumerate(complete):
        later = i + 1 < len(complete)
        why = checkpoint_unfinished(Path(target.path), target.step, later)
        if why:
            waiting.append(f"{target.label}: {why}")
        else:
            found.append(target)
    return found, waiting
