"""lm-eval ``!function`` target of ``cpisynth_id`` (the shared logic is in ``../common.py``)."""

from __future__ import annotations

from cpi_bench.tasks import common


def process_answer(doc: dict, results: list[str]) -> dict[str, int]:
    return common.score_answer(results[0], doc[common.CF_ANSWER])
