"""``--load_in_4bit`` / ``--load_in_8bit`` (TRL's ModelConfig): a bitsandbytes-quantised base
under LoRA adapters (QLoRA), wired as TRL's scripts do, or refused in one line.

TRL's ``get_quantization_config`` builds the ``BitsAndBytesConfig`` from the ModelConfig
options (``--bnb_4bit_quant_type``, ``--use_bnb_nested_quant``, ``--bnb_4bit_quant_storage``,
compute dtype = ``--dtype``); the model is loaded with it on this process's GPU (device map
``{"": local process index}``, what TRL's ``get_kbit_device_map`` returned). bitsandbytes
quantises on CUDA only, and quantised weights train only through adapters: anything else is a
:class:`CPIError` before any data or model work, never a silent full-precision run.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from ..harness_ext.core.errors import CPIError


def requested_bits(model_args: Any) -> int | None:
    """4, 8, or None when no quantisation was asked for."""
    if getattr(model_args, "load_in_4bit", False):
        return 4
    if getattr(model_args, "load_in_8bit", False):
        return 8
    return None


def platform_problem() -> str | None:
    """Why bitsandbytes cannot quantise here (no CUDA device, no bitsandbytes), or None."""
    import torch

    missing = []
    if not torch.cuda.is_available():
        missing.append("no CUDA device")
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("bitsandbytes is not installed")
    return "; ".join(missing) or None


def check_quantization(finetune: str, model_kind: str, model_args: Any) -> None:
    """Refuse --load_in_4bit/8bit where it cannot do what it says (see the module doc)."""
    bits = requested_bits(model_args)
    if bits is None:
        return
    flag = f"--load_in_{bits}bit"
    if finetune != "lora":
        raise CPIError(
            f"{flag} with --finetune {finetune}: quantised weights train only through "
            "adapters (QLoRA); use --finetune lora, or drop the flag"
        )
    if model_kind == "gguf":
        raise CPIError(
            f"{flag}: the model is a GGUF file, which is dequantized on load; bitsandbytes "
            "quantises safetensors models (drop the flag, or give a model folder)"
        )
    problem = platform_problem()
    if problem:
        raise CPIError(
            f"{flag} needs bitsandbytes on a CUDA GPU, and here {problem} (drop the flag for "
            "a full-precision run, or run on a GPU with pip install bitsandbytes)"
        )


def quantization_kwargs(model_args: Any) -> dict[str, Any]:
    """The ``from_pretrained`` keywords of the requested quantisation ({} for none)."""
    from trl import get_quantization_config

    config = get_quantization_config(model_args)
    if config is None:
        return {}
    from accelerate import PartialState

    return {"quantization_config": config, "device_map": {"": PartialState().local_process_index}}


def quantization_record(model_args: Any) -> dict[str, Any] | None:
    """What cpi_run.json records of the quantisation (None: full precision)."""
    bits = requested_bits(model_args)
    if bits is None:
        return None
    record: dict[str, Any] = {"method": "bitsandbytes", "bits": bits}
    if bits == 4:
        record |= {
            "quant_type": model_args.bnb_4bit_quant_type,
            "double_quant": bool(model_args.use_bnb_nested_quant),
            "compute_dtype": model_args.dtype,
            "quant_storage": model_args.bnb_4bit_quant_storage,
        }
    return record
