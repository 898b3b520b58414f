"""The plain reading (normalisation, containment: ``cf_contains`` / ``param_contains``), the
words of an output and R1 (what is read: the first line, up to a new turn)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

ARTICLES = frozenset({"a", "an", "the"})


def _fold(text: str) -> str:
    """NFKD without combining marks, lower-cased (``"Durrës"`` -> ``"durres"``)."""
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def _tokens(text: str) -> list[str]:
    """Words of :func:`normalize` with the articles kept."""
    text = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in _fold(text))
    return text.split()


def normalize(text: str) -> str:
    """Normalise for containment: NFKD, strip accents, lowercase, punctuation -> space,
    drop the articles a/an/the, collapse whitespace.

    ``"Durrës"`` -> ``"durres"``; ``"The U.S.-born"`` -> ``"u s born"``.
    """
    return " ".join(w for w in _tokens(text) if w not in ARTICLES)


def _contains(haystack: str, needle: str) -> bool:
    """Whole-word containment of normalised strings (``"oran"`` is not in ``"orange"``)."""
    return bool(needle) and f" {needle} " in f" {haystack} "


def answer_present(output: str, answer: str, competitor: str = "") -> bool:
    """Does ``output`` contain ``answer`` (plain containment; ``score_answer`` uses it)?

    When ``answer`` is a part of ``competitor`` (``"York"`` vs ``"New York"``), mentions of the
    competitor are blanked out before looking for the answer.
    """
    out, ans, comp = normalize(output), normalize(answer), normalize(competitor)
    if not ans:
        return False
    if comp and comp != ans and _contains(comp, ans):
        out = f" {out} ".replace(f" {comp} ", " | ").strip()
    return _contains(out, ans)


def contains_answer(output: str, answers: Iterable[str]) -> int:
    """``cf_contains`` / ``param_contains``: 1 when any of ``answers`` occurs in ``output`` as
    whole words after :func:`normalize` (the paper's containment), no other rule."""
    out = normalize(output)
    return int(any(_contains(out, normalize(a)) for a in answers))


@dataclass(frozen=True)
class Word:
    """One word of an output: ``text`` folded (:func:`_fold`, commas of ``2,000`` dropped),
    ``cap`` whether it starts with a capital letter, ``pre`` / ``glue`` the raw characters
    before and after it (punctuation, quotes, spaces), ``upper`` whether it is in capitals."""

    text: str
    cap: bool
    pre: str
    glue: str
    upper: bool = False  # written in capitals ("NYC", "U" of "U.S.")


_WORD = re.compile(r"\d{1,3}(?:,\d{3})+(?![\d,])|[^\W_]+")


def words_of(text: str) -> list[Word]:
    """The words of ``text`` with their capitalisation and surrounding punctuation."""
    text = unicodedata.normalize("NFC", text)
    found = list(_WORD.finditer(text))
    words = []
    for i, m in enumerate(found):
        start = found[i - 1].end() if i else 0
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        raw = m.group()
        words.append(
            Word(_fold(raw).replace(",", ""), raw[:1].isupper(), text[start : m.start()],
                 text[m.end() : end], raw.isupper())
        )  # fmt: skip
    return words


def _texts(words: list[Word]) -> list[str]:
    return [w.text for w in words]


# A full stop after these does not end a sentence ("St. Petersburg", "Washington, D.C. is").
_ABBREVIATIONS = frozenset(
    "st mt ft dr mr mrs ms jr sr no vs etc inc co ltd gen lt col sgt ave approx ca".split()
)
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*(?=\s)")


def split_sentences(line: str) -> list[str]:
    """Split at ``.``/``!``/``?`` before whitespace, except after a single letter
    (``"D.C."``, ``"P. W. Botha"``) or a known abbreviation (``"St. Petersburg"``)."""
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(line):
        word = re.findall(r"[A-Za-z]+$", line[start : match.start()])
        if word and (len(word[0]) == 1 or word[0].lower() in _ABBREVIATIONS):
            continue
        sentences.append(line[start : match.end()].strip())
        start = match.end()
    sentences.append(line[start:].strip())
    return [s for s in sentences if any(c.isalnum() for c in s)]


def first_line(output: str) -> str:
    """R1: the first line of the output."""
    return output.strip().split("\n", 1)[0]


# R1: the label of a new turn: the prompt's own (``Background:``, ``Question:``) or a chat
# role's; case-sensitive, so ``"a good question: ..."`` goes on.
_NEW_TURN = re.compile(r"(?<![\w'\u2019])(?:Question|Q|Background|User|Human)\s*:")


def answer_line(output: str) -> str:
    """R1: the first line up to a new turn (``"Yes Question: ...? Answer: No"`` -> ``"Yes"``):
    what comes after it answers a question the model made up."""
    return _NEW_TURN.split(first_line(output), maxsplit=1)[0]


def _contains_seq(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


Span = tuple[int, int]  # [start, end) in a sentence's words (articles kept)


def _has(texts: list[str], phrase: Iterable[str]) -> bool:
    phrase = tuple(phrase)
    n = len(phrase)
    return any(tuple(texts[i : i + n]) == phrase for i in range(len(texts) - n + 1))


def _stems(word: str) -> set[str]:
    """Crude stems, enough to match ``stimulates`` with ``stimulate``, ``used`` with ``use``."""
    forms = {word}
    for suffix in ("s", "es", "ed", "d", "ing", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            forms.add(word[: -len(suffix)])
    return forms
