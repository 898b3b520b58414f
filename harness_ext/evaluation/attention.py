"""Attention to context (the paper's Figure 3b): how much the model looks at the passage.

For each counterfactual item, the prompt exactly as lm-eval builds it is run through the model
once with attention weights returned. At the answer position (the last prompt token, whose
output predicts the first answer token) the attention weights onto the context passage's
tokens are summed, then averaged over heads and layers. The result is a fraction in [0, 1]
of the attention mass; the paper reports it falling while counterfactual accuracy falls.

Only question-answering items count: in memo-trap (``cpi_quotes``) the "context" is the whole
prompt, so its mass would be ~1 by construction.
"""

from __future__ import annotations

from typing import Any

from ..core.constants import (
    ATTENTION_COLUMN,
)


def _set_attn(model, impl: str) -> str | None:
    """Switch the attention kernel (``eager`` returns weights); return the previous one."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(inner, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    if previous == impl or not hasattr(inner, "set_attn_implementation"):
        return previous
    inner.set_attn_implementation(impl)
    return previous


def _context_items(task, limit, max_items: int, chat: bool, lm) -> list[tuple[str, str]]:
    """(prompt, context) pairs for up to ``max_items`` QA docs of ``task``."""
    from lm_eval.evaluator_utils import get_sample_size

    n = get_sample_size(task, limit)
    n = max_items if n is None else min(n, max_items)
    items = []
    for _, doc in task.doc_iterator(rank=0, limit=None, world_size=1):
        if len(items) >= n:
            break
        if not isinstance(doc, dict) or not doc.get("question") or not doc.get("context"):
            continue
        prompt = task.fewshot_context(
            doc,
            num_fewshot=task.get_config("num_fewshot") or 0,
            apply_chat_template=chat,
            fewshot_as_multiturn=chat,
            chat_template=lm.apply_chat_template if chat else None,
            gen_prefix=task.doc_to_prefix(doc),
        )
        if isinstance(prompt, str) and str(doc["context"]) in prompt:
            items.append((prompt, str(doc["context"])))
    return items


def _mass(lm, prompt: str, context: str) -> float | None:
    """Attention mass from the last prompt token onto the context tokens (mean of layers,
    heads); None when the model returns no attention weights."""
    import torch

    tokenizer = lm.tokenizer
    start = prompt.rfind(context)
    end = start + len(context)
    ids = lm.tok_encode(prompt)
    enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    plain, offsets = enc["input_ids"], enc["offset_mapping"]
    shift = len(ids) - len(plain)
    if shift < 0 or ids[shift:] != plain:  # tokenizer adds something we cannot place
        ids, shift = plain, 0
    ctx = [shift + i for i, (a, b) in enumerate(offsets) if a < end and b > start and b > a]
    if not ctx:
        return None
    input_ids = torch.tensor([ids], device=lm.device)
    out = lm.model(input_ids=input_ids, output_attentions=True)
    attentions = [a for a in (out.attentions or ()) if a is not None]
    if not attentions:
        return None
    index = torch.tensor(ctx, device=lm.device)
    per_layer = [a[0, :, -1, :].float().index_select(-1, index).sum(-1).mean() for a in attentions]
    return float(torch.stack(per_layer).mean())


def attention_to_context(
    lm, loaded: dict[str, Any], limit, max_items: int, apply_chat_template: bool | str = False
) -> dict[str, Any]:
    """Per-task and mean attention mass on the context (fractions), over ``max_items`` items.

    Returns ``{"attn_ctx": mean, "max_items": N, "tasks": {task: {"attn_ctx": x, "n": k}}}``.
    """
    import torch

    model = lm.model
    previous = _set_attn(model, "eager")
    chat = bool(apply_chat_template)
    per_task: dict[str, dict[str, Any]] = {}
    try:
        with torch.no_grad():
            for name, task in sorted(loaded["tasks"].items()):
                if task.get_config("output_type") != "generate_until":
                    continue
                values = [
                    v
                    for prompt, ctx in _context_items(task, limit, max_items, chat, lm)
                    if (v := _mass(lm, prompt, ctx)) is not None
                ]
                if values:
                    per_task[name] = {ATTENTION_COLUMN: sum(values) / len(values), "n": len(values)}
    finally:
        if previous and previous != "eager":
            _set_attn(model, previous)
    means = [v[ATTENTION_COLUMN] for v in per_task.values()]
    return {
        ATTENTION_COLUMN: sum(means) / len(means) if means else None,
        "max_items": max_items,
        "tasks": per_task,
    }
