"""Loading the models of a sweep: each once, adapters swapped on one base, nothing silent.

A checkpoint whose weights miss tensors the architecture needs, hold tensors it does not
have, or hold tensors of the wrong shape is an error naming them (transformers only logs that,
and a quiet log level would hide it: the model would be evaluated with random tensors). An
adapter whose keys match no module of the base is an error for the same reason.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from cpi_bench.harness_ext.core.errors import CPIError
from cpi_bench.harness_ext.core.run_folder import Target
from cpi_bench.harness_ext.models.source import from_pretrained_kwargs, resolve_model

_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model", "vocab.json")


def has_tokenizer(folder: str) -> bool:
    return any((Path(folder) / f).is_file() for f in _TOKENIZER_FILES)


def _loading_problems(info: dict[str, Any]) -> str | None:
    """transformers' loading report, as one line, or None when every tensor matched."""
    parts = []
    for key, what in (
        ("missing_keys", "missing"),
        ("unexpected_keys", "unexpected"),
        ("mismatched_keys", "wrong shape"),
    ):
        keys = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get(key) or ())
        if keys:
            shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            parts.append(f"{len(keys)} {what} tensor(s) ({shown})")
    return "; ".join(parts) or None


def load_causal_lm(spec: str, load_kwargs: dict[str, Any], device: str):
    """``AutoModelForCausalLM`` from a folder, ``.gguf`` file or hub id, in eval mode on
    ``device``; raises :class:`CPIError` when the weights do not match the architecture."""
    try:
        from lm_eval.models.utils_hf import get_dtype
    except ImportError:  # lm-eval < 0.4.10
        from lm_eval.models.utils import get_dtype
    from transformers import AutoModelForCausalLM

    src = resolve_model(spec)
    kwargs = {**dict(load_kwargs), **from_pretrained_kwargs(src)}
    dtype = get_dtype(kwargs.pop("dtype", kwargs.pop("torch_dtype", "auto")))
    model, info = AutoModelForCausalLM.from_pretrained(
        src.path, dtype=dtype, output_loading_info=True, **kwargs
    )
    problem = _loading_problems(info)
    if problem:
        raise CPIError(f"{spec}: weights do not match the model ({problem}); re-save it")
    model.to(device)
    model.eval()
    return model


def load_tokenizer(spec: str, load_kwargs: dict[str, Any]):
    from transformers import AutoTokenizer

    src = resolve_model(spec)
    kwargs = {k: load_kwargs[k] for k in ("revision", "trust_remote_code") if k in load_kwargs}
    return AutoTokenizer.from_pretrained(src.path, **kwargs, **from_pretrained_kwargs(src))


