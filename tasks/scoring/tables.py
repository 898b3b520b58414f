"""Word tables the rules read: demonyms and spellings (F5), units and number words (F4), generic
heads (F2), titles and particles (F3), function words."""

from __future__ import annotations

import re

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
# F2: words of a name and their usual abbreviations (``"Mt Fuji"``, ``"221b Baker St"``).
_SHORT_WORDS = {
    "mount": "mt", "saint": "st", "fort": "ft", "street": "st", "avenue": "ave", "road": "rd",
    "boulevard": "blvd", "square": "sq",
}  # fmt: skip
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
    "dr mr mrs ms general captain professor prof tsar czar sultan baron baroness duke duchess "
    "earl count countess marquess marquis viscount chancellor premier senator governor mayor "
    "prime minister".split()
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
    "originally officially likely possibly obviously undoubtedly hmm ah um uh er wow therefore "
    "hence anyway besides otherwise meanwhile overall instead nevertheless nonetheless "
    "furthermore moreover".split()
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


_MONTHS = frozenset(
    "january february march april may june july august september october november december".split()
)


# Y2: past forms of irregular verbs a restated claim may use ("Did Bach ever win ...?" ->
# "Bach never won ..."), each to its base form.
IRREGULAR_PAST: dict[str, str] = {
    "won": "win", "wrote": "write", "written": "write", "made": "make", "gave": "give",
    "given": "give", "took": "take", "taken": "take", "went": "go", "gone": "go", "ate": "eat",
    "eaten": "eat", "saw": "see", "seen": "see", "found": "find", "built": "build",
    "grew": "grow", "grown": "grow", "spoke": "speak", "spoken": "speak", "sang": "sing",
    "sung": "sing", "drew": "draw", "drawn": "draw", "flew": "fly", "flown": "fly",
    "fought": "fight", "taught": "teach", "thought": "think", "bought": "buy",
    "brought": "bring", "caught": "catch", "held": "hold", "led": "lead", "left": "leave",
    "lost": "lose", "met": "meet", "paid": "pay", "ran": "run", "sold": "sell", "sent": "send",
    "told": "tell", "knew": "know", "known": "know", "began": "begin", "begun": "begin",
    "became": "become", "came": "come", "drank": "drink", "drove": "drive", "driven": "drive",
    "fell": "fall", "fallen": "fall", "felt": "feel", "got": "get", "kept": "keep",
    "wore": "wear", "worn": "wear", "swam": "swim", "threw": "throw", "thrown": "throw",
    "sat": "sit", "stood": "stand", "understood": "understand", "chose": "choose",
    "chosen": "choose", "froze": "freeze", "frozen": "freeze", "hid": "hide", "hidden": "hide",
    "rode": "ride", "ridden": "ride", "shot": "shoot", "slept": "sleep", "spent": "spend",
    "struck": "strike",
}  # fmt: skip
# Y2: words whose opposite restates a claim negated ("north of" for "south of").
OPPOSITES = frozenset(
    frozenset(pair.split())
    for pair in ("north south", "east west", "above below", "before after", "more less",
                 "larger smaller", "higher lower", "older younger", "hotter colder",
                 "inside outside", "earlier later", "longer shorter", "northern southern",
                 "eastern western", "male female")
)  # fmt: skip
