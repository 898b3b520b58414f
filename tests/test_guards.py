"""harness_ext/evaluation/guards.py: what a sweep checks before it loads any model (the base
exists, is readable and has a tokenizer; it is the base the run was trained from; every
adapter belongs to it) and that it never writes over files it did not write."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cpi_bench.harness_ext.core.errors import CPIError
from cpi_bench.harness_ext.core.run_folder import Target
from cpi_bench.harness_ext.evaluation import guards
from cpi_bench.harness_ext.models.source import model_fingerprint
from cpi_bench.harness_ext.reports.inversion import build_inversion
from cpi_bench.harness_ext.reports.run_report import write as write_run_reports


def _fake_model(folder: Path, weights: bytes, tokenizer: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(weights)
    if tokenizer:
        (folder / "tokenizer.json").write_text("{}")
    return folder


def test_sweep_checks_the_base_model_before_loading_anything(tmp_path: Path) -> None:
    targets = [Target(0, "base", "unused", "base")]
    with pytest.raises(CPIError, match="src: model path .*gone does not exist"):
        guards.check_base_model(str(tmp_path / "gone"), "src", targets)
    broken = _fake_model(tmp_path / "broken", b"w")
    (broken / "config.json").write_text("{ not json")
    with pytest.raises(CPIError, match=r"config\.json is not readable JSON"):
        guards.check_base_model(str(broken), "src", targets)
    bare = _fake_model(tmp_path / "bare", b"w", tokenizer=False)
    with pytest.raises(CPIError, match="has no tokenizer files"):
        guards.check_base_model(str(bare), "src", targets)
    guards.check_base_model(str(bare), "src", [])  # --skip_base, no adapter: not needed


def test_a_base_that_changed_since_training_is_refused(tmp_path: Path) -> None:
    base = _fake_model(tmp_path / "base", b"trained-on")
    manifest = {
        "base_model": str(base),
        "base_fingerprint": model_fingerprint(base, weights_only=True),
    }
    guards.check_base_fingerprint(tmp_path, manifest, str(base))
    (base / "model.safetensors").write_bytes(b"other-one")  # same size
    with pytest.raises(CPIError, match="other weights than the run was trained from"):
        guards.check_base_fingerprint(tmp_path, manifest, str(base))


def test_an_adapter_of_another_base_is_refused(tmp_path: Path) -> None:
    base = _fake_model(tmp_path / "base", b"base-weights")
    copy = tmp_path / "copy-of-base"
    shutil.copytree(base, copy)
    other = _fake_model(tmp_path / "other", b"other-weight")
    adapter = tmp_path / "run" / "checkpoint-2"
    adapter.mkdir(parents=True)
    target = Target(2, "checkpoint-2", str(adapter), "adapter")
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(copy)}))
    guards.check_adapters_match_base([target], str(base))  # a copy of the base is fine
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(other)})
    )
    with pytest.raises(CPIError, match="an adapter of another base model"):
        guards.check_adapters_match_base([target], str(base))


def test_sweep_never_writes_over_a_users_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    targets = [Target(0, "base", "b", "base"), Target(2, "checkpoint-2", "c", "full")]
    write_run_reports(run, build_inversion({}, id_tasks=[]))  # our own renderings: fine
    guards.check_outputs_are_ours(run, targets)
    (run / "eval").mkdir()
    (run / "eval" / "step-2.json").write_text('{"results": {"mine": {}}}')
    with pytest.raises(CPIError, match=r"step-2\.json was not written by cpi sweep"):
        guards.check_outputs_are_ours(run, targets)
    (run / "eval" / "step-2.json").unlink()
    (run / "inversion.md").write_text("# my notes\n")
    with pytest.raises(CPIError, match=r"inversion\.md was not written by cpi sweep"):
        guards.check_outputs_are_ours(run, targets)
