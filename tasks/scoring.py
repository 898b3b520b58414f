"""Scoring: does a generated answer state the context's answer, the memorised one, both?

Pure functions over strings and log-likelihoods; ``utils.py`` wires them into lm-eval.
Changing anything here changes numbers: bump ``metadata.version`` in every task template.

:func:`score_generation` is containment of normalised words, narrowed by the rules below. Each
rule was added after reading real outputs of Gemma 3 270M and SmolLM2-135M-Instruct (50 per
model and task; the counts before and after are in the README, "Measured on real models");
each errs towards a miss, because a false positive is worse than a miss.

Where to look (:func:`answer_scope`)
    1. first line, then its first sentence: models go on with new sentences that mention
       either answer in passing (``"Osaka is the capital. ... largest after Tokyo."``);
    2. the context's set-up ``"X is often thought ... However, Y"``: when the first sentence
       frames a claim as a belief and a contrast follows, only what follows the contrast
       counts (an output cut at 32 tokens right after ``"However,"`` states neither).

What an answer may look like (:func:`answer_alternatives`)
    3. lists: ``"La Paz (administrative); Sucre (judicial)"``, ``"X or Y"``, ``"X/Y"``;
    4. a parenthesised alias: ``"Rangoon (Yangon)"``; other parentheses are dropped;
    5. ``"Athens, Greece"`` also as ``"Athens"`` (both parts capitalised names);
    6. ``"Amazon Rainforest"`` also as ``"the Amazon"`` (with its article);
    7. a country also as its demonym (``Peru`` -> ``Peruvian``) from a fixed table;
    8. ``"2,000 km"`` also as ``"2,000 kilometers"``; ``Kyiv`` also as ``Kiev``;
    9. an answer made only of articles (``"A"``, ``"The"``) keeps its article.

Which mention counts (:func:`_live_mentions`, :func:`score_generation`)
    10. inside a longer competitor (``York`` in ``New York``): not a mention;
    11. negated or replaced (``not X``, ``instead of X``, ``moved ... from X to``) or the
        country restated from the question (``capital of X``): not a mention;
    12. both answers still named: the first one named counts (``"Herat, not Kabul"`` is
        caught by rule 11), unless they are offered as ``"X or Y"`` (both count);
    13. proverb endings stored with their full stop (memo-trap's ``"fonder."``) count only
        as the last word of the first sentence, or as the first word of an output that goes
        on with the prompt's sentence (not ``"The seeds of..."`` for ``"seeds."``);
        ``egg``/``eggs`` and ``serve``/``served`` are the same ending.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

ARTICLES = frozenset({"a", "an", "the"})


def normalize(text: str) -> str:
    """Normalise for containment: NFKD, strip accents, lowercase, punctuation -> space,
    drop the articles a/an/the, collapse whitespace.

    ``"Durrës"`` -> ``"durres"``; ``"The U.S.-born"`` -> ``"u s born"``.
    """
    return " ".join(w for w in _tokens(text) if w not in ARTICLES)


def _tokens(text: str) -> list[str]:
    """Words of :func:`normalize` with the articles kept (rules 6, 9 and 11 need them)."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.lower()
    text = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text)
    return text.split()


def _contains(haystack: str, needle: str) -> bool:
    """Whole-word containment of normalised strings (``"oran"`` is not in ``"orange"``)."""
    return bool(needle) and f" {needle} " in f" {haystack} "


def answer_present(output: str, answer: str, competitor: str = "") -> bool:
    """Does ``output`` state ``answer``? (plain containment; used by ``score_answer``)

    Containment after :func:`normalize`, on whole words. When ``answer`` is a part of
    ``competitor`` (``"York"`` vs ``"New York"``), mentions of the competitor do not count
    as mentions of the answer: they are blanked out before looking for the answer.
    """
    out, ans, comp = normalize(output), normalize(answer), normalize(competitor)
    if not ans:
        return False
    if comp and comp != ans and _contains(comp, ans):
        out = f" {out} ".replace(f" {comp} ", " | ").strip()
    return _contains(out, ans)


# ------------------------------------------------------------------------- where to look

