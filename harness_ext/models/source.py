"""What is a model path: the one owner of turning ``--model X`` into ``from_pretrained`` arguments.

Every command that takes a model (train, sweep, eval, fingerprints) resolves it here, so a
folder, a GGUF file and a hub id mean the same everywhere and fail with the same message::

    resolve_model("runs/ift/checkpoint-200")        # folder: config.json (or a PEFT adapter)
    resolve_model("models/smollm2-135m-instruct-gguf")  # folder holding exactly one .gguf
    resolve_model("/x/SmolLM2-135M-Instruct.Q4_1.gguf")  # file: folder=parent, gguf_file=name
    resolve_model("HuggingFaceTB/SmolLM2-135M")     # hub id (no such local path; owner/name)

``resolve_model`` only looks at the file system (no torch import, no network), so it is cheap
enough for argument validation. ``load_model``/``load_tokenizer`` then call ``from_pretrained``
with the right keywords, and ``weights_files`` lists the files whose bytes make the model (for
content fingerprints). GGUF weights are dequantized to dense float tensors on load; see
``cpi models fetch`` (``fetch.py``) for converting them once into a fast-loading folder.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..core import model_files
from ..core.errors import CPIError, one_line
from ..core.files import fingerprint_files

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Kind = Literal["folder", "gguf", "hub"]

CONFIG_NAME = model_files.CONFIG
ADAPTER_CONFIG_NAME = model_files.ADAPTER_CONFIG

# owner/name as the hub spells it: letters, digits, '-', '_', '.'; no leading '-' or '.'.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_FETCH_HINT = "run `cpi models list` / `cpi models fetch` for a local copy of a known model"


class ModelSourceError(CPIError, ValueError):
    """A model spec that cannot be loaded; the message names the path and how to fix it.

    A ``ValueError`` for callers that validate arguments, and a ``CPIError`` so every ``cpi``
    command prints it as one line with exit status 2.
    """


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: what to pass to ``from_pretrained``.

    Attributes:
        path: absolute folder (kinds ``folder`` and ``gguf``) or the hub id as given (``hub``).
        gguf_file: the GGUF file's name inside ``path`` (kind ``gguf`` only).
        kind: ``folder`` (config.json or adapter_config.json), ``gguf`` or ``hub``.
    """

    path: str
    gguf_file: str | None = None
    kind: Kind = "folder"

    @property
    def local_dir(self) -> Path | None:
        """The folder on disk, or None for a hub id."""
        return None if self.kind == "hub" else Path(self.path)

    def __str__(self) -> str:
        return str(Path(self.path) / self.gguf_file) if self.gguf_file else self.path


def _looks_local(spec: str) -> bool:
    """True when ``spec`` can only be meant as a path (so a miss is a typo, not a hub id)."""
    return (
        spec.startswith(("/", "./", "../", "~", "."))
        or "\\" in spec
        or spec.endswith((".gguf", ".safetensors", ".json", ".bin"))
        or not _HUB_ID.match(spec)
    )


def _from_folder(folder: Path, spec: str) -> ModelSource:
    """Classify an existing folder; config.json wins over GGUF files next to it."""
    if (folder / CONFIG_NAME).is_file() or (folder / ADAPTER_CONFIG_NAME).is_file():
        return ModelSource(path=str(folder), kind="folder")
    ggufs = model_files.gguf_files(folder)
    if len(ggufs) == 1:
        return ModelSource(path=str(folder), gguf_file=ggufs[0], kind="gguf")
    if len(ggufs) > 1:
        raise ModelSourceError(
            f"model folder {folder} holds {len(ggufs)} .gguf files ({', '.join(ggufs)}); "
            f"pass the one to load as a file path, e.g. {folder / ggufs[0]}"
        )
    found = sorted(p.name for p in folder.iterdir())[:8]
    raise ModelSourceError(
        f"model folder {folder} (from {spec!r}) has no {CONFIG_NAME}, {ADAPTER_CONFIG_NAME} "
        f"or .gguf file (it holds: {', '.join(found) or 'nothing'}); point at the folder that "
        f"save_pretrained wrote, or {_FETCH_HINT}"
    )


