"""harness_ext/models/source.py: every model spec (a folder, a hub id, a GGUF file, a folder
holding one GGUF) trains and sweeps; a GGUF is fingerprinted as its own file; an adapter folder
is not a base model; one list of a model's files (tokenizer files included) serves cpi train,
the sweep's checks and the fingerprint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.errors import CPIError
from cpi_bench.harness_ext.core.run_folder import RUN_MANIFEST
from tests.helpers.small_train import train, train_argv

TASKS = ["--tasks", "cpi_capitals_choice", "--limit", "3", "--device", "cpu", "--threads", "1"]


def recorded_fingerprint(path: str | Path) -> str | None:
    """What a sweep result records as the fingerprint of the model at ``path``."""
    from cpi_bench.harness_ext.evaluation.provenance import model_provenance

    return model_provenance("full", str(path), "")["weights"]


# ----------------------------------------------------------------------------- model specs


def _spec(kind: str, tiny: Path, root: Path) -> str:
    """A model spec of ``kind`` for the tiny model, built under ``root``."""
    from tests.helpers.model_specs import install_in_hub_cache, write_tiny_gguf

    if kind == "folder":
        return str(tiny)
    if kind == "hub id":
        install_in_hub_cache(tiny, "cpi-test/tiny", root / "hub")
        return "cpi-test/tiny"
    pytest.importorskip("gguf")
    gguf = write_tiny_gguf(tiny, root / "models" / "tiny.gguf")
    if kind == "folder holding one .gguf":
        return str(gguf.parent)
    # the usual ~/models/: other GGUFs next to it (another model's bytes)
    other = root / "models" / "other.gguf"
    shutil.copy(gguf, other)
    with other.open("r+b") as fh:
        fh.seek(-64, 2)
        fh.write(b"\x01" * 64)
    return str(gguf)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["gguf file in a shared folder", "folder holding one .gguf", "folder", "hub id"]
)
def test_train_then_sweep_works_for_every_model_spec(
    kind: str, small_llama: Path, alpaca_file: Path, tmp_path: Path, offline_env
) -> None:
    """cpi train (LoRA) then cpi sweep: the manifest and every adapter name exactly what was
    loaded (a GGUF's file, never its folder), and the sweep evaluates base and checkpoints.
    (The hub id runs in subprocesses: the hub cache folder is read at import.)"""
    spec = _spec(kind, small_llama, tmp_path)
    run = tmp_path / "run"
    argv = train_argv(spec, alpaca_file, run, "--finetune", "lora", "--lora_r", "4")
    if kind == "hub id":
        env = offline_env(HF_HUB_CACHE=str(tmp_path / "hub"))
        cmd = [sys.executable, "-m", "cpi_bench.harness_ext.cli"]
        for args in (["train", *argv], ["sweep", str(run), *TASKS]):
            res = subprocess.run(cmd + args, capture_output=True, text=True, env=env, timeout=600)
            assert res.returncode == 0, res.stderr[-800:]
        assert json.loads((run / RUN_MANIFEST).read_text())["base_revision"]
    else:
        assert train(*argv) == 0
        assert cli.main(["sweep", str(run), *TASKS]) == 0
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    adapter = json.loads((run / "checkpoint-2" / "adapter_config.json").read_text())
    if kind.startswith("gguf") or kind.startswith("folder holding"):
        assert manifest["base_model"] == str(tmp_path / "models" / "tiny.gguf")
    assert adapter["base_model_name_or_path"] == manifest["base_model"]
    rows = json.loads((run / "inversion.json").read_text())["rows"]
    assert [r["step"] for r in rows] == [0, 1, 2]


def test_a_gguf_is_fingerprinted_as_its_own_file_not_its_folder(
    small_llama: Path, tmp_path: Path
) -> None:
    """The base fingerprint of a GGUF in a shared folder is that file's; the folder itself is
    ambiguous (refused, naming the files), never a hash of all its GGUFs."""
    pytest.importorskip("gguf")
    from cpi_bench.harness_ext.models.source import load_model
    from tests.helpers.model_specs import write_tiny_gguf

    one = write_tiny_gguf(small_llama, tmp_path / "alone" / "tiny.gguf")
    shared = write_tiny_gguf(small_llama, tmp_path / "models" / "tiny.gguf")
    (tmp_path / "models" / "other.gguf").write_bytes(b"GGUF other model")
    assert (
        recorded_fingerprint(shared)
        == recorded_fingerprint(one)
        == recorded_fingerprint(one.parent)
    )
    with pytest.raises(CPIError, match="holds 2 .gguf files"):
        recorded_fingerprint(shared.parent)
    assert load_model(shared).name_or_path == str(shared)  # what peft records as the base


def test_an_adapter_folder_is_not_taken_as_a_base_model(
    alpaca_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "x"}))
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    assert train(*train_argv(adapter, alpaca_file, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "is a peft adapter, not a whole model" in err and str(adapter) in err


# ----------------------------------------------------------------------------- a model's files


@pytest.mark.parametrize("vocab", ["vocab.txt", "spiece.model", "tokenizer.model", "vocab.json"])
def test_one_list_of_tokenizer_files_for_train_sweep_and_fingerprint(
    vocab: str, small_llama: Path, tmp_path: Path
) -> None:
    """A folder whose tokenizer is only ``vocab``: cpi train and the sweep's base check agree
    it has a tokenizer, and the model fingerprint changes when that file does."""
    from cpi_bench.harness_ext.core.run_folder import Target
    from cpi_bench.harness_ext.evaluation.guards import check_base_model
    from cpi_bench.trainer.train import check_model_files

    model = tmp_path / "model"
    shutil.copytree(small_llama, model)
    for f in model.iterdir():
        if f.name.startswith(("tokenizer", "chat_template", "special_tokens")):
            f.unlink()
    (model / vocab).write_text("a\nb\n")
    check_model_files(str(model))
    check_base_model(str(model), "src", [Target(0, "base", str(model), "base")])
    before = recorded_fingerprint(model)
    (model / vocab).write_text("a\nc\n")
    assert recorded_fingerprint(model) != before
    (model / vocab).unlink()
    with pytest.raises(CPIError, match="no tokenizer files"):
        check_model_files(str(model))
    with pytest.raises(CPIError, match="no tokenizer files"):
        check_base_model(str(model), "src", [Target(0, "base", str(model), "base")])


def test_a_checkpoint_fingerprint_ignores_optimizer_state_but_not_the_chat_template(
    small_llama: Path, tmp_path: Path
) -> None:
    ckpt = tmp_path / "checkpoint-2"
    shutil.copytree(small_llama, ckpt)
    before = recorded_fingerprint(ckpt)
    (ckpt / "optimizer.pt").write_bytes(b"x" * 1000)
    (ckpt / "rng_state.pth").write_bytes(b"y")
    assert recorded_fingerprint(ckpt) == before
    (ckpt / "chat_template.jinja").write_text("{{ messages }}")
    assert recorded_fingerprint(ckpt) != before
