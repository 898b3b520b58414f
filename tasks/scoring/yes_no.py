"""Y1-Y3: yes/no answers (ConflictQA): the words, claims that restate the question, and the
decision."""

from __future__ import annotations

from dataclasses import dataclass

from .clauses import Clause, _frame, _take_back, clauses_of
from .decide import _STATUS_WORDS, CF, PARAM, Decision, Reading, _first_named, _others
from .forms import Needle
from .mentions import Mention
from .tables import _PARTICLES, _QUESTION_STOP, IRREGULAR_PAST, OPPOSITES
from .text import ARTICLES, Word, _stems, _texts, split_sentences, words_of

_YES, _NO = frozenset({"yes", "yeah", "yep", "true"}), frozenset({"no", "nope", "false"})
_PRONOUNS = frozenset("it they he she there that this you we i".split())
_LEADERS = frozenset("answer so well oh and".split())
_AFTER_CUES = frozenset("is say says said so then a".split())
_PAIR_CUES = _AFTER_CUES | {"answer", "be"}  # Y1: before "yes or no" ("It could be yes or no")
_NEG_WORDS = frozenset(
    "not never no none nobody nothing nowhere neither nor cannot without".split()
)
_NT = frozenset(
    "can don doesn didn isn wasn aren weren won wouldn couldn shouldn hasn haven ain".split()
)
_NEG_PREFIXES = ("un", "in", "im", "il", "ir", "dis", "non")
_AUX = frozenset(
    "do does did is was are were can could would will should has have had must".split()
)
_HEDGES = frozenset(
    "may might possibly perhaps likely unlikely depends depending probably unclear uncertain "
    "maybe".split()
)
_AFFIRM = frozenset(
    "indeed actually really certainly definitely absolutely surely sure fact also still true "
    "course yes reality truth".split()
)


# Y1: a sentence or clause that is only one of these affirms or denies the question's claim
# (after an optional ``"that's"``, ``"it is"``: ``"That's true."``, ``"Correct."``).
_WHOLE_YES = tuple(
    p.split()
    for p in ("absolutely", "certainly", "definitely", "indeed", "sure", "of course", "probably",
              "likely", "very likely", "most likely", "highly likely", "true", "correct", "right",
              "exactly", "quite right", "absolutely true", "definitely true", "i think so",
              "i believe so", "without a doubt", "affirmative", "yup", "sure thing")
)  # fmt: skip
_WHOLE_NO = tuple(
    p.split()
    for p in ("not at all", "not really", "of course not", "certainly not", "absolutely not",
              "definitely not", "probably not", "no way", "i don t think so", "unlikely",
              "not likely", "very unlikely", "highly unlikely", "most unlikely", "false",
              "not true", "untrue", "incorrect", "not correct", "wrong", "not right",
              "not so", "i don t believe so", "i doubt it", "doubtful", "no chance", "never",
              "negative", "nah", "certainly not true")
)  # fmt: skip
_WHOLE_FRAMES = (["that", "s"], ["that", "is"], ["it", "s"], ["it", "is"], ["this", "is"])


def _whole_yes(texts: list[str]) -> bool | None:
    """Y1: a sentence or clause that is only an affirmation or a denial of the claim
    (``"Absolutely."``, ``"That's true."``, ``"Correct."``, ``"Not at all."``, ``"Not likely"``)."""
    texts = texts[1:] if texts[:1] in (["but"], ["however"], ["yet"]) else texts
    if texts[:2] in _WHOLE_FRAMES:
        texts = texts[2:]
    if any(texts == list(p) for p in _WHOLE_NO):
        return False
    if any(texts == list(p) for p in _WHOLE_YES):
        return True
    return None


def _yes_no_at(words: list[Word], clauses: list[Clause], i: int) -> bool | None:
    """Y1: True/False when word ``i`` is a yes/no answer word, else None."""
    texts = _texts(words)
    word = texts[i]
    if word not in _YES | _NO or texts[i - 1 : i] == ["not"]:
        return None
    ends = words[i].glue.strip() != "" or i + 1 == len(words)
    nxt = texts[i + 1] if i + 1 < len(texts) else None
    leading = all(t in _LEADERS for t in texts[:i])
    short = leading and len(texts) - i <= 2  # "No way.", "Yes indeed."
    cued = i > 0 and texts[i - 1] in _AFTER_CUES | {"answer"}
    pair_cued = i > 0 and texts[i - 1] in _PAIR_CUES
    clause = next(c for c in clauses if c.start <= i < c.end)
    alone = [t for t in texts[clause.start : clause.end] if t not in _LEADERS | {"but", "then"}]
    joined = {*texts[i + 1 : i + 3], *texts[max(0, i - 2) : i]}
    pair = {"yes", "no"} <= joined | {word} and bool({"and", "or"} & joined)  # "Yes and no"
    repeated = bool(alone) and set(alone) == {word}  # "No.", "no no no"
    if (leading and (ends or nxt in _PRONOUNS)) or short or (ends and cued) or repeated:
        return word in _YES
    if pair and (leading or pair_cued or texts[max(0, i - 2) : i - 1] in (["yes"], ["no"])):
        return word in _YES  # "Yes and no", "It could be yes or no"
    return None