def resolve_model(spec: str | Path, base_dir: Path | None = None) -> ModelSource:
    """Turn a user's model spec into a :class:`ModelSource`, touching only the file system.

    Args:
        spec: a model folder, a ``.gguf`` file, a folder holding exactly one ``.gguf``, or a
            hub id ``owner/name`` (taken as one only when no such local path exists).
        base_dir: folder that relative paths are resolved against (e.g. the folder of the
            config file that named the model). When given, the current directory is never
            consulted, so a run does not change meaning with the shell's ``cd``.

    Raises:
        ModelSourceError: the path does not exist, or is not a loadable model.
    """
    text = str(spec).strip()
    if not text:
        raise ModelSourceError("model spec is empty; give a model folder, .gguf file or hub id")
    path = Path(text).expanduser()
    anchor = Path(base_dir).expanduser() if base_dir is not None else Path.cwd()
    full = path if path.is_absolute() else anchor / path
    if full.is_dir():
        return _from_folder(full.resolve(), text)
    if full.is_file():
        if full.suffix.lower() == ".gguf":
            # Resolve the folder but keep the file's own name: a symlinked .gguf stays itself.
            return ModelSource(path=str(full.parent.resolve()), gguf_file=full.name, kind="gguf")
        raise ModelSourceError(
            f"model path {full} is a file but not a .gguf; pass the folder that holds "
            f"{CONFIG_NAME} (here {full.parent}) or a .gguf file"
        )
    first = Path(path.parts[0]) if path.parts else path
    first_exists = not path.is_absolute() and (anchor / first).exists()
    if not _looks_local(text) and not first_exists:
        return ModelSource(path=text, kind="hub")
    where = "" if path.is_absolute() else f" (resolved against {anchor})"
    raise ModelSourceError(
        f"model path {full} does not exist{where}; check the path, or {_FETCH_HINT}"
    )


def from_pretrained_kwargs(src: ModelSource) -> dict[str, Any]:
    """The keywords ``from_pretrained(src.path, **kw)`` needs beyond the path."""
    return {"gguf_file": src.gguf_file} if src.kind == "gguf" else {}


def _as_source(src: ModelSource | str | Path) -> ModelSource:
    return src if isinstance(src, ModelSource) else resolve_model(src)


def _gguf_installed() -> bool:
    return importlib.util.find_spec("gguf") is not None


def _require_gguf(src: ModelSource) -> None:
    """transformers needs the ``gguf`` package to read a GGUF; say so before it fails deep."""
    if src.kind == "gguf" and not _gguf_installed():
        raise ModelSourceError(
            f"model {src} is a GGUF file, and reading it needs the gguf package (pip install gguf)"
        )


def _detach_gguf_quantizer(model: PreTrainedModel) -> None:
    """Make a dequantized GGUF model a plain dense model.

    transformers keeps a GGUF "quantizer" on the model even after dequantizing every weight;
    with it, ``save_pretrained`` refuses ("not serializable") and trainers refuse to finetune
    ("purely quantized model"). The weights are ordinary float tensors, so drop it.
    """
    if getattr(model, "hf_quantizer", None) is None:
        return
    packed = [n for n, m in model.named_modules() if type(m).__name__.startswith("Gguf")]
    if packed:  # weights left in GGUF blocks (a kernels install asked for it): keep as is
        return
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)


def loading_problems(info: dict[str, Any]) -> str | None:
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


def load_model(
    src: ModelSource | str | Path, dtype: Any = "float32", **kwargs: Any
) -> PreTrainedModel:
    """``AutoModelForCausalLM.from_pretrained`` for any model spec: the one loader of
    ``cpi train``, ``cpi sweep`` and the curation scorer.

    ``dtype`` defaults to float32: GGUF weights dequantize to float anyway, CPU matmuls are
    fastest and reproducible in it, and logits then compare exactly across formats. GGUF
    files are always fully dequantized (never left packed), so the model trains and saves
    like any other. Weights that miss tensors the architecture needs, or hold tensors it does
    not have or of another shape, raise :class:`ModelSourceError` (transformers only logs
    that, and would leave random tensors). The model's ``name_or_path`` becomes the exact
    spec loaded (a GGUF's file, not its folder), so an adapter trained on it records that as
    its base. Extra ``kwargs`` go to ``from_pretrained``.
    """
    src = _as_source(src)
    _require_gguf(src)
    from transformers import AutoModelForCausalLM

    kw = {**from_pretrained_kwargs(src), **kwargs, "output_loading_info": True}
    if src.kind == "gguf" and "quantization_config" not in kw:
        from transformers import GgufConfig

        kw["quantization_config"] = GgufConfig(dequantize=True)
    try:
        model, info = AutoModelForCausalLM.from_pretrained(src.path, dtype=dtype, **kw)
    except OSError as err:
        if src.kind != "hub":
            raise
        raise ModelSourceError(
            f"could not load hub model {src.path!r} ({one_line(err)}); this machine "
            f"may have no hub access: {_FETCH_HINT} and pass its folder"
        ) from err
    problem = loading_problems(info)
    if problem:
        raise ModelSourceError(f"{src}: weights do not match the model ({problem}); re-save it")
    if src.kind == "gguf":
        _detach_gguf_quantizer(model)
    model.config._name_or_path = model.name_or_path = str(src)  # peft reads the attribute
    return model


