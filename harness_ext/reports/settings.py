"""The settings that change a number, and the check that two results were made under the same.

A difference in cf_acc between two results files is the models' only when everything else
that decides the number is equal. This module is the one owner of that list
(:data:`SETTINGS`): ``cpi gate`` and ``cpi compare`` read every setting of every compared task
from the results JSON (lm-eval's own keys first, the ``cpi`` block's provenance where lm-eval
records nothing) and refuse a difference (exit 2) unless it is accepted on purpose with
``--allow-settings-mismatch NAMES`` (or ``all``); accepted differences are flagged in the
output and in ``--json``.

Each setting, where it is read from, and why it changes a number:

* ``task_version``: ``versions[task]``, else ``cpi.provenance.tasks[task].version`` (a prompt
  or scoring change).
* ``num_fewshot``: ``n-shot[task]``, else the provenance's ``num_fewshot`` (other examples in
  the prompt).
* ``chat_template``: ``cpi.settings.apply_chat_template``, ``config.apply_chat_template``, or
  whether ``chat_template_sha`` is set, as ``on`` / ``off`` (another prompt format).
* ``fewshot_as_multiturn``: lm-eval's top-level ``fewshot_as_multiturn`` (prompt format).
* ``system_instruction``: ``system_instruction_sha`` (``none`` when unset; another prompt).
* ``generation_kwargs``: ``configs[task].generation_kwargs`` merged with
  ``config.gen_kwargs``, else the provenance's (other decoding: sampling, length, stops).
* ``items``: ``n-samples[task].effective``, else ``sample_len`` (other items: ``--limit``).
* ``limit``: ``config.limit``, else ``cpi.settings.limit``; compared only where ``items`` is
  unknown on a side (a YAML baseline states a limit, not item counts).
* ``data``: the provenance's SHA-256 of each data file the task read (other items).

A setting one side does not record is not compared (an older file, a hand-written YAML
baseline that omits it). Which chat template text a model carries is part of the model
(its fingerprint), not a setting: only whether one was applied is compared.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.cli_args import parse_key_values, split_list
from ..core.errors import CPIError
from .results import cpi_block

ALL = "all"  # --allow-settings-mismatch all: accept every difference
ALLOW_FLAG = "--allow-settings-mismatch"
MAX_LISTED = 4  # differences named in the one-line error; the rest are counted


def _provenance_task(data: Mapping[str, Any], task: str) -> dict[str, Any]:
    prov = cpi_block(dict(data)).get("provenance") or {}
    entry = (prov.get("tasks") or {}).get(task) if isinstance(prov, dict) else None
    return entry if isinstance(entry, dict) else {}


def _cpi_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    settings = cpi_block(dict(data)).get("settings")
    return settings if isinstance(settings, dict) else {}


def _canonical(value: Any) -> str:
    """One text per value, so that 2 == 2.0 and key order never make a difference."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def _task_version(data: Mapping[str, Any], task: str) -> Any:
    versions = data.get("versions")
    if isinstance(versions, dict) and task in versions:
        return versions[task]
    return _provenance_task(data, task).get("version")


def _num_fewshot(data: Mapping[str, Any], task: str) -> Any:
    shots = data.get("n-shot")
    if isinstance(shots, dict) and task in shots:
        return shots[task]
    return _provenance_task(data, task).get("num_fewshot")


def _on_off(value: Any) -> str:
    return "on" if value not in (None, False, "", "false", "False") else "off"


def _chat_template(data: Mapping[str, Any], task: str) -> Any:
    settings = _cpi_settings(data)
    if "apply_chat_template" in settings:
        return _on_off(settings["apply_chat_template"])
    config = data.get("config")
    if isinstance(config, dict) and "apply_chat_template" in config:
        return _on_off(config["apply_chat_template"])
    if "chat_template_sha" in data:
        return _on_off(data["chat_template_sha"])
    return None