# A full stop after these does not end a sentence ("St. Petersburg", "Washington, D.C. is").
_ABBREVIATIONS = frozenset(
    "st mt ft dr mr mrs ms jr sr no vs etc inc co ltd gen lt col sgt ave approx ca".split()
)
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*(?=\s)")
# Rule 2: a belief frame in the first sentence, then one of these opening a clause.
_BELIEF = re.compile(
    r"\b(often|commonly|widely|popularly|generally|traditionally|mistakenly|thought|"
    r"believed|assumed|misconception)\b",
    re.IGNORECASE,
)
_CONTRAST = re.compile(
    r"(?:^|[,;:]\s*|\s[-\u2013\u2014]\s*)(however|but|yet|surprisingly|in reality|actually|"
    r"in fact|instead)\b[,:]?",
    re.IGNORECASE,
)


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
    return [s for s in sentences if s]


def answer_scope(output: str) -> str:
    """The part of ``output`` that states the model's answer (rules 1 and 2).

    ``" Kabul is the capital. Herat is in the west."`` -> ``"Kabul is the capital."``;
    ``"It is often thought to be Yen. However, it is actually the Yuan."`` ->
    ``"it is actually the Yuan."``; ``"... widely recognized as Chamberlain. However, it"``
    (cut at the token budget) -> ``"it"``.
    """
    line = output.strip().split("\n", 1)[0]
    sentences = [s for s in split_sentences(line) if any(c.isalnum() for c in s)]
    if not sentences:
        return ""
    first = sentences[0]
    if not _BELIEF.search(first):
        return first
    contrast = _CONTRAST.search(first, 1)
    if contrast:
        return first[contrast.end() :].strip()
    if len(sentences) > 1:
        opening = _CONTRAST.match(sentences[1])
        if opening:
            return sentences[1][opening.end() :].strip()
    return first


# ------------------------------------------------------------------- what an answer may be


@dataclass(frozen=True)
class Needle:
    """One accepted form of an answer, as normalised words.

    ``with_articles``: matched against the output's words with its articles kept (rules 6
    and 9), otherwise against its words without articles, like :func:`normalize`.
    ``sentence_end``: a proverb ending (rule 13), counted only at the ends of the scope.
    """

    words: tuple[str, ...]
    with_articles: bool = False
    sentence_end: bool = False


# Rule 7: country -> demonyms. Countries whose capital bears their name (Luxembourg,
# Singapore, Djibouti, ...) are left out: there "Luxembourgish" could mean the city or the
# country the question names. "Indian" (Indian Ocean) and "American"/"British" (too broad)
# are left out too.
DEMONYMS: dict[str, tuple[str, ...]] = {
    "afghanistan": ("afghan",), "albania": ("albanian",), "algeria": ("algerian",),
    "argentina": ("argentine", "argentinian"), "armenia": ("armenian",),
    "australia": ("australian",), "austria": ("austrian",), "bangladesh": ("bangladeshi",),
    "belgium": ("belgian",), "bolivia": ("bolivian",), "brazil": ("brazilian",),
    "cambodia": ("cambodian",), "canada": ("canadian",), "chile": ("chilean",),
    "china": ("chinese",), "colombia": ("colombian",), "cuba": ("cuban",),
    "denmark": ("danish",), "egypt": ("egyptian",), "england": ("english",),
    "ethiopia": ("ethiopian",), "finland": ("finnish",), "france": ("french",),
    "germany": ("german",), "greece": ("greek",), "hungary": ("hungarian",),
    "indonesia": ("indonesian",), "iran": ("iranian",), "iraq": ("iraqi",),
    "ireland": ("irish",), "israel": ("israeli",), "italy": ("italian",),
    "japan": ("japanese",), "jordan": ("jordanian",), "kenya": ("kenyan",),
    "mongolia": ("mongolian",), "morocco": ("moroccan",), "namibia": ("namibian",),
    "nepal": ("nepalese", "nepali"), "netherlands": ("dutch",), "nigeria": ("nigerian",),
    "norway": ("norwegian",), "pakistan": ("pakistani",), "peru": ("peruvian",),
    "philippines": ("filipino", "philippine"), "poland": ("polish",),
    "portugal": ("portuguese",), "russia": ("russian",), "scotland": ("scottish",),
    "spain": ("spanish",), "sweden": ("swedish",), "switzerland": ("swiss",),
    "syria": ("syrian",), "tanzania": ("tanzanian",), "thailand": ("thai",),
    "turkey": ("turkish",), "ukraine": ("ukrainian",), "vietnam": ("vietnamese",),
    "wales": ("welsh",),
}  # fmt: skip
# Rule 8: the same name in another transliteration (not renamings: those are other answers).
SPELLINGS: dict[str, tuple[str, ...]] = {"kyiv": ("kiev",), "kiev": ("kyiv",)}
_UNITS: dict[str, tuple[str, ...]] = {
    "km": ("kilometers", "kilometres", "kilometer", "kilometre"),
    "mi": ("miles", "mile"),
    "m": ("meters", "metres"),
    "kg": ("kilograms", "kilogrammes"),
    "ft": ("feet", "foot"),
}
# Rule 6: "<Name> <head>" is also "the <Name>" ("the Amazon", "the Sahara", "the Pacific").
_SHORT_HEADS = frozenset({"rainforest", "river", "desert", "ocean"})
_NOT_SHORT = frozenset({"indian", "arabian", "southern", "northern", "great", "african"})
_PAREN = re.compile(r"\(([^)]*)\)")


