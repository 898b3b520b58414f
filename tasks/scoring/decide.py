"""C5: the decision over framed mentions, the first named, and :class:`Decision`, what
``judge`` returns (``cf_acc``, ``param_acc`` and the reason)."""

from __future__ import annotations

from dataclasses import dataclass

from .clauses import _opens_alternative
from .mentions import Mention
from .text import ARTICLES, Word

CF, PARAM = "cf", "param"
REASON_METRIC = "reason"  # the per-item metric naming the rule that decided cf_acc / param_acc
_SIDE_NAME = {CF: "context answer", PARAM: "memorised answer"}


@dataclass
class Reading:
    """The sentences read (R2) and the mentions found in them."""

    sentences: list[list[Word]]
    mentions: list[Mention]
    copied: bool = False
    later: bool = False  # an answer came from a sentence after the first


@dataclass(frozen=True)
class Decision:
    """``cf_acc`` / ``param_acc`` of one output and the rule that decided them."""

    cf_acc: int
    param_acc: int
    reason: str

    def as_dict(self) -> dict[str, int | str]:
        return {"cf_acc": self.cf_acc, "param_acc": self.param_acc, REASON_METRIC: self.reason}


def _offered_as_choice(words: list[Word], a: Mention, b: Mention) -> bool:
    """C5's exception: ``"Herat or Kabul"``, ``"Herat and Kabul"``, ``"Herat/Kabul"`` (only
    ``or``/``and``, or a slash, between the two mentions), or the second offered after
    ``"or,"`` opening a clause (``"... heart is (or, ending in "lies": ... lies)"``)."""
    first, second = sorted((a, b), key=lambda m: m.start)
    between = [w.text for w in words[first.end : second.start] if w.text not in ARTICLES]
    slash = first.end == second.start and words[first.end - 1].glue.strip() == "/"
    alternative = _opens_alternative(words, first.end, second.start)
    return between in (["or"], ["and"]) or slash or alternative


def _together(reading: Reading, a: Mention, b: Mention) -> str:
    """C5: how two mentions are offered together (``"the same words"``, ``"offered as a
    choice"``: ``"X or Y"``, or ``"X. Or, ... Y"`` in the next sentence), else ``""``."""
    if a.sentence == b.sentence:
        if a.start == b.start:
            return "the same words"
        if _offered_as_choice(reading.sentences[a.sentence], a, b):
            return "offered as a choice"
    elif abs(a.sentence - b.sentence) == 1:
        later = max(a, b, key=lambda m: m.sentence)
        if _opens_alternative(reading.sentences[later.sentence], 0, 1):
            return "offered as a choice"
    return ""


def _first_named(mentions: list[Mention], reading: Reading) -> tuple[int, int, str]:
    """C5: (cf, param, how) among the mentions that decide: the first named counts, both when
    offered as ``"X or Y"`` or named by the same words."""
    ordered = sorted(mentions, key=lambda m: (m.sentence, m.start))
    first = {side: next((m for m in ordered if m.side == side), None) for side in (CF, PARAM)}
    cf, param = first[CF], first[PARAM]
    if cf is None or param is None:
        side = CF if cf else PARAM
        return int(side == CF), int(side == PARAM), _SIDE_NAME[side]
    together = _together(reading, cf, param)
    if together:
        return 1, 1, f"both answers, {together}"
    side = CF if (cf.sentence, cf.start) < (param.sentence, param.start) else PARAM
    other = PARAM if side == CF else CF
    return (
        int(side == CF),
        int(side == PARAM),
        f"{_SIDE_NAME[side]}, named before the {_SIDE_NAME[other]}",
    )


_STATUS_WORDS = {
    "reported": "reported",
    "belief": "a belief",
    "conceded": "conceded",
    "refused": "refused",
}


def _others(mentions: list[Mention], deciding: list[Mention]) -> str:
    """How the answers that did not decide were framed, for the reason."""
    sides = {m.side for m in deciding}
    rest = [m for m in mentions if m.side not in sides]
    if not rest:
        return ""
    m = rest[0]
    how = "taken back" if m.taken_back else _STATUS_WORDS.get(m.status, m.status)
    return f"{_SIDE_NAME[m.side]} {how}"


def _remarks(by: dict[str, list[Mention]]) -> str | None:
    """C5: asserted answers that do not answer the question, set against a reported answer of
    the other side in a main clause: ``"remark"`` when the reported clause answers the
    question (``"According to the passage, Kyoto is the capital, but Tokyo is larger."``: the
    asserted answer is a remark), ``"unclear"`` when neither does, else None."""
    sides = {m.side for m in by["asserted"]}
    rivals = [m for m in by["reported"] if m.side not in sides and not m.subordinate]
    if not rivals or any(m.answers for m in by["asserted"]):
        return None
    return "remark" if any(m.answers for m in rivals) else "unclear"


_LEVELS = (
    ("asserted", "asserted"),
    ("reported", "reported, not taken back"),
    ("belief", "belief, not taken back"),
    ("conceded", "conceded only"),
)


def decide_entities(reading: Reading) -> Decision:
    """C5 over the mentions of :func:`read_entities`."""
    live = [m for m in reading.mentions if not m.taken_back]
    by = {level: [m for m in live if m.status == level] for level, _ in _LEVELS}
    suffix = " (read past the first sentence)" if reading.later else ""
    remarks = _remarks(by) if by["asserted"] else None
    if remarks == "unclear":
        return Decision(
            0, 0, "unclear: a reported answer against an asserted one that does not answer"
        )
    if remarks == "remark":
        by["asserted"] = []
        suffix += " (the other, asserted answer is a remark)"
    for better in (lambda m: m.answers, lambda m: m.marked, lambda m: not m.opening):
        preferred = [m for m in by["asserted"] if better(m)]
        preferred += [  # an answer offered with a preferred one stays ("X - or, ...: Y")
            m
            for m in by["asserted"]
            if m not in preferred and any(_together(reading, m, p) for p in preferred)
        ]
        if preferred and len(preferred) < len(by["asserted"]):
            by["asserted"] = preferred  # C5: answering, marked, quote-final mentions first
    for level, rule in _LEVELS:
        if not by[level]:
            continue
        cf, param, how = _first_named(by[level], reading)
        chosen = [m for m in by[level] if (m.side == CF and cf) or (m.side == PARAM and param)]
        framed = [m for m in reading.mentions if m.taken_back or m.status != "asserted"]
        others = _others(framed, chosen)
        if level == "asserted" and others and cf + param == 1:
            return Decision(cf, param, f"override: {others}, {how} asserted{suffix}")
        return Decision(cf, param, f"{rule}: {how}{suffix}")
    if any(m.taken_back for m in reading.mentions):
        return Decision(
            0, 0, "taken back: the answer named is denied or contradicted, none asserted"
        )
    if any(m.status == "refused" for m in reading.mentions):
        return Decision(0, 0, "refused: an answer is named only in a refusal")
    if reading.copied:
        return Decision(
            0,
            0,
            "restated question: the answer is named only as part of the question or instruction",
        )
    return Decision(0, 0, "none: neither answer named")
