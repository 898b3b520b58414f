"""Scoring: which answer does a generated output give, the context's, the memorised one, both?

Pure functions over strings and log-likelihoods; ``utils.py`` wires them into lm-eval.
Changing anything here changes numbers: bump ``metadata.version`` of every task it scores.

Two readings of a generated output are reported (``docs/scoring.md`` says which to read when):

* ``cf_contains`` / ``param_contains`` (:func:`contains_answer`): the paper's plain reading, the
  answer's words anywhere in the output after :func:`normalize`, no other rule;
* ``cf_acc`` / ``param_acc`` (:func:`judge`): the answer the output *asserts*, found by the rules
  below; ``reason`` names the rule that decided (kept per item, shown by ``cpi flips``).

Every rule errs towards a miss: reporting an answer the model did not give is worse than
missing one it gave. ``tests/scoring_corpus/`` holds the labelled outputs the rules are
measured on (``benchmarks/scoring_validation.py``).

What is read
    R1 first line: generation stops at the first newline; only the first line is read.
    R2 first sentence: the answer comes from the first sentence that names one. The next
       sentence is read only while nothing is asserted and the sentence before is a short
       verdict or disclaimer naming no answer (``"That is wrong. Japan's capital is Tokyo."``,
       ``"I'm sorry, but I can't verify that. ..."``) or a question (``"Tokyo? No, ..."``), or
       the next one opens with a marked contrast or denies (``"The passage says Kyoto. In
       reality, however, ..."``, ``"... This is incorrect."``).
    R3 clauses: sentences are cut into clauses at ``, ; : ( ) -`` and before ``but``,
       ``however``, ``yet``, ``although``, ``though``, ``while``, ``whereas``.

What an answer may look like (its forms)
    F1 listed alternatives: ``"La Paz (administrative); Sucre (judicial)"``, ``"X or Y"`` and
       ``"X/Y"`` between names, a parenthesised name (``"Rangoon (Yangon)"``), ``"Athens,
       Greece"`` as ``"Athens"``; ``"China and Pakistan"`` is given by naming both.
    F2 short names: a generic head may go (``"Mount Fuji"`` -> ``"Fuji"``, ``"Mt Fuji"``;
       ``"Salt Lake City"``, ``"Labour Party"``, ``"RMS Titanic"``, ``"Project Mercury"``,
       ``"221B Baker Street"``, ``"Sputnik 1"``), and so may ``"de/of Y"`` when the question
       names Y (``"Santiago de Cuba"`` for Cuba); the short form must be capitalised, is
       not an adjective alone (``"Indian"``), and is dropped when the question names it
       (``"Mexico"`` is the question's country, not ``"Mexico City"``).
    F3 people (the question asks ``who`` or for ``the author``, ``the scientist``, ...): a name
       also without its title (``"Catherine the Great"``), as its surname (``"Armstrong"``,
       ``"de Klerk"``, ``"von Goethe"``, ``"Goethe"``) or as its first word (``"Galileo"``).
    F4 numbers: digits and words are one number (``"twelve"`` = ``"12"``, ``"two thousand"`` =
       ``"2,000"`` = ``"2000"``, ``"nineteen ninety-one"`` = ``"1991"``); ``"2,000 km"`` is
       also ``"2,000 kilometres"`` and ``"2,000"``; ``"May 2010"`` also ``"2010"``.
    F5 other spellings: a country's demonym from a fixed table (``Peru`` -> ``"Peruvian"``),
       ``Kyiv``/``Kiev``, a name with or without spaces (``"Al Jahra"``), a lower-case word in
       the singular or plural (``"friend"`` for ``"friends"``).
    F6 an answer made only of articles (``"A"``) keeps them.
    F7 proverb endings stored with a full stop (``"fonder."``) count only where an ending
       stands: the output's first word when it goes on with the prompt's sentence, the last
       word of a sentence or before ``;`` or a dash, the last word of a quotation of three
       words or more; ``egg``/``eggs``, ``serve``/``served`` are one ending.
    A form that is also a form of the other answer counts for neither.

Which mention counts
    M1 a mention inside a longer mention of the other answer (``York`` in ``New York``) is not
       a mention of it.
    M2 longer names: a mention joined to a capitalised word outside its answer is another name
       (``"New Amsterdam"``, ``"Lance Armstrong"``, ``"Tokyo Tower"``), except function words,
       titles, particles, demonyms and place heads (``"Kyoto City"``, ``"Mississippi River"``)
       and a person's full name going on (``"Michelangelo Buonarroti"``).
    M3 restated question: words the question contains, repeated with the question's
       neighbouring word (``"Guinea-Bissau"`` for ``Bissau``, ``"capital of Luxembourg"``,
       ``"Europe or North America"``) or as a possessive (``"Luxembourg's"``), restate the
       question; ``"the city of X"`` still names X.
    M4 negated or former: ``not X``, ``never``, ``neither``/``nor``, ``formerly``, ``instead
       of``, ``rather than``, ``no longer``, ``replacing``, ``moved ... from X``, ``X is
       not/wrong/incorrect`` (unless those are the question's own words: ``"Which city is not
       a capital?"``), ``X was ... until``; with both answers named, ``<noun> of X``. A proverb
       ending is negated only by a clause that opens with the negation (``"X, not Y"``).
    M5 another rank: in a clause with a rank the question lacks (``"the second person"`` for
       ``"the first person"``; ``"third-largest city"`` when the question asks for a capital)
       a mention does not answer the question.
    M6 a description: ``"X was a theoretical physicist."`` (X, ``is/was a``, nothing the
       question asks about) does not answer.

Which clause asserts
    C1 reported: a clause attributing its claim to the context (``"according to the passage"``,
       ``"the background says"``, ``"the passage's answer"``, ``"(passage)"``, ``"X is
       named"``) or to the usual saying (``"the original proverb ends in"``) reports an
       answer; an attribution naming no answer frames the clause before it (or after it, when
       it opens the sentence). A belief (``"often thought"``, ``"most people would say"``)
       reports too, unless its clause opens with a contrast (``"..., but it is usually
       credited to Y"`` asserts Y).
    C2 taken back: a reported answer is taken back by a denial in its clause (``"the text is
       wrong about Kyoto"``) or by a later clause naming no answer that denies, doubts or
       contrasts (``"..., but that is wrong"``, ``"..., but I can't confirm that"``,
       ``"... This is incorrect."``); a belief by any later contrast.
    C3 conceded: in ``"while/although X, Y"`` (or ``"Y, although X"``) X is conceded when a main
       clause is reported or marked as the answer (``in fact``, ``actually``, ``really``,
       ``in reality``, ``still``, ``correct``, ``real``, ``the answer is``).
    C4 refused: a clause that refuses (``"I can't"``, ``"I'm sorry"``, ``"discriminatory"``)
       asserts nothing.
    C5 decision: asserted mentions decide, then reported ones not taken back, then beliefs,
       then conceded ones. Among asserted ones, those in a clause that answers the question
       (its words, the answer alone, or marked) beat the rest, marked ones (``"the answer
       is X"``) beat unmarked ones, and a proverb's final word beats its first word. An
       asserted answer in a clause that does not answer is a remark when a reported answer of
       the other side answers the question (``"According to the passage, Kyoto is the
       capital, but Tokyo is larger."``), and nothing is decided when neither answers. Among
       the mentions that decide, the first one named counts; both count when offered together
       (``"X or Y"``, ``"X and Y"``, ``"X/Y"``).

Yes/no answers (both answers are ``yes``/``no``: ConflictQA)
    Y1 words: ``yes``/``no``/``true``/``false`` opening a sentence (before punctuation, the end
       or a pronoun: ``"No, ..."``, ``"Yes it does"``; not ``"No one"``), in a sentence of two
       words (``"No way."``), after ``the answer is``, ``say``, ``so``, ``a``, or alone in a
       clause, in any sentence of the line; a sentence or clause that is only an affirmation
       or its negation (``"Absolutely."``, ``"Of course not."``, ``"Not at all."``, ``"It is
       unlikely"``, ``"I don't think so."``); ``"Yes and no"`` offers both.
    Y2 claims: a clause of the first sentence that restates the question's claim answers it:
       yes when its negations (``not``, ``n't``, ``never``, ``unable``, a negative prefix on a
       word of the question: ``untrustworthy``) match the question's in parity, else no. A
       restatement may end with a qualifier only when it names every content word of the
       question (``"A greyhound can walk on two legs for short periods"``); under a frame
       after ``that`` whose negatives flip it (``"There is no evidence that ..."``); or as the
       question's auxiliary (``"It doesn't."``). A hedge (``may``, ``might``, ``depends``) or a
       question mark answers nothing.
    Y3 decision: clauses frame words and claims as in C1-C4; asserted words decide, then
       asserted claims, then reported words, then reported claims; answers that contradict
       each other count for neither.

Option letters (both answers are single letters: memo-trap file 4)
    L1 a capital letter standing as a letter: before ``. ) : , ;`` or the end, after ``(``,
       ``option``, ``answer is``, ``choose``, or joined by ``or``/``and`` to another letter
       (not the article of ``"A common belief"``); negated or denied letters (``"not B"``,
       ``"A is wrong"``) do not count; the first letter named counts, ``"A or B"`` both.
    L2 without a letter, an output that gives one option's text, whole or with words left
       out (``"The Earth is flat."``), gives that option's letter.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

ARTICLES = frozenset({"a", "an", "the"})
CF, PARAM = "cf", "param"
REASON_METRIC = "reason"  # the per-item metric naming the rule that decided cf_acc / param_acc
_SIDE_NAME = {CF: "context answer", PARAM: "memorised answer"}


# ============================================================================ plain reading


def _fold(text: str) -> str:
    """NFKD without combining marks, lower-cased (``"Durrës"`` -> ``"durres"``)."""
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def _tokens(text: str) -> list[str]:
    """Words of :func:`normalize` with the articles kept."""
    text = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in _fold(text))
    return text.split()


def normalize(text: str) -> str:
    """Normalise for containment: NFKD, strip accents, lowercase, punctuation -> space,
    drop the articles a/an/the, collapse whitespace.

    ``"Durrës"`` -> ``"durres"``; ``"The U.S.-born"`` -> ``"u s born"``.
    """
    return " ".join(w for w in _tokens(text) if w not in ARTICLES)


def _contains(haystack: str, needle: str) -> bool:
    """Whole-word containment of normalised strings (``"oran"`` is not in ``"orange"``)."""
    return bool(needle) and f" {needle} " in f" {haystack} "


def answer_present(output: str, answer: str, competitor: str = "") -> bool:
    """Does ``output`` contain ``answer`` (plain containment; ``score_answer`` uses it)?

    When ``answer`` is a part of ``competitor`` (``"York"`` vs ``"New York"``), mentions of the
    competitor are blanked out before looking for the answer.
    """
    out, ans, comp = normalize(output), normalize(answer), normalize(competitor)
    if not ans:
        return False
    if comp and comp != ans and _contains(comp, ans):
        out = f" {out} ".replace(f" {comp} ", " | ").strip()
    return _contains(out, ans)


def contains_answer(output: str, answers: Iterable[str]) -> int:
    """``cf_contains`` / ``param_contains``: 1 when any of ``answers`` occurs in ``output`` as
    whole words after :func:`normalize` (the paper's containment), no other rule."""
    out = normalize(output)
    return int(any(_contains(out, normalize(a)) for a in answers))


# ============================================================================ words


@dataclass(frozen=True)
class Word:
    """One word of an output: ``text`` folded (:func:`_fold`, commas of ``2,000`` dropped),
    ``cap`` whether it starts with a capital letter, ``pre`` / ``glue`` the raw characters
    before and after it (punctuation, quotes, spaces)."""

    text: str
    cap: bool
    pre: str
    glue: str


_WORD = re.compile(r"\d{1,3}(?:,\d{3})+(?![\d,])|[^\W_]+")


def words_of(text: str) -> list[Word]:
    """The words of ``text`` with their capitalisation and surrounding punctuation."""
    text = unicodedata.normalize("NFC", text)
    found = list(_WORD.finditer(text))
    words = []
    for i, m in enumerate(found):
        start = found[i - 1].end() if i else 0
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        raw = m.group()
        words.append(
            Word(_fold(raw).replace(",", ""), raw[:1].isupper(), text[start : m.start()],
                 text[m.end() : end])
        )  # fmt: skip
    return words


def _texts(words: list[Word]) -> list[str]:
    return [w.text for w in words]


# A full stop after these does not end a sentence ("St. Petersburg", "Washington, D.C. is").
_ABBREVIATIONS = frozenset(
    "st mt ft dr mr mrs ms jr sr no vs etc inc co ltd gen lt col sgt ave approx ca".split()
)
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*(?=\s)")


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
    return [s for s in sentences if any(c.isalnum() for c in s)]


def first_line(output: str) -> str:
    """R1: the first line of the output."""
    return output.strip().split("\n", 1)[0]


# ============================================================================ word tables

# F5: country -> demonyms. Countries whose capital bears their name (Luxembourg, Singapore,
# Djibouti, ...) are left out: there "Luxembourgish" could mean the city or the country the
# question names. "Indian" (Indian Ocean) and "American"/"British" (too broad) are left out too.
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
_ALL_DEMONYMS = frozenset(d for ds in DEMONYMS.values() for d in ds)
# F5: the same name in another transliteration (not renamings: those are other answers).
SPELLINGS: dict[str, tuple[str, ...]] = {"kyiv": ("kiev",), "kiev": ("kyiv",)}
# F4: unit abbreviations and their words.
_UNITS: dict[str, tuple[str, ...]] = {
    "km": ("kilometers", "kilometres", "kilometer", "kilometre"),
    "mi": ("miles", "mile"),
    "m": ("meters", "metres"),
    "kg": ("kilograms", "kilogrammes"),
    "ft": ("feet", "foot"),
}
# F2: generic heads a place name may drop, before or after the name; their abbreviations.
_HEADS_BEFORE = frozenset(
    "mount mt lake cape saint st fort isle river rms hms uss ss project operation".split()
)
_HEADS_AFTER = frozenset(
    "city river lake rainforest desert ocean sea mountain mountains falls island islands "
    "peninsula canal strait bay gulf valley county province district region prefecture "
    "stadium park square trench reef basin delta plateau coast forest highlands museum gallery "
    "palace cathedral church temple tower bridge airport station university college library "
    "party empire dynasty team club".split()
)
_HEAD_ABBREVIATIONS = {"mount": "mt", "saint": "st", "fort": "ft"}
# M2: heads that leave a place the same place ("Kyoto City", "Mississippi River"); "Tokyo
# Tower" or "Louvre Museum" may be another thing, so institutions are not among them.
_PLACE_HEADS = frozenset(
    "city river lake rainforest desert ocean sea mountain mountains falls island islands "
    "peninsula canal strait bay gulf valley county province district region prefecture basin "
    "delta plateau coast forest highlands".split()
)
# F2: short forms that are adjectives or colours, never a name on their own.
_NOT_SHORT = frozenset(
    "indian arabian southern northern eastern western great african north south east west "
    "central new old little big royal national grand red black white blue green yellow dead "
    "upper lower".split()
)
# F3: titles a person's name may lose; particles that belong to a surname.
_TITLES = frozenset(
    "sir dame lord lady king queen emperor empress prince princess president pope saint st "
    "dr mr mrs ms general captain professor prof tsar czar sultan".split()
)
_PARTICLES = frozenset("van von de da di del della der den du la le ten ter bin ibn al el".split())
_PERSON_QUESTION = re.compile(
    r"\bwho(?:m|se)?\b|\bname of the (?:author|writer|poet|scientist|politician|artist|painter|"
    r"composer|musician|inventor|philosopher|leader|person|man|woman|actor|actress|singer)\b",
    re.IGNORECASE,
)
_FUNCTION_WORDS = frozenset(
    "the a an in on at of to for from by with and or but nor is was are were be been being it "
    "its this that these those there here so then thus also as if when where which who whom "
    "whose what why how i we you he she they my our your his her their me us him them do does "
    "did has have had will would can could should may might must not no yes s t".split()
)
# M2: capitalised words that do not make a longer name (function words, sentence openers).
_NOT_NAME = _FUNCTION_WORDS | frozenset(
    "answer answers capital city country however although though while according based "
    "correct incorrect true false indeed actually note sure well oh ok okay now today about "
    "approximately around nearly almost over under since during after before between near "
    "within into through across located probably perhaps maybe definitely certainly clearly "
    "only just still even always never both either neither each every all some many most more "
    "less few several first second last next former formerly currently historically "
    "originally officially likely possibly obviously undoubtedly".split()
)
# C5 and Y2: words of a question that say nothing about its content.
_QUESTION_STOP = _FUNCTION_WORDS | frozenset("name known".split())

# F4: number words.
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split()
)
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORD_VALUES = {w: i for i, w in enumerate(_ONES)} | {
    w: 10 * i for i, w in enumerate(_TENS) if i > 1
}


