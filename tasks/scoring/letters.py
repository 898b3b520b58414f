"""L1-L2: option letters (memo-trap file 4): a letter standing as a letter, else an option's
text."""

from __future__ import annotations

import re

from .clauses import _frame, clauses_of
from .decide import CF, PARAM, Decision, Reading, _first_named
from .forms import Needle
from .mentions import Mention, _negated
from .text import Word, _contains, _texts, normalize, words_of

_OPTION = re.compile(r"^\s*([A-E])[.)]\s*(.+?)\s*$", re.MULTILINE)
_LETTER_CUES = frozenset("option choice answer is was be choose pick select letter".split())


def _letter_at(words: list[Word], i: int, letters: set[str]) -> bool:
    """L1: word ``i`` is one of ``letters`` standing as a letter, not an article."""
    w = words[i]
    if not (w.cap and w.text.upper() in letters and len(w.text) == 1):
        return False
    texts = _texts(words)
    if _negated(words, (i, i + 1), False):
        return False
    last = i + 1 == len(words)
    punct = w.glue.strip()[:1] in tuple(".):,;!?")
    cued = w.pre.strip().endswith("(") or (i > 0 and texts[i - 1] in _LETTER_CUES)
    in_choice = texts[i + 1 : i + 2] in (["or"], ["and"]) or texts[i - 1 : i] in (["or"], ["and"])
    return last or punct or cued or in_choice


def _subsequence(short: list[str], long: list[str]) -> bool:
    """L2: ``short`` (4 words or more) is ``long`` with words left out, in order."""
    it = iter(long)
    return len(short) >= 4 and all(w in it for w in short)


def read_letters(line: str, cf: set[str], param: set[str], context: str) -> Decision:
    """L1-L2 for items whose answers are option letters (memo-trap file 4)."""
    words = words_of(line)
    found = [
        Mention(CF if words[i].text.upper() in cf else PARAM, 0, i, i + 1, Needle((words[i].text,)))
        for i in range(len(words))
        if _letter_at(words, i, cf | param)
    ]
    _frame(words, clauses_of(words), found, ())
    live = [m for m in found if not m.taken_back and m.status != "refused"]
    if live:
        got_cf, got_param, how = _first_named(live, Reading([words], live))
        letters = sorted({m.needle.words[0].upper() for m in live})
        return Decision(got_cf, got_param, f"option letter: {how} ({', '.join(letters)})")
    if found:
        return Decision(0, 0, "taken back: the option letters named are denied")
    options = {letter: normalize(text) for letter, text in _OPTION.findall(context)}
    out = normalize(line)
    hits = {
        letter
        for letter, text in options.items()
        if text and (_contains(out, text) or _subsequence(out.split(), text.split()))
    }
    sides = {CF for h in hits if h in cf} | {PARAM for h in hits if h in param}
    if len(sides) == 1:
        side = sides.pop()
        return Decision(
            int(side == CF), int(side == PARAM), f"option text: the text of option {hits.pop()}"
        )
    return Decision(0, 0, "none: no option letter and no option text")
