"""F1-F7: every accepted form of an answer (listed alternatives, short names, initialisms,
people's names, numbers, other spellings, proverb endings), and :class:`Sides`, both answers of
one item."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .tables import (
    _FUNCTION_WORDS,
    _HEADS_AFTER,
    _HEADS_BEFORE,
    _MONTHS,
    _NOT_SHORT,
    _PARTICLES,
    _PERSON_QUESTION,
    _SHORT_WORDS,
    _TITLES,
    _UNITS,
    DEMONYMS,
    SPELLINGS,
    number_words,
    parse_number_words,
)
from .text import ARTICLES, _contains_seq, _texts, words_of


@dataclass(frozen=True)
class Needle:
    """One accepted form of an answer, as folded words (articles dropped unless
    ``with_articles``: F6). ``sentence_end``: a proverb ending (F7). ``derived``: a form the
    answer does not spell out (F2-F5). ``capital``: must start with a capital letter in the
    output (short forms of names). ``modifier``: a demonym, exempt from M2."""

    words: tuple[str, ...]
    with_articles: bool = False
    sentence_end: bool = False
    derived: bool = False
    capital: bool = False
    modifier: bool = False
    head: bool = False  # F2 short form: dropped when the question names it
    parts: tuple[tuple[str, ...], ...] = ()  # F1 "X and Y": every part named in the sentence
    initialism: bool = False  # F2 "NYC": one word in capitals (or "U.S.A." letter by letter)
    initials: bool = False  # F3 given names as initials or written out ("J.R.R." = "John ...")
    common: bool = False  # F5 a plural counted only in lower case ("elephants")
    surname: bool = False  # F3 a surname: also in a sentence written in lower case ("mussolini")


_PAREN = re.compile(r"\(([^)]*)\)")


def _content(text: str) -> tuple[str, ...]:
    """Folded words of ``text`` without articles."""
    return tuple(w.text for w in words_of(text) if w.text not in ARTICLES)


def _is_name(text: str) -> bool:
    """Every word capitalised, no digits (``"Yangon"``, ``"North Carolina"``, ``"D.C."``)."""
    words = [w for w in re.split(r"[\s-]+", text.strip()) if w]
    return bool(words) and all(w[0].isupper() for w in words) and not re.search(r"\d", text)


def _split_list(answer: str) -> list[str]:
    """F1 on the raw string: the listed alternatives an answer spells out.

    ``"La Paz (administrative); Sucre (judicial)"`` -> La Paz, Sucre; ``"Rangoon (Yangon)"``
    -> Rangoon, Yangon; ``"Naypyidaw or Nay Pyi Taw"`` -> both (names only, so not ``"white
    or colored passenger"``); ``"Kyiv/Kiev"`` -> both (not ``"AC/DC"``: a side under 4
    letters is no alternative); ``"Athens, Greece"`` -> Athens (both sides names).
    """
    found: list[str] = []
    for part in answer.split(";"):
        aliases = [a.strip() for a in _PAREN.findall(part) if _is_name(a) and len(a.split()) <= 4]
        base = _PAREN.sub(" ", part).strip()
        sides = re.split(r"\s+or\s+", base)
        for side in sides if len(sides) > 1 and all(map(_is_name, sides)) else [base]:
            pieces = [p.strip() for p in side.split("/")]
            found.extend(pieces if all(len(p) >= 4 for p in pieces) else [side.strip()])
        found.extend(aliases)
    for alt in list(found):
        head, comma, tail = alt.partition(",")
        if comma and "," not in tail and _is_name(head) and _is_name(tail):
            found.append(head.strip())
    return [f for f in found if f]


def _number_forms(words: tuple[str, ...]) -> list[tuple[str, ...]]:
    """F4: the same number in words or digits, with its unit spelled out or dropped."""
    unit = words[-1] if len(words) >= 2 and words[-1] in _UNITS else ""
    number = words[:-1] if unit else words
    if len(number) == 1 and number[0].isdigit():
        spelled = number_words(int(number[0]))
        numbers = [number] + ([spelled] if spelled else [])
    else:
        value = parse_number_words(number)
        numbers = [number, (str(value),)] if value is not None else []
    forms = [n for n in numbers if n != words]
    if unit:
        forms += [(*n, u) for n in numbers for u in (unit, *_UNITS[unit])]
    return [f for f in dict.fromkeys(forms) if f != words]


def _head_forms(words: tuple[str, ...]) -> list[Needle]:
    """F2: the name without a generic head (``Mount Fuji`` -> ``Fuji``, ``Mt Fuji``)."""
    found = []
    if len(words) >= 2 and words[0] in _HEADS_BEFORE:
        found.append(words[1:])
        if words[0] in _SHORT_WORDS:
            found.append((_SHORT_WORDS[words[0]], *words[1:]))
    numbered = re.fullmatch(r"\d{1,2}|[ivx]+", words[-1]) and words[0] not in _MONTHS
    if len(words) >= 2 and (words[-1] in _HEADS_AFTER or numbered):
        found.append(words[:-1])
    if len(words) >= 2 and re.fullmatch(r"\d+[a-z]?", words[0]) and not words[1].isdigit():
        found.append(words[1:])  # "221B Baker Street" -> "Baker Street"
    return [
        Needle(f, derived=True, capital=True, head=True)
        for f in found
        if not (len(f) == 1 and f[0] in _NOT_SHORT) and len("".join(f)) >= 3 and not f[0].isdigit()
    ]


def _person_forms(raw: str) -> list[Needle]:
    """F3: a person's name without its title, and its surname (with its particle)."""
    words = [w for w in words_of(raw)]
    if not 2 <= len(words) <= 6 or not all(w.cap or w.text in _PARTICLES | ARTICLES for w in words):
        return []
    texts = _texts(words)
    found: list[tuple[str, ...]] = []
    while len(texts) > 2 and texts[0] in _TITLES:
        texts = texts[1:]
        found.append(tuple(t for t in texts if t not in ARTICLES))
    last = texts[-1]
    surnames: list[tuple[str, ...]] = []
    if texts[-2] not in ARTICLES and not re.fullmatch(r"[ivxlc]+|\d+", last) and len(last) >= 3:
        surnames.append((last,))
        if texts[-2] in _PARTICLES:
            surnames.append((texts[-2], last))
    if len(texts[0]) >= 3 and texts[0] not in _PARTICLES:
        found.append((texts[0],))  # "Galileo", "Mao", "Napoleon": the name alone
    needles = [Needle(f, derived=True, capital=len(f) == 1) for f in found]
    needles += [Needle(f, derived=True, capital=len(f) == 1, surname=True) for f in surnames]
    content = tuple(t for t in texts if t not in ARTICLES)
    return needles + [Needle(content, derived=True, initials=True)]


