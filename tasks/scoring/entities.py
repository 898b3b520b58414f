"""R2 and M1-M4 per sentence for answers that are names, numbers or words: which sentences
are read and the mentions found in them."""

from __future__ import annotations

from .clauses import (
    _DENIAL_PHRASES,
    _DOUBTS,
    _REFUSALS,
    _VERDICT_WORDS,
    Clause,
    _frame,
    _opens_alternative,
    _take_back,
    clauses_of,
)
from .decide import Reading
from .forms import Needle, Sides
from .mentions import (
    Mention,
    _announces,
    _at_ending,
    _copied,
    _corrected,
    _find,
    _find_initialism,
    _find_initials,
    _find_joined,
    _find_parts,
    _locator,
    _longer_name,
    _negated,
    _thing_named,
    ending_positions,
)
from .tables import _FUNCTION_WORDS
from .text import ARTICLES, Span, Word, _contains_seq, _has, _texts, split_sentences, words_of


def _continues(sentence: str, answer: str) -> bool:
    """F7: may the output's first word be a proverb ending? Not when a capital opens the
    output where the ending has none (``"The seeds of..."`` is no ending ``"seeds."``)."""
    first = next((c for c in sentence if c.isalpha()), "")
    ending = next((c for c in answer if c.isalpha()), "")
    return not (first.isupper() and ending.islower())


def _restarts(words: list[Word], prompt: tuple[str, ...]) -> bool:
    """F7: the output opens with two words of the prompt in a row: it starts the quotation
    again instead of going on with it (``" the gambling known as business."``)."""
    opening = tuple(w.text for w in words if w.text not in ARTICLES)[:2]
    return len(opening) == 2 and _contains_seq(prompt, opening)


def _raw_spans(words: list[Word], k: int, raw: str, sides: Sides) -> dict[str, list[tuple]]:
    """Per side, (span, needle) of every form found, before M1-M4."""
    texts = _texts(words)
    lower = not any(w.cap for w in words)  # F3: a surname also in lower case ("mussolini")
    found: dict[str, list[tuple]] = {}
    for side, needles in sides.needles.items():
        first_ok = k == 0 and any(_continues(raw, a) for a in sides.answers[side])
        first_ok = first_ok and not _restarts(words, sides.prompt)
        ends = ending_positions(words, first_ok)
        spans = []
        for n in needles:
            for span in _spans_of(words, texts, n):
                if n.sentence_end and not _at_ending(span, ends):
                    continue
                uncapitalised = n.capital and not words[span[0]].cap
                alone = lower and n.surname and _alone(texts, span)
                if (uncapitalised and not alone) or (n.common and words[span[0]].cap):
                    continue
                spans.append((span, n))
        found[side] = spans
    return found


def _alone(texts: list[str], span: Span) -> bool:
    """F3: the sentence is the mention and function words only (``" it was mussolini."``)."""
    return all(w in _FUNCTION_WORDS for w in texts[: span[0]] + texts[span[1] :])


def _spans_of(words: list[Word], texts: list[str], n: Needle) -> list[Span]:
    """Where one form occurs, by its kind (F1 parts, F2 initialisms, F3 initials, F5 joined)."""
    if n.parts:
        return _find_parts(texts, n)
    if n.initialism:
        return _find_initialism(words, n.words[0])
    if n.initials:
        return _find_initials(words, n.words)
    return _find(texts, n) + _find_joined(texts, n)


def _inside(a: Span, b: Span) -> bool:
    """``a`` lies within ``b`` and is shorter."""
    return b[0] <= a[0] and a[1] <= b[1] and b[1] - b[0] > a[1] - a[0]


_CITY_KINDS = frozenset({"city", "capital", "town"})  # M2: a place named after a city locates it


def _dropped(
    words: list[Word], span: Span, n: Needle, side: str, sides: Sides, clause: Span
) -> str:
    """M2-M3 for one found form: ``"longer"`` (another name), ``"locator"`` (the country of
    the place before it), ``"copied"`` (the question's or the instruction's words), ``""`` when
    it stays a mention."""
    if n.sentence_end or n.with_articles or n.parts:
        return "copied" if _announces(words, clause, span, sides.instruction) else ""
    exempt = n.modifier or n.words[0].isdigit() or (sides.person and not n.derived)
    if not exempt and _longer_name(words, span, sides.own[side], sides.kinds):
        return "longer"  # M2
    names = set().union(*sides.own.values()) | sides.entities
    city = bool(_CITY_KINDS & sides.kinds)  # the question asks for a city
    if city and not n.modifier and _locator(words, span, clause, names):
        return "locator"  # M2: "Monrovia, Liberia"
    if (
        _copied(words, span, n, sides.qwords)
        or _thing_named(_texts(words), span, clause, sides)
        or _announces(words, clause, span, sides.instruction)
    ):
        return "copied"  # M3
    return ""


