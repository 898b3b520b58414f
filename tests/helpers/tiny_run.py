"""A fake training run folder of tiny models, for tests, benchmarks and smoke runs of the sweep.

The folder has what ``cpi train`` writes: ``cpi_run.json`` and HF ``checkpoint-N`` folders
(full: model + tokenizer; lora: a peft adapter + tokenizer). Each "checkpoint" is the base
with seeded random perturbations, so the checkpoints differ and evaluate to different
numbers (the ``_choice`` tasks' ``cf_pref`` shows it even when a random model never states
an answer). No training happens: building a run takes seconds on a CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cpi_bench.harness_ext.core import run_folder
from cpi_bench.harness_ext.core.constants import CHECKPOINT_PREFIX
from cpi_bench.harness_ext.core.run_folder import FINISHED

LORA_TARGETS = ["q_proj", "v_proj"]


def write_manifest(
    run_dir: Path, base_model: str, finetune: str, seed: int = 0, lora: dict | None = None
) -> Path:
    """``cpi_run.json`` with the keys ``cpi train`` writes."""
    manifest = {
        "base_model": base_model,
        "finetune": finetune,
        "dataset": "tiny-synthetic",
        "template": "tulu",
        "chat_template": None,
        "curations": [],
        "seed": seed,
        "lora": lora,
        "versions": {},
        "status": FINISHED,
    }
    return run_folder.write_manifest(run_dir, manifest)


def _save_scaled_adapter(model, out: Path, scale: float) -> None:
    """A random LoRA adapter (r=4 on q/v) scaled by ``scale``, so later steps differ more."""
    import torch
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=LORA_TARGETS,
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.mul_(scale)
    peft_model.save_pretrained(out)


def build_tiny_run(
    run_dir: str | Path,
    steps: Iterable[int] = (2, 4, 6),
    finetune: str = "full",
    base_dir: str | Path | None = None,
    seed: int = 0,
    noise: float = 0.05,
    hidden: int = 64,
    layers: int = 2,
) -> Path:
    """Write a run folder with a tiny base model and one perturbed checkpoint per step.

    Args:
        run_dir: the run folder to create.
        steps: global steps of the ``checkpoint-N`` folders.
        finetune: ``full`` (whole models) or ``lora`` (peft adapters on the base).
        base_dir: where the base model lives (built there if missing); default
            ``run_dir/../<run name>-base``.
        seed: seed of the base weights and of every perturbation (step-dependent).
        noise: std of the Gaussian added to every weight, times step / max(steps).
        hidden, layers: model size (see :func:`~.tiny_model.build_tiny_model`).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cpi_bench.harness_ext.models.tiny import build_tiny_model

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    base = Path(base_dir) if base_dir else run_dir.parent / f"{run_dir.name}-base"
    if not (base / "config.json").is_file():
        build_tiny_model(base, arch="llama", seed=seed, hidden=hidden, layers=layers)
    steps = sorted(set(int(s) for s in steps))
    tokenizer = AutoTokenizer.from_pretrained(base)
    top = max(steps) if steps else 1
    if finetune not in ("full", "qk", "lora"):
        raise ValueError(f"finetune must be full, qk or lora, got {finetune!r}")
    for step in steps:
        out = run_dir / f"{CHECKPOINT_PREFIX}{step}"
        torch.manual_seed(seed * 1000 + step)
        model = AutoModelForCausalLM.from_pretrained(base)
        if finetune == "lora":
            _save_scaled_adapter(model, out, step / top)
        else:
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * noise * step / top)
            model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    lora = {"r": 4, "alpha": 8, "target_modules": LORA_TARGETS} if finetune == "lora" else None
    write_manifest(run_dir, str(base.resolve()), finetune, seed=seed, lora=lora)
    return run_dir
