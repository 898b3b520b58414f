"""lm-eval ``!function`` targets for every cpi task: thin wiring of ``sources.py`` (data),
``prompts.py`` (the prompt text) and ``scoring.py`` (the metrics)."""

from __future__ import annotations

from cpi_bench.tasks import prompts, scoring, sources
from cpi_bench.tasks.prompts import CF_ANSWER, CF_ANSWERS, PARAM_ANSWER, PARAM_ANSWERS


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


def alternatives(doc: dict, list_key: str, single_key: str) -> list[str]:
    """Every accepted form of one answer: the row's list column (NQ-Swap's several answers)
    when it has one, else its single answer, so the existing sets keep one alternative."""
    listed = doc.get(list_key)
    return list(listed) if listed else [doc[single_key]]


def score_alternatives(
    output: str, cf_answers: list[str], param_answers: list[str]
) -> dict[str, int]:
    """``cf_acc`` / ``param_acc`` when either side has several accepted answers.

    An answer counts when it counts against every alternative of the other side (so a mention
    of ``New York`` is never a mention of ``York``, whichever memorised alternative contains
    it); a side counts when any of its alternatives does. Each test is one
    ``scoring.score_generation`` call, so a change of normalisation there applies here too, and
    with one alternative per side this is exactly ``score_generation`` (the four core sets'
    numbers do not move).
    """
    cf_acc = param_acc = 0
    for cf in cf_answers:
        if all(scoring.score_generation(output, cf, p)["cf_acc"] for p in param_answers):
            cf_acc = 1
            break
    for param in param_answers:
        if all(scoring.score_generation(output, c, param)["param_acc"] for c in cf_answers):
            param_acc = 1
            break
    return {"cf_acc": cf_acc, "param_acc": param_acc}


def process_generation(doc: dict, results: list[str]) -> dict[str, int]:
    return score_alternatives(
        results[0],
        alternatives(doc, CF_ANSWERS, CF_ANSWER),
        alternatives(doc, PARAM_ANSWERS, PARAM_ANSWER),
    )


def process_choice(doc: dict, results: list[tuple[float, bool]]) -> dict[str, float]:
    (loglik_cf, _), (loglik_param, _) = results
    return scoring.score_choice(loglik_cf, loglik_param)