def _year_forms(words: tuple[str, ...]) -> list[tuple[str, ...]]:
    """F4: a year in words (``1991`` -> ``nineteen ninety one``, ``1905`` -> ``nineteen oh
    five``); a date's year alone (``May 2010`` -> ``2010``)."""
    found = []
    if len(words) == 1 and re.fullmatch(r"1[1-9]\d\d|20\d\d", words[0]) and words[0][2:] != "00":
        head, tail = number_words(int(words[0][:2])), int(words[0][2:])
        tail_words = number_words(tail) if tail >= 10 else ("oh", *(number_words(tail) or ()))
        found.append((*head, *tail_words))  # type: ignore[misc]
    years = [w for w in words if re.fullmatch(r"1\d{3}|20\d\d", w)]
    if len(words) > 1 and len(years) == 1 and _MONTHS.intersection(words):
        found.append((years[0],))
    return found


def _initialism(raw: str, person: bool) -> list[Needle]:
    """F2: the capitals of a name of two capitalised words or more (``"New York City"`` ->
    ``NYC``, ``"United Kingdom"`` -> ``UK``, ``"United States of America"`` -> ``USA``); a
    person's only with three letters or more (``"John F. Kennedy"`` -> ``JFK``)."""
    words = words_of(raw)
    caps = [w for w in words if w.cap]
    lower_ok = _FUNCTION_WORDS | _PARTICLES
    if len(caps) < (3 if person else 2) or any(not w.cap and w.text not in lower_ok for w in words):
        return []
    letters = "".join(w.text[0] for w in caps)
    if any(c.isdigit() for c in raw) or letters in _FUNCTION_WORDS - {"us"}:
        return []  # "NO" is a word in capitals, not New Orleans; "US" is the United States
    return [Needle((letters,), derived=True, initialism=True)]


def _number_of(raw: str, words: tuple[str, ...], person: bool) -> list[Needle]:
    """F5: a word in the other number. A lower-case answer in either (``"friends"`` ->
    ``"friend"``); a capitalised word's plural only where the output writes it in lower case,
    as a common noun (``"Elephant"`` -> ``"elephants"``, never ``"Kyotos"``); a name ending in
    a plural also in the singular (``"The Great Pyramids"`` -> ``"Great Pyramid"``)."""
    last = words[-1]
    if len(words) == 1 and raw.strip().islower() and len(last) > 3:
        return [Needle((f,), derived=True) for f in _inflections(last)[1:]]
    if person or not _is_name(raw) or len(last) <= 3 or last.isdigit():
        return []
    if len(words) == 1:
        plural = last + "es" if last.endswith(("s", "x", "ch", "sh")) else last + "s"
        return [Needle((plural,), derived=True, common=True)]
    if last.endswith("s") and not last.endswith("ss"):
        return [Needle((*words[:-1], last[:-1]), derived=True, capital=True)]
    return []


