"""Every kind of model spec ``cpi train`` and ``cpi sweep`` accept, built from a tiny model
folder without a download: a ``.gguf`` file (also in a folder shared with other GGUFs) and a
hub id served from a local hub cache (``HF_HUB_CACHE`` + ``HF_HUB_OFFLINE=1``).

    folder = build_tiny_model(tmp / "tiny")
    write_tiny_gguf(folder, tmp / "models" / "tiny.gguf")      # llama only
    cache = install_in_hub_cache(folder, "cpi-test/tiny", tmp / "hub")

The GGUF holds the folder's float32 tensors under llama.cpp's names (q/k rows permuted as
llama.cpp's converter does, which transformers undoes on load) and its byte-level BPE
tokenizer as a ``gpt2`` vocabulary with merges: loading it gives the same logits as the
folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

# transformers' Llama tensor names -> llama.cpp's (inside ``model.layers.N.``)
_LAYER_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}
_TOP_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def _permute(weight, heads: int):
    """llama.cpp's q/k row order (interleaved rotary halves)."""
    shape = weight.shape
    return (
        weight.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
    )


def _gguf_name(key: str, weight, config: dict):
    """(llama.cpp tensor name, tensor) for one transformers Llama tensor."""
    if key in _TOP_NAMES:
        return _TOP_NAMES[key], weight
    parts = key.split(".")  # model.layers.N.<module...>.weight
    module = ".".join(parts[3:-1])
    if module == "self_attn.q_proj":
        weight = _permute(weight, config["num_attention_heads"])
    elif module == "self_attn.k_proj":
        weight = _permute(weight, config["num_key_value_heads"])
    return f"blk.{parts[2]}.{_LAYER_NAMES[module]}.weight", weight


def _write_tokenizer(writer, folder: Path) -> None:
    tok = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tokens = [t for t, _ in sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])]
    special = {t["id"] for t in tok.get("added_tokens", []) if t.get("special")}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if i in special else 1 for i in range(len(tokens))])
    merges = tok["model"]["merges"]
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    writer.add_pad_token_id(2)
    template = folder / "chat_template.jinja"
    if template.is_file():
        writer.add_chat_template(template.read_text(encoding="utf-8"))


def write_tiny_gguf(folder: str | Path, path: str | Path) -> Path:
    """Write the tiny llama model of ``folder`` (``cpi tiny-model --arch llama``) as an F32
    GGUF file at ``path``; returns the path. Needs the ``gguf`` package."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    folder, path = Path(folder), Path(path)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(float(config.get("rope_theta") or 10000.0))
    _write_tokenizer(writer, folder)
    for key, weight in sorted(load_file(folder / "model.safetensors").items()):
        name, weight = _gguf_name(key, weight, config)
        writer.add_tensor(name, np.ascontiguousarray(weight.astype(np.float32)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def install_in_hub_cache(folder: str | Path, repo_id: str, cache_dir: str | Path) -> Path:
    """Copy a model folder into a hub cache as ``repo_id`` at revision ``main`` (what a
    download leaves), so ``from_pretrained(repo_id)`` loads it with ``HF_HUB_CACHE=cache_dir``
    and ``HF_HUB_OFFLINE=1``. Returns the snapshot folder."""
    folder, cache_dir = Path(folder), Path(cache_dir)
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(f.name.encode() + f.read_bytes())
    commit = digest.hexdigest()[:40]
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for f in folder.iterdir():
        if f.is_file() and not f.name.startswith("."):
            shutil.copy2(f, snapshot / f.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot
