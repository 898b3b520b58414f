"""Loading the models of a sweep: each once, adapters swapped on one base, nothing silent.

A checkpoint whose weights miss tensors the architecture needs, hold tensors it does not
have, or hold tensors of the wrong shape is an error naming them (models/source.py's
``load_model``: transformers only logs that, and the model would be evaluated with random
tensors). An adapter any of whose tensors match no module of the base, or that lacks tensors
of its own modules, is an error for the same reason.
"""

from __future__ import annotations

import gc
from typing import Any

from ..core.errors import CPIError
from ..core.model_files import has_tokenizer
from ..core.run_folder import Target
from ..models.source import load_model, load_tokenizer, resolve_model

__all__ = ["ModelLoader", "has_tokenizer", "load_causal_lm", "sweep_loader"]


def load_causal_lm(spec: str, load_kwargs: dict[str, Any], device: str):
    """The model of a folder, ``.gguf`` file or hub id, loaded by models/source.py's
    ``load_model`` (the loader ``cpi train`` uses too), in eval mode on ``device``; raises
    :class:`CPIError` when the weights do not match the architecture."""
    try:
        from lm_eval.models.utils_hf import get_dtype
    except ImportError:  # lm-eval < 0.4.10
        from lm_eval.models.utils import get_dtype

    kwargs = dict(load_kwargs)
    dtype = get_dtype(kwargs.pop("dtype", kwargs.pop("torch_dtype", "auto")))
    model = load_model(resolve_model(spec), dtype=dtype, **kwargs)
    model.to(device)
    model.eval()
    return model


def _tokenizer(spec: str, load_kwargs: dict[str, Any]):
    """The tokenizer of ``spec`` with the ``--model_args`` that concern it."""
    kwargs = {k: load_kwargs[k] for k in ("revision", "trust_remote_code") if k in load_kwargs}
    return load_tokenizer(spec, **kwargs)


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
            tok = _tokenizer(self.base_model, self.load_kwargs)
            if need_chat_template and not getattr(tok, "chat_template", None):
                donor = self.chat_template_from
                if donor and has_tokenizer(donor):
                    tok.chat_template = _tokenizer(donor, self.load_kwargs).chat_template
            self._base_tokenizer = tok
        return self._base_tokenizer

    def _tokenizer_for(self, target: Target, need_chat_template: bool):
        if has_tokenizer(target.path):
            return _tokenizer(target.path, self.load_kwargs)
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
        from peft import PeftConfig, get_peft_model

        if self._base is None:
            self._base = load_causal_lm(self.base_model, self.load_kwargs, self.device)
        base = self._base
        if len(tok) > base.get_input_embeddings().weight.shape[0]:
            base.resize_token_embeddings(len(tok))  # adapters trained with added tokens
        config = PeftConfig.from_pretrained(target.path)
        config.inference_mode = True
        # peft's own from_pretrained discards the load report that says which adapter
        # tensors landed nowhere: build the adapter's modules, then load it as every later one
        self._peft = get_peft_model(base, config, adapter_name=adapter_name(target))

    def _load_adapter(self, target: Target, need_chat_template: bool):
        tok = self._tokenizer_for(target, need_chat_template)
        name = adapter_name(target)
        if self._peft is None:
            self._attach_first_adapter(target, tok)
        try:
            report = self._peft.load_adapter(target.path, adapter_name=name, is_trainable=False)
            check_adapter_matched(report, target)
        except Exception:
            if name in getattr(self._peft, "peft_config", {}) and self._active:
                self._peft.delete_adapter(name)
            raise
        self._peft.set_adapter(name)
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


def check_adapter_matched(report: Any, target: Target) -> None:
    """Every tensor of the adapter file must land in a module of the base, and every adapter
    module peft built must get its tensor: else the checkpoint would be evaluated with part
    or none of its weights (LoRA's B matrices start at zero: the base model's numbers).
    ``report`` is peft's ``load_adapter`` result (missing_keys, unexpected_keys)."""

    def shown(keys: list[str]) -> str:
        keys = sorted(map(str, keys))
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    unmatched = list(getattr(report, "unexpected_keys", None) or ())
    unloaded = list(getattr(report, "missing_keys", None) or ())
    if unmatched:
        raise CPIError(
            f"{target.path}: {len(unmatched)} adapter tensor(s) match no module of the base "
            f"model ({shown(unmatched)}); is it an adapter of another base? (pass the right "
            "--base_model)"
        )
    if unloaded:
        raise CPIError(
            f"{target.path}: the adapter file lacks {len(unloaded)} tensor(s) of its own "
            f"modules ({shown(unloaded)}); the adapter is incomplete: re-save it"
        )


def sweep_loader(plan) -> ModelLoader:
    """The ModelLoader of a sweep plan (``evaluation.sweep.SweepPlan``): torch threads,
    device and chat-template donor from its options; one place for the step evaluation and
    the closed-book probes."""
    from .evaluator import default_device

    if plan.args.threads:
        import torch

        torch.set_num_threads(plan.args.threads)
    return ModelLoader(
        plan.base_model,
        plan.evaluator.load_kwargs,
        plan.args.device or default_device(),
        chat_template_from=next((t.path for t in plan.targets if t.step > 0), None),
    )
