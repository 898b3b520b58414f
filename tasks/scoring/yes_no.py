"""Y1-Y3: yes/no answers (ConflictQA): the words, claims that restate the question, and the
decision."""

from __future__ import annotations

from .clauses import Clause, _frame, _take_back, clauses_of
from .decide import _STATUS_WORDS, CF, PARAM, Decision, Reading, _first_named, _others
from .forms import Needle
from .mentions import Mention
from .tables import _QUESTION_STOP
from .text import Word, _stems, _texts, split_sentences, words_of

_YES, _NO = frozenset({"yes", "yeah", "yep", "true"}), frozenset({"no", "nope", "false"})
_PRONOUNS = frozenset("it they he she there that this you we i".split())
_LEADERS = frozenset("answer so well oh and".split())
_AFTER_CUES = frozenset("is say says said so then a".split())
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
    "course yes".split()
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
    clause = next(c for c in clauses if c.start <= i < c.end)
    alone = [t for t in texts[clause.start : clause.end] if t not in _LEADERS | {"but", "then"}]
    joined = {*texts[i + 1 : i + 3], *texts[max(0, i - 2) : i]}
    pair = {"yes", "no"} <= joined | {word} and bool({"and", "or"} & joined)  # "Yes and no"
    repeated = bool(alone) and set(alone) == {word}  # "No.", "no no no"
    if (leading and (ends or nxt in _PRONOUNS)) or short or (ends and cued) or repeated:
        return word in _YES
    if pair and (leading or texts[max(0, i - 2) : i - 1] in (["yes"], ["no"])):
        return word in _YES
    return None


_NEG_PREDICATES = frozenset(
    "unable impossible incapable fails failed lacks forbidden banned".split()
)


def _negation_at(texts: list[str], i: int) -> bool:
    w = texts[i]
    return w in _NEG_WORDS | _NEG_PREDICATES or (w == "t" and i > 0 and texts[i - 1] in _NT)


def _claim(texts: list[str], qtexts: list[str]) -> bool | None:
    """Y2: yes/no when ``texts`` (a clause) restates the question's claim, else None.

    Every content word must be the question's (or one with a negative prefix: ``untrustworthy``),
    except a qualifier after the restatement when it names all of the question's content words
    (``"... can walk on two legs for short periods"``); negations count up to the claim's end.
    """
    skip = (_QUESTION_STOP | _AFFIRM) - _NEG_WORDS
    q_content = [w for w in qtexts if w not in skip and w not in _NEG_WORDS]
    q_stems = set().union(*(_stems(w) for w in q_content)) if q_content else set()
    negations, matched, extra_at = 0, set(), None
    for i, w in enumerate(texts):
        if _negation_at(texts, i):
            negations += extra_at is None
        elif w in _HEDGES and w not in qtexts:
            return None
        elif w not in skip:
            prefixed = next((w[len(p) :] for p in _NEG_PREFIXES if w.startswith(p)), "")
            if extra_at is None and _stems(w) & q_stems:
                matched |= _stems(w) & q_stems
            elif extra_at is None and prefixed and _stems(prefixed) & q_stems:
                negations, matched = negations + 1, matched | (_stems(prefixed) & q_stems)
            elif extra_at is None:
                extra_at = i  # content the question does not have: a qualifier, or no claim
    covered = sum(1 for w in q_content if _stems(w) & matched)
    if len(matched) < 2 or covered < (
        len(q_content) if extra_at is not None else 0.6 * len(q_content)
    ):
        return None
    q_neg = sum(_negation_at(qtexts, i) for i in range(len(qtexts)))
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


def _embedded_claim(part: list[str], qtexts: list[str]) -> bool | None:
    """Y2: ``<frame> that <restated claim>``; the frame's negatives flip the claim."""
    if "that" not in part:
        return None
    j = part.index("that")
    head, claim = part[:j], part[j + 1 :]
    if not head or not all(w in _FRAME_WORDS for w in head):
        return None
    said = _claim(claim, qtexts)
    if said is None:
        return None
    return said == (sum(w in _FRAME_NEGATIVES for w in head) % 2 == 0)


_AUX_NEGATIVE = {"can": "can", "will": "won"}  # "can't", "won't"; otherwise aux + "n" ("doesn't")


def _short_aux(texts: list[str], qtexts: list[str]) -> bool | None:
    """Y2: a short answer in the question's own auxiliary (``"Does X ...?"`` -> ``"It does."``,
    ``"It doesn't."``, ``"Of course they can"``): yes unless negated."""
    texts = texts[2:] if texts[:2] == ["of", "course"] else texts  # "Of course it would"
    if not qtexts or not texts or len(texts) > 5:
        return None
    aux = qtexts[0]
    forms = {aux, aux + "n", _AUX_NEGATIVE.get(aux, aux), "cannot" if aux == "can" else aux}
    allowed = forms | _PRONOUNS | _NEG_WORDS | _AFFIRM | {"t"} | set(qtexts)
    if aux not in _AUX or not forms.intersection(texts) or not set(texts) <= allowed:
        return None
    negations = sum(w in _NEG_WORDS or w == "t" for w in texts)
    return negations % 2 == 0


def _clause_claims(words: list[Word], clauses: list[Clause], qtexts: list[str]) -> list:
    """Y2 per clause: (start, end, yes?) for each clause that restates the question's claim,
    alone, under a frame or as a short auxiliary answer (``"Of course it would"``)."""
    texts, found = _texts(words), []
    short = _short_aux(texts, qtexts)
    if short is not None:
        return [(0, len(texts), short)]
    for c in clauses:
        part = texts[c.start : c.end]
        said = _short_aux(part, qtexts)
        said = _claim(part, qtexts) if said is None else said
        said = _embedded_claim(part, qtexts) if said is None else said
        if said is not None:
            found.append((c.start, c.end, said))
    return found


def _yes_no_mentions(k: int, words: list[Word], cf_yes: bool, qtexts: list[str]) -> list:
    """Y1 words of one sentence, and Y2 claims of the first, as mentions (claims marked by
    the needle ``("claim",)``), framed by C1-C4."""
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
    if k == 0 and not (words and words[-1].glue.strip().startswith("?")):
        named = {next(c.start for c in clauses if c.start <= m.start < c.end) for m in found}
        for start, end, said in _clause_claims(words, clauses, qtexts):
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
    reading, qtexts = Reading([], []), _texts(words_of(question))
    for k, raw in enumerate(split_sentences(line)):
        words = words_of(raw)
        found = _yes_no_mentions(k, words, cf_yes, qtexts)
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
