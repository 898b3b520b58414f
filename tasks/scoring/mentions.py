"""Finding an answer's forms in a sentence (F1-F7) and M1-M4: which mentions count (another
name, a restated question or instruction, negated or former answers)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .forms import Needle, Sides
from .tables import (
    _ALL_DEMONYMS,
    _FUNCTION_WORDS,
    _HEADS_BEFORE,
    _NOT_NAME,
    _PARTICLES,
    _PLACE_HEADS,
    _QUESTION_STOP,
    _TITLES,
)
from .text import ARTICLES, Span, Word, _contains_seq, _stems, _texts

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
_STRONG_BREAK = re.compile(r"[.!?;\u2014\u2013]|\s-\s|\s\(")  # F7: an ending may stand before these
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


def _find_initialism(words: list[Word], letters: str) -> list[Span]:
    """F2: ``letters`` as one word in capitals (``"NYC"``) or letter by letter with full stops
    (``"U.S.A."``); never in a sentence written all in capitals, where capitals say nothing,
    nor next to a number (``"79 AD"``, ``"10 AM"``: a unit or an era)."""
    if len(words) >= 3 and all(w.upper for w in words if w.text.isalpha()):
        return []
    found = [(i, i + 1) for i, w in enumerate(words) if w.upper and w.text == letters]
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and len(words[j].text) == 1 and words[j].upper:
            if not words[j].glue.startswith("."):
                break
            j += 1
        if j - i >= 2 and "".join(w.text for w in words[i:j]) == letters:
            found.append((i, j))
        i = max(j, i + 1)
    digits = {k for k, w in enumerate(words) if w.text.isdigit()}
    return [(i, j) for i, j in found if not {i - 1, j} & digits]


def _find_initials(words: list[Word], name: tuple[str, ...]) -> list[Span]:
    """F3: a person's name with given names written out where the answer has initials, or
    the other way round (``"John Ronald Reuel Tolkien"`` = ``"J.R.R. Tolkien"``, ``"John
    Fitzgerald Kennedy"`` = ``"John F. Kennedy"``); the surname as written."""
    n, found = len(name), []

    def same(a: str, w: Word) -> bool:
        if a == w.text:
            return True
        short, full = (a, w.text) if len(a) == 1 else (w.text, a)
        return w.cap and len(short) == 1 and len(full) > 1 and full[0] == short

    for i in range(len(words) - n + 1):
        pairs = list(zip(name, words[i : i + n], strict=True))
        if pairs[-1][0] == pairs[-1][1].text and all(same(a, w) for a, w in pairs):
            if any(a != w.text for a, w in pairs):
                found.append((i, i + n))
    return found


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


def _longer_name(
    words: list[Word], span: Span, own: set[str], kinds: frozenset[str] = frozenset()
) -> bool:
    """M2: the mention is joined (by a space or a hyphen) to a capitalised word that is not
    part of its own answer (``"New Amsterdam"``, ``"Amsterdam Schiphol"``), nor after it the
    kind of thing the question asks for (``kinds``: ``"Louvre Museum"`` for ``"which
    museum"``)."""
    start, end = span
    before = start > 0 and words[start - 1].glue.strip() in ("", "-")
    after = end < len(words) and words[end - 1].glue.strip() in ("", "-")
    after = after and words[end].text not in kinds
    return (before and _joined(words, start - 1, own)) or (after and _joined(words, end, own))


def _locator(words: list[Word], span: Span, clause: Span, names: set[str]) -> bool:
    """M2: ``"Monrovia, Liberia"``: a mention that makes up the rest of its clause right
    after a comma that follows a capitalised name of neither answer nor the question
    (``names``: the words of both answers and the question's named things) locates that
    name (its country or region): it is not an answer."""
    start, end = span
    if start < 1 or end != clause[1] or words[start - 1].glue.strip() != ",":
        return False
    if any(w.text not in ARTICLES for w in words[clause[0] : start]):
        return False  # the clause holds more than the mention
    name = words[start - 1]
    exempt = _NOT_NAME | _TITLES | _PARTICLES | _ALL_DEMONYMS | names
    adverb = start == 1 and name.text.endswith("ly")  # "Geographically, North America."
    return name.cap and name.text not in exempt and not name.text.isdigit() and not adverb


def _neighbour(texts: list[str], i: int, step: int) -> str | None:
    """The first non-article word from ``i`` in direction ``step`` (None past the ends)."""
    while 0 <= i < len(texts):
        if texts[i] not in ARTICLES:
            return texts[i]
        i += step
    return None


def _thing_named(texts: list[str], span: Span, clause: Span, sides: Sides) -> bool:
    """M3: a possessive before a thing the question names (its capitalised words), in a
    clause that goes on in the question's other words, restates the question: the name is
    the thing's (``"Newton's laws of motion were discovered by"``; ``"Newton's laws."``
    still names Newton)."""
    end = span[1]
    things = sides.entities - _FUNCTION_WORDS
    if (
        texts[end : end + 1] != ["s"]
        or texts[end + 1 : end + 2] == []
        or texts[end + 1] not in things
    ):
        return False
    q_stems = set().union(*(_stems(w) for w in sides.kinds)) if sides.kinds else set()
    return any(_stems(w) & q_stems for w in texts[end + 2 : clause[1]] if w not in things)


def _copied(words: list[Word], span: Span, needle: Needle, qwords: tuple[str, ...]) -> bool:
    """M3: a mention of words the question contains, restated with the question's neighbour
    word, or as a possessive; ``"the city of X"`` still names X."""
    n, texts = len(needle.words), _texts(words)
    start, end = span
    possessive = end < len(words) and texts[end] == "s" and words[end - 1].glue in ("'", "\u2019")
    places = [i for i in range(len(qwords) - n + 1) if qwords[i : i + n] == needle.words]
    if not places:
        return False
    if possessive:
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


# M3: words a chat preamble adds to the instruction it restates ("Sure! Here's ...:").
_PREAMBLE = frozenset("here sure okay ok certainly course happy glad following below go".split())


def _announces(words: list[Word], clause: tuple[int, int], span: Span, instruction: tuple) -> bool:
    """M3: a preamble that restates the instruction or question in its own words, marked by
    a preamble word (``"Here's"``, ``"Sure"``) or by a colon after the quoted answer word
    (``'Here's a quote that ends in "one"'``, ``'A quote ending in "one":'``): the answer it
    names is the instruction's word; the answer is still to come."""
    start, end = clause
    texts = _texts(words)
    if not instruction or not set(texts[span[0] : span[1]]) <= set(instruction):
        return False
    quoted = bool(_QUOTES_OPEN.search(words[span[0]].pre)) or "'" in words[span[0]].pre
    colon = ":" in words[end - 1].glue
    if not _PREAMBLE.intersection(texts[start:end]) and not (quoted and colon):
        return False
    stems = set().union(*(_stems(w) for w in instruction))
    rest = [
        w
        for w in texts[start : span[0]] + texts[span[1] : end]
        if w not in _FUNCTION_WORDS and w not in _PREAMBLE
    ]
    return bool(rest) and all(_stems(w) & stems for w in rest)


def _corrected(words: list[Word], span: Span) -> bool:
    """M4 for proverb endings (whose own words may say ``not``: ``"... are not ripe."``): only
    a negation opening a clause, ``"X, not Y"``, ``"X (not Y)"``."""
    i = span[0] - 1
    while i >= 0 and words[i].text in ARTICLES:
        i -= 1
    return i > 0 and words[i].text in ("not", "never") and bool(words[i].pre.strip())


# M4: a verb and the words that may follow it that make the subject before them a former
# answer ("X ceased to be", "X stopped being", "X lost its status", "X lost to Y", "X was
# replaced"; "ended" only after a possessive: "X's status as capital ended", not "the war
# ended"). None: any word. A relative word ends the search ("1945 is when the war ended").
_FORMER_VERBS: dict[str, frozenset[str] | None] = {
    "ceased": None,
    "stopped": frozenset({"being", "serving"}),
    "lost": frozenset({"its", "his", "her", "their", "the", "to"}),
    "replaced": frozenset({"by"}),
    "superseded": frozenset({"by"}),
}
_POSSESSIVE_FORMER_VERBS = frozenset({"ended", "ends"})
_RELATIVES = frozenset("when where which that who whom whose after before because since".split())
_PREPOSITIONS = frozenset("in on at by from since until after before during of to for".split())


def _former(tail: list[str], qwords: tuple[str, ...]) -> bool:
    """M4 after a mention that is a subject: a former-answer verb (``_FORMER_VERBS``) in the
    rest of its clause, unless the question asks with it (``"When did the war end?"``)."""
    q_stems = set().union(*(_stems(w) for w in qwords)) if qwords else set()
    possessive = tail[:1] == ["s"]
    for i, w in enumerate(tail[:7]):
        if w in _RELATIVES:
            return False
        if _stems(w) & q_stems:
            continue
        if w in _FORMER_VERBS:
            follows = _FORMER_VERBS[w]
            if follows is None or tail[i + 1 : i + 2] and tail[i + 1] in follows:
                return True
        if possessive and w in _POSSESSIVE_FORMER_VERBS:
            return True
    return False


_FORMER_WORDS = frozenset("former previous erstwhile".split())  # M4: "the former capital, X"


def _former_of_asked(words: list[str], qwords: tuple) -> bool:
    """M4: ``former <noun>`` where the noun is one the question asks with (``"the former
    capital"`` for a capital; not ``"a former prison guard"``), and ``former`` is not."""
    return (
        len(words) >= 2
        and words[0] in _FORMER_WORDS - set(qwords)
        and words[1] in set(qwords) - _QUESTION_STOP
    )


def _negated(
    words: list[Word], span: Span, both_named: bool, qwords: tuple = (), clause_end: int = 0
) -> bool:
    """M4: ``not X``, ``instead of X``, ``moved ... from X``, ``the former capital X``, and
    after it (:func:`_negated_after`); with both answers named also ``<noun> of X`` (not
    ``the city of X``, nor a name's own ``of``: ``"the Hashemite Kingdom of Jordan"``). Former
    words the question asks with (``"What was the former capital?"``) negate nothing."""
    texts = _texts(words)
    start, end = span
    prev = tuple(w for w in texts[:start] if w not in ARTICLES)[-3:]
    if (prev[-1:] and prev[-1] in _NEGATORS) or prev[-2:] in _NEGATOR_PAIRS:
        return True
    if prev[-1:] == ("from",) and _RELOCATE.intersection(texts[:start]):
        return True
    if _former_of_asked(list(prev[-2:]), qwords):
        return True  # "the former capital Tokyo"
    if _negated_after(texts, span, qwords, clause_end or len(texts), prev):
        return True
    if both_named and prev[-1:] == ("of",):
        raw = texts[max(0, start - 3) : start]
        city_of = len(raw) == 3 and raw[0] in ARTICLES and raw[1] in _APPOSITIVE
        return not city_of and not (start >= 3 and words[start - 2].cap)
    return False


_PERFECT = frozenset({"has", "have", "had"})
_MORE_EXACTLY = (["more", "precisely"], ["more", "accurately"], ["more", "correctly"])


def _negated_after(
    texts: list[str], span: Span, qwords: tuple, clause_end: int, prev: tuple
) -> bool:
    """M4 after the mention: ``X is not/wrong/no longer``, ``X has not been`` (unless the
    question asks with the same words: ``"Which city is not a capital?"``), ``X was ...
    until``, ``X, the former capital``, and for a subject ``X ceased to be``, ``X's status
    ... ended`` (:func:`_former`, up to ``clause_end``)."""
    end = span[1]
    after = [w for w in texts[end : end + 4] if w not in ARTICLES]
    rest = tuple(w for w in texts[end + 1 : end + 5] if w not in ARTICLES)
    perfect = after[:1] and after[0] in _PERFECT and after[2:3] == ["been"]  # "has not been"
    if (
        after[:1]
        and (after[0] in _COPULA or perfect)
        and ((after[1:2] and after[1] in _NOT_AFTER) or after[1:3] == ["no", "longer"])
    ):
        return not (len(rest) >= 2 and _contains_seq(qwords, rest[:2]))
    if after[:1] and after[0] in ("was", "were", "had"):
        if {"until", "till"}.intersection(texts[end : end + 8]) - set(qwords):
            return True  # "X was the capital until 2027": a former answer
    if (after[:1] and after[0] in _DENIAL_WORDS) or _former_of_asked(after[:2], qwords):
        return True  # "X is wrong", "X, the former capital"
    if after[:1] == ["or"] and (after[1:2] == ["rather"] or after[1:3] in _MORE_EXACTLY):
        return True  # "X, or rather Y": X corrected
    subject = not (prev[-1:] and prev[-1] in _PREPOSITIONS)  # not "In 1991 the war ended"
    return subject and _former(texts[end:clause_end], qwords)
