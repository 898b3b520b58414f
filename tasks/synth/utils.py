"""lm-eval ``!function`` target of ``cpisynth_id`` (scoring lives in ``../scoring/``)."""

from __future__ import annotations

from cpi_bench.tasks import scoring
from cpi_bench.tasks.prompts import CF_ANSWER


def process_answer(doc: dict, results: list[str]) -> dict[str, int]:
    return scoring.score_answer(results[0], doc[CF_ANSWER])
