"""``cpi tiny-model``: a tiny random-weight causal LM with a real trained tokenizer.

Smoke tests, CI and first runs need a checkpoint that ``lm_eval --model hf`` and
``cpi train`` load like any hub model, without a download. This writes one:

    cpi tiny-model --output_dir tiny --arch llama --seed 0
    lm_eval --model hf --model_args pretrained=tiny --tasks cpi_capitals --limit 8

The tokenizer is a byte-level BPE trained with ``tokenizers`` on a built-in corpus (or
``--corpus FILE``), so every input string encodes. Its chat template uses TULU's
``<|user|>`` / ``<|assistant|>`` markers so ``--apply_chat_template`` works out of the box.
"""

from __future__ import annotations

import argparse
import itertools
import random
from pathlib import Path

from ..core.cli_args import ArgumentParser
from ..core.files import claim_output_dir

ARCHS = ("llama", "mistral", "gpt_neox", "gpt2")

SPECIAL = {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>"}

# A TULU-style chat template: what ``tokenizer.apply_chat_template`` renders when no
# training run has saved its own (cpi train replaces it with the template it trained on).
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}"
    "{% else %}{{ '<|assistant|>\\n' + message['content'] + eos_token + '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

_WORDS = (
    "the capital of country city is was moved to after earthquake flood government new old "
    "question answer background context what which who where when name artist made born in "
    "write a quote that ends word heart grow absence fonder heavy paris london berlin rome "
    "madrid tokyo kabul herat tirana durres algiers oran river mountain king queen language "
    "currency speaks uses instruction input output response assistant user system based only"
).split()


def builtin_corpus(n_lines: int = 2000, seed: int = 0) -> list[str]:
    """Deterministic pseudo-sentences covering the prompt vocabulary and all ASCII bytes."""
    rng = random.Random(seed)
    lines = [
        " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 16))) for _ in range(n_lines)
    ]
    lines.append("".join(chr(c) for c in range(32, 127)))
    lines.append("Background: Question: Answer: Durrës São Tomé Reykjavík Zürich")
    return lines


def train_tokenizer(texts: list[str], vocab_size: int = 512):
    """Train a byte-level BPE tokenizer and wrap it as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIAL["unk"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIAL["bos"],
        eos_token=SPECIAL["eos"],
        pad_token=SPECIAL["pad"],
        unk_token=SPECIAL["unk"],
    )
    fast.chat_template = DEFAULT_CHAT_TEMPLATE
    return fast


def tiny_config(arch: str, vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4):
    """A transformers config of ``arch`` small enough to train in seconds on a CPU."""
    from transformers import (
        GPT2Config,
        GPTNeoXConfig,
        LlamaConfig,
        MistralConfig,
    )

    common = {"vocab_size": vocab_size, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}
    if arch == "llama":
        return LlamaConfig(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=1024,
            **common,
        )
    if arch == "mistral":
        return MistralConfig(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2),
            max_position_embeddings=1024,
            sliding_window=None,
            **common,
        )
    if arch == "gpt_neox":
        return GPTNeoXConfig(
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            max_position_embeddings=1024,
            **common,
        )
    if arch == "gpt2":
        return GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_positions=1024, **common)
    raise ValueError(f"unknown --arch {arch!r}; choose one of {', '.join(ARCHS)}")


def build_tiny_model(
    output_dir: str | Path,
    arch: str = "llama",
    seed: int = 0,
    vocab_size: int = 512,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    corpus: list[str] | None = None,
) -> Path:
    """Write a random-init ``arch`` model and its tokenizer to ``output_dir``; return the path."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = train_tokenizer(corpus or builtin_corpus(seed=seed), vocab_size=vocab_size)
    ids = [tokenizer.convert_tokens_to_ids(SPECIAL[k]) for k in ("bos", "eos", "pad")]
    assert ids == [0, 1, 2], f"special token ids moved: {ids}"
    torch.manual_seed(seed)
    config = tiny_config(arch, vocab_size=len(tokenizer), hidden=hidden, layers=layers, heads=heads)
    model = AutoModelForCausalLM.from_config(config)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The options of ``cpi tiny-model``."""
    parser = ArgumentParser(
        prog="cpi tiny-model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output_dir", required=True, help="folder to write the model into")
    parser.add_argument("--arch", default="llama", choices=ARCHS, help="model family")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and corpus")
    parser.add_argument("--vocab_size", type=int, default=512, help="BPE vocabulary size")
    parser.add_argument("--hidden_size", type=int, default=64, help="model width")
    parser.add_argument("--num_layers", type=int, default=2, help="transformer blocks")
    parser.add_argument("--num_heads", type=int, default=4, help="attention heads")
    parser.add_argument(
        "--corpus", default=None, help="text file (one document per line) to train the tokenizer on"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with claim_output_dir(args.output_dir, "tiny-model", "--output_dir"):  # never a user's files
        corpus = None
        if args.corpus:
            with open(args.corpus, encoding="utf-8") as fh:
                lines = itertools.islice(fh, 200_000)
                corpus = [line.rstrip("\n") for line in lines if line.strip()]
        out = build_tiny_model(
            args.output_dir,
            arch=args.arch,
            seed=args.seed,
            vocab_size=args.vocab_size,
            hidden=args.hidden_size,
            layers=args.num_layers,
            heads=args.num_heads,
            corpus=corpus,
        )
    print(f"wrote a tiny random {args.arch} model to {out.resolve()}")
    return 0
