"""What a model's files are: the one list of the files that make a model folder, and when they
are complete (readable, not only present).

Every loader check, content fingerprint, completeness check and guard reads these names, so
"has a tokenizer", "what decides the outputs" and "a checkpoint is complete" mean the same in
``cpi train``, ``cpi sweep``, the training callback and the reports:

* weights: ``model.safetensors`` or ``pytorch_model.bin`` (or their shards, listed by a
  ``*.index.json``), a peft adapter's ``adapter_model.safetensors`` / ``.bin``, or one
  ``.gguf`` file (which carries its tokenizer and chat template inside);
* configs: ``config.json``, ``adapter_config.json``, ``generation_config.json``;
* tokenizer: any vocabulary file (``tokenizer.json``, ``tokenizer.model``, ``spiece.model``,
  ``sentencepiece.bpe.model``, ``vocab.json`` (+ ``merges.txt``), ``vocab.txt``) and the files
  that configure it (``tokenizer_config.json``, ``special_tokens_map.json``,
  ``added_tokens.json``);
* chat template: ``chat_template.jinja``, ``chat_template.json`` and
  ``additional_chat_templates/*.jinja``;
* custom modelling code (``*.py`` next to the weights, loaded with ``trust_remote_code``).

Optimizer, scheduler and RNG states are not model files: they never change an output, and a
checkpoint's fingerprint does not hash their gigabytes.

A checkpoint is *complete* when it has its config and every weight file it lists is whole: a
safetensors file holds every byte its header promises, a torch zip archive's directory (at its
end) reads; a save killed midway leaves it incomplete. Weights that are not what their format
says (a header that does not parse, bytes beyond what it promises) are *damaged*: loading
fails on them, naming the file. A checkpoint is *resumable* when it is complete, not damaged,
its config parses, and ``trainer_state.json`` (the last file the HF Trainer writes) is
present and parses.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

from .constants import ADAPTER_CONFIG

CONFIG = "config.json"
GENERATION_CONFIG = "generation_config.json"
CONFIG_FILES = (CONFIG, ADAPTER_CONFIG, GENERATION_CONFIG)
# (index of shards, single file), in the order transformers prefers them.
MODEL_WEIGHTS = (
    ("model.safetensors.index.json", "model.safetensors"),
    ("pytorch_model.bin.index.json", "pytorch_model.bin"),
)
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
GGUF_SUFFIX = ".gguf"
# Any one of these is a vocabulary: a folder holding one has a tokenizer.
VOCABULARY_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.json",
    "vocab.txt",
)
TOKENIZER_FILES = (
    *VOCABULARY_FILES,
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
CHAT_TEMPLATE_DIR = "additional_chat_templates"
TRAINER_STATE = "trainer_state.json"


def is_adapter_only(folder: Path) -> bool:
    """A peft adapter folder: adapter_config.json and no config.json of a whole model."""
    return (folder / ADAPTER_CONFIG).is_file() and not (folder / CONFIG).is_file()


def gguf_files(folder: Path) -> list[str]:
    """Names of the ``.gguf`` files directly in ``folder``, sorted."""
    return sorted(p.name for p in folder.glob(f"*{GGUF_SUFFIX}") if p.is_file())


def has_tokenizer(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a vocabulary file (what a tokenizer is built from)."""
    return any((Path(folder) / name).is_file() for name in VOCABULARY_FILES)


def tokenizer_files(folder: Path) -> list[Path]:
    """The tokenizer and chat template files present in ``folder``."""
    found = [folder / n for n in (*TOKENIZER_FILES, *CHAT_TEMPLATE_FILES) if (folder / n).is_file()]
    extra = folder / CHAT_TEMPLATE_DIR
    if extra.is_dir():
        found += sorted(p for p in extra.glob("*.jinja") if p.is_file())
    return found


