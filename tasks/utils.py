"""lm-eval ``!function`` targets for every cpi task (the logic lives in ``common.py``)."""

from __future__ import annotations

from cpi_bench.tasks import common


def load_dataset(**kwargs):
    """``custom_dataset``: the family's source (``dataset_kwargs.source``) as a test split."""
    return common.load_dataset(**kwargs)


def doc_to_text(doc: dict) -> str:
    return common.qa_prompt(doc)


def doc_to_text_instructed(doc: dict) -> str:
    return common.qa_prompt(doc, instructed=True)


def doc_to_choice(doc: dict) -> list[str]:
    """Two choices: the context answer first (target 0), then the memorised answer."""
    return [doc[common.CF_ANSWER], doc[common.PARAM_ANSWER]]


def process_generation(doc: dict, results: list[str]) -> dict[str, int]:
    return common.score_generation(results[0], doc[common.CF_ANSWER], doc[common.PARAM_ANSWER])


def process_choice(doc: dict, results: list[tuple[float, bool]]) -> dict[str, float]:
    (loglik_cf, _), (loglik_param, _) = results
    return common.score_choice(loglik_cf, loglik_param)
