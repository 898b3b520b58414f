"""What a stored result was made from, and whether it may be reused.

Every per-checkpoint result (``eval/step-N.json``, the training callback's files, the base
row) records a ``provenance`` block; a later sweep reuses the file only when the block it
would write now is equal, and otherwise says in one line what changed:

* ``model``: content fingerprint of the model actually loaded (its weight, config,
  tokenizer and chat template files, as harness_ext/core/model_files.py lists them; a GGUF's
  one file), for adapters also the base's; for a hub revision (``cpi sweep --model``) also
  its repo, revision name and commit;
* ``tasks``: per task its ``metadata.version``, num_fewshot, generation settings and the
  SHA-256 of every data file it read (a changed ``CPI_DATA_DIR`` or edited JSON shows here);
  for hub datasets the path, name and revision;
* ``settings``: limit, chat template on/off, result-changing ``--model_args``;
* ``versions``: the libraries that decide a number (core/run_folder.library_versions:
  torch, transformers, tokenizers, numpy, lm-eval, cpi-bench, ...): an upgrade evaluates again.

Batch size, device and thread count are deliberately not part of it (they change at most
the last digits, see docs/sweeps.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.files import file_sha256
from ..core.run_folder import library_versions
from ..models.source import model_fingerprint

PROVENANCE_KEY = "provenance"


def _cpi_data_files(task_config: Any) -> dict[str, str]:
    """SHA-256 of the public file a cpi task reads (through tasks/sources.py)."""
    from ...tasks.sources import SOURCES, locate

    source = (task_config.dataset_kwargs or {}).get("source")
    if source not in SOURCES:
        return {}
    path = locate(SOURCES[source])
    return {SOURCES[source].file_name: file_sha256(path)}


def _hub_data(task_config: Any) -> dict[str, Any]:
    """Identity of a hub / local dataset of a non-cpi task (lm-eval's own benchmarks)."""
    kwargs = dict(task_config.dataset_kwargs or {})
    files = kwargs.get("data_files")
    hashed = {}
    for f in files.values() if isinstance(files, dict) else [files] if files else []:
        for one in f if isinstance(f, list) else [f]:
            if isinstance(one, str) and Path(one).is_file():
                hashed[one] = file_sha256(one)
    return {
        "dataset_path": task_config.dataset_path,
        "dataset_name": task_config.dataset_name,
        "revision": kwargs.get("revision"),
        "data_files": hashed or files,
    }


def task_provenance(loaded: dict[str, Any]) -> dict[str, Any]:
    """Per task: version, few-shot count, generation settings and data identity."""
    out: dict[str, Any] = {}
    for name, task in sorted(loaded["tasks"].items()):
        cfg = task.config
        is_cpi = "source" in (cfg.dataset_kwargs or {})
        out[name] = {
            "version": (cfg.metadata or {}).get("version"),
            "num_fewshot": cfg.num_fewshot,
            "generation_kwargs": cfg.generation_kwargs,
            "data": _cpi_data_files(cfg) if is_cpi else _hub_data(cfg),
        }
    return out


def model_provenance(kind: str, path: str, base_model: str) -> dict[str, Any]:
    """Content fingerprints of what is loaded for one sweep target (see module docstring)."""
    record: dict[str, Any] = {"kind": kind, "weights": model_fingerprint(path)}
    if record["weights"] is None:  # a hub id: its name (and revision in model_args) stand in
        record["hub_id"] = path
    if kind == "adapter":
        record["base_weights"] = (model_fingerprint(base_model) if base_model else None) or (
            base_model
        )
    return record


def provenance_block(
    model: dict[str, Any], tasks: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    return {"model": model, "tasks": tasks, "settings": settings, "versions": library_versions()}


def _first_difference(old: Any, new: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first (dotted path, old value, new value) where two JSON-like values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            diff = _first_difference(old.get(key), new.get(key), where)
            if diff:
                return diff
        return None
    return None if old == new else (path, old, new)


_REASONS = (
    ("model.commit", "the revision now points to another commit"),
    ("model.weights", "weights changed"),
    ("model.base_weights", "base model weights changed"),
    ("model", "model changed"),
)


def provenance_mismatch(old: dict[str, Any] | None, new: dict[str, Any]) -> str | None:
    """None when a stored result may be reused, else a short reason for the log line, e.g.
    ``weights changed``, ``cpi_capitals: data file changed``, ``limit changed (4 -> 5)``."""
    if not isinstance(old, dict):
        return "made before results recorded their provenance"
    diff = _first_difference(old, new)
    if diff is None:
        return None
    where, was, now = diff
    for prefix, reason in _REASONS:
        if where == prefix or where.startswith(prefix + "."):
            return reason
    parts = where.split(".")
    if parts[0] in ("settings", "versions"):
        return f"{'.'.join(parts[1:]) or parts[0]} changed ({was!r} -> {now!r})"
    if parts[0] == "tasks" and len(parts) >= 3:
        what = {"data": "data file changed", "version": "task version changed"}.get(
            parts[2], f"{parts[2]} changed"
        )
        return f"{parts[1]}: {what}"
    if parts[0] == "tasks":
        return f"task list changed ({parts[1] if len(parts) > 1 else 'tasks'})"
    return f"{where} changed"
