"""Parsers for the values every ``cpi`` command accepts: comma lists, limits, positive numbers.

One owner, so ``--tasks a,,b``, ``--limit 0`` or ``--lr nan`` mean the same (and fail the same
way) in every command.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from .errors import CPIError


def split_list(text: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; a list passes through stripped; duplicates dropped,
    order kept."""
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    return list(dict.fromkeys(t.strip() for t in items if str(t).strip()))


def parse_key_values(value: Any) -> dict[str, Any]:
    """lm-eval's ``--model_args`` / ``--gen_kwargs`` text ``"k=v,k=v"`` as a dict, values
    as lm-eval types them (``True``/``False``/``None``, JSON numbers, else the text); a dict
    passes through, anything else is ``{}``."""
    if isinstance(value, dict):
        return dict(value)
    if not value or not isinstance(value, str):
        return {}
    words = {"True": True, "False": False, "None": None}
    out: dict[str, Any] = {}
    for part in value.split(","):
        key, sep, raw = part.partition("=")
        if not sep:
            continue
        raw = raw.strip()
        try:
            out[key.strip()] = words[raw] if raw in words else json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def parse_limit(text: str | float | int | None, flag: str = "--limit") -> int | float | None:
    """lm-eval's ``--limit``: a count of items (>= 1) or a fraction in (0, 1)."""
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise CPIError(
            f"{flag} {text!r} is not a number (give a count of items, or a fraction < 1)"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise CPIError(f"{flag} {text!r} must be > 0 (a count of items, or a fraction < 1)")
    if value >= 1 and not value.is_integer():
        raise CPIError(f"{flag} {text!r}: a count of items must be a whole number")
    return int(value) if value >= 1 else value


def positive_number(value: float | int | None, flag: str, allow_zero: bool = False) -> None:
    """Raise :class:`CPIError` unless ``value`` is a finite number > 0 (>= 0 with
    ``allow_zero``); None passes (the option is unset)."""
    if value is None:
        return
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    if not bad:
        bad = not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero)
    if bad:
        need = ">= 0" if allow_zero else "> 0"
        raise CPIError(f"{flag} {value!r} is invalid (give a finite number {need})")


class OneLineErrors:
    """Mix into any argparse parser (argparse's own, TRL's, transformers'): a usage error
    raises :class:`CPIError` instead of printing the usage block and exiting, so every ``cpi``
    command reports bad flags in the same one line, ``cpi <command>: error: <what> (see cpi
    <command> --help)``, with exit status 2."""

    prog: str

    def error(self, message: str):  # type: ignore[override]
        raise CPIError(f"{message} (see {self.prog} --help)")


class ArgumentParser(OneLineErrors, argparse.ArgumentParser):
    """argparse with :class:`OneLineErrors`."""
