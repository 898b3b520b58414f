"""The run manifest ``OUTPUT_DIR/cpi_run.json``: what a training run is, for ``cpi sweep``.

Written (atomically: temp file + ``os.replace``) before the first checkpoint with
``status: "running"`` and rewritten at the end with ``status: "finished"``, so a sweep can
evaluate the base model as step 0 and name every row even while the run is still going.

Keys (a contract with harness_ext): base_model, finetune, dataset, template, chat_template,
curations [{name, kept, total}], n_train_examples, seed, learning_rate, max_steps, save_steps,
lora (null or {r, alpha, target_modules}), versions, status. Extra keys: dataset_schema,
global_step, resumed_from, train_metrics (train_runtime in s, tokens_per_second, ...).
"""

from __future__ import annotations

import json
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST_NAME = "cpi_run.json"
RUNNING, FINISHED = "running", "finished"

# manifest key -> distribution name
_DISTRIBUTIONS = {
    "torch": "torch",
    "transformers": "transformers",
    "trl": "trl",
    "peft": "peft",
    "datasets": "datasets",
    "lm_eval": "lm_eval",
    "cpi_bench": "cpi-bench",
}


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that decide a run's numbers (None if absent)."""
    versions: dict[str, str | None] = {}
    for key, dist in _DISTRIBUTIONS.items():
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def manifest_path(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / MANIFEST_NAME


def write_manifest(output_dir: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Write the manifest atomically, so a reader never sees half a file."""
    path = manifest_path(output_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{MANIFEST_NAME}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_manifest(output_dir: str | os.PathLike) -> dict[str, Any]:
    return json.loads(manifest_path(output_dir).read_text(encoding="utf-8"))
