"""R3 and C1-C4: clauses and what frames them (reported, believed, conceded, refused, taken
back), and M5-M6 (another rank, a description)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .mentions import _COPULA, _DENIAL_WORDS, Mention
from .tables import _FUNCTION_WORDS, _QUESTION_STOP, IRREGULAR_PAST
from .text import ARTICLES, Word, _has, _texts

_CLAUSE_PUNCT = re.compile(r"[,;:()\[\]\u2014\u2013]|\s-\s")
_CLAUSE_OPENERS = frozenset("but however yet although though while whereas".split())
_SOURCE_NOUNS = frozenset(
    "passage background context text article document paragraph excerpt biography story "
    "information statement prompt".split()
)
_REPORT_VERBS = frozenset(
    "say says said saying state states stated mention mentions mentioned claim claims claimed "
    "suggest suggests suggested indicate indicates indicated note notes noted report reports "
    "reported name names named list lists listed give gives gave credit credits credited "
    "attribute attributes attributed describe describes described place places placed argue "
    "argues argued assert asserts asserted write writes wrote identify identifies identified "
    "refer refers referred put puts explain explains explained discuss discusses "
    "discussed".split()
)
_PASSIVE_REPORTS = frozenset("named mentioned cited credited listed given stated".split())
_SAYINGS = frozenset("proverb saying quote version idiom expression phrase adage".split())
_SAYING_KINDS = frozenset(
    "original usual famous well traditional common real english actual standard known "
    "familiar popular".split()
)
_BELIEF_WORDS = frozenset(
    "often commonly widely popularly generally traditionally mistakenly thought believed "
    "assumed misconception usually".split()
)
_BELIEF_PHRASES = (("most", "people"), ("many", "people"), ("people", "think"))
_DENIAL_PHRASES = tuple(
    p.split()
    for p in ("not correct", "not true", "not accurate", "not right", "isn t true",
              "isn t correct", "isn t right", "is wrong")
)  # fmt: skip
_CONCESSIVE = frozenset("while although though whereas despite notwithstanding".split())
_CONTRAST = frozenset("but however yet nevertheless nonetheless instead still actually".split())
_MARKED_WORDS = frozenset("actually really truly still remains remain correct actual real".split())
_MARKED_PHRASES = tuple(
    p.split()
    for p in ("in fact", "in reality", "in truth", "correct answer", "right answer",
              "real answer", "actual answer", "the answer is", "is correct")
)  # fmt: skip
_REFUSALS = tuple(
    p.split()
    for p in ("i can t", "i cannot", "i won t", "i will not", "i m sorry", "i am sorry",
              "i m unable", "i am unable", "i m not able", "i am not able", "i refuse",
              "cannot help", "can t help", "not appropriate", "inappropriate", "offensive",
              "discriminatory", "racist", "sexist", "hateful")
)  # fmt: skip
_DOUBTS = tuple(
    p.split()
    for p in ("i don t know", "i do not know", "not sure", "can t confirm", "cannot confirm",
              "can t verify", "cannot verify", "unsure", "uncertain", "no idea")
)  # fmt: skip
_ANSWER_MARKERS = tuple(
    p.split()
    for p in ("the answer is", "answer is", "correct answer", "right answer", "real answer",
              "actual answer", "in fact", "in reality", "actually")
)  # fmt: skip
_VERDICT_WORDS = _DENIAL_WORDS | frozenset(
    "correct right true yes no exactly indeed sure certainly okay ok absolutely question".split()
)
# C5: a clause of only these words around the answer gives it (``"but it's Tokyo"``).
_ANSWER_FRAME = _FUNCTION_WORDS | frozenset(
    "answer however yet instead rather actually really correct one would be".split()
)


@dataclass
class Clause:
    """One clause of a sentence (R3) and what frames it (C1-C4)."""

    start: int
    end: int
    reported: bool = False
    belief: bool = False
    denies: bool = False
    concessive: bool = False
    contrast: bool = False
    marked: bool = False
    refusal: bool = False
    doubts: bool = False
    answer_marked: bool = False  # C5: "the answer is", "in fact", "actually"
    deviates: bool = False  # C3: "instead" (not "instead of"): set against what came before
    reality: bool = False  # C2: opens with "In reality", "Actually", "Historically"


def _reported(texts: list[str]) -> bool:
    """C1: attributed to the context (or to the usual saying), or a passive report that ends
    its clause (``"X is named, but ..."``)."""
    if any(_has(texts, p) for p in (("according", "to"), ("as", "per"), ("as", "stated"))):
        return True
    if texts[-2:-1] and texts[-2] in _COPULA and texts[-1] in _PASSIVE_REPORTS:
        return True
    if texts and set(texts) <= _SOURCE_NOUNS | ARTICLES | {"per", "from", "in"}:
        return bool(_SOURCE_NOUNS.intersection(texts))  # "(passage)", "(per the text)"
    for i, w in enumerate(texts):
        before = texts[max(0, i - 3) : i]
        possessive = texts[i + 1 : i + 2] == ["s"]  # "the passage's answer"
        if w in _SOURCE_NOUNS and (
            _REPORT_VERBS.intersection(texts)
            or {"per", "based", "in", "from"} & set(before)
            or possessive
        ):
            return True
        if w in _SAYINGS and _SAYING_KINDS.intersection(before):
            return True
    return False


def _clause(texts: list[str], start: int, end: int) -> Clause:
    """The frames of ``texts[start:end]``."""
    part = texts[start:end]
    opener = part[0] if part else ""
    return Clause(
        start,
        end,
        reported=_reported(part),
        belief=bool(_BELIEF_WORDS.intersection(part))
        or any(_has(part, p) for p in _BELIEF_PHRASES),
        denies=bool(_DENIAL_WORDS.intersection(part))
        or any(_has(part, p) for p in _DENIAL_PHRASES)
        or part in (["no"], ["nope"]),
        concessive=opener in _CONCESSIVE or part[:2] in (["even", "though"], ["even", "if"]),
        contrast=opener in _CONTRAST or part[:2] in (["in", "fact"], ["in", "reality"]),
        marked=bool(_MARKED_WORDS.intersection(part))
        or any(_has(part, p) for p in _MARKED_PHRASES),
        refusal=any(_has(part, p) for p in _REFUSALS),
        doubts=any(_has(part, p) for p in _DOUBTS),
        answer_marked=any(_has(part, p) for p in _ANSWER_MARKERS),
        deviates="instead" in part and not _has(part, ("instead", "of")),
        reality=_opens_with_reality(part),
    )


# C2: what opens a sentence that sets the real world against a report before it.
_REALITY = (("in", "reality"), ("in", "truth"), ("in", "real", "life"), ("actually",),
            ("historically",), ("in", "the", "real", "world"))  # fmt: skip


def _opens_with_reality(part: list[str]) -> bool:
    """C2: ``"In reality, ..."``, ``"But actually ..."``, ``"Historically, ..."``."""
    part = part[1:] if part[:1] in (["but"], ["however"], ["yet"]) else part
    return any(tuple(part[: len(p)]) == p for p in _REALITY)


def clauses_of(words: list[Word]) -> list[Clause]:
    """R3: the clauses of one sentence."""
    texts = _texts(words)
    bounds = [0]
    for i in range(1, len(words)):
        if _CLAUSE_PUNCT.search(words[i - 1].glue) or texts[i] in _CLAUSE_OPENERS:
            bounds.append(i)
    bounds.append(len(words))
    return [_clause(texts, a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _opens_alternative(words: list[Word], start: int, end: int) -> bool:
    """C5: ``"or,"`` opening a clause in ``words[start:end]`` (after punctuation, or first in
    the sentence: ``"X - or, to end in "joy": Y"``, ``"X. Or, as you asked: Y"``)."""
    for i in range(max(start, 0), end):
        opens = i == 0 or bool(re.search(r"[,;:(\u2014\u2013]|\s-\s", words[i - 1].glue))
        if words[i].text == "or" and opens and words[i].glue.strip().startswith(","):
            return True
    return False


def _bare(texts: list[str], clause: Clause, m: Mention) -> bool:
    """C5: the clause is the answer alone or in a frame such as ``"but it's X"``."""
    rest = texts[clause.start : m.start] + texts[m.end : clause.end]
    return all(w in _ANSWER_FRAME for w in rest)


def _denied_in(texts: list[str], c: Clause, m: Mention) -> bool:
    """C2: the mention's clause denies, by words other than the answer's own (``"the text
    is wrong about Kyoto"``; not the ending ``wrong.`` of a proverb)."""
    rest = texts[c.start : m.start] + ["|"] + texts[m.end : c.end]
    return bool(_DENIAL_WORDS.intersection(rest)) or any(_has(rest, p) for p in _DENIAL_PHRASES)


def _extend_frames(words: list[Word], clauses: list[Clause], mentions: list[Mention]) -> None:
    """C1 and C3 across clauses, in place. An attribution clause naming no answer (``"according
    to the passage"``, ``"as the background says"``) frames the clause before it (not across
    ``;`` or ``:``), or the one after it when it opens the sentence, unless that clause opens
    with a contrast or a concession or is marked as the answer. A marker naming no answer
    (``"In reality, ..."``, ``"Actually, ..."``, ``"... (real world)"``) marks the clauses
    next to it."""
    named = [any(c.start <= m.start < c.end for m in mentions) for c in clauses]
    for i, c in enumerate(clauses):
        if named[i]:
            continue
        if c.marked:
            if i + 1 < len(clauses):
                clauses[i + 1].marked = True
            if i > 0 and not re.search(r"[;:]", words[c.start - 1].glue):
                clauses[i - 1].marked = True
        if not c.reported or c.concessive or c.contrast or c.denies:
            continue
        near = []
        if i > 0 and not re.search(r"[;:]", words[c.start - 1].glue):
            near.append(clauses[i - 1])
        if i == 0 and len(clauses) > 1:
            near.append(clauses[1])
        for other in near:
            if not (other.contrast or other.concessive or other.marked):
                other.reported = True


_GENERIC_NOUNS = frozenset("city country place name thing one people person year town".split())
_ORDINALS = frozenset(
    "first second third fourth fifth last largest smallest biggest longest shortest highest "
    "lowest oldest youngest tallest deepest earliest latest".split()
)


def _described(texts: list[str], c: Clause, m: Mention, answers: bool) -> bool:
    """M6: the mention only opens a description that does not answer (``"Stephen Hawking was
    a theoretical physicist."``)."""
    first = next((i for i in range(c.start, c.end) if texts[i] not in ARTICLES), c.start)
    after = texts[m.end : m.end + 2]
    return (
        not answers
        and m.start == first
        and after[:1] in (["is"], ["was"])
        and after[1:]
        in (
            ["a"],
            ["an"],
        )
    )


def _status(c: Clause, asked: bool, main_marked: bool, mismatch: bool) -> str:
    """C1-C4 (and M5, M6) for a mention in clause ``c``."""
    if mismatch:
        return "other"  # M5/M6: about another rank ("the second person ..."), or a description
    if c.refusal:
        return "refused"
    if c.reported or asked:
        return "reported"
    if c.belief and not c.contrast:  # "..., but it is usually credited to Y" asserts Y
        return "belief"
    if c.concessive and main_marked:
        return "conceded"
    return "asserted"


def _frame(
    words: list[Word],
    clauses: list[Clause],
    mentions: list[Mention],
    qwords: tuple[str, ...],
    entities: frozenset[str] = frozenset(),
) -> None:
    """C1-C4 and M5-M6: the status of each mention from its clause, in place. ``entities``:
    the question's capitalised words (its named things), which do not make a key word."""
    texts = _texts(words)
    question_words = set(qwords) - _QUESTION_STOP
    ranks = _ORDINALS.intersection(qwords)
    keys = question_words - _GENERIC_NOUNS - entities
    _extend_frames(words, clauses, mentions)
    main_marked = any((c.marked or c.reported) and not c.concessive for c in clauses)
    asked = words[-1].glue.strip().startswith("?") if words else False
    named = {i for m in mentions for i in range(m.start, m.end)}
    for m in mentions:
        c = next(c for c in clauses if c.start <= m.start < c.end)
        outside = {texts[i] for i in range(c.start, c.end) if i not in named}  # not an answer's
        m.answers = c.marked or c.reported or _bare(texts, c, m) or bool(outside & question_words)
        clause_ranks = _ORDINALS.intersection(texts[c.start : c.end]) - ranks
        mismatch = bool(clause_ranks) and (bool(ranks) or bool(keys) and not keys & outside)
        mismatch = mismatch or (bool(qwords) and _described(texts, c, m, m.answers))
        m.status = _status(c, asked, main_marked, mismatch)
        m.subordinate, m.marked = c.concessive, c.answer_marked
        m.taken_back = m.status != "refused" and _denied_in(texts, c, m)
    _later_clauses(clauses, mentions)
    _own_concessions(texts, clauses, mentions, qwords)
    _denied_for_the_thing(texts, clauses, mentions, entities - _FUNCTION_WORDS)


def _later_clauses(clauses: list[Clause], mentions: list[Mention]) -> None:
    """C2 and C3 across the clauses of a sentence, in place: a later clause naming no answer
    that denies, doubts or contrasts takes back the reports before it (a contrast also the
    beliefs); a report set against an asserted or believed answer named before it (``"...;
    the passage attributes it to Singapore instead"``) is conceded."""
    for c in clauses:
        before = [m for m in mentions if m.start < c.start]
        inside = [m for m in mentions if c.start <= m.start < c.end]
        if (c.denies or c.doubts or c.contrast) and not inside:
            for m in before:
                m.taken_back = m.taken_back or m.status in ("reported", "belief")
        if c.contrast:
            for m in before:
                m.taken_back = m.taken_back or m.status == "belief"
        if c.deviates and c.reported:
            for m in inside:
                against = [o for o in before if o.status in ("asserted", "belief")]
                if m.status == "reported" and any(o.side != m.side for o in against):
                    m.status = "conceded"


# C3: words of a concession about a former state ("although Tokyo used to be the capital").
_FORMER_STATE = frozenset(
    "before previously formerly once long traditionally historically originally until till "
    "earlier former used old ago".split()
)
_PAST = frozenset({"was", "were", "had", "did"} | set(IRREGULAR_PAST))


def _past(words: list[str]) -> bool:
    """Any verb in the past tense (``was``, ``painted``, ``won``)?"""
    return any(w in _PAST or (w.endswith("ed") and len(w) > 4) for w in words)


def _own_concessions(
    texts: list[str], clauses: list[Clause], mentions: list[Mention], qwords: tuple[str, ...]
) -> None:
    """C3, in place: a concession after a reported answer, in the model's own words and
    answering the question (marked, or in the question's words), is the model's answer set
    against the report (``"The passage credits Edison, though The Scream was painted by
    Munch."``): it is asserted, not conceded; unless it speaks of a former state (former words,
    or the past tense where the question asks in the present: ``"..., although Tokyo was the
    capital"``) or reports (``"..., though it also mentions Tokyo"``)."""
    for m in mentions:
        c = next(c for c in clauses if c.start <= m.start < c.end)
        if m.status != "conceded" or not c.concessive or not m.answers:
            continue
        part = texts[c.start : m.start] + texts[m.end : c.end]
        if _FORMER_STATE.intersection(part) or (_past(part) and not _past(list(qwords))):
            continue
        if _REPORT_VERBS.intersection(part):
            continue  # "though it also mentions Tokyo": a report too
        reports = [
            o for o in mentions if o.start < c.start and o.side != m.side and o.status == "reported"
        ]
        if any(not o.subordinate for o in reports):
            m.status = "asserted"


def _denied_for_the_thing(
    texts: list[str], clauses: list[Clause], mentions: list[Mention], things: frozenset[str]
) -> None:
    """M4, in place: ``"X wrote Frankenstein, not The Magic Flute"``: a clause opening with
    ``not`` that names the question's thing (its capitalised words) and no answer denies the
    answers of the clause before it, when that clause does not answer the question."""
    for before, c in zip(clauses, clauses[1:], strict=False):
        words = [w for w in texts[c.start : c.end] if w not in ARTICLES]
        if words[:1] != ["not"] or not things.intersection(words):
            continue
        if any(c.start <= m.start < c.end for m in mentions):
            continue
        for m in mentions:
            if before.start <= m.start < before.end and m.status == "asserted" and not m.answers:
                m.taken_back = True


def _take_back(earlier: list[Mention], clauses: list[Clause], found: list[Mention]) -> None:
    """C2 across sentences: a verdict, a contrast or the real world (``"In reality, ..."``)
    opening the next sentence takes back."""
    first = min((m.start for m in found), default=10**9)
    for c in clauses:
        if c.start >= first:
            break
        for m in earlier:
            if (c.denies or c.reality) and m.status in ("reported", "belief"):
                m.taken_back = True
            if c.contrast and m.status == "belief":
                m.taken_back = True