def _is_name(text: str) -> bool:
    """Every word capitalised, no digits (``"Yangon"``, ``"North Carolina"``, ``"D.C."``)."""
    words = [w for w in re.split(r"[\s-]+", text.strip()) if w]
    return bool(words) and all(w[0].isupper() for w in words) and not re.search(r"\d", text)


def _split_list(answer: str) -> list[str]:
    """Rules 3-5 on the raw string: the listed alternatives an answer spells out.

    ``"La Paz (administrative); Sucre (judicial)"`` -> La Paz, Sucre; ``"Rangoon (Yangon)"``
    -> Rangoon, Yangon; ``"Naypyidaw or Nay Pyi Taw"`` -> both; ``"Kyiv/Kiev"`` -> both
    (not ``"AC/DC"``: a side under 4 letters is no alternative); ``"Athens, Greece"`` ->
    Athens (only when both sides are capitalised names, so not ``"Peace, love"``).
    """
    found: list[str] = []
    for part in answer.split(";"):
        aliases = [a.strip() for a in _PAREN.findall(part) if _is_name(a) and len(a.split()) <= 4]
        base = _PAREN.sub(" ", part).strip()
        for side in re.split(r"\s+or\s+", base):
            pieces = [p.strip() for p in side.split("/")]
            found.extend(pieces if all(len(p) >= 4 for p in pieces) else [side.strip()])
        found.extend(aliases)
    for alt in list(found):
        head, comma, tail = alt.partition(",")
        if comma and "," not in tail and _is_name(head) and _is_name(tail):
            found.append(head.strip())
    return [f for f in found if f]


def _derived(words: tuple[str, ...]) -> list[Needle]:
    """Rules 6-8 on normalised words: short form, demonyms, spellings, unit words."""
    key = " ".join(words)
    found = [Needle((d,)) for d in DEMONYMS.get(key, ()) + SPELLINGS.get(key, ())]
    if len(words) >= 2 and words[-1] in _SHORT_HEADS and words[0] not in _NOT_SHORT:
        found.append(Needle(("the", *words[:-1]), with_articles=True))
    if len(words) >= 2 and words[-1] in _UNITS and all(w.isdigit() for w in words[:-1]):
        found.extend(Needle((*words[:-1], unit)) for unit in _UNITS[words[-1]])
    return found


def _inflections(word: str) -> tuple[str, ...]:
    """Rule 13's forms of a proverb ending: ``eggs`` -> ``egg``, ``served`` -> ``serve``,
    ``egg`` -> ``eggs`` (models recite proverbs in either number or tense)."""
    forms = [word]
    if word.endswith("s") and len(word) > 3:
        forms.append(word[:-1])
    else:
        forms.append(word + "s")
    if word.endswith("ed") and len(word) > 4:
        forms.append(word[:-1])
    return tuple(forms)


