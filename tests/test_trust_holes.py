"""The remaining trust holes (issue 22): a GGUF base in a shared models folder, half-written
checkpoints on resume, adapters that load nothing, one claim for every output folder (and an
atomic one), quantisation flags, one list of a model's files, one count/fraction parser.

Each test names the promise it checks and fails when it breaks. Models are tiny (2 layers,
width 32); every training run is a few optimizer steps.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.errors import CPIError
from cpi_bench.harness_ext.core.files import OWNER_MARKER, claim_output_dir
from cpi_bench.harness_ext.core.run_folder import (
    RUN_MANIFEST,
    checkpoint_problem,
    last_complete_checkpoint,
    list_checkpoints,
)

TASKS = ["--tasks", "cpi_capitals_choice", "--limit", "3", "--device", "cpu", "--threads", "1"]
FAST = [
    "--per_device_train_batch_size",
    "4",
    "--max_length",
    "128",
    "--learning_rate",
    "1e-3",
    "--disable_tqdm",
    "true",
    "--report_to",
    "none",
    "--gradient_checkpointing",
    "false",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cpi_bench.harness_ext.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", hidden=32, heads=2)


@pytest.fixture(scope="module")
def alpaca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [{"instruction": f"Repeat {i}.", "input": "", "output": f"word {i}"} for i in range(16)]
    path = tmp_path_factory.mktemp("data") / "alpaca.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def train_argv(model: str | Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path",
        str(model),
        "--dataset_name",
        str(data),
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
        "--save_steps",
        "1",
        *FAST,
        *extra,
    ]


def model_fingerprint(path: str | Path) -> str | None:
    """What a sweep result records as the fingerprint of the model at ``path``."""
    from cpi_bench.harness_ext.evaluation.provenance import model_provenance

    return model_provenance("full", str(path), "")["weights"]


def train(*argv: str) -> int:
    from cpi_bench.trainer.train import main

    return main(list(argv))


# ----------------------------------------------------------------------------- 1. model specs


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
    kind: str, tiny: Path, alpaca: Path, tmp_path: Path, offline_env
) -> None:
    """cpi train (LoRA) then cpi sweep: the manifest and every adapter name exactly what was
    loaded (a GGUF's file, never its folder), and the sweep evaluates base and checkpoints.
    (The hub id runs in subprocesses: the hub cache folder is read at import.)"""
    spec = _spec(kind, tiny, tmp_path)
    run = tmp_path / "run"
    argv = train_argv(spec, alpaca, run, "--finetune", "lora", "--lora_r", "4")
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


def test_a_gguf_is_fingerprinted_as_its_own_file_not_its_folder(tiny: Path, tmp_path: Path) -> None:
    """The base fingerprint of a GGUF in a shared folder is that file's; the folder itself is
    ambiguous (refused, naming the files), never a hash of all its GGUFs."""
    pytest.importorskip("gguf")
    from cpi_bench.harness_ext.models.source import load_model
    from tests.helpers.model_specs import write_tiny_gguf

    one = write_tiny_gguf(tiny, tmp_path / "alone" / "tiny.gguf")
    shared = write_tiny_gguf(tiny, tmp_path / "models" / "tiny.gguf")
    (tmp_path / "models" / "other.gguf").write_bytes(b"GGUF other model")
    assert model_fingerprint(shared) == model_fingerprint(one) == model_fingerprint(one.parent)
    with pytest.raises(CPIError, match="holds 2 .gguf files"):
        model_fingerprint(shared.parent)
    assert load_model(shared).name_or_path == str(shared)  # what peft records as the base


def test_an_adapter_folder_is_not_taken_as_a_base_model(
    tiny: Path, alpaca: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "x"}))
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    assert train(*train_argv(adapter, alpaca, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "is a peft adapter, not a whole model" in err and str(adapter) in err


# ----------------------------------------------------------------------------- 2. completeness


def _truncate(path: Path) -> None:
    """Replace ``path`` by its first half (a new file, as a save does: a process that
    memory-maps the old one keeps it whole)."""
    data = path.read_bytes()
    cut = path.with_name(path.name + ".cut")
    cut.write_bytes(data[: len(data) // 2])
    cut.replace(path)


def test_complete_means_readable_not_only_present(tiny: Path, tmp_path: Path) -> None:
    """A checkpoint whose weights are present but cut short is incomplete for the sweep and
    for resuming; without trainer_state.json it cannot be resumed from."""
    good = tmp_path / "run" / "checkpoint-2"
    shutil.copytree(tiny, good)
    (good / "trainer_state.json").write_text("{}")
    cut = tmp_path / "run" / "checkpoint-4"
    shutil.copytree(tiny, cut)
    _truncate(cut / "model.safetensors")
    found, warnings = list_checkpoints(tmp_path / "run")
    assert [t.step for t in found] == [2] and "checkpoint-4" in warnings[0]
    assert "model.safetensors is truncated" in checkpoint_problem(cut)
    assert checkpoint_problem(good) is None and checkpoint_problem(good, resume=True) is None
    (cut / "model.safetensors").write_bytes(b"not a safetensors file")
    assert checkpoint_problem(cut) is None  # damaged, not cut short: its load fails (exit 1)
    assert "not a safetensors file" in checkpoint_problem(cut, resume=True)
    shutil.copy(tiny / "model.safetensors", cut / "model.safetensors")
    assert checkpoint_problem(cut) is None  # evaluable
    assert "no trainer_state.json" in checkpoint_problem(cut, resume=True)
    last, skipped = last_complete_checkpoint(tmp_path / "run")
    assert last == str(good.resolve()) and "checkpoint-4" in skipped[0]


@pytest.mark.slow
def test_resume_last_after_a_kill_during_save_rewrites_that_step(
    tiny: Path, alpaca: Path, tmp_path: Path
) -> None:
    """checkpoint-4 holds a truncated model.safetensors and no trainer_state.json (killed in
    its save): --resume_from_checkpoint last resumes from checkpoint-2 and writes step 4
    again, with the weights an uninterrupted run wrote."""
    from safetensors.torch import load_file

    run = tmp_path / "run"
    argv = train_argv(tiny, alpaca, run)
    argv[argv.index("--max_steps") + 1], argv[argv.index("--save_steps") + 1] = "4", "2"
    assert train(*argv) == 0
    want = {k: v.clone() for k, v in load_file(run / "checkpoint-4" / "model.safetensors").items()}
    _truncate(run / "checkpoint-4" / "model.safetensors")
    (run / "checkpoint-4" / "trainer_state.json").unlink()
    assert train(*argv, "--resume_from_checkpoint", "last") == 0
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    assert manifest["resumed_from"].endswith("checkpoint-2") and manifest["global_step"] == 4
    assert checkpoint_problem(run / "checkpoint-4", resume=True) is None
    got = load_file(run / "checkpoint-4" / "model.safetensors")
    for key in want:
        assert (got[key] - want[key]).abs().max() < 1e-5, key


# ----------------------------------------------------------------------------- 3. adapters


def test_an_adapter_whose_tensors_land_nowhere_fails_that_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """An adapter naming layers the base lacks loaded nothing and reported the base's
    numbers with exit 0; now that checkpoint fails, naming the unmatched tensors."""
    from safetensors.torch import load_file, save_file

    from tests.helpers.tiny_run import build_tiny_run

    run = build_tiny_run(tmp_path / "run", steps=(2, 4), finetune="lora", hidden=32)
    weights = run / "checkpoint-4" / "adapter_model.safetensors"
    tensors = {k.replace("layers.", "layers.7"): v for k, v in load_file(weights).items()}
    save_file(tensors, weights, metadata={"format": "pt"})
    assert cli.main(["sweep", str(run), *TASKS]) == 1
    err = capsys.readouterr().err
    assert "FAILED step 4" in err and "match no module of the base model" in err
    assert "layers.70" in err  # the first unmatched keys are named
    assert (run / "eval" / "step-2.json").is_file() and not (run / "eval" / "step-4.json").exists()


# ----------------------------------------------------------------------------- 4. claims


def _user_folder(path: Path) -> dict[str, bytes]:
    path.mkdir(parents=True)
    (path / "theory.json").write_text('{"mine": true}\n')
    (path / "notes.txt").write_text("my notes\n")
    return {p.name: p.read_bytes() for p in path.iterdir()}


@pytest.mark.parametrize(
    "argv",
    [
        ["theory", "--out", "{dir}", "--steps", "5"],
        ["tiny-model", "--output_dir", "{dir}"],
        ["demo", "--out", "{dir}", "--quick"],
        ["models", "fetch", "--out", "{parent}", "--model", "smollm2-135m-instruct"],
    ],
    ids=["theory", "tiny-model", "demo", "models fetch"],
)
def test_every_command_refuses_a_folder_it_did_not_create(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The one claim: a non-empty folder without cpi's marker is refused in one line, and
    not one byte in it changes."""
    folder = tmp_path / "smollm2-135m-instruct"
    before = _user_folder(folder)
    args = [a.format(dir=folder, parent=tmp_path) for a in argv]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not created by cpi" in err[0], err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_theory_writes_into_its_own_folder_and_marks_it(tmp_path: Path) -> None:
    out = tmp_path / "theory"
    assert cli.main(["theory", "--out", str(out), "--steps", "5"]) == 0
    assert (out / OWNER_MARKER).is_file() and (out / "theory.json").is_file()
    assert cli.main(["theory", "--out", str(out), "--steps", "5"]) == 0  # its own: rerun


# ----------------------------------------------------------------------------- 5. atomic claims


def _claim_and_hold(folder: str, barrier, results, hold: float) -> None:
    import time

    barrier.wait()
    try:
        with claim_output_dir(folder, "test", "--out"):
            results.put("won")
            time.sleep(hold)
    except CPIError as err:
        results.put(str(err))


def test_of_several_claims_at_one_moment_exactly_one_wins(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    folder = str(tmp_path / "new")
    procs = [
        ctx.Process(target=_claim_and_hold, args=(folder, barrier, results, 2.0)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert got.count("won") == 1, got
    assert all("in use by cpi test (pid" in g for g in got if g != "won"), got


def test_shared_claims_refuse_only_an_exclusive_holder(tmp_path: Path) -> None:
    """Sweeps share an --out folder (their steps have their own locks); a command that holds
    a folder exclusively excludes them, and they exclude it."""
    out = tmp_path / "out"
    with claim_output_dir(out, "sweep", "--out", shared=True):
        with claim_output_dir(out, "sweep", "--out", shared=True):
            pass
        with pytest.raises(CPIError, match="in use by"):
            with claim_output_dir(out, "theory", "--out"):
                pass
    with claim_output_dir(out, "theory", "--out"):
        with pytest.raises(CPIError, match="in use by cpi theory"):
            with claim_output_dir(out, "sweep", "--out", shared=True):
                pass


def test_cpi_train_into_a_folder_another_command_holds_exits_2(
    tiny: Path, alpaca: Path, tmp_path: Path, offline_env
) -> None:
    """The claim holds for the whole command: a cpi train started meanwhile on the same
    --output_dir exits 2 naming it, and writes nothing there."""
    out = tmp_path / "run"
    with claim_output_dir(out, "train", "--output_dir"):
        res = subprocess.run(
            [sys.executable, "-m", "cpi_bench.harness_ext.cli", "train"]
            + train_argv(tiny, alpaca, out),
            capture_output=True,
            text=True,
            env=offline_env(),
            timeout=300,
        )
    assert res.returncode == 2, res.stderr[-500:]
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("cpi train: error:")]
    assert len(err) == 1 and str(out) in err[0] and "in use by cpi train" in err[0]
    assert sorted(p.name for p in out.iterdir()) == [OWNER_MARKER]


# ----------------------------------------------------------------------------- 6. quantisation


def test_load_in_4bit_is_refused_where_bitsandbytes_cannot_run(
    tiny: Path, alpaca: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from cpi_bench.trainer.quantization import platform_problem

    if platform_problem() is None:
        pytest.skip("bitsandbytes and CUDA are here: the flag is honoured")
    for flag in ("--load_in_4bit", "--load_in_8bit"):
        argv = train_argv(tiny, alpaca, tmp_path / "out", flag, "true", "--finetune", "lora")
        assert train(*argv) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert flag in err and "CUDA" in err and "bitsandbytes" in err
    assert not (tmp_path / "out").exists()
    assert train(*train_argv(tiny, alpaca, tmp_path / "out", "--load_in_4bit", "true")) == 2
    assert "--finetune lora" in capsys.readouterr().err


def test_load_in_4bit_reaches_from_pretrained_as_trl_builds_it(
    tiny: Path, alpaca: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the platform allows it, the BitsAndBytesConfig TRL builds from the ModelConfig
    and this process's device map are what the model is loaded with."""
    from cpi_bench.harness_ext.models import source
    from cpi_bench.trainer import quantization, train
    from cpi_bench.trainer.templates import get_template

    monkeypatch.setattr(quantization, "platform_problem", lambda: None)
    seen: dict = {}
    monkeypatch.setattr(source, "load_model", lambda src, **kw: seen.update(kw) or "model")
    argv = train_argv(tiny, alpaca, Path("unused"), "--load_in_4bit", "true", "--finetune", "lora")
    _, config, model_args = train.parse_args([*argv, "--bnb_4bit_quant_type", "nf4"])
    assert train.load_model_and_tokenizer(config, model_args, get_template("alpaca"))[0] == "model"
    quant = seen["quantization_config"]
    assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4"
    assert seen["device_map"] == {"": 0}
    assert quantization.quantization_record(model_args)["bits"] == 4


# ----------------------------------------------------------------------------- 7. model files


@pytest.mark.parametrize("vocab", ["vocab.txt", "spiece.model", "tokenizer.model", "vocab.json"])
def test_one_list_of_tokenizer_files_for_train_sweep_and_fingerprint(
    vocab: str, tiny: Path, tmp_path: Path
) -> None:
    """A folder whose tokenizer is only ``vocab``: cpi train and the sweep's base check agree
    it has a tokenizer, and the model fingerprint changes when that file does."""
    from cpi_bench.harness_ext.core.run_folder import Target
    from cpi_bench.harness_ext.evaluation.guards import check_base_model
    from cpi_bench.trainer.train import check_model_files

    model = tmp_path / "model"
    shutil.copytree(tiny, model)
    for f in model.iterdir():
        if f.name.startswith(("tokenizer", "chat_template", "special_tokens")):
            f.unlink()
    (model / vocab).write_text("a\nb\n")
    check_model_files(str(model))
    check_base_model(str(model), "src", [Target(0, "base", str(model), "base")])
    before = model_fingerprint(model)
    (model / vocab).write_text("a\nc\n")
    assert model_fingerprint(model) != before
    (model / vocab).unlink()
    with pytest.raises(CPIError, match="no tokenizer files"):
        check_model_files(str(model))
    with pytest.raises(CPIError, match="no tokenizer files"):
        check_base_model(str(model), "src", [Target(0, "base", str(model), "base")])


def test_a_checkpoint_fingerprint_ignores_optimizer_state_but_not_the_chat_template(
    tiny: Path, tmp_path: Path
) -> None:
    ckpt = tmp_path / "checkpoint-2"
    shutil.copytree(tiny, ckpt)
    before = model_fingerprint(ckpt)
    (ckpt / "optimizer.pt").write_bytes(b"x" * 1000)
    (ckpt / "rng_state.pth").write_bytes(b"y")
    assert model_fingerprint(ckpt) == before
    (ckpt / "chat_template.jinja").write_text("{{ messages }}")
    assert model_fingerprint(ckpt) != before


# ----------------------------------------------------------------------------- 8. limits


@pytest.mark.parametrize(("text", "want"), [("0.5", 0.5), ("2", 2), ("2.0", 2)])
def test_eval_limit_reads_counts_and_fractions_as_sweep_limit_does(
    text: str, want: float, tiny: Path, alpaca: Path
) -> None:
    from cpi_bench.harness_ext.core.cli_args import parse_limit
    from cpi_bench.trainer.train import parse_args

    argv = train_argv(tiny, alpaca, Path("out"), "--eval_limit", text)
    _, config, _ = parse_args(argv)
    assert config.eval_limit == want == parse_limit(text)
    assert type(config.eval_limit) is type(parse_limit(text))


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "nan"])
def test_eval_limit_refuses_what_sweep_limit_refuses(text: str, tiny: Path, alpaca: Path) -> None:
    from cpi_bench.trainer.train import parse_args

    with pytest.raises(CPIError, match="--eval_limit"):
        parse_args(train_argv(tiny, alpaca, Path("out"), "--eval_limit", text))