def load_tokenizer(src: ModelSource | str | Path, **kwargs: Any) -> PreTrainedTokenizerBase:
    """``AutoTokenizer.from_pretrained`` for any model spec (GGUF: built from its metadata).

    A PEFT adapter folder without tokenizer files falls back to the adapter's base model.
    """
    src = _as_source(src)
    _require_gguf(src)
    from transformers import AutoTokenizer

    path = src.path
    folder = src.local_dir
    if src.kind == "folder" and folder is not None and model_files.is_adapter_only(folder):
        if not model_files.has_tokenizer(folder):
            path = str(_adapter_base(folder).path)
    try:
        return AutoTokenizer.from_pretrained(path, **{**from_pretrained_kwargs(src), **kwargs})
    except OSError as err:
        if src.kind != "hub":
            raise
        raise ModelSourceError(
            f"could not load the tokenizer of hub model {src.path!r}; {_FETCH_HINT}"
        ) from err


def _adapter_base(folder: Path) -> ModelSource:
    """The base model a PEFT adapter folder names (resolved like transformers does: cwd)."""
    config = json.loads((folder / ADAPTER_CONFIG_NAME).read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise ModelSourceError(
            f"adapter {folder / ADAPTER_CONFIG_NAME} names no base_model_name_or_path; "
            "save the adapter with its base model set"
        )
    return resolve_model(base)


def weights_files(src: ModelSource | str | Path) -> list[Path]:
    """The weight files whose bytes make the model that :func:`load_model` builds.

    Lists safetensors/bin shards (from the index when sharded), PEFT adapter weights (plus
    the base model's when the folder holds only an adapter), or the one GGUF file (names from
    harness_ext/core/model_files.py). A hub id has no local files and raises.
    """
    src = _as_source(src)
    folder = src.local_dir
    if folder is None:
        raise ModelSourceError(
            f"hub model {src.path!r} has no local weight files to list; {_FETCH_HINT}"
        )
    if src.kind == "gguf":
        return [folder / str(src.gguf_file)]
    try:
        listed = [p for p in model_files.weight_files(folder) if not p.name.endswith(".json")]
    except ValueError as err:
        raise ModelSourceError(f"model folder {folder}: {err}") from None
    missing = [f for f in listed if not f.is_file()]
    if model_files.is_adapter_only(folder):
        listed = weights_files(_adapter_base(folder)) + listed
    if missing or not listed:
        what = f"is missing {', '.join(str(m) for m in missing)}" if missing else "has no weights"
        raise ModelSourceError(
            f"model folder {folder} {what} (expected model.safetensors, sharded "
            "model-*.safetensors with their index, pytorch_model.bin or adapter_model.*)"
        )
    return listed


def model_fingerprint(spec: ModelSource | str | Path, weights_only: bool = False) -> str | None:
    """Content fingerprint of the model a spec loads: SHA-256 over the bytes of its files
    (harness_ext/core/model_files.py): weights, configs, tokenizer and chat template, custom
    code; with ``weights_only``, the weights and configs alone (a base model's identity). A
    GGUF is its one file, never the other files of its folder. None for a hub id (no local
    bytes; its id and revision stand in for it). Never names, sizes or times."""
    src = _as_source(spec)
    if src.kind == "hub":
        return None
    folder = Path(src.path)
    if src.kind == "gguf":
        files = [folder / str(src.gguf_file)]
    elif weights_only:
        files = [p for p in model_files.weight_files(folder) if p.is_file()]
        files += [folder / n for n in model_files.CONFIG_FILES if (folder / n).is_file()]
    else:
        files = model_files.model_files(folder)
    return fingerprint_files(files, folder) if files else None


def hub_commit(spec: ModelSource | str | Path, revision: str | None = None) -> str | None:
    """The commit of the hub-cache snapshot that ``from_pretrained(hub id, revision)`` read
    (what a download leaves, and what an offline load reads); None for a local model or a
    hub id not in the cache."""
    src = _as_source(spec)
    if src.kind != "hub":
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(src.path, CONFIG_NAME, revision=revision or "main")
    return Path(found).parent.name if isinstance(found, str) else None


def same_base_weights(spec: ModelSource | str | Path, recorded: str) -> bool:
    """Whether ``spec`` still holds the weights a run recorded as ``base_fingerprint``."""
    return model_fingerprint(spec, weights_only=True) == recorded