def answer_alternatives(answer: str, competitor: str = "") -> list[Needle]:
    """Every accepted form of ``answer`` (rules 3-9 and 13), the whole answer first.

    A form that is the competitor itself is dropped (``"eggs."`` against ``"egg."``), unless
    the two answers are the same words (memo-trap's ``"First."`` / ``"first."``).
    """
    stripped = answer.strip()
    words = tuple(_tokens(stripped))
    if words and all(w in ARTICLES for w in words):  # rule 9
        return [Needle(words, with_articles=True)]
    content = tuple(w for w in words if w not in ARTICLES)
    if stripped.endswith(".") and len(content) == 1 and not _PAREN.search(stripped):  # rule 13
        return [Needle((form,), sentence_end=True) for form in _inflections(content[0])]
    needles: list[Needle] = []
    for alt in [stripped, *_split_list(stripped)]:
        alt_words = tuple(w for w in _tokens(alt) if w not in ARTICLES)
        if alt_words:
            needles.extend([Needle(alt_words), *_derived(alt_words)])
    rival = tuple(w for w in _tokens(competitor) if w not in ARTICLES)
    unique = list(dict.fromkeys(needles))
    if rival and rival != content:
        unique = [n for n in unique if n.words != rival]
    return unique


# -------------------------------------------------------------------- which mention counts

Span = tuple[int, int]  # [start, end) in the scope's words (articles kept)

_NEGATORS = frozenset({"not", "never", "formerly", "previously", "replacing", "replaced"})
_NEGATOR_PAIRS = frozenset({("instead", "of"), ("rather", "than"), ("no", "longer")})
_RELOCATE = frozenset(
    "move moved moving relocate relocated relocating relocation transfer transferred "
    "shift shifted changed".split()
)
_APPOSITIVE = frozenset({"city", "town", "village", "island", "port"})


def _find(words: list[str], needle: Needle, first_ok: bool = True) -> list[Span]:
    """Spans where ``needle`` occurs in ``words`` (rule 13: only at the scope's two ends;
    at its start only when ``first_ok``)."""
    index = list(range(len(words)))
    if not needle.with_articles:
        index = [i for i in index if words[i] not in ARTICLES]
    seq, n = [words[i] for i in index], len(needle.words)
    spans = [
        (index[k], index[k + n - 1] + 1)
        for k in range(len(seq) - n + 1)
        if tuple(seq[k : k + n]) == needle.words
    ]
    if needle.sentence_end:
        first = next((i for i, w in enumerate(words) if w not in ARTICLES), -1)
        spans = [s for s in spans if (first_ok and s[0] == first) or s[1] == len(words)]
    return spans


def _before(words: list[str], start: int, size: int) -> tuple[str, ...]:
    """The ``size`` words before ``start``, articles skipped (``"capital of the X"``)."""
    return tuple(w for w in words[:start] if w not in ARTICLES)[-size:]


def _demoted(words: list[str], start: int, both_named: bool) -> bool:
    """Rule 11: a mention that the output does not give as its answer.

    Always: ``not X``, ``formerly X``, ``instead of X``, ``rather than X``, ``no longer X``,
    ``moved the capital from X`` (a relocation verb before), ``capital (city) of X`` (the
    question's own country restated). Only when both answers are named: ``<noun> of X``
    (``"Beira is the capital of the province of Maputo"``), except ``the city of X``, which
    names X itself (``"The capital of San Marino is the city of San Marino"``).
    """
    prev = _before(words, start, 3)
    if (prev[-1:] and prev[-1] in _NEGATORS) or prev[-2:] in _NEGATOR_PAIRS:
        return True
    if prev[-1:] == ("from",) and _RELOCATE.intersection(words[:start]):
        return True
    if prev[-2:] == ("capital", "of") or prev[-3:] == ("capital", "city", "of"):
        return True
    if both_named and prev[-1:] == ("of",):
        raw = words[max(0, start - 3) : start]
        return not (len(raw) == 3 and raw[0] in ARTICLES and raw[1] in _APPOSITIVE)
    return False


