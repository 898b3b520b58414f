"""Pretrain the demo's base model: a tiny Llama that memorises the synthetic world's facts.

The inversion is about a conflict between the context and parametric knowledge, so the base
model must know the facts first. This trains a tiny Llama from a random init on the world's
fact sentences (and reading passages) with the transformers ``Trainer`` until it recalls at
least ``recall_target`` of the known facts, and saves it as an ordinary HF checkpoint
(``lm_eval --model hf`` loads it). The result is cached by a hash of the world and this
config, so a second ``cpi demo`` skips pretraining.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..harness_ext.core.files import read_json
from .environment import environment
from .world import RELATIONS, World, config_hash

DONE_MARKER = "pretrain.json"


@dataclass(frozen=True)
class PretrainConfig:
    """Model size and optimisation of the base model (every field is part of the cache key)."""

    hidden_size: int = field(default=128, metadata={"help": "model width"})
    num_layers: int = field(default=1, metadata={"help": "transformer blocks"})
    num_heads: int = field(default=1, metadata={"help": "attention heads"})
    learning_rate: float = field(default=2e-3, metadata={"help": "AdamW learning rate"})
    batch_size: int = field(default=64, metadata={"help": "sentences per step"})
    max_steps: int = field(default=4000, metadata={"help": "give up after this many steps"})
    check_every: int = field(default=250, metadata={"help": "steps between recall checks"})
    # Every fact recalled (not 95%): a firmer memory is what makes the C+S points pull
    # toward it after the rise, in every seed (the theory's memorised-value norm;
    # docs/demo.md, "Why these defaults").
    recall_target: float = field(default=1.0, metadata={"help": "stop at this fact recall"})
    seed: int = field(default=0, metadata={"help": "seed of the initialisation and batches"})
    eos_after_answer: bool = field(
        default=True,
        metadata={
            "help": "end every pretraining line with its answer and the EOS token, so the base "
            "model already stops after an answer (IFT targets end in EOS; otherwise the EOS "
            "loss, about 15 nats, dominates the early IFT gradient)"
        },
    )


def _tokenizer_corpus(world: World, lines: list[str]) -> list[str]:
    # QA-layout rows from the facts, not the IFT mixture: the base model must not depend on
    # the mixture (its cache key is World.pretraining_config()).
    qa = [
        f"Background: {r['input']}\nQuestion: {r['instruction']}\nAnswer: {r['output']}"
        for r in world.layout_rows(500)
    ]
    return lines + qa + [q for q, _ in RELATIONS.values()]


def encode_lines(lines: list[str], tokenizer, eos_after_answer: bool) -> dict[str, list]:
    """Tokenize pretraining lines; with ``eos_after_answer`` each line loses its final period
    and ends with the EOS token, so the answer word that ends a fact is followed by EOS, as
    in the IFT targets."""
    if not eos_after_answer:
        return dict(tokenizer(lines))
    enc = tokenizer([t.rstrip(".") for t in lines])
    return {
        "input_ids": [ids + [tokenizer.eos_token_id] for ids in enc["input_ids"]],
        "attention_mask": [m + [1] for m in enc["attention_mask"]],
    }


@torch.no_grad()
def fact_recall(model, tokenizer, world: World, batch: int = 256) -> float:
    """Fraction of known facts whose answer tokens are all the greedy (argmax) next tokens
    after the fact's statement prefix, i.e. what greedy generation would say."""
    model.eval()
    pairs = world.recall_prompts()
    correct = 0
    for i in range(0, len(pairs), batch):
        chunk = pairs[i : i + batch]
        texts = [f"{p} {a}" for p, a in chunk]
        prefix_lens = [len(tokenizer(p)["input_ids"]) for p, _ in chunk]
        enc = tokenizer(texts, return_tensors="pt", padding=True)
        pred = model(**enc).logits.argmax(-1)
        for j, n_prefix in enumerate(prefix_lens):
            length = int(enc["attention_mask"][j].sum())
            target = enc["input_ids"][j, n_prefix:length]
            guess = pred[j, n_prefix - 1 : length - 1]
            correct += bool(torch.equal(target, guess))
    model.train()
    return correct / len(pairs)