def _derived(raw: str, words: tuple[str, ...], person: bool) -> list[Needle]:
    """F2-F5 forms of one alternative."""
    key = " ".join(words)
    found = [Needle((d,), derived=True, modifier=True) for d in DEMONYMS.get(key, ())]
    found += [Needle((s,), derived=True) for s in SPELLINGS.get(key, ())]
    found += [Needle(f, derived=True) for f in _number_forms(words) + _year_forms(words)]
    found += _head_forms(words) + _initialism(raw, person) + _number_of(raw, words, person)
    short = tuple(_SHORT_WORDS.get(w, w) for w in words)
    if short != words:
        found.append(Needle(short, derived=True))  # "221b Baker St"
    if person:
        found += _person_forms(raw)
    return found


def _inflections(word: str) -> tuple[str, ...]:
    """F7 forms of a proverb ending: ``eggs`` -> ``egg``, ``served`` -> ``serve``,
    ``egg`` -> ``eggs`` (models recite proverbs in either number or tense)."""
    forms = [word, word[:-1] if word.endswith("s") and len(word) > 3 else word + "s"]
    if word.endswith("ed") and len(word) > 4:
        forms.append(word[:-1])
    return tuple(forms)


def answer_alternatives(answer: str, person: bool = False) -> list[Needle]:
    """Every accepted form of one answer (F1-F7), the answer as written first."""
    stripped = answer.strip()
    words = tuple(_texts(words_of(stripped)))
    if words and all(w in ARTICLES for w in words):  # F6
        return [Needle(words, with_articles=True)]
    content = tuple(w for w in words if w not in ARTICLES)
    if stripped.endswith(".") and len(content) == 1 and not _PAREN.search(stripped):  # F7
        forms = _inflections(content[0])
        return [Needle((f,), sentence_end=True, derived=f != forms[0]) for f in forms]
    needles: list[Needle] = []
    for alt in [stripped, *_split_list(stripped)]:
        alt_words = _content(alt)
        if alt_words:
            needles.append(Needle(alt_words))
            needles.extend(_derived(alt, alt_words, person))
    sides = re.split(r"\s+and\s+", stripped)
    if len(sides) == 2 and all(map(_is_name, sides)):  # "China and Pakistan"
        needles.append(Needle(_content(stripped), derived=True, parts=tuple(map(_content, sides))))
    return list(dict.fromkeys(needles))


def _of_split(answer: str) -> tuple[str, str, str]:
    """F2: ``"Santiago de Cuba"`` -> (``Santiago``, ``de``, ``Cuba``); ("", "", "") otherwise."""
    m = re.fullmatch(r"\s*(.+?)\s+(de|del|of|do|da)\s+(.+?)\s*", answer)
    return (m.group(1), m.group(2), m.group(3)) if m else ("", "", "")


def side_forms(
    answers: list[str], rivals: list[str], question: str = ""
) -> tuple[list[Needle], list[Needle]]:
    """The forms of both sides' answers (``answers`` and ``rivals``), pruned: a form that is
    also a form of the other side counts for neither, a derived form equal to the other side's
    answer is dropped, and an F2 short form the question names is dropped."""
    person = bool(_PERSON_QUESTION.search(question))
    qwords = _content(question)
    mine = [n for a in answers for n in answer_alternatives(a, person)]
    theirs = [n for a in rivals for n in answer_alternatives(a, person)]
    primary = [{n.words for n in side if not n.derived} for side in (mine, theirs)]
    derived = [{n.words for n in side if n.derived} for side in (mine, theirs)]
    same_answer = bool(primary[0] & primary[1])  # memo-trap's "First." / "first."

    for a in answers + rivals:
        head, link, tail = _of_split(a)  # F2: "Santiago de Cuba" for Cuba is also "Santiago"
        if link and _contains_seq(qwords, _content(tail)) and _is_name(head):
            (mine if a in answers else theirs).append(
                Needle(_content(head), derived=True, capital=True)
            )

    def keep(n: Needle, other: int) -> bool:
        if n.head and _contains_seq(qwords, n.words):
            return False
        if same_answer or not n.derived:
            return True
        return n.words not in primary[other] and n.words not in derived[other]

    return [n for n in mine if keep(n, 1)], [n for n in theirs if keep(n, 0)]


@dataclass
class Sides:
    """Both answers of one item: their forms, raw answers and the question's words."""

    needles: dict[str, list[Needle]]
    answers: dict[str, list[str]]
    qwords: tuple[str, ...]
    person: bool = False  # the question asks for a person (F3, M2)
    entities: frozenset[str] = frozenset()  # the question's capitalised words (M3, M5)
    instruction: tuple[str, ...] = ()  # the question, or a memo-trap prompt's instruction (M3)
    kinds: frozenset[str] = frozenset()  # the question's lower-case content words (M2)
    prompt: tuple[str, ...] = ()  # a memo-trap prompt's words (F7)
    own: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.own = {s: {w for n in ns for w in n.words} for s, ns in self.needles.items()}
