"""lm-eval ``!function`` targets for every cpi task: thin wiring of ``sources.py`` (data),
``prompts.py`` (the prompt text) and ``scoring.py`` (the metrics)."""

from __future__ import annotations

from cpi_bench.tasks import prompts, scoring, sources
from cpi_bench.tasks.prompts import CF_ANSWER, PARAM_ANSWER


def load_dataset(**kwargs):
    """``custom_dataset``: the family's source (``dataset_kwargs.source``) as a test split."""
    return sources.load_dataset(**kwargs)


def doc_to_text(doc: dict) -> str:
    return prompts.qa_prompt(doc)


def doc_to_text_instructed(doc: dict) -> str:
    return prompts.qa_prompt(doc, instructed=True)


def doc_to_choice(doc: dict) -> list[str]:
    """Two choices: the context answer first (target 0), then the memorised answer."""
    return [doc[CF_ANSWER], doc[PARAM_ANSWER]]


def process_generation(doc: dict, results: list[str]) -> dict[str, int]:
    return scoring.score_generation(results[0], doc[CF_ANSWER], doc[PARAM_ANSWER])


def process_choice(doc: dict, results: list[tuple[float, bool]]) -> dict[str, float]:
    (loglik_cf, _), (loglik_param, _) = results
    return scoring.score_choice(loglik_cf, loglik_param)
