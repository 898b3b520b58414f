"""Checks ``cpi sweep`` makes before it loads any model: every one of them would otherwise end
in a wrong number, a lost file or a late failure.

* the base model (step 0, and the base of every adapter) exists, its ``config.json`` reads,
  it has a tokenizer when one is needed, and it still holds the weights the run was trained
  from (``base_fingerprint`` in ``cpi_run.json``);
* every adapter checkpoint was trained on that base (the ``base_model_name_or_path`` its
  ``adapter_config.json`` names, when that is a local folder, has the same weights);
  ``--base_model`` skips this and the previous check: it names the base on purpose;
* the files the sweep will write (``eval/step-N.json``, ``inversion.{json,md,csv,png}``) are
  absent or its own: a user's file of the same name is never overwritten;
* ``--use_cache`` names a folder that can be written.

Each failed check raises :class:`CPIError` (exit 2, one line naming the file and the fix).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..core import model_files
from ..core.constants import (
    ADAPTER_CONFIG,
    CPI_KEY,
    EVAL_DIR,
    HTML_GENERATOR,
    INVERSION_JSON,
    RUN_REPORTS,
    eval_file_name,
)
from ..core.errors import CPIError
from ..core.files import check_writable, read_json
from ..core.model_files import has_tokenizer
from ..core.run_folder import Target, manifest_path

_NOT_OURS = (
    "was not written by cpi sweep; move or rename it (cpi never overwrites files it did not create)"
)


def check_base_model(base: str, source: str, targets: list[Target]) -> None:
    """The base model can be loaded for what the sweep needs it for (see module docstring).

    ``source`` says where the name came from (``--base_model`` or the manifest field)."""
    from ..models.source import resolve_model

    uses_base = any(t.kind in ("base", "adapter") for t in targets)
    borrows_tokenizer = any(t.kind != "base" and not has_tokenizer(t.path) for t in targets)
    if not uses_base and not borrows_tokenizer:
        return
    try:
        src = resolve_model(base)
    except CPIError as err:
        raise CPIError(f"{source}: {err}") from None
    if src.kind != "folder":
        return  # a hub id (checked when loaded) or a GGUF file (tokenizer inside)
    folder = Path(src.path)
    config = folder / model_files.CONFIG
    problem = model_files.json_problem(config) if config.is_file() else None
    if problem:
        raise CPIError(
            f"{source}: base model {folder}: {problem}; re-save the model with "
            "save_pretrained or pass --base_model"
        )
    needs_tokenizer = any(t.kind == "base" for t in targets) or borrows_tokenizer
    if needs_tokenizer and not has_tokenizer(str(folder)):
        raise CPIError(
            f"{source}: base model {folder} has no tokenizer files (tokenizer.json, "
            "tokenizer.model, vocab.json, ...); save the tokenizer next to the "
            "model, or pass --base_model"
        )


def check_base_fingerprint(run_dir: Path, manifest: dict[str, Any], base: str) -> None:
    """The base still holds the weights ``cpi train`` recorded (``base_fingerprint``); else
    step 0 and every adapter would be evaluated on another model."""
    from ..models.source import same_base_weights

    recorded = manifest.get("base_fingerprint")
    if not isinstance(recorded, str) or not recorded or not Path(base).exists():
        return
    if not same_base_weights(base, recorded):
        raise CPIError(
            f"{manifest_path(run_dir)}: base_model {base} now holds other weights than the "
            "run was trained from (its base_fingerprint differs); restore that base, or pass "
            "--base_model to evaluate the checkpoints against another base on purpose"
        )


def check_adapters_match_base(targets: Iterable[Target], base: str) -> None:
    """Every adapter's own ``base_model_name_or_path``, when it is an existing local path,
    holds the same weights as ``base`` (a copy in another place is fine). Both sides are
    fingerprinted as models (models/source.py), so a GGUF file is compared as that file."""
    from ..models.source import model_fingerprint

    base_path = Path(base).expanduser()
    if not base_path.exists():
        return
    base_weights = model_fingerprint(base_path, weights_only=True)
    for target in targets:
        if target.kind != "adapter":
            continue
        config = read_json(Path(target.path) / ADAPTER_CONFIG, "adapter config")
        named = config.get("base_model_name_or_path") if isinstance(config, dict) else None
        if not isinstance(named, str) or not named.strip():
            continue
        own = Path(named).expanduser()
        if not own.is_absolute() or not own.exists() or own.resolve() == base_path.resolve():
            continue
        try:
            own_weights = model_fingerprint(own, weights_only=True)
        except CPIError as err:
            raise CPIError(
                f"{target.path}: its {ADAPTER_CONFIG} names the base {named}, which cannot be "
                f"identified ({err}); pass --base_model to choose the base on purpose"
            ) from None
        if own_weights != base_weights:
            raise CPIError(
                f"{target.path}: an adapter of another base model ({named}, whose weights "
                f"differ from {base}); evaluating it on {base} would give wrong numbers "
                "(move it out of the run folder, or pass --base_model to choose the base on "
                "purpose)"
            )


def _ours(path: Path) -> bool:
    """Whether an existing output file carries cpi sweep's mark."""
    try:
        if path.suffix == ".png":
            return b"Matplotlib" in path.read_bytes()[:400]
        if path.suffix == ".html":
            head = path.read_text(encoding="utf-8", errors="replace")[:600]
            return f'<meta name="generator" content="{HTML_GENERATOR}">' in head
        if path.suffix in (".md", ".csv"):
            head = path.read_text(encoding="utf-8", errors="replace")[:40]
            return head.startswith(("| step |", "step,checkpoint,"))
        data = read_json(path)
    except (CPIError, OSError):
        return False
    if path.name == INVERSION_JSON:
        return isinstance(data, dict) and "schema_version" in data and "rows" in data
    return isinstance(data, dict) and isinstance(data.get(CPI_KEY), dict)


def check_outputs_are_ours(run_dir: Path, targets: Iterable[Target]) -> None:
    """Refuse to start when a file the sweep would write exists and is someone else's."""
    paths = [run_dir / n for n in RUN_REPORTS]
    paths += [run_dir / EVAL_DIR / eval_file_name(t.step) for t in targets]
    for path in paths:
        if path.is_file() and not _ours(path):
            raise CPIError(f"{path} {_NOT_OURS}")


def check_cache_dir(use_cache: str | None) -> None:
    if use_cache:
        check_writable(Path(use_cache).expanduser(), "--use_cache")


def check_sweep_inputs(
    run_dir: Path,
    manifest: dict[str, Any],
    base: str,
    targets: list[Target],
    base_from_cli: bool,
    use_cache: str | None,
    out_dir: Path | None = None,
) -> None:
    """All of the above, in the order a user would fix them (``out_dir``: where the results
    go, ``--out``; default the run folder)."""
    source = "--base_model" if base_from_cli else f"{manifest_path(run_dir)} field 'base_model'"
    check_base_model(base, source, targets)
    if not base_from_cli:  # --base_model says "this base, on purpose"
        if any(t.kind in ("base", "adapter") for t in targets):
            check_base_fingerprint(run_dir, manifest, base)
        check_adapters_match_base(targets, base)
    check_outputs_are_ours(out_dir or run_dir, targets)
    check_cache_dir(use_cache)