_NEG_PREDICATES = frozenset(
    "unable impossible incapable fails failed lacks forbidden banned".split()
)


def _negation_at(texts: list[str], i: int) -> bool:
    w = texts[i]
    return w in _NEG_WORDS | _NEG_PREDICATES or (w == "t" and i > 0 and texts[i - 1] in _NT)


@dataclass(frozen=True)
class Asked:
    """A yes/no question as Y2 reads it: its folded words and its content units (a name of
    capitalised words is one unit, ``"Johann Sebastian Bach"``: a restatement may name it by
    one of its words, ``"Bach"``)."""

    texts: tuple[str, ...]
    units: tuple[tuple[str, ...], ...]

    @property
    def stems(self) -> set[str]:
        return set().union(*(_claim_stems(w) for u in self.units for w in u))

    def stems_of(self, k: int) -> set[str]:
        """The stems of unit ``k``."""
        return set().union(*(_claim_stems(w) for w in self.units[k]))


_CLAIM_SKIP = (_QUESTION_STOP | _AFFIRM | {"ever"}) - _NEG_WORDS  # "Did X ever win?"


def asked(question: str) -> Asked:
    """The question's words and content units (Y2)."""
    words, units = words_of(question), []
    joined = False  # the last unit is a name that may go on ("Ivan the Terrible")
    for i, w in enumerate(words):
        if joined and w.text in ARTICLES | _PARTICLES:
            continue
        if w.text in _CLAIM_SKIP or w.text in _NEG_WORDS:
            joined = False
            continue
        name = w.cap and i > 0
        if name and joined:
            units[-1] = (*units[-1], w.text)
        else:
            units.append((w.text,))
        joined = name
    return Asked(tuple(_texts(words)), tuple(units))


def _claim_stems(word: str) -> set[str]:
    """:func:`_stems` and the base form of an irregular past (``"won"`` -> ``"win"``)."""
    return _stems(word) | ({IRREGULAR_PAST[word]} if word in IRREGULAR_PAST else set())


def _opposite(word: str, q: Asked) -> set[str]:
    """Y2: the question's words that ``word`` is the opposite of (``north`` for ``South``)."""
    return {w for u in q.units for w in u if frozenset((word, w)) in OPPOSITES}


def _unit_at(found: set[str], q: Asked, last: int) -> int:
    """The index of the question's unit a restated word names: the first at or after the
    last one named (``"Lake"`` of ``"Lake Michigan"`` after ``"Lake Superior"``)."""
    units = [k for k in range(len(q.units)) if found & q.stems_of(k)]
    return min((k for k in units if k >= last), default=units[0])


def _claim(texts: list[str], q: Asked) -> bool | None:
    """Y2: yes/no when ``texts`` (a clause) restates the question's claim, else None.

    Every content word must be the question's (or one with a negative prefix: ``untrustworthy``,
    or its opposite: ``north`` for ``south``, both negating; an opposite only with the
    question's words in the question's order), except a qualifier after the restatement when
    it names all of the question's content units (``"... can walk on two legs for short
    periods"``); negations count up to the claim's end.
    """
    q_stems = q.stems
    negations, matched, extra_at, order, swapped = 0, set(), None, [], False
    for i, w in enumerate(texts):
        if _negation_at(texts, i):
            negations += extra_at is None
        elif w in _HEDGES and w not in q.texts:
            return None
        elif w not in _CLAIM_SKIP and extra_at is None:
            prefixed = next((w[len(p) :] for p in _NEG_PREFIXES if w.startswith(p)), "")
            opposite = _opposite(w, q)
            if _claim_stems(w) & q_stems:
                found = _claim_stems(w) & q_stems
            elif (prefixed and _stems(prefixed) & q_stems) or opposite:
                found = _stems(prefixed) & q_stems if prefixed else set()
                found |= set().union(*(_claim_stems(o) for o in opposite))
                negations, swapped = negations + 1, swapped or bool(opposite)
            else:
                extra_at = i  # content the question does not have: a qualifier, or no claim
                continue
            matched |= found
            order.append(_unit_at(found, q, order[-1] if order else 0))
    if swapped and order != sorted(order):
        return None  # "The USA is south of Canada" for "Is Canada north of the USA?": a converse
    covered = sum(1 for u in q.units if any(_claim_stems(w) & matched for w in u))
    if len(matched) < 2 or covered < (len(q.units) if extra_at is not None else 0.6 * len(q.units)):
        return None
    q_neg = sum(_negation_at(list(q.texts), i) for i in range(len(q.texts)))
    return (negations - q_neg) % 2 == 0