def _fewshot_as_multiturn(data: Mapping[str, Any], task: str) -> Any:
    value = data.get("fewshot_as_multiturn")
    return None if value is None else bool(value)


def _system_instruction(data: Mapping[str, Any], task: str) -> Any:
    if "system_instruction_sha" not in data:
        return None
    return data["system_instruction_sha"] or "none"


def _generation_kwargs(data: Mapping[str, Any], task: str) -> Any:
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    override = parse_key_values(config.get("gen_kwargs"))
    task_config = (data.get("configs") or {}).get(task)
    if isinstance(task_config, dict):
        base = task_config.get("generation_kwargs")
        if base is None and task_config.get("output_type") != "generate_until":
            return "none (not generated)"
        return {**(base or {}), **override}
    prov = _provenance_task(data, task)
    if "generation_kwargs" in prov:
        base = prov["generation_kwargs"]
        return "none (not generated)" if base is None else {**base, **override}
    return override or None


def _items(data: Mapping[str, Any], task: str) -> Any:
    counts = data.get("n-samples")
    entry = counts.get(task) if isinstance(counts, dict) else None
    if isinstance(entry, dict) and isinstance(entry.get("effective"), (int, float)):
        return int(entry["effective"])
    result = (data.get("results") or {}).get(task)
    if isinstance(result, dict) and isinstance(result.get("sample_len"), (int, float)):
        return int(result["sample_len"])
    return None


def _limit(data: Mapping[str, Any], task: str) -> Any:
    config = data.get("config")
    if isinstance(config, dict) and "limit" in config:
        return config["limit"] if config["limit"] is not None else "none"
    settings = _cpi_settings(data)
    if "limit" in settings:
        return settings["limit"] if settings["limit"] is not None else "none"
    return None


def _data_hashes(data: Mapping[str, Any], task: str) -> Any:
    return _provenance_task(data, task).get("data") or None


@dataclass(frozen=True)
class Setting:
    """One setting: its name (the value of ``--allow-settings-mismatch``), how it is read
    from a results dict for one task (None: not recorded), and, for a stand-in such as
    ``limit``, the setting it only stands in for where that one is unknown."""

    name: str
    read: Callable[[Mapping[str, Any], str], Any]
    only_without: str | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("task_version", _task_version),
    Setting("num_fewshot", _num_fewshot),
    Setting("chat_template", _chat_template),
    Setting("fewshot_as_multiturn", _fewshot_as_multiturn),
    Setting("system_instruction", _system_instruction),
    Setting("generation_kwargs", _generation_kwargs),
    Setting("items", _items),
    Setting("limit", _limit, only_without="items"),
    Setting("data", _data_hashes),
)
SETTING_NAMES = tuple(s.name for s in SETTINGS)