def _fresh_model_and_data(world: World, cfg: PretrainConfig):
    """A randomly initialised tiny Llama, its word-level tokenizer and the encoded corpus."""
    import datasets
    from transformers import AutoModelForCausalLM

    from ..harness_ext.models.tiny import tiny_config, train_tokenizer

    torch.manual_seed(cfg.seed)
    lines = world.pretraining_lines()
    tokenizer = train_tokenizer(_tokenizer_corpus(world, lines), vocab_size=1024)
    tokenizer.padding_side = "right"
    model = AutoModelForCausalLM.from_config(
        tiny_config(
            "llama",
            vocab_size=len(tokenizer),
            hidden=cfg.hidden_size,
            layers=cfg.num_layers,
            heads=cfg.num_heads,
        )
    )
    encoded = datasets.Dataset.from_dict({"text": lines}).map(
        lambda batch: encode_lines(batch["text"], tokenizer, cfg.eos_after_answer),
        batched=True,
        remove_columns=["text"],
    )
    return model, tokenizer, encoded, len(lines)


def _stop_at_recall(world: World, cfg: PretrainConfig, tokenizer, log):
    """A callback that measures fact recall every ``check_every`` steps and stops training
    once it reaches ``recall_target``."""
    from transformers import TrainerCallback

    class StopAtRecall(TrainerCallback):
        recall = 0.0

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % cfg.check_every == 0:
                self.recall = fact_recall(kwargs["model"], tokenizer, world)
                log(f"  pretraining step {state.global_step}: fact recall {self.recall:.3f}")
                if self.recall >= cfg.recall_target:
                    control.should_training_stop = True
            return control

    return StopAtRecall()


def _trainer(model, tokenizer, encoded, cfg: PretrainConfig, tmp: Path, callback):
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=50,
        weight_decay=0.0,
        logging_steps=10**9,
        save_strategy="no",
        report_to=[],
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    return Trainer(
        model=model,
        args=args,
        train_dataset=encoded,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        callbacks=[callback],
    )


def base_model_dir(world: World, cfg: PretrainConfig, cache_root: Path) -> Path:
    """The cache folder of the base model of ``world`` and ``cfg``, made under this environment
    (environment.py): other library versions or code pretrain another model."""
    return cache_root / f"base-{config_hash(world.pretraining_config(), cfg, environment())}"


def cached_base_model(world: World, cfg: PretrainConfig, cache_root: Path) -> float | None:
    """The cached base model's fact recall, or None when it is not (completely) cached."""
    marker = base_model_dir(world, cfg, cache_root) / DONE_MARKER
    return read_json(marker, "base model marker")["recall"] if marker.is_file() else None


def pretrain_base_model(
    world: World, cfg: PretrainConfig, cache_root: Path, log=print
) -> tuple[Path, float]:
    """Return (model folder, recall); train it unless the cache already holds it.

    The folder is written under a ``.partial`` name and renamed when complete, so an
    interrupted pretraining never passes for a finished one."""
    out = base_model_dir(world, cfg, cache_root)
    recall = cached_base_model(world, cfg, cache_root)
    if recall is not None:
        log(f"base model: cached at {out} (fact recall {recall:.3f})")
        return out, recall
    torch.set_flush_denormal(True)  # subnormal floats make CPU training ~4x slower
    model, tokenizer, encoded, n_lines = _fresh_model_and_data(world, cfg)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    trainer = _trainer(
        model, tokenizer, encoded, cfg, tmp, _stop_at_recall(world, cfg, tokenizer, log)
    )
    log(
        f"base model: pretraining a {cfg.num_layers}-layer Llama on {n_lines} sentences "
        f"until fact recall >= {cfg.recall_target}"
    )
    trainer.train()
    recall = fact_recall(model, tokenizer, world)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    done = {"recall": recall, "steps": trainer.state.global_step}
    (tmp / DONE_MARKER).write_text(
        json.dumps({**done, "world": world.pretraining_config(), "pretrain": asdict(cfg)})
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log(f"base model: fact recall {recall:.3f} after {trainer.state.global_step} steps -> {out}")
    return out, recall
