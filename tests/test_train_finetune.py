"""cpi train end to end on tiny random models: checkpoints, manifest, saved chat template,
the q/k-only guarantee per architecture, LoRA adapters, context_critical, resuming.

Models are 2 layers, width 32, built in-process; every run is a few optimizer steps.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cpi_bench.harness_ext.core.run_folder import RUN_MANIFEST
from cpi_bench.trainer.templates import TEMPLATES
from cpi_bench.trainer.train import main
from tests.helpers import fixtures

MANIFEST_KEYS = {
    "base_model",
    "finetune",
    "dataset",
    "template",
    "chat_template",
    "curations",
    "n_train_examples",
    "seed",
    "learning_rate",
    "max_steps",
    "save_steps",
    "lora",
    "versions",
    "status",
}
FAST = [
    "--per_device_train_batch_size",
    "4",
    "--max_length",
    "256",
    "--learning_rate",
    "1e-3",
    "--disable_tqdm",
    "true",
    "--logging_steps",
    "1",
    "--report_to",
    "none",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """arch -> folder of a tiny random model (built lazily, once per module)."""
    from cpi_bench.harness_ext.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("models")
    built: dict[str, str] = {}

    def get(arch: str) -> str:
        if arch not in built:
            built[arch] = str(
                build_tiny_model(root / arch, arch=arch, hidden=32, layers=2, heads=2)
            )
        return built[arch]

    return get


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return fixtures.write_all(tmp_path_factory.mktemp("data"))


def weights(folder) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def changed(base: dict, tuned: dict) -> set[str]:
    import torch

    assert set(tuned) <= set(base)
    return {k for k in tuned if not torch.equal(base[k], tuned[k])}


def test_checkpoints_manifest_and_chat_template(tmp_path, models, data, monkeypatch):
    """checkpoint-2/4 and the manifest exist, the manifest says "running" before the first
    checkpoint and "finished" after the last, checkpoints carry the training template."""
    import cpi_bench.harness_ext.core.run_folder as manifest_mod

    tiny, run = models("llama"), tmp_path / "run"
    writes = []
    real_write = manifest_mod.write_manifest

    def spy(output_dir, manifest):
        ckpts = sorted(p.name for p in Path(output_dir).glob("checkpoint-*"))
        writes.append((manifest["status"], ckpts))
        return real_write(output_dir, manifest)

    monkeypatch.setattr(manifest_mod, "write_manifest", spy)
    code = main(
        [
            "--model_name_or_path",
            tiny,
            "--dataset_name",
            str(data["alpaca"]),
            "--max_steps",
            "4",
            "--save_steps",
            "2",
            "--finetune",
            "qk",
            "--gradient_checkpointing",
            "false",
            "--output_dir",
            str(run),
            *FAST,
        ]
    )
    assert code == 0
    assert writes == [("running", []), ("finished", ["checkpoint-2", "checkpoint-4"])]
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]

    manifest = json.loads((run / RUN_MANIFEST).read_text())
    assert MANIFEST_KEYS <= set(manifest)
    assert manifest["base_model"] == tiny and manifest["finetune"] == "qk"
    assert manifest["dataset"] == str(data["alpaca"]) and manifest["template"] == "alpaca"
    assert manifest["chat_template"] == TEMPLATES["alpaca"].chat_template
    assert manifest["curations"] == [] and manifest["n_train_examples"] == 8
    assert (manifest["max_steps"], manifest["save_steps"], manifest["seed"]) == (4, 2, 42)
    assert manifest["learning_rate"] == 1e-3
    assert manifest["lora"] is None and manifest["status"] == "finished"
    assert set(manifest["versions"]) == {
        "torch",
        "transformers",
        "tokenizers",
        "trl",
        "peft",
        "accelerate",
        "datasets",
        "numpy",
        "lm_eval",
        "cpi_bench",
    }

    from transformers import AutoModelForCausalLM, AutoTokenizer

    for step in (2, 4):  # what lm_eval --model hf --model_args pretrained=... loads
        tok = AutoTokenizer.from_pretrained(run / f"checkpoint-{step}")
        assert tok.chat_template == TEMPLATES["alpaca"].chat_template
        AutoModelForCausalLM.from_pretrained(run / f"checkpoint-{step}")
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Q?"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("### Instruction:\nQ?\n\n### Response:\n")


@pytest.mark.slow
def test_done_when_command_qk_llama(tmp_path, models, data):
    """The issue's command verbatim (TRL defaults: gradient checkpointing, batch 8)."""
    tiny, run = models("llama"), tmp_path / "run"
    assert (
        main(
            [
                "--model_name_or_path",
                tiny,
                "--dataset_name",
                str(data["alpaca"]),
                "--max_steps",
                "4",
                "--save_steps",
                "2",
                "--finetune",
                "qk",
                "--output_dir",
                str(run),
            ]
        )
        == 0
    )
    assert (run / "checkpoint-2").is_dir() and (run / "checkpoint-4").is_dir()
    assert json.loads((run / RUN_MANIFEST).read_text())["status"] == "finished"
    diff = changed(weights(tiny), weights(run / "checkpoint-4"))
    assert diff == {f"model.layers.{i}.self_attn.{p}_proj.weight" for i in (0, 1) for p in "qk"}