def _continues(scope: str, answer: str) -> bool:
    """Rule 13: may the scope's first word be a proverb ending? Only when the output goes
    on with the prompt's sentence: a capital where the ending has none opens a sentence of
    its own (``"The seeds of a great idea..."`` is no ending ``"seeds."``; ``" evil that
    has consumed it."`` and ``" Devil."`` for ``"Devil."`` are)."""
    first = next((c for c in scope if c.isalpha()), "")
    ending = next((c for c in answer if c.isalpha()), "")
    return not (first.isupper() and ending.islower())


def _live_mentions(
    words: list[str], needles: list[Needle], rivals: list[Needle], first_ok: bool
) -> tuple[list[Span], bool]:
    """Mentions of one answer (rule 10: not inside a longer rival mention), and whether
    its needles are proverb endings (those skip rule 11: proverbs say "not ripe")."""
    rival_spans = [s for r in rivals for s in _find(words, r)]
    spans = sorted({s for n in needles for s in _find(words, n, first_ok)})
    spans = [
        s
        for s in spans
        if not any(r[0] <= s[0] and s[1] <= r[1] and r[1] - r[0] > s[1] - s[0] for r in rival_spans)
    ]
    return spans, any(n.sentence_end for n in needles)


def _offered_as_choice(words: list[str], a: Span, b: Span) -> bool:
    """Rule 12's exception: ``"Herat or Kabul"`` (only ``or`` between the two mentions)."""
    (_, end), (start, _) = sorted((a, b))
    return [w for w in words[end:start] if w not in ARTICLES] == ["or"]


def score_generation(output: str, cf_answer: str, param_answer: str) -> dict[str, int]:
    """``cf_acc`` / ``param_acc`` for one generated answer (1 = that answer is stated).

    Rules 1-13 of the module docstring: look only at :func:`answer_scope`, accept every
    form of :func:`answer_alternatives`, drop mentions that are not the model's answer, and
    when both answers are still named, count the first one named (both for ``"X or Y"``).
    """
    scope = answer_scope(output)
    words = _tokens(scope)
    cf_needles = answer_alternatives(cf_answer, param_answer)
    param_needles = answer_alternatives(param_answer, cf_answer)
    cf_first, param_first = _continues(scope, cf_answer), _continues(scope, param_answer)
    cf_spans, cf_end = _live_mentions(words, cf_needles, param_needles, cf_first)
    param_spans, param_end = _live_mentions(words, param_needles, cf_needles, param_first)
    both = bool(cf_spans and param_spans)
    if not cf_end:
        cf_spans = [s for s in cf_spans if not _demoted(words, s[0], both)]
    if not param_end:
        param_spans = [s for s in param_spans if not _demoted(words, s[0], both)]
    cf_acc, param_acc = int(bool(cf_spans)), int(bool(param_spans))
    same = normalize(cf_answer) == normalize(param_answer)
    cf_at, param_at = (cf_spans or [(0, 0)])[0], (param_spans or [(0, 0)])[0]
    if cf_acc and param_acc and not same and cf_at[0] != param_at[0]:
        if not _offered_as_choice(words, cf_at, param_at):
            cf_acc, param_acc = int(cf_at < param_at), int(param_at < cf_at)
    return {"cf_acc": cf_acc, "param_acc": param_acc}


def score_answer(output: str, answer: str) -> dict[str, int]:
    """``acc`` for in-distribution items: 1 when the expected answer is in the first line."""
    first_line = output.strip().split("\n", 1)[0]
    return {"acc": int(answer_present(first_line, answer))}


def score_choice(loglik_cf: float, loglik_param: float) -> dict[str, float]:
    """``cf_pref`` = p(ctx) / (p(ctx) + p(mem)) from summed log-likelihoods (nats), and ``acc``."""
    diff = loglik_param - loglik_cf
    cf_pref = 1.0 / (1.0 + math.exp(diff)) if diff < 700 else 0.0
    return {"cf_pref": cf_pref, "acc": float(loglik_cf > loglik_param)}
