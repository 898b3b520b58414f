"""lm-eval ``!function`` targets of the closed-book probes: the question alone (no
Background line), scored with the same rule as ``param_acc`` of the open-book task."""

from __future__ import annotations

from cpi_bench.tasks import prompts
from cpi_bench.tasks import utils as task_utils
from cpi_bench.tasks.prompts import QUESTION


def load_dataset(**kwargs):
    """The family's source, the same rows and seeded order (``item_id``) as its tasks."""
    return task_utils.load_dataset(**kwargs)


def doc_to_text(doc: dict) -> str:
    """``Question: {question}\\nAnswer:``: the paper's layout with no context."""
    return prompts.background_prompt("", doc[QUESTION])


def process_closedbook(doc: dict, results: list[str]) -> dict[str, int]:
    """``acc`` = 1 when the output states the memorised answer (any accepted form), by the
    rule ``param_acc`` uses in the open-book task (so "known" means the same thing there)."""
    return {"acc": task_utils.judge_doc(doc, results[0]).param_acc}
