"""What is trained: ``--finetune full|lora|qk``.

``qk`` is the paper's QK finetuning: only the attention query and key projections train, and
every other tensor of the model stays bit-identical to the base. Two layouts are supported:

* separate projections (``q_proj`` / ``k_proj`` modules: Llama, Mistral, Qwen, Gemma, OPT,
  GPT-J, Phi, ...): everything else is frozen with ``requires_grad=False``;
* fused q/k/v matrices (GPT-NeoX/Pythia ``query_key_value``, GPT-2 ``c_attn``): the fused
  tensor trains, a gradient hook zeroes the value slice's gradient (so the value slice gets no
  update, no optimizer state, and does not count in gradient clipping), and a callback copies
  the value slice back after every optimizer step so that weight decay cannot move it either.

Other fused layouts (Falcon, BLOOM, Phi-3, GPT-BigCode, ...) are refused with an error naming
the architecture, before any training starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..harness_ext.core.errors import CPIError
from ..harness_ext.core.run_folder import FINETUNE_MODES  # noqa: F401 (its owner)

SEPARATE_QK_SUFFIXES = ("q_proj", "k_proj")


@dataclass
class QKTarget:
    """One trainable tensor of QK finetuning; ``frozen`` masks its value part (fused only)."""

    name: str
    param: Any  # torch.nn.Parameter
    frozen: Any | None = None  # bool tensor, True where the entry must stay as in the base


def _neox_value_mask(param: Any, num_heads: int) -> Any:
    """GPT-NeoX fuses per head: output rows [h*3d, h*3d+d) = q, [+d, +2d) = k, [+2d, +3d) = v."""
    import torch

    rows = param.shape[0]
    head = rows // (3 * num_heads)
    per_row = torch.zeros(rows, dtype=torch.bool, device=param.device)
    for h in range(num_heads):
        per_row[h * 3 * head + 2 * head : (h + 1) * 3 * head] = True
    return per_row.view(-1, *([1] * (param.dim() - 1))).expand_as(param).clone()


def _gpt2_value_mask(param: Any, embed_dim: int) -> Any:
    """GPT-2's Conv1D c_attn maps columns [0, E) to q, [E, 2E) to k, [2E, 3E) to v (last dim)."""
    import torch

    mask = torch.zeros_like(param, dtype=torch.bool)
    mask[..., 2 * embed_dim :] = True
    return mask


# model_type -> (suffix of the fused module, value-mask builder(param, config))
FUSED_QKV: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    "gpt_neox": ("query_key_value", lambda p, cfg: _neox_value_mask(p, cfg.num_attention_heads)),
    "gpt2": ("attn.c_attn", lambda p, cfg: _gpt2_value_mask(p, cfg.n_embd)),
}


def qk_targets(model: Any) -> list[QKTarget]:
    """The tensors QK finetuning trains, or a CPIError naming the architecture."""
    config = model.config
    model_type = getattr(config, "model_type", type(model).__name__)
    targets: list[QKTarget] = []
    for mod_name, module in model.named_modules():
        if mod_name.split(".")[-1] in SEPARATE_QK_SUFFIXES:
            targets += [
                QKTarget(f"{mod_name}.{n}", p) for n, p in module.named_parameters(recurse=False)
            ]
    if targets:
        return targets
    if model_type in FUSED_QKV:
        suffix, mask_of = FUSED_QKV[model_type]
        for mod_name, module in model.named_modules():
            if mod_name.endswith(suffix):
                targets += [
                    QKTarget(f"{mod_name}.{n}", p, mask_of(p, config))
                    for n, p in module.named_parameters(recurse=False)
                ]
    if not targets:
        raise CPIError(
            f"--finetune qk: model type {model_type!r} has no separable query/key projections "
            "(supported: q_proj/k_proj models such as Llama and Mistral, GPT-NeoX/Pythia, "
            "GPT-2); use --finetune full or lora"
        )
    return targets


def check_qk_supported(
    model_name_or_path: str, revision: str = "main", trust_remote_code: bool = False
) -> None:
    """Fail fast: instantiate the architecture on the meta device (no weights, no memory) and
    look for q/k projections, before data loading, scoring or training."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..harness_ext.models.source import from_pretrained_kwargs, resolve_model

    src = resolve_model(model_name_or_path)  # a .gguf file carries its config inside
    config = AutoConfig.from_pretrained(
        src.path,
        revision=revision,
        trust_remote_code=trust_remote_code,
        **from_pretrained_kwargs(src),
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    qk_targets(model)


class FrozenSliceRestorer:
    """Keeps the value slices of fused q/k/v tensors exactly at their base values."""

    def __init__(self, targets: list[QKTarget]) -> None:
        import torch

        self.slices = [
            (t.param, t.frozen, t.param.detach()[t.frozen].clone())
            for t in targets
            if t.frozen is not None
        ]
        self._torch = torch

    def restore(self) -> None:
        with self._torch.no_grad():
            for param, mask, saved in self.slices:
                param[mask] = saved


def make_restore_callback(restorer: FrozenSliceRestorer) -> Any:
    """A TrainerCallback restoring the frozen slices after every optimizer step."""
    from transformers import TrainerCallback

    class RestoreFrozenSlices(TrainerCallback):
        """QK finetuning of fused q/k/v: undo any change (weight decay) to the value slices."""

        def on_optimizer_step(self, args, state, control, **kwargs):
            restorer.restore()

    return RestoreFrozenSlices()


def apply_qk(model: Any) -> tuple[list[QKTarget], list[Any]]:
    """Freeze everything but q/k; return the targets and the callbacks the trainer needs."""
    targets = qk_targets(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for t in targets:
        t.param.requires_grad_(True)
        if t.frozen is not None:
            keep = (~t.frozen).to(t.param.dtype)
            t.param.register_hook(lambda grad, keep=keep: grad * keep.to(grad.device))
    fused = [t for t in targets if t.frozen is not None]
    callbacks = [make_restore_callback(FrozenSliceRestorer(fused))] if fused else []
    return targets, callbacks


def trainable_parameter_count(model: Any) -> int:
    """Parameters with requires_grad (for fused q/k/v tensors, the whole fused tensor)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
