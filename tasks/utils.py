"""lm-eval ``!function`` targets for every cpi task: thin wiring of ``sources.py`` (data),
``prompts.py`` (the prompt text) and ``scoring/`` (the metrics)."""

from __future__ import annotations

from cpi_bench.tasks import prompts, scoring, sources
from cpi_bench.tasks.prompts import (
    CF_ANSWER,
    CF_ANSWERS,
    CONTEXT,
    PARAM_ANSWER,
    PARAM_ANSWERS,
    QUESTION,
)


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
    when it has one, else its single answer."""
    listed = doc.get(list_key)
    return list(listed) if listed else [doc[single_key]]


def judge_doc(doc: dict, output: str) -> scoring.Decision:
    """``scoring.judge`` with everything the row gives it: every accepted answer of each side,
    the question (restated questions, person names, yes/no claims) and the context (the option
    texts of memo-trap's file 4)."""
    return scoring.judge(
        output,
        alternatives(doc, CF_ANSWERS, CF_ANSWER),
        alternatives(doc, PARAM_ANSWERS, PARAM_ANSWER),
        question=doc.get(QUESTION) or "",
        context=doc.get(CONTEXT) or "",
    )


def process_generation(doc: dict, results: list[str]) -> dict[str, int | str]:
    """Per item: ``cf_acc`` / ``param_acc`` (the answer the output asserts), ``cf_contains`` /
    ``param_contains`` (the paper's plain containment) and ``reason`` (the rule that decided
    ``cf_acc`` / ``param_acc``; kept in lm-eval's logged samples and the per-item records)."""
    output = results[0]
    decision = judge_doc(doc, output)
    return {
        **decision.as_dict(),
        "cf_contains": scoring.contains_answer(output, alternatives(doc, CF_ANSWERS, CF_ANSWER)),
        "param_contains": scoring.contains_answer(
            output, alternatives(doc, PARAM_ANSWERS, PARAM_ANSWER)
        ),
    }


def reason_counts(reasons: list[str]) -> str:
    """Aggregation of the per-item ``reason`` (lm-eval needs one for every key
    ``process_results`` returns): how many items each rule decided, most frequent first, e.g.
    ``"asserted 14, none 4, override 2"``. Text, so no table or gate reads it as a number."""
    counts: dict[str, int] = {}
    for reason in reasons:
        rule = str(reason).split(":", 1)[0]
        counts[rule] = counts.get(rule, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{rule} {n}" for rule, n in ranked)


def process_choice(doc: dict, results: list[tuple[float, bool]]) -> dict[str, float]:
    (loglik_cf, _), (loglik_param, _) = results
    return scoring.score_choice(loglik_cf, loglik_param)