class ModelLoader:
    """Loads each model once; for adapter checkpoints the base stays loaded and adapters are
    swapped on it (``peft`` ``load_adapter`` / ``set_adapter`` / ``delete_adapter``).

    Args:
        base_model: path, ``.gguf`` file or hub id of step 0 and of the adapters' base.
        load_kwargs: ``from_pretrained`` options from ``--model_args`` (dtype, revision, ...).
        device: torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
        chat_template_from: a checkpoint whose tokenizer's chat template step 0 borrows when
            the base tokenizer has none and a chat template is applied.
    """

    def __init__(
        self,
        base_model: str,
        load_kwargs: dict[str, Any],
        device: str,
        chat_template_from: str | None = None,
    ) -> None:
        self.base_model = base_model
        self.load_kwargs = dict(load_kwargs)
        self.device = device
        self.chat_template_from = chat_template_from
        self._base = None  # shared base for adapters
        self._peft = None
        self._active: str | None = None
        self._base_tokenizer = None

    def base_tokenizer(self, need_chat_template: bool = False):
        if self._base_tokenizer is None:
            tok = load_tokenizer(self.base_model, self.load_kwargs)
            if need_chat_template and not getattr(tok, "chat_template", None):
                donor = self.chat_template_from
                if donor and has_tokenizer(donor):
                    tok.chat_template = load_tokenizer(donor, self.load_kwargs).chat_template
            self._base_tokenizer = tok
        return self._base_tokenizer

    def _tokenizer_for(self, target: Target, need_chat_template: bool):
        if has_tokenizer(target.path):
            return load_tokenizer(target.path, self.load_kwargs)
        return self.base_tokenizer(need_chat_template)

    def load(self, target: Target, need_chat_template: bool = False):
        """(model, tokenizer) for ``target``; models are on ``self.device`` in eval mode."""
        if target.kind == "base":
            if self._peft is not None:
                raise RuntimeError("the base must be evaluated before adapters are attached")
            model = self._base
            if model is None:
                model = load_causal_lm(target.path, self.load_kwargs, self.device)
            return model, self.base_tokenizer(need_chat_template)
        if target.kind == "full":
            tok = self._tokenizer_for(target, need_chat_template)
            return load_causal_lm(target.path, self.load_kwargs, self.device), tok
        return self._load_adapter(target, need_chat_template)

    def _attach_first_adapter(self, target: Target, tok) -> None:
        from peft import PeftModel

        if self._base is None:
            self._base = load_causal_lm(self.base_model, self.load_kwargs, self.device)
        base = self._base
        if len(tok) > base.get_input_embeddings().weight.shape[0]:
            base.resize_token_embeddings(len(tok))  # adapters trained with added tokens
        self._peft = PeftModel.from_pretrained(
            base, target.path, adapter_name=adapter_name(target), is_trainable=False
        )

    def _load_adapter(self, target: Target, need_chat_template: bool):
        tok = self._tokenizer_for(target, need_chat_template)
        name = adapter_name(target)
        if self._peft is None:
            self._attach_first_adapter(target, tok)
        else:
            try:
                self._peft.load_adapter(target.path, adapter_name=name, is_trainable=False)
            except Exception:
                if name in getattr(self._peft, "peft_config", {}):
                    self._peft.delete_adapter(name)
                raise
            self._peft.set_adapter(name)
        check_adapter_matched(self._peft, target)
        if self._active and self._active != name:
            self._peft.delete_adapter(self._active)
        self._active = name
        self._peft.to(self.device)
        self._peft.eval()
        return self._peft, tok

    def release(self, target: Target, model) -> None:
        """Free a full checkpoint's weights before the next one loads (the shared base stays).
        After step 0 of a LoRA run its model is kept as the adapters' base."""
        if target.kind == "base" and self._base is None:
            self._base = model
        del model
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # pragma: no cover
            pass

    def drop_base_unless(self, keep: bool) -> None:
        """Forget the step-0 model when no adapter will reuse it."""
        if not keep:
            self._base = None
            gc.collect()


def adapter_name(target: Target) -> str:
    """The peft adapter name of a target: from its step, since labels (folder or revision
    names) may hold dots, which peft's module keys cannot."""
    return f"step_{target.step}"


def check_adapter_matched(peft_model, target: Target) -> None:
    """Every tensor in the adapter file must have landed in a module of the base."""
    from peft.utils import load_peft_weights

    stored = load_peft_weights(target.path, device="cpu")
    name = adapter_name(target)
    loaded = {k for k in peft_model.state_dict() if f".{name}." in k or k.endswith(name)}
    if stored and not loaded:
        raise CPIError(
            f"{target.path}: none of the adapter's {len(stored)} tensors match a module of the "
            "base model (is it an adapter of another base?); pass the right --base_model"
        )


def sweep_loader(plan) -> ModelLoader:
    """The ModelLoader of a sweep plan (``evaluation.sweep.SweepPlan``): torch threads,
    device and chat-template donor from its options; one place for the step evaluation and
    the closed-book probes."""
    from cpi_bench.harness_ext.evaluation.evaluator import default_device

    if plan.args.threads:
        import torch

        torch.set_num_threads(plan.args.threads)
    return ModelLoader(
        plan.base_model,
        plan.evaluator.load_kwargs,
        plan.args.device or default_device(),
        chat_template_from=next((t.path for t in plan.targets if t.step > 0), None),
    )