@pytest.mark.parametrize("arch", ["llama", "mistral", "gpt_neox", "gpt2"])
def test_qk_trains_only_query_and_key(tmp_path, models, data, arch):
    import torch

    tiny, run = models(arch), tmp_path / "run"
    assert (
        main(
            [
                "--model_name_or_path",
                tiny,
                "--dataset_name",
                str(data["alpaca"]),
                "--max_steps",
                "2",
                "--save_steps",
                "2",
                "--finetune",
                "qk",
                "--gradient_checkpointing",
                "false",
                "--weight_decay",
                "0.1",
                "--output_dir",
                str(run),
                *FAST,
            ]
        )
        == 0
    )
    base, tuned = weights(tiny), weights(run / "checkpoint-2")
    diff = changed(base, tuned)
    if arch in ("llama", "mistral"):
        assert diff == {f"model.layers.{i}.self_attn.{p}_proj.weight" for i in (0, 1) for p in "qk"}
        return
    # Fused q/k/v: the fused tensors changed, but only in their q and k parts.
    suffix = "attention.query_key_value" if arch == "gpt_neox" else "attn.c_attn"
    fused = {k for k in base if suffix in k}
    assert diff == fused and len(fused) == 4  # weight and bias of 2 layers
    heads, width = 2, 32
    for key in fused:
        a, b = base[key], tuned[key]
        if arch == "gpt_neox":  # rows grouped per head as [q | k | v]
            a = a.reshape(heads, 3, width // heads, *a.shape[1:])
            b = b.reshape(heads, 3, width // heads, *b.shape[1:])
            q_k, v = (a[:, :2], b[:, :2]), (a[:, 2], b[:, 2])
        else:  # Conv1D: last dim is [q | k | v]
            q_k, v = (
                (a[..., : 2 * width], b[..., : 2 * width]),
                (a[..., 2 * width :], b[..., 2 * width :]),
            )
        assert torch.equal(*v), f"{key}: value slice moved"
        assert not torch.equal(*q_k), f"{key}: q/k slice did not train"


def test_qk_refuses_fused_layouts_it_cannot_split(tmp_path, models, data, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer, FalconConfig

    folder = tmp_path / "falcon"
    config = FalconConfig(
        vocab_size=512,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(models("llama")).save_pretrained(folder)
    assert (
        main(
            [
                "--model_name_or_path",
                str(folder),
                "--dataset_name",
                str(data["alpaca"]),
                "--finetune",
                "qk",
                "--output_dir",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("cpi train: error: --finetune qk: model type 'falcon'")
    assert "use --finetune full or lora" in err


def test_lora_saves_adapters(tmp_path, models, data):
    tiny, run = models("llama"), tmp_path / "run"
    assert (
        main(
            [
                "--model_name_or_path",
                tiny,
                "--dataset_name",
                str(data["messages"]),
                "--max_steps",
                "2",
                "--save_steps",
                "2",
                "--finetune",
                "lora",
                "--lora_r",
                "4",
                "--gradient_checkpointing",
                "false",
                "--output_dir",
                str(run),
                *FAST,
            ]
        )
        == 0
    )
    ckpt = run / "checkpoint-2"
    assert (ckpt / "adapter_config.json").is_file()
    assert (ckpt / "adapter_model.safetensors").is_file()
    assert not (ckpt / "model.safetensors").exists()
    adapter = json.loads((ckpt / "adapter_config.json").read_text())
    assert adapter["r"] == 4
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    assert manifest["template"] == "tulu" and manifest["lora"]["r"] == 4
    assert manifest["lora"]["alpha"] == 32 and manifest["lora"]["target_modules"]
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(ckpt).chat_template == TEMPLATES["tulu"].chat_template


def test_full_with_context_critical(tmp_path, models, data):
    tiny, run = models("llama"), tmp_path / "run"
    assert (
        main(
            [
                "--model_name_or_path",
                tiny,
                "--dataset_name",
                str(data["alpaca"]),
                "--max_steps",
                "2",
                "--save_steps",
                "2",
                "--finetune",
                "full",
                "--curation",
                "context_critical",
                "--scores_cache_dir",
                str(tmp_path / "c"),
                "--gradient_checkpointing",
                "false",
                "--output_dir",
                str(run),
                *FAST,
            ]
        )
        == 0
    )
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    assert manifest["curations"] == [{"name": "context_critical", "kept": 7, "total": 8}]
    assert manifest["n_train_examples"] == 7
    diff = changed(weights(tiny), weights(run / "checkpoint-2"))
    assert "model.embed_tokens.weight" in diff and "model.layers.0.mlp.up_proj.weight" in diff
    assert list((tmp_path / "c").glob("scores-*.json"))


@pytest.mark.slow
def test_resume_from_checkpoint_matches_an_uninterrupted_run(tmp_path, models, data):
    import torch

    tiny = models("llama")
    common = [
        "--model_name_or_path",
        tiny,
        "--dataset_name",
        str(data["squad"]),
        "--max_steps",
        "4",
        "--save_steps",
        "2",
        "--gradient_checkpointing",
        "false",
        *FAST,
    ]
    assert main([*common, "--output_dir", str(tmp_path / "a")]) == 0
    resumed = tmp_path / "b"
    resumed.mkdir()
    shutil.copytree(tmp_path / "a" / "checkpoint-2", resumed / "checkpoint-2")
    assert main([*common, "--output_dir", str(resumed), "--resume_from_checkpoint", "last"]) == 0
    manifest = json.loads((resumed / RUN_MANIFEST).read_text())
    assert manifest["resumed_from"].endswith("checkpoint-2") and manifest["global_step"] == 4
    a, b = weights(tmp_path / "a" / "checkpoint-4"), weights(resumed / "checkpoint-4")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_eval_tasks_adds_the_harness_callback(tmp_path, models, data, monkeypatch):
    """--eval_tasks imports CPIEvalCallback lazily and passes the contract's arguments."""
    import sys
    import types

    from transformers import TrainerCallback

    made = []

    class FakeEvalCallback(TrainerCallback):
        def __init__(self, tasks, limit, batch_size, output_dir):
            made.append((tasks, limit, batch_size, output_dir))
            self.saves = 0

        def on_save(self, args, state, control, **kwargs):
            self.saves += 1

    fake = types.ModuleType("cpi_bench.trainer.callback")
    fake.CPIEvalCallback = FakeEvalCallback
    monkeypatch.setitem(sys.modules, "cpi_bench.trainer.callback", fake)
    run = tmp_path / "run"
    assert (
        main(
            [
                "--model_name_or_path",
                models("llama"),
                "--dataset_name",
                str(data["cpi"]),
                "--max_steps",
                "2",
                "--save_steps",
                "1",
                "--eval_tasks",
                "cpi_capitals, cpi_quotes",
                "--eval_limit",
                "4",
                "--gradient_checkpointing",
                "false",
                "--output_dir",
                str(run),
                *FAST,
            ]
        )
        == 0
    )
    assert made == [(["cpi_capitals", "cpi_quotes"], 4, 8, str(run))]


def test_eval_tasks_without_the_harness_module_is_a_clear_error(
    tmp_path, models, data, monkeypatch, capsys
):
    import sys

    monkeypatch.setitem(sys.modules, "cpi_bench.trainer.callback", None)  # import fails
    assert (
        main(
            [
                "--model_name_or_path",
                models("llama"),
                "--dataset_name",
                str(data["alpaca"]),
                "--eval_tasks",
                "cpi_capitals",
                "--output_dir",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    assert "--eval_tasks needs cpi_bench.trainer.callback" in capsys.readouterr().err


# --- a GGUF base model (harness_ext.models.source) -------------------------------------------


def _smollm2_gguf(tmp_path) -> Path:
    from cpi_bench.harness_ext.models import fetch

    model = fetch.KNOWN_MODELS["smollm2-135m-instruct"]
    if fetch.package_dir(model) is None:
        pytest.skip(f"package {model.package} is not installed ({model.install})")
    pytest.importorskip("gguf")
    return fetch.locate_gguf(model, tmp_path)


@pytest.mark.real_model
def test_model_spec_forms_resolve_before_any_work(tmp_path):
    """--model_name_or_path takes a .gguf file, a folder holding one .gguf, a model folder
    and a hub id; check_args resolves (and checks) it without loading anything."""
    from cpi_bench.trainer.train import check_model_files

    gguf = _smollm2_gguf(tmp_path)
    folder = tmp_path / "one-gguf"
    folder.mkdir()
    (folder / gguf.name).symlink_to(gguf)
    assert check_model_files(str(gguf)).kind == "gguf"
    assert (check_model_files(str(folder)).gguf_file, check_model_files(str(folder)).kind) == (
        gguf.name,
        "gguf",
    )
    assert check_model_files("HuggingFaceTB/SmolLM2-135M").kind == "hub"  # no network: not read


@pytest.mark.slow
@pytest.mark.real_model
def test_trains_from_a_gguf_file(tmp_path, data):
    """A .gguf base (SmolLM2-135M, Q4_1, dequantized on load) trains and saves like a folder;
    qk mode reads the architecture from the GGUF's metadata."""
    gguf, run = _smollm2_gguf(tmp_path), tmp_path / "run"
    argv = [
        "--model_name_or_path",
        str(gguf),
        "--dataset_name",
        str(data["alpaca"]),
        "--finetune",
        "qk",
        "--max_steps",
        "1",
        "--save_steps",
        "1",
        "--gradient_checkpointing",
        "false",
        "--output_dir",
        str(run),
        *FAST,
    ]
    argv[argv.index("--per_device_train_batch_size") + 1] = "1"
    argv[argv.index("--max_length") + 1] = "64"
    assert main(argv) == 0
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    assert manifest["status"] == "finished" and manifest["global_step"] == 1
    assert (run / "checkpoint-1" / "model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.real_model
def test_qk_on_gemma3_trains_exactly_the_query_and_key_projections(tmp_path, data):
    """Gemma 3 has q_proj/k_proj and, after them, RMSNorm gains q_norm/k_norm. cpi's qk mode is
    the paper's W_Q/W_K finetuning: the 36 q_proj/k_proj weights (18 layers) change, the
    norms and every other tensor stay bit-identical (documented in docs/training.md)."""
    import torch

    from cpi_bench.harness_ext.models import fetch, source

    model = fetch.KNOWN_MODELS["gemma-3-270m"]
    if fetch.package_dir(model) is None:
        pytest.skip(f"package {model.package} is not installed ({model.install})")
    pytest.importorskip("gguf")
    gguf, run = fetch.locate_gguf(model, tmp_path), tmp_path / "run"
    argv = ["--model_name_or_path", str(gguf), "--dataset_name", str(data["alpaca"])]
    argv += ["--finetune", "qk", "--max_steps", "1", "--save_steps", "1"]
    argv += ["--gradient_checkpointing", "false", "--output_dir", str(run), *FAST]
    argv[argv.index("--per_device_train_batch_size") + 1] = "1"
    argv[argv.index("--max_length") + 1] = "48"
    assert main(argv) == 0
    base = source.load_model(source.resolve_model(gguf)).state_dict()
    tuned = weights(run / "checkpoint-1")
    moved = {k for k in tuned if k in base and not torch.equal(base[k], tuned[k])}
    expected = {f"model.layers.{i}.self_attn.{p}_proj.weight" for i in range(18) for p in "qk"}
    assert moved == expected
    assert any("q_norm" in k for k in tuned)  # the norms exist, and did not move