def _index_shards(index: Path) -> list[Path]:
    """The shard files a ``*.index.json`` lists (its weight_map's values)."""
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"unreadable {index.name} ({err})") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index.name} has no weight_map")
    return [index.parent / name for name in sorted(set(map(str, weight_map.values())))]


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a model or adapter folder, listed (they may be missing): the shards
    of the first index found, else the single file, plus the adapter's weights. Raises
    ValueError when an index is unreadable."""
    files: list[Path] = []
    for index_name, single in MODEL_WEIGHTS:
        if (folder / index_name).is_file():
            files = _index_shards(folder / index_name)
            break
        if (folder / single).is_file():
            files = [folder / single]
            break
    adapters = [folder / n for n in ADAPTER_WEIGHTS if (folder / n).is_file()]
    return files + adapters[:1]


def model_files(folder: Path) -> list[Path]:
    """Every file of ``folder`` that decides a model's outputs (see the module docstring):
    weights, configs, tokenizer, chat template, custom code. Only files that exist."""
    files = [p for p in weight_files(folder) if p.is_file()]
    files += [folder / n for n in CONFIG_FILES if (folder / n).is_file()]
    files += tokenizer_files(folder)
    files += sorted(p for p in folder.glob("*.py") if p.is_file())
    return files


# ----------------------------------------------------------------------------- readability


SAFETENSORS_MAX_HEADER = 100_000_000  # bytes: the safetensors format's own limit

# A problem is (cut_short, text): cut short is what a save killed midway leaves (a missing
# file, fewer bytes than the header promises); anything else unreadable is damage.
Problem = tuple[bool, str]


def safetensors_problem(path: Path) -> Problem | None:
    """Why ``path`` is not a complete safetensors file, or None: the 8-byte header length,
    the JSON header, and the last tensor's end offset must account for every byte."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return True, f"{path.name} is truncated ({size} bytes)"
            (n,) = struct.unpack("<Q", head)
            if n > SAFETENSORS_MAX_HEADER:
                return False, f"{path.name} is not a safetensors file (no valid header)"
            if n > size - 8:
                return True, f"{path.name} is truncated (a {n}-byte header in {size} bytes)"
            header = json.loads(fh.read(n).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, struct.error) as err:
        return False, f"{path.name} is not a readable safetensors file ({type(err).__name__})"
    if not isinstance(header, dict):
        return False, f"{path.name} has no safetensors header"
    ends = [
        int(v["data_offsets"][1])
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and len(v.get("data_offsets") or ()) == 2
    ]
    want = 8 + n + max(ends, default=0)
    if size < want:
        return True, f"{path.name} is truncated ({size} bytes, its header says {want})"
    if size > want:
        return False, f"{path.name} is longer than its header says ({size} bytes, not {want})"
    return None


def torch_file_problem(path: Path) -> Problem | None:
    """Why a torch ``.bin`` is unreadable (a zip archive whose directory, at its end, a
    truncated file lacks), or None. Pre-1.6 pickles (not zips) are only checked non-empty."""
    try:
        if path.stat().st_size == 0:
            return True, f"{path.name} is empty"
        with path.open("rb") as fh:
            is_zip_start = fh.read(4) == b"PK\x03\x04"
        if is_zip_start:
            with zipfile.ZipFile(path) as archive:
                archive.infolist()
    except (OSError, zipfile.BadZipFile) as err:
        return True, f"{path.name} is not a readable torch file ({type(err).__name__}: truncated?)"
    return None


def file_problem(path: Path) -> Problem | None:
    """Why one weight file is missing or unreadable, or None."""
    if not path.is_file():
        return True, f"missing {path.name}"
    if path.suffix == ".safetensors":
        return safetensors_problem(path)
    if path.suffix in (".bin", ".pt", ".pth"):
        return torch_file_problem(path)
    return None


def json_problem(path: Path) -> str | None:
    """Why a model's JSON file (``config.json``, ``adapter_config.json``) is unusable: not
    readable JSON (where), or not an object; None when it is fine."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        return f"{path.name} is not readable JSON ({err.msg} at line {err.lineno})"
    except (OSError, UnicodeDecodeError) as err:
        return f"{path.name} is not readable JSON ({type(err).__name__})"
    return None if isinstance(data, dict) else f"{path.name} is not a JSON object"


def folder_problem(folder: Path, damaged: bool = False) -> str | None:
    """Why a model or adapter folder is incomplete: no config, missing weights or weights cut
    short (a save killed midway), or None. With ``damaged``, also an unreadable config or
    weights that are not what their format says (which loading would fail on, naming them)."""
    config = folder / (ADAPTER_CONFIG if is_adapter_only(folder) else CONFIG)
    if not config.is_file():
        return f"no {CONFIG}"
    problem = json_problem(config) if damaged else None
    if problem:
        return problem
    try:
        files = weight_files(folder)
    except ValueError as err:
        return str(err)
    if is_adapter_only(folder) and not any(p.name in ADAPTER_WEIGHTS for p in files):
        return f"{ADAPTER_CONFIG} but no {' or '.join(ADAPTER_WEIGHTS)}"
    if not files:
        return "no weight file (model.safetensors, pytorch_model.bin or a sharded index)"
    found = [p for p in map(file_problem, files) if p and (p[0] or damaged)]
    return "; ".join(text for _, text in found[:3]) or None


def resume_problem(folder: Path) -> str | None:
    """Why training cannot resume from a ``checkpoint-N`` folder: it is incomplete or damaged
    (see :func:`folder_problem`), or its ``trainer_state.json`` (written last by the Trainer)
    is missing or unreadable."""
    problem = folder_problem(folder, damaged=True)
    if problem:
        return problem
    state = folder / TRAINER_STATE
    if not state.is_file():
        return f"no {TRAINER_STATE} (its save was cut short)"
    return json_problem(state)