# Y2: a claim embedded after "that" under a frame made only of these words, which negate it
# when they hold an odd number of negatives ("There is no evidence that ...", "No one can
# guarantee that ...", "It is impossible to say that ...", "There is no doubt that ...").
_FRAME_WORDS = frozenset(
    "it is s there was no not evidence proof true false impossible to say guarantee one can "
    "cannot t don doesn clear known proven fact the a i think believe would certain sure doubt "
    "nothing".split()
)
_FRAME_NEGATIVES = frozenset("no not impossible false cannot t nothing doubt".split())


def _embedded_claim(part: list[str], q: Asked) -> bool | None:
    """Y2: ``<frame> that <restated claim>``; the frame's negatives flip the claim."""
    if "that" not in part:
        return None
    j = part.index("that")
    head, claim = part[:j], part[j + 1 :]
    if not head or not all(w in _FRAME_WORDS for w in head):
        return None
    said = _claim(claim, q)
    if said is None:
        return None
    return said == (sum(w in _FRAME_NEGATIVES for w in head) % 2 == 0)


_AUX_NEGATIVE = {"can": "can", "will": "won"}  # "can't", "won't"; otherwise aux + "n" ("doesn't")


def _short_aux(texts: list[str], q: Asked) -> bool | None:
    """Y2: a short answer in the question's own auxiliary (``"Does X ...?"`` -> ``"It does."``,
    ``"It doesn't."``, ``"Of course they can"``): yes unless negated."""
    texts = texts[2:] if texts[:2] == ["of", "course"] else texts  # "Of course it would"
    if not q.texts or not texts or len(texts) > 5:
        return None
    aux = q.texts[0]
    forms = {aux, aux + "n", _AUX_NEGATIVE.get(aux, aux), "cannot" if aux == "can" else aux}
    allowed = forms | _PRONOUNS | _NEG_WORDS | _AFFIRM | {"t"} | set(q.texts)
    if aux not in _AUX or not forms.intersection(texts) or not set(texts) <= allowed:
        return None
    negations = sum(w in _NEG_WORDS or w == "t" for w in texts)
    return negations % 2 == 0


def _clause_claims(words: list[Word], clauses: list[Clause], q: Asked) -> list:
    """Y2 per clause: (start, end, yes?) for each clause that restates the question's claim,
    alone, under a frame or as a short auxiliary answer (``"Of course it would"``), and a
    claim restated with one word set against another (:func:`_substituted`)."""
    texts, found = _texts(words), []
    short = _short_aux(texts, q)
    if short is not None:
        return [(0, len(texts), short)]
    for c in clauses:
        part = texts[c.start : c.end]
        said = _short_aux(part, q)
        said = _claim(part, q) if said is None else said
        said = _embedded_claim(part, q) if said is None else said
        if said is not None:
            found.append((c.start, c.end, said))
    return found or _substituted(texts, clauses, q)


_NOT_ONLY = frozenset("only just merely even simply".split())  # "not only X": X is kept


