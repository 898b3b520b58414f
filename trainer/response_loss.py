"""Response loss of the base model, for the ``context_critical`` curation.

An example is *context-critical* when the base model cannot produce its response without the
context: its response loss without the context is high. The curation scores every example
that has a context with the context removed, and drops the lowest-loss ones.

Scores are mean negative log-likelihood per response token (nats/token), computed in batches
with the model loaded once, and cached on disk as JSON: one file per (model, template,
max_length) with one entry per example, keyed by a hash of the exact messages scored. A rerun,
or a run on a subset or superset of the same data, scores only what is not cached yet.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from ..harness_ext.core.files import atomic_write_json, cache_dir
from .templates import Template

CACHE_VERSION = 2  # 2: keyed by model content (1: path, sizes and mtimes)


def default_cache_dir() -> Path:
    """``$CPI_CACHE_DIR/context_critical`` (core/files.cache_dir; shared across runs)."""
    return cache_dir("context_critical")


def scorer_identity(model_name_or_path: str, revision: str = "main") -> dict[str, Any]:
    """What identifies the scoring model: the content fingerprint of the files it loads
    (models/source.py; a GGUF is its own file, never its folder's other files), or a hub id
    and revision. Content, not stamps: a model re-saved with other weights but the same sizes
    never serves another model's cached scores."""
    from ..harness_ext.models.source import model_fingerprint as content
    from ..harness_ext.models.source import resolve_model

    src = resolve_model(model_name_or_path)
    if src.kind == "hub":
        return {"hub_id": model_name_or_path, "revision": revision}
    return {"content": content(src)}


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def conversation_key(messages: list[dict[str, str]]) -> str:
    """Cache key of one scored example: a hash of its exact messages."""
    return _sha(messages)[:32]


class ResponseLossScorer:
    """Scores conversations (role/content messages ending in the assistant response).

    ``n_scored`` counts the examples run through the model (not served from the cache), so a
    caller or a test can check that a rerun did not rescore.
    """

    def __init__(
        self,
        model_name_or_path: str,
        template: Template,
        *,
        revision: str = "main",
        batch_size: int = 8,
        max_length: int | None = 1024,
        cache_dir: str | os.PathLike | None = None,
        trust_remote_code: bool = False,
        dtype: str | None = "float32",
        show_progress: bool = True,
    ) -> None:
        self.model_name_or_path = model_name_or_path
        self.template = template
        self.revision = revision
        self.batch_size = batch_size
        self.max_length = max_length
        self.trust_remote_code = trust_remote_code
        self.dtype = dtype
        self.show_progress = show_progress
        key = _sha(
            {
                "v": CACHE_VERSION,
                "model": scorer_identity(model_name_or_path, revision),
                "template": template.name,
                "chat_template": template.chat_template,
                "max_length": max_length,
            }
        )[:24]
        self.cache_path = Path(cache_dir or default_cache_dir()) / f"scores-{key}.json"
        self.n_scored = 0

    def _load_cache(self) -> dict[str, float]:
        if not self.cache_path.is_file():
            return {}
        try:
            return json.loads(self.cache_path.read_text(encoding="utf-8"))["scores"]
        except (OSError, ValueError, KeyError):
            return {}  # a corrupt cache is rebuilt, never trusted

    def __call__(self, conversations: list[list[dict[str, str]]]) -> list[float]:
        keys = [conversation_key(c) for c in conversations]
        cache = self._load_cache()
        todo = sorted(
            {k: i for i, k in enumerate(keys) if k not in cache}.items(), key=lambda kv: kv[1]
        )
        if todo:
            losses = self._score([conversations[i] for _, i in todo])
            cache.update({k: loss for (k, _), loss in zip(todo, losses, strict=True)})
            self.n_scored += len(todo)
            atomic_write_json(
                self.cache_path,
                {
                    "model_name_or_path": self.model_name_or_path,
                    "template": self.template.name,
                    "unit": "mean NLL per response token (nats)",
                    "scores": cache,
                },
            )
        return [float(cache[k]) for k in keys]

    def _score(self, conversations: list[list[dict[str, str]]]) -> list[float]:
        """Mean response NLL per conversation; +inf when truncation leaves no response token
        (such an example counts as context-critical and is kept)."""
        import torch
        from tqdm.auto import tqdm

        from ..harness_ext.models.source import load_model, load_tokenizer

        # harness_ext.models.source: a folder, a .gguf file or a hub id, as cpi train loads it
        common = {"revision": self.revision, "trust_remote_code": self.trust_remote_code}
        tokenizer = load_tokenizer(self.model_name_or_path, **common)
        encoded = []
        for messages in conversations:
            out = tokenizer.apply_chat_template(
                messages,
                chat_template=self.template.chat_template,
                tokenize=True,
                return_dict=True,
                return_assistant_tokens_mask=True,
            )
            ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
            if self.max_length is not None:
                ids, mask = ids[: self.max_length], mask[: self.max_length]
            encoded.append((ids, mask))

        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = getattr(torch, self.dtype) if self.dtype and self.dtype != "auto" else "auto"
        model = load_model(self.model_name_or_path, dtype=dtype, **common).to(device).eval()

        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))  # less padding
        losses: list[float] = [math.inf] * len(encoded)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for batch in tqdm(
            batches,
            desc="context_critical: scoring without context",
            disable=not self.show_progress,
        ):
            width = max(len(encoded[i][0]) for i in batch)
            ids = torch.zeros(len(batch), width, dtype=torch.long)
            attn = torch.zeros(len(batch), width, dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            for row, i in enumerate(batch):
                tok, mask = encoded[i]
                ids[row, : len(tok)] = torch.tensor(tok)
                attn[row, : len(tok)] = 1
                labels[row, : len(tok)] = torch.tensor(
                    [t if m else -100 for t, m in zip(tok, mask, strict=True)]
                )
            with torch.inference_mode():
                logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits
                logits = logits[:, :-1].float()
                target = labels[:, 1:].to(device)
                nll = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.size(-1)),
                    target.reshape(-1),
                    ignore_index=-100,
                    reduction="none",
                ).view(target.shape)
                counts = (target != -100).sum(dim=1)
                sums = nll.sum(dim=1)
            for row, i in enumerate(batch):
                n = int(counts[row])
                losses[i] = float(sums[row]) / n if n else math.inf
        del model
        return losses
