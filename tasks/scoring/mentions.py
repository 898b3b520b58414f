"""Finding an answer's forms in a sentence (F1-F7) and M1-M4: which mentions count (another
name, a restated question, negated or former answers)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .forms import Needle
from .tables import _ALL_DEMONYMS, _HEADS_BEFORE, _NOT_NAME, _PARTICLES, _PLACE_HEADS, _TITLES
from .text import ARTICLES, Span, Word, _contains_seq, _texts

_NEGATORS = frozenset(
    {"not", "never", "neither", "nor", "formerly", "previously", "replacing", "replaced"}
)
_NEGATOR_PAIRS = frozenset({("instead", "of"), ("rather", "than"), ("no", "longer")})
_RELOCATE = frozenset(
    "move moved moving relocate relocated relocating relocation transfer transferred "
    "shift shifted changed".split()
)
_APPOSITIVE = frozenset({"city", "town", "village", "island", "port"})
_COPULA = frozenset({"is", "was", "are", "were", "s", "seems", "remains"})
_DENIAL_WORDS = frozenset(
    "wrong incorrect untrue false mistaken inaccurate erroneous mistake error incorrectly "
    "wrongly falsely contrary fiction fictional fictitious fabricated counterfactual".split()
)
_NOT_AFTER = _DENIAL_WORDS | {"not", "never", "isn", "wasn", "aren", "weren"}
_STRONG_BREAK = re.compile(r"[.!?;\u2014\u2013]|\s-\s")  # F7: an ending may stand before these
_QUOTES_OPEN = re.compile(r"[\"\u201c]|(?:^|\s)['\u2018]")
_QUOTES_CLOSE = re.compile(r"[\"\u201d]|['\u2019](?:\s|$|[.,;:!?])")


@dataclass
class Mention:
    """One answer named in the output: its side, where, the form found and the status of
    its clause (``asserted``, ``reported``, ``belief``, ``conceded``, ``refused``)."""

    side: str
    sentence: int
    start: int
    end: int
    needle: Needle
    status: str = "asserted"
    answers: bool = True  # C5: its clause answers the question (see _frame)
    taken_back: bool = False
    subordinate: bool = False  # in a concessive clause (while/although/though ...)
    marked: bool = False  # C5: its clause says it is the answer ("the answer is X")
    opening: bool = False  # F7: an ending found only as the output's first word


def _find(texts: list[str], needle: Needle) -> list[Span]:
    """Spans where ``needle`` occurs in ``texts``, skipping articles unless it keeps them."""
    index = [i for i, w in enumerate(texts) if needle.with_articles or w not in ARTICLES]
    seq, n = [texts[i] for i in index], len(needle.words)
    return [
        (index[k], index[k + n - 1] + 1)
        for k in range(len(seq) - n + 1)
        if tuple(seq[k : k + n]) == needle.words
    ]


def _find_joined(texts: list[str], needle: Needle) -> list[Span]:
    """F5: the same name written with or without spaces (``"Nay Pyi Taw"`` = ``"Naypyidaw"``):
    one to three words whose letters, joined, are the needle's (six letters or more)."""
    joined = "".join(needle.words)
    if len(joined) < 6 or needle.sentence_end or needle.with_articles:
        return []
    return [
        (i, i + n)
        for n in (1, 2, 3)
        if n != len(needle.words)
        for i in range(len(texts) - n + 1)
        if "".join(texts[i : i + n]) == joined
    ]


def _find_parts(texts: list[str], needle: Needle) -> list[Span]:
    """F1: ``"X and Y"`` answered by naming X and Y (``"Pacific Ocean and Southern Ocean"``):
    one span from the first part named to the last, when every part is named."""
    found = [_find(texts, Needle(part)) for part in needle.parts]
    if not all(found):
        return []
    return [(min(f[0][0] for f in found), max(f[0][1] for f in found))]


def ending_positions(words: list[Word], first_ok: bool) -> set[int]:
    """F7: word indexes where a proverb ending may stand: the first word (when ``first_ok``),
    the last word of the sentence and of every quotation of three words or more."""
    content = [i for i, w in enumerate(words) if w.text not in ARTICLES]
    ends = {len(words) - 1} | {i for i, w in enumerate(words) if _STRONG_BREAK.search(w.glue)}
    if first_ok and content:
        ends.add(-content[0] - 1)  # a start, encoded as -(index + 1)
    opened = None
    for i, w in enumerate(words):
        if opened is None and _QUOTES_OPEN.search(w.pre):
            opened = i
        if opened is not None and _QUOTES_CLOSE.search(w.glue):
            if i - opened >= 2:
                ends.add(i)
            opened = None
    return ends


