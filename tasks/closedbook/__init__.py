"""Closed-book probes (``<task>_closedbook``): the question of a QA family without its
context, scored for the memorised answer. ``cpi sweep --knowledge_filter`` runs them to find
the items a model *knows*; :func:`probe_for` is the one rule that pairs a task with its probe.
"""

from __future__ import annotations

CLOSEDBOOK_SUFFIX = "_closedbook"
# The families whose items are questions with a memorised answer (quotes are not questions).
PROBED_TASKS = ("cpi_world_facts", "cpi_capitals", "cpi_bio", "cpi_nqswap", "cpisynth_cf")
_VARIANT_SUFFIXES = ("_instructed", "_choice")


def family_task(task: str) -> str:
    """``cpi_capitals_choice`` / ``cpi_capitals_instructed`` -> ``cpi_capitals``."""
    for suffix in _VARIANT_SUFFIXES:
        if task.endswith(suffix):
            return task[: -len(suffix)]
    return task


def probe_for(task: str) -> str | None:
    """The closed-book probe of ``task`` (``cpi_capitals_choice`` ->
    ``cpi_capitals_closedbook``), or None when its family has none (quotes, ConflictQA)."""
    family = family_task(task)
    return family + CLOSEDBOOK_SUFFIX if family in PROBED_TASKS else None


def is_probe(task: str) -> bool:
    """True for a ``*_closedbook`` task name."""
    return task.endswith(CLOSEDBOOK_SUFFIX)
