"""Scoring: does a generated answer state the context's answer, the memorised one, both?

Pure functions over strings and log-likelihoods; ``utils.py`` wires them into lm-eval.
Changing anything here changes numbers: bump ``metadata.version`` in every task template.
"""

from __future__ import annotations

import math
import re
import unicodedata

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Normalise for containment: NFKD, strip accents, lowercase, punctuation -> space,
    drop the articles a/an/the, collapse whitespace.

    ``"Durrës"`` -> ``"durres"``; ``"The U.S.-born"`` -> ``"u s born"``.
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.lower()
    text = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text)
    text = _ARTICLES.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def _contains(haystack: str, needle: str) -> bool:
    """Whole-word containment of normalised strings (``"oran"`` is not in ``"orange"``)."""
    return bool(needle) and f" {needle} " in f" {haystack} "


def answer_present(output: str, answer: str, competitor: str = "") -> bool:
    """Does ``output`` state ``answer``?

    Containment after :func:`normalize`, on whole words. When ``answer`` is a part of
    ``competitor`` (``"York"`` vs ``"New York"``), mentions of the competitor do not count
    as mentions of the answer: they are blanked out before looking for the answer.
    """
    out, ans, comp = normalize(output), normalize(answer), normalize(competitor)
    if not ans:
        return False
    if comp and comp != ans and _contains(comp, ans):
        out = f" {out} ".replace(f" {comp} ", " | ").strip()
    return _contains(out, ans)


def score_generation(output: str, cf_answer: str, param_answer: str) -> dict[str, int]:
    """``cf_acc`` / ``param_acc`` for one generated answer (1 = that answer is present)."""
    first_line = output.strip().split("\n", 1)[0]
    return {
        "cf_acc": int(answer_present(first_line, cf_answer, param_answer)),
        "param_acc": int(answer_present(first_line, param_answer, cf_answer)),
    }


def score_answer(output: str, answer: str) -> dict[str, int]:
    """``acc`` for in-distribution items: 1 when the expected answer is in the first line."""
    first_line = output.strip().split("\n", 1)[0]
    return {"acc": int(answer_present(first_line, answer))}


def score_choice(loglik_cf: float, loglik_param: float) -> dict[str, float]:
    """``cf_pref`` = p(ctx) / (p(ctx) + p(mem)) from summed log-likelihoods (nats), and ``acc``."""
    diff = loglik_param - loglik_cf
    cf_pref = 1.0 / (1.0 + math.exp(diff)) if diff < 700 else 0.0
    return {"cf_pref": cf_pref, "acc": float(loglik_cf > loglik_param)}