def _sentence_mentions(words: list[Word], k: int, raw: str, sides: Sides) -> tuple[list, bool]:
    """The mentions of one sentence after M1-M4, and whether M3 dropped one."""
    found = _raw_spans(words, k, raw, sides)
    bounds = [(c.start, c.end) for c in clauses_of(words)]
    clause_of = {i: b for b in bounds for i in range(*b)}
    copied = False
    kept: dict[str, list[tuple]] = {}
    for side, spans in found.items():
        other = [s for o, ss in found.items() if o != side for s, _ in ss]
        mine = [s for s, _ in spans]
        keep = []
        for span, n in spans:
            if any(_inside(span, r) for r in other) or any(_inside(span, r) for r in mine):
                continue  # M1 (and a shorter form of the same answer inside a longer one)
            why = _dropped(words, span, n, side, sides, clause_of[span[0]])
            copied = copied or why == "copied"
            if not why:
                keep.append((span, n))
        kept[side] = list({s: (s, n) for s, n in keep}.values())
    both = all(kept.values()) and len(kept) == 2
    ends = ending_positions(words, False)
    mentions = [
        Mention(side, k, span[0], span[1], n, opening=n.sentence_end and span[1] - 1 not in ends)
        for side, spans in kept.items()
        for span, n in spans
        if not (
            _corrected(words, span)
            if n.sentence_end
            else _negated(words, span, both, sides.qwords, clause_of[span[1] - 1][1])
        )
    ]  # M4
    return sorted(mentions, key=lambda m: (m.start, m.end)), copied


def _verdict(words: list[Word], found: list[Mention]) -> bool:
    """R2: a short sentence without an answer that judges (8 words at most: ``"That is
    wrong."``, ``"Correct."``, ``"Great question!"``) or declines (12 at most: ``"I'm sorry,
    but I can't verify future events."``)."""
    texts = _texts(words)
    if found:
        return False
    judges = bool(_VERDICT_WORDS.intersection(texts)) or any(
        _has(texts, p) for p in _DENIAL_PHRASES
    )
    declines = any(_has(texts, p) for p in _REFUSALS + _DOUBTS)
    return (len(texts) <= 8 and judges) or (len(texts) <= 12 and declines)


def _reads_on(prev: tuple, words: list[Word], clauses: list[Clause], mentions: list) -> bool:
    """R2: is the next sentence read? (nothing asserted yet is checked by the caller, except
    before an alternative: ``"X. Or, ..."``)."""
    prev_words, prev_found = prev
    if _opens_alternative(words, 0, 1):
        return True
    if _verdict(prev_words, prev_found) or prev_words[-1].glue.strip().startswith("?"):
        return True
    opens = clauses[0]
    believed = any(m.status == "belief" for m in mentions)
    if opens.contrast and (believed or any(c.marked for c in clauses)):
        return True
    return any(c.denies for c in clauses)


def read_entities(line: str, sides: Sides) -> Reading:
    """R1-R3, M1-M4, C1-C4 over the sentences of ``line``."""
    raws = split_sentences(line)
    reading = Reading([], [])
    prev: tuple | None = None
    for k, raw in enumerate(raws):
        words = words_of(raw)
        if not words:
            continue
        clauses = clauses_of(words)
        found, copied = _sentence_mentions(words, k, raw, sides)
        _frame(words, clauses, found, sides.qwords, sides.entities)
        if prev is not None:
            if not _reads_on(prev, words, clauses, reading.mentions):
                break
            _take_back(reading.mentions, clauses, found)
            reading.later = reading.later or bool(found)
        reading.sentences.append(words)
        reading.copied = reading.copied or copied
        reading.mentions += found
        asserted = any(m.status == "asserted" and not m.taken_back for m in reading.mentions)
        if asserted and not (k + 1 < len(raws) and _opens_alternative(words_of(raws[k + 1]), 0, 1)):
            break
        prev = (words, found)
    return reading