def _at_ending(span: Span, ends: set[int]) -> bool:
    return span[1] - 1 in ends or -span[0] - 1 in ends


def _joined(words: list[Word], i: int, own: set[str]) -> bool:
    """M2: is word ``i`` a capitalised part of a longer name?"""
    if not 0 <= i < len(words) or not words[i].cap:
        return False
    text = words[i].text
    exempt = _NOT_NAME | _TITLES | _PARTICLES | _ALL_DEMONYMS | _HEADS_BEFORE | _PLACE_HEADS
    return text not in exempt and text not in own and not text.isdigit()


def _longer_name(words: list[Word], span: Span, own: set[str]) -> bool:
    """M2: the mention is joined (by a space or a hyphen) to a capitalised word that is not
    part of its own answer (``"New Amsterdam"``, ``"Amsterdam Schiphol"``)."""
    start, end = span
    before = start > 0 and words[start - 1].glue.strip() in ("", "-")
    after = end < len(words) and words[end - 1].glue.strip() in ("", "-")
    return (before and _joined(words, start - 1, own)) or (after and _joined(words, end, own))


def _neighbour(texts: list[str], i: int, step: int) -> str | None:
    """The first non-article word from ``i`` in direction ``step`` (None past the ends)."""
    while 0 <= i < len(texts):
        if texts[i] not in ARTICLES:
            return texts[i]
        i += step
    return None


def _copied(words: list[Word], span: Span, needle: Needle, qwords: tuple[str, ...]) -> bool:
    """M3: a mention of words the question contains, restated with the question's neighbour
    word, or as a possessive; ``"the city of X"`` still names X."""
    n, texts = len(needle.words), _texts(words)
    places = [i for i in range(len(qwords) - n + 1) if qwords[i : i + n] == needle.words]
    if not places:
        return False
    start, end = span
    if end < len(words) and texts[end] == "s" and words[end - 1].glue in ("'", "\u2019"):
        return True
    left, right = _neighbour(texts, start - 1, -1), _neighbour(texts, end, 1)
    city_of = texts[max(0, start - 3) : start]
    if len(city_of) == 3 and city_of[0] in ARTICLES and city_of[1] in _APPOSITIVE:
        return False
    for i in places:
        q_left = qwords[i - 1] if i > 0 else None
        q_right = qwords[i + n] if i + n < len(qwords) else None
        if (left is not None and left == q_left) or (right is not None and right == q_right):
            return True
    return False


def _corrected(words: list[Word], span: Span) -> bool:
    """M4 for proverb endings (whose own words may say ``not``: ``"... are not ripe."``): only
    a negation opening a clause, ``"X, not Y"``, ``"X (not Y)"``."""
    i = span[0] - 1
    while i >= 0 and words[i].text in ARTICLES:
        i -= 1
    return i > 0 and words[i].text in ("not", "never") and bool(words[i].pre.strip())


def _negated(texts: list[str], span: Span, both_named: bool, qwords: tuple = ()) -> bool:
    """M4: ``not X``, ``instead of X``, ``moved ... from X``, ``X is not/wrong`` (unless the
    question asks with the same words: ``"Which city is not a capital?"``), ``X was ...
    until``; with both answers named also ``<noun> of X`` (not ``the city of X``)."""
    start, end = span
    prev = tuple(w for w in texts[:start] if w not in ARTICLES)[-3:]
    if (prev[-1:] and prev[-1] in _NEGATORS) or prev[-2:] in _NEGATOR_PAIRS:
        return True
    if prev[-1:] == ("from",) and _RELOCATE.intersection(texts[:start]):
        return True
    after = [w for w in texts[end : end + 3] if w not in ARTICLES]
    rest = tuple(w for w in texts[end + 1 : end + 5] if w not in ARTICLES)
    if after[:1] and after[0] in _COPULA and after[1:2] and after[1] in _NOT_AFTER:
        return not (len(rest) >= 2 and _contains_seq(qwords, rest[:2]))
    if after[:1] and after[0] in ("was", "were", "had") and "until" in texts[end : end + 8]:
        return True  # "X was the capital until 2027": a former answer
    if after[:1] and after[0] in _DENIAL_WORDS:
        return True
    if both_named and prev[-1:] == ("of",):
        raw = texts[max(0, start - 3) : start]
        return not (len(raw) == 3 and raw[0] in ARTICLES and raw[1] in _APPOSITIVE)
    return False