def _substituted(texts: list[str], clauses: list[Clause], q: Asked) -> list:
    """Y2: ``"Ivan used the Julian calendar, not the Byzantine one."``: a clause of ``not``
    and words of the question (and ``one``) after clauses that restate the rest of the claim
    with at most two words of their own, the substitute: the claim is denied."""
    q_stems = q.stems
    for c in clauses[1:]:
        part = [w for w in texts[c.start : c.end] if w not in ARTICLES]
        if part[:1] != ["not"] or part[1:2] and part[1] in _NOT_ONLY:
            continue
        denied = set().union(*(_claim_stems(w) & q_stems for w in part[1:]))
        if not denied or not set(part[1:]) - {"one", "ones"} <= {
            w for w in part if _claim_stems(w) & q_stems
        }:
            continue
        before = texts[: c.start]
        content = [w for w in before if w not in _CLAIM_SKIP and w not in _NEG_WORDS]
        matched = set().union(*(_claim_stems(w) & q_stems for w in content)) if content else set()
        extra = [w for w in content if not _claim_stems(w) & q_stems]
        hedged = any(w in _HEDGES for w in before) or any(
            _negation_at(before, i) for i in range(len(before))
        )
        covered = all(any(_claim_stems(w) & (matched | denied) for w in u) for u in q.units)
        if covered and not denied & matched and len(extra) <= 2 and not hedged:
            q_neg = sum(_negation_at(list(q.texts), i) for i in range(len(q.texts)))
            return [(c.start, c.end, q_neg % 2 == 1)]
    return []


def _yes_no_mentions(k: int, words: list[Word], cf_yes: bool, q: Asked) -> list:
    """Y1 words of one sentence, and Y2 claims of the first or of one that opens with a
    contrast (``"In reality, ..."``, ``"However, ..."``), as mentions (claims marked by the
    needle ``("claim",)``), framed by C1-C4."""
    clauses, texts = clauses_of(words), _texts(words)
    found = []
    for c in clauses:  # Y1: a clause that is only an affirmation or a denial ("That's true.")
        said = _whole_yes(texts[c.start : c.end])
        if said is not None:
            side = CF if said == cf_yes else PARAM
            found.append(Mention(side, k, c.start, c.end, Needle(tuple(texts[c.start : c.end]))))
    for i in range(len(words)):
        said = None if any(m.start <= i < m.end for m in found) else _yes_no_at(words, clauses, i)
        if said is not None:
            side = CF if said == cf_yes else PARAM
            found.append(Mention(side, k, i, i + 1, Needle((words[i].text,))))
    set_against = bool(clauses) and (clauses[0].contrast or clauses[0].reality)
    if (k == 0 or set_against) and not (words and words[-1].glue.strip().startswith("?")):
        named = {next(c.start for c in clauses if c.start <= m.start < c.end) for m in found}
        for start, end, said in _clause_claims(words, clauses, q):
            if start not in named:
                side = CF if said == cf_yes else PARAM
                found.append(Mention(side, k, start, end, Needle(("claim",))))
    found.sort(key=lambda m: m.start)
    _frame(words, clauses, found, ())
    return found


def read_yes_no(line: str, cf_yes: bool, question: str) -> Decision:
    """Y1-Y2 for items whose answers are yes and no (``cf_yes``: the context answer is yes).
    Asserted words decide, then asserted claims, then reported words and claims; both answers
    count when offered together (``"Yes and no"``), contradictory ones for neither."""
    reading, q = Reading([], []), asked(question)
    for k, raw in enumerate(split_sentences(line)):
        words = words_of(raw)
        found = _yes_no_mentions(k, words, cf_yes, q)
        if k:
            _take_back(reading.mentions, clauses_of(words), found)
        reading.sentences.append(words)
        reading.mentions += found
    live = [m for m in reading.mentions if not m.taken_back and m.status != "refused"]
    for status in ("asserted", "reported", "conceded"):
        for claims in (False, True):
            deciding = [
                m for m in live if m.status == status and (m.needle.words == ("claim",)) == claims
            ]
            if deciding:
                return _yes_no_decision(deciding, reading, status, claims, cf_yes)
    if reading.mentions:
        return Decision(0, 0, "taken back: the yes/no answer named is taken back")
    return Decision(0, 0, "none: no yes/no word and no restated claim")


def _yes_no_decision(
    deciding: list[Mention], reading: Reading, status: str, claims: bool, cf_yes: bool
) -> Decision:
    """The decision and its reason once the deciding yes/no mentions are known."""
    rule = "yes/no claim: restates the question" if claims else "yes/no word"
    rule += "" if status == "asserted" else f", {_STATUS_WORDS[status]}"
    if len({m.side for m in deciding}) == 2:
        cf, param, how = _first_named(deciding, reading)
        if cf and param:
            return Decision(1, 1, f"{rule}: {how}")
        return Decision(0, 0, f"{rule}: contradictory answers")
    side = deciding[0].side
    others = _others([m for m in reading.mentions if m.side != side], deciding)
    word = "yes" if (side == CF) == cf_yes else "no"
    return Decision(
        int(side == CF), int(side == PARAM), f"{rule}: {word}" + (f" ({others})" if others else "")
    )