def number_words(n: int) -> tuple[str, ...] | None:
    """``21`` -> ``("twenty", "one")``, ``2000`` -> ``("two", "thousand")``; None for numbers
    nobody writes in words here (at or above a million, or 1,001-999,999 but not whole
    thousands: years such as 1989 are written in digits)."""
    if n < 0 or n >= 1_000_000 or (n > 1000 and n % 1000):
        return None
    if n >= 1000:
        return (*number_words(n // 1000), "thousand")  # type: ignore[misc]
    if n >= 100:
        rest = number_words(n % 100) if n % 100 else ()
        return (_ONES[n // 100], "hundred", *(rest or ()))
    if n < 20:
        return (_ONES[n],)
    return (_TENS[n // 10],) + ((_ONES[n % 10],) if n % 10 else ())


def parse_number_words(words: tuple[str, ...]) -> int | None:
    """``("forty", "six")`` -> 46, ``("two", "thousand")`` -> 2000; None if not a number."""
    total = current = 0
    seen = False
    for w in words:
        if w == "and" and seen:
            continue
        if w in _WORD_VALUES:
            current += _WORD_VALUES[w]
        elif w == "hundred" and seen:
            current *= 100
        elif w == "thousand" and seen:
            total, current = total + current * 1000, 0
        else:
            return None
        seen = True
    return total + current if seen else None


# ============================================================================ answer forms


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
        if words[0] in _HEAD_ABBREVIATIONS:
            found.append((_HEAD_ABBREVIATIONS[words[0]], *words[1:]))
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
    if texts[-2] not in ARTICLES and not re.fullmatch(r"[ivxlc]+|\d+", last) and len(last) >= 3:
        found.append((last,))
        if texts[-2] in _PARTICLES:
            found.append((texts[-2], last))
    if len(texts[0]) >= 3 and texts[0] not in _PARTICLES:
        found.append((texts[0],))  # "Galileo", "Mao", "Napoleon": the name alone
    return [Needle(f, derived=True, capital=len(f) == 1) for f in found]


_MONTHS = frozenset(
    "january february march april may june july august september october november december".split()
)


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


def _derived(raw: str, words: tuple[str, ...], person: bool) -> list[Needle]:
    """F2-F5 forms of one alternative."""
    key = " ".join(words)
    found = [Needle((d,), derived=True, modifier=True) for d in DEMONYMS.get(key, ())]
    found += [Needle((s,), derived=True) for s in SPELLINGS.get(key, ())]
    found += [Needle(f, derived=True) for f in _number_forms(words) + _year_forms(words)]
    found += _head_forms(words)
    if len(words) == 1 and raw.strip().islower() and len(words[0]) > 3:
        found += [Needle((f,), derived=True) for f in _inflections(words[0])[1:]]
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


def _contains_seq(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


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


# ============================================================================ mentions

Span = tuple[int, int]  # [start, end) in a sentence's words (articles kept)

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


# ============================================================================ clauses

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
    "refer refers referred put puts explain explains explained".split()
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


def _has(texts: list[str], phrase: Iterable[str]) -> bool:
    phrase = tuple(phrase)
    n = len(phrase)
    return any(tuple(texts[i : i + n]) == phrase for i in range(len(texts) - n + 1))


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
    )


def clauses_of(words: list[Word]) -> list[Clause]:
    """R3: the clauses of one sentence."""
    texts = _texts(words)
    bounds = [0]
    for i in range(1, len(words)):
        if _CLAUSE_PUNCT.search(words[i - 1].glue) or texts[i] in _CLAUSE_OPENERS:
            bounds.append(i)
    bounds.append(len(words))
    return [_clause(texts, a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


# ============================================================================ reading entities


@dataclass
class Sides:
    """Both answers of one item: their forms, raw answers and the question's words."""

    needles: dict[str, list[Needle]]
    answers: dict[str, list[str]]
    qwords: tuple[str, ...]
    person: bool = False  # the question asks for a person (F3, M2)
    entities: frozenset[str] = frozenset()  # the question's capitalised words (M5)
    own: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.own = {s: {w for n in ns for w in n.words} for s, ns in self.needles.items()}


def _continues(sentence: str, answer: str) -> bool:
    """F7: may the output's first word be a proverb ending? Not when a capital opens the
    output where the ending has none (``"The seeds of..."`` is no ending ``"seeds."``)."""
    first = next((c for c in sentence if c.isalpha()), "")
    ending = next((c for c in answer if c.isalpha()), "")
    return not (first.isupper() and ending.islower())


def _raw_spans(words: list[Word], k: int, raw: str, sides: Sides) -> dict[str, list[tuple]]:
    """Per side, (span, needle) of every form found, before M1-M4."""
    texts = _texts(words)
    found: dict[str, list[tuple]] = {}
    for side, needles in sides.needles.items():
        first_ok = k == 0 and any(_continues(raw, a) for a in sides.answers[side])
        ends = ending_positions(words, first_ok)
        spans = []
        for n in needles:
            if n.parts:
                spans.extend((span, n) for span in _find_parts(texts, n))
                continue
            for span in _find(texts, n) + _find_joined(texts, n):
                if n.sentence_end and not _at_ending(span, ends):
                    continue
                if n.capital and not words[span[0]].cap:
                    continue
                spans.append((span, n))
        found[side] = spans
    return found


def _inside(a: Span, b: Span) -> bool:
    """``a`` lies within ``b`` and is shorter."""
    return b[0] <= a[0] and a[1] <= b[1] and b[1] - b[0] > a[1] - a[0]


def _sentence_mentions(words: list[Word], k: int, raw: str, sides: Sides) -> tuple[list, bool]:
    """The mentions of one sentence after M1-M4, and whether M3 dropped one."""
    found = _raw_spans(words, k, raw, sides)
    copied = False
    kept: dict[str, list[tuple]] = {}
    for side, spans in found.items():
        other = [s for o, ss in found.items() if o != side for s, _ in ss]
        mine = [s for s, _ in spans]
        keep = []
        for span, n in spans:
            if any(_inside(span, r) for r in other) or any(_inside(span, r) for r in mine):
                continue  # M1 (and a shorter form of the same answer inside a longer one)
            if n.sentence_end or n.with_articles or n.parts:
                keep.append((span, n))
                continue
            exempt = n.modifier or n.words[0].isdigit() or (sides.person and not n.derived)
            if not exempt and _longer_name(words, span, sides.own[side]):
                continue  # M2
            if _copied(words, span, n, sides.qwords):
                copied = True  # M3
                continue
            keep.append((span, n))
        kept[side] = list({s: (s, n) for s, n in keep}.values())
    both = all(kept.values()) and len(kept) == 2
    texts = _texts(words)
    ends = ending_positions(words, False)
    mentions = [
        Mention(side, k, span[0], span[1], n, opening=n.sentence_end and span[1] - 1 not in ends)
        for side, spans in kept.items()
        for span, n in spans
        if not (
            _corrected(words, span) if n.sentence_end else _negated(texts, span, both, sides.qwords)
        )
    ]  # M4
    return sorted(mentions, key=lambda m: (m.start, m.end)), copied


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
    for m in mentions:
        c = next(c for c in clauses if c.start <= m.start < c.end)
        outside = set(texts[c.start : m.start] + texts[m.end : c.end])
        m.answers = c.marked or c.reported or _bare(texts, c, m) or bool(outside & question_words)
        clause_ranks = _ORDINALS.intersection(texts[c.start : c.end]) - ranks
        mismatch = bool(clause_ranks) and (bool(ranks) or bool(keys) and not keys & outside)
        mismatch = mismatch or (bool(qwords) and _described(texts, c, m, m.answers))
        m.status = _status(c, asked, main_marked, mismatch)
        m.subordinate, m.marked = c.concessive, c.answer_marked
        m.taken_back = m.status != "refused" and _denied_in(texts, c, m)
    for c in clauses:
        before = [m for m in mentions if m.start < c.start]
        unnamed = not any(c.start <= m.start < c.end for m in mentions)
        if (c.denies or c.doubts or c.contrast) and unnamed:
            for m in before:
                m.taken_back = m.taken_back or m.status in ("reported", "belief")
        if c.contrast:
            for m in before:
                m.taken_back = m.taken_back or m.status == "belief"


@dataclass
class Reading:
    """The sentences read (R2) and the mentions found in them."""

    sentences: list[list[Word]]
    mentions: list[Mention]
    copied: bool = False
    later: bool = False  # an answer came from a sentence after the first


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
    """R2: is the next sentence read? (nothing asserted yet is checked by the caller)."""
    prev_words, prev_found = prev
    if _verdict(prev_words, prev_found) or prev_words[-1].glue.strip().startswith("?"):
        return True
    opens = clauses[0]
    believed = any(m.status == "belief" for m in mentions)
    if opens.contrast and (believed or any(c.marked for c in clauses)):
        return True
    return any(c.denies for c in clauses)


def _take_back(earlier: list[Mention], clauses: list[Clause], found: list[Mention]) -> None:
    """C2 across sentences: a verdict or contrast opening the next sentence takes back."""
    first = min((m.start for m in found), default=10**9)
    for c in clauses:
        if c.start >= first:
            break
        for m in earlier:
            if c.denies and m.status in ("reported", "belief"):
                m.taken_back = True
            if c.contrast and m.status == "belief":
                m.taken_back = True


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
        if any(m.status == "asserted" and not m.taken_back for m in reading.mentions):
            break
        prev = (words, found)
    return reading


# ============================================================================ deciding


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
    ``or``/``and``, or a slash, between the two mentions)."""
    first, second = sorted((a, b), key=lambda m: m.start)
    between = [w.text for w in words[first.end : second.start] if w.text not in ARTICLES]
    slash = first.end == second.start and words[first.end - 1].glue.strip() == "/"
    return between in (["or"], ["and"]) or slash


def _first_named(mentions: list[Mention], reading: Reading) -> tuple[int, int, str]:
    """C5: (cf, param, how) among the mentions that decide: the first named counts, both when
    offered as ``"X or Y"`` or named by the same words."""
    ordered = sorted(mentions, key=lambda m: (m.sentence, m.start))
    first = {side: next((m for m in ordered if m.side == side), None) for side in (CF, PARAM)}
    cf, param = first[CF], first[PARAM]
    if cf is None or param is None:
        side = CF if cf else PARAM
        return int(side == CF), int(side == PARAM), _SIDE_NAME[side]
    if cf.sentence == param.sentence:
        if cf.start == param.start:
            return 1, 1, "both answers, the same words"
        if _offered_as_choice(reading.sentences[cf.sentence], cf, param):
            return 1, 1, "both answers, offered as a choice"
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
        return Decision(0, 0, "restated question: the answer is named only as part of the question")
    return Decision(0, 0, "none: neither answer named")


# ============================================================================ yes / no

_YES, _NO = frozenset({"yes", "yeah", "yep", "true"}), frozenset({"no", "nope", "false"})
_PRONOUNS = frozenset("it they he she there that this you we i".split())
_LEADERS = frozenset("answer so well oh and".split())
_AFTER_CUES = frozenset("is say says said so then a".split())
_WHOLE_YES = frozenset("absolutely certainly definitely indeed sure".split())
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
_AFFIRM = frozenset("indeed actually really certainly definitely fact also still true".split())


_WHOLE_NO = tuple(
    p.split()
    for p in ("not at all", "not really", "of course not", "certainly not", "absolutely not",
              "definitely not", "probably not", "no way", "i don t think so")
)  # fmt: skip


def _whole_yes(texts: list[str]) -> bool | None:
    """Y1: a sentence that is only an affirmation or a refusal of the claim (``"Absolutely."``,
    ``"Of course."``, ``"Probably."``, ``"Not at all."``, ``"No way."``, ``"Unlikely."``)."""
    if texts in _WHOLE_NO or texts == ["unlikely"]:
        return False
    if texts in ([w] for w in _WHOLE_YES) or texts in (["of", "course"], ["probably"], ["likely"]):
        return True
    return None


def _yes_no_at(words: list[Word], clauses: list[Clause], i: int) -> bool | None:
    """Y1: True/False when word ``i`` is a yes/no answer word, else None."""
    texts = _texts(words)
    word = texts[i]
    if i == 0 and _whole_yes(texts) is not None:
        return _whole_yes(texts)
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
    if (leading and (ends or nxt in _PRONOUNS)) or short or (ends and cued) or alone == [word]:
        return word in _YES
    if pair and (leading or texts[max(0, i - 2) : i - 1] in (["yes"], ["no"])):
        return word in _YES
    return None


def _stems(word: str) -> set[str]:
    """Crude stems, enough to match ``stimulates`` with ``stimulate``, ``used`` with ``use``."""
    forms = {word}
    for suffix in ("s", "es", "ed", "d", "ing", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            forms.add(word[: -len(suffix)])
    return forms


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
    ``"It doesn't."``, ``"They can."``): yes unless negated."""
    if not qtexts or len(texts) > 5:
        return None
    aux = qtexts[0]
    forms = {aux, aux + "n", _AUX_NEGATIVE.get(aux, aux), "cannot" if aux == "can" else aux}
    allowed = forms | _PRONOUNS | _NEG_WORDS | _AFFIRM | {"t"} | set(qtexts)
    if aux not in _AUX or not forms.intersection(texts) or not set(texts) <= allowed:
        return None
    negations = sum(w in _NEG_WORDS or w == "t" for w in texts)
    return negations % 2 == 0


def _clause_claims(words: list[Word], clauses: list[Clause], qtexts: list[str]) -> list:
    """Y2 per clause: (clause start, yes?) for each clause that restates the question's claim,
    alone, under a frame, as a short auxiliary answer or as a hedge (``"It is unlikely"``)."""
    texts, found = _texts(words), []
    short = _short_aux(texts, qtexts)
    if short is not None:
        return [(0, short)]
    for c in clauses:
        part = texts[c.start : c.end]
        bare = (
            part[2:]
            if part[:2] in (["it", "is"], ["it", "s"], ["that", "s"], ["that", "is"])
            else part
        )
        said = _whole_yes(bare)
        said = _claim(part, qtexts) if said is None else said
        said = _embedded_claim(part, qtexts) if said is None else said
        if said is not None:
            found.append((c.start, said))
    return found


def _yes_no_mentions(k: int, words: list[Word], cf_yes: bool, qtexts: list[str]) -> list:
    """Y1 words of one sentence, and Y2 claims of the first, as mentions (claims marked by
    the needle ``("claim",)``), framed by C1-C4."""
    clauses = clauses_of(words)
    found = []
    for i in range(len(words)):
        said = _yes_no_at(words, clauses, i)
        if said is not None:
            found.append(
                Mention(CF if said == cf_yes else PARAM, k, i, i + 1, Needle((words[i].text,)))
            )
    if k == 0 and not (words and words[-1].glue.strip().startswith("?")):
        named = {next(c.start for c in clauses if c.start <= m.start < c.end) for m in found}
        for start, said in _clause_claims(words, clauses, qtexts):
            if start not in named:
                found.append(
                    Mention(
                        CF if said == cf_yes else PARAM, k, start, start + 1, Needle(("claim",))
                    )
                )
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


# ============================================================================ option letters

_OPTION = re.compile(r"^\s*([A-E])[.)]\s*(.+?)\s*$", re.MULTILINE)
_LETTER_CUES = frozenset("option choice answer is was be choose pick select letter".split())


def _letter_at(words: list[Word], i: int, letters: set[str]) -> bool:
    """L1: word ``i`` is one of ``letters`` standing as a letter, not an article."""
    w = words[i]
    if not (w.cap and w.text.upper() in letters and len(w.text) == 1):
        return False
    texts = _texts(words)
    if _negated(texts, (i, i + 1), False):
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


# ============================================================================ the metrics


def _listed(answers: str | Iterable[str]) -> list[str]:
    items = [answers] if isinstance(answers, str) else list(answers)
    return [a for a in items if a and a.strip()]


def judge(
    output: str,
    cf_answers: str | Iterable[str],
    param_answers: str | Iterable[str],
    question: str = "",
    context: str = "",
) -> Decision:
    """``cf_acc`` / ``param_acc`` of one generated output and the rule that decided them.

    ``cf_answers`` / ``param_answers``: every accepted answer of each side (a side counts
    when any of them is the answer asserted); ``question``: the item's question (M3, F2, F3,
    Y2); ``context``: the prompt's passage (L2 reads the options of memo-trap file 4).
    """
    cf, param = _listed(cf_answers), _listed(param_answers)
    line = first_line(output)
    if not any(c.isalnum() for c in line) or not cf or not param:
        return Decision(0, 0, "none: empty output")
    folded = {normalize(a) for a in cf + param}
    if folded <= {"yes", "no"} and len(folded) == 2:
        return read_yes_no(line, normalize(cf[0]) == "yes", question)
    if all(re.fullmatch(r"[A-E]", a.strip()) for a in cf + param):
        return read_letters(line, {a.strip() for a in cf}, {a.strip() for a in param}, context)
    cf_forms, param_forms = side_forms(cf, param, question)
    person = bool(_PERSON_QUESTION.search(question))
    entities = frozenset(w.text for w in words_of(question)[1:] if w.cap)
    sides = Sides(
        {CF: cf_forms, PARAM: param_forms},
        {CF: cf, PARAM: param},
        _content(question),
        person,
        entities,
    )
    return decide_entities(read_entities(line, sides))


def score_generation(
    output: str,
    cf_answer: str | Iterable[str],
    param_answer: str | Iterable[str],
    question: str = "",
    context: str = "",
) -> dict[str, int | str]:
    """:func:`judge` as lm-eval metrics: ``cf_acc``, ``param_acc`` and ``reason``."""
    return judge(output, cf_answer, param_answer, question, context).as_dict()


def score_answer(output: str, answer: str) -> dict[str, int]:
    """``acc`` for in-distribution items: 1 when the expected answer is in the first line."""
    return {"acc": int(answer_present(first_line(output), answer))}


def score_choice(loglik_cf: float, loglik_param: float) -> dict[str, float]:
    """``cf_pref`` = p(ctx) / (p(ctx) + p(mem)) from summed log-likelihoods (nats), and ``acc``."""
    diff = loglik_param - loglik_cf
    cf_pref = 1.0 / (1.0 + math.exp(diff)) if diff < 700 else 0.0
    return {"cf_pref": cf_pref, "acc": float(loglik_cf > loglik_param)}