def task_settings(data: Mapping[str, Any], tasks: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{task: {setting: value}}`` of one results dict, values canonical text (a setting
    the file does not record is left out)."""
    out: dict[str, dict[str, Any]] = {}
    for task in tasks:
        values = {s.name: s.read(data, task) for s in SETTINGS}
        out[task] = {k: _canonical(v) for k, v in values.items() if v is not None}
    return out


def mismatches(sides: Mapping[str, Mapping[str, Mapping[str, str]]]) -> list[dict[str, Any]]:
    """Every (task, setting) whose recorded values differ between the sides.

    ``sides`` maps a label (``baseline``, a model name) to its :func:`task_settings`. A task is
    compared among the sides that have it; a setting among the sides that record it. Each
    difference is ``{"task", "setting", "values": {label: value}}``, sorted by task, then in
    the order of :data:`SETTINGS`.
    """
    tasks = sorted({t for per_task in sides.values() for t in per_task})
    found = []
    for task in tasks:
        having = {label: s[task] for label, s in sides.items() if task in s}
        for setting in SETTINGS:
            if setting.only_without and all(setting.only_without in v for v in having.values()):
                continue  # a stand-in: the setting it stands for is known on every side
            values = {lbl: v[setting.name] for lbl, v in having.items() if setting.name in v}
            if len(set(values.values())) > 1:
                found.append({"task": task, "setting": setting.name, "values": values})
    return found


def parse_allowed(text: str | None) -> frozenset[str]:
    """``--allow-settings-mismatch``: ``all`` or a comma list of setting names; None -> none."""
    if text is None:
        return frozenset()
    names = frozenset(split_list(text))
    unknown = sorted(names - set(SETTING_NAMES) - {ALL})
    if unknown or not names:
        raise CPIError(
            f"{ALLOW_FLAG} {text!r}: unknown setting {', '.join(unknown) or '(empty)'} "
            f"(give {ALL} or a comma list of: {', '.join(SETTING_NAMES)})"
        )
    return names


def _describe(diff: Mapping[str, Any]) -> str:
    values = ", ".join(f"{label} {value}" for label, value in diff["values"].items())
    return f"{diff['task']} {diff['setting']} ({values})"


def check_settings(found: list[dict[str, Any]], allowed: frozenset[str]) -> list[dict[str, Any]]:
    """The accepted differences (to flag), or :class:`CPIError` naming the refused ones and
    the flag that accepts them."""
    refused = [d for d in found if ALL not in allowed and d["setting"] not in allowed]
    if refused:
        listed = "; ".join(_describe(d) for d in refused[:MAX_LISTED])
        more = f"; and {len(refused) - MAX_LISTED} more" if len(refused) > MAX_LISTED else ""
        names = ",".join(dict.fromkeys(d["setting"] for d in refused))
        raise CPIError(
            f"the results were made under different settings, so their numbers are not "
            f"comparable: {listed}{more} (evaluate them with the same settings, or pass "
            f"{ALLOW_FLAG} {names} to compare them anyway)"
        )
    return [{**d, "accepted": True} for d in found]


def model_setting_text(found: list[dict[str, Any]], label: str) -> str:
    """One model's values of the differing settings, for a table cell: ``setting=value``,
    with the tasks named when the value is not the same on every task that differs."""
    by_setting: dict[str, dict[str, list[str]]] = {}
    for d in found:
        if label in d["values"]:
            tasks = by_setting.setdefault(d["setting"], {}).setdefault(d["values"][label], [])
            tasks.append(d["task"])
    parts = []
    for setting, values in by_setting.items():
        for value, tasks in values.items():
            every = len(values) == 1
            parts.append(f"{setting}={value}" + ("" if every else f" ({', '.join(tasks)})"))
    return "; ".join(parts)


def mismatch_lines(found: list[dict[str, Any]]) -> list[str]:
    """One short text per distinct difference (``task setting (label value, label value)``);
    tasks that differ in the same setting with the same values share one text
    (``cpi_bio, cpi_quotes chat_template (a off, b on)``), so a setting that differs on every
    task is said once, not once per task."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for diff in found:
        key = (diff["setting"], repr(sorted(diff["values"].items(), key=str)))
        groups.setdefault(key, []).append(diff)
    return [
        _describe({**diffs[0], "task": ", ".join(d["task"] for d in diffs)})
        for diffs in groups.values()
    ]


def add_allow_flag(parser: Any) -> None:
    """``--allow-settings-mismatch [NAMES]`` on a command's parser (gate, compare): one
    definition, so that the flag reads and behaves the same everywhere."""
    parser.add_argument(
        ALLOW_FLAG,
        "--allow_settings_mismatch",
        dest="allow_settings",
        nargs="?",
        const=ALL,
        default=None,
        metavar="NAMES",
        help="compare results made under different settings anyway (flagged in the output and "
        f"in JSON): '{ALL}' (the default when given alone) or a comma list of "
        f"{', '.join(SETTING_NAMES)}; without it a difference exits 2",
    )
