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
measured on (``benchmarks/scoring_validation.py``). The modules follow the rule families:
``text`` (R1, the plain reading), ``forms`` (F1-F7), ``mentions`` (M1-M4), ``clauses`` (R3,
C1-C4, M5-M6), ``entities`` (R2), ``decide`` (C5), ``yes_no`` (Y1-Y3), ``letters`` (L1-L2);
names with a leading underscore are shared between them, the public ones are in ``__all__``.

What is read
    R1 first line: generation stops at the first newline; only the first line is read, up to
       a new turn: a label of the prompt or of a chat role (``Question:``, ``Q:``,
       ``Background:``, ``User:``; case-sensitive). What follows it answers a question the
       model made up (``"Yes Question: ...? Answer: No"`` gives yes).
    R2 first sentence: the answer comes from the first sentence that names one. The next
       sentence is read only while nothing is asserted and the sentence before is a short
       verdict or disclaimer naming no answer (``"That is wrong. Japan's capital is Tokyo."``,
       ``"I'm sorry, but I can't verify that. ..."``) or a question (``"Tokyo? No, ..."``), or
       the next one opens with a marked contrast or denies (``"The passage says Kyoto. In
       reality, however, ..."``, ``"... This is incorrect."``). A sentence opening with
       ``"Or,"`` is read after an asserted answer too: it offers another (``" again. Or, as you
       asked: try, try harder."``).
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
       (``"Mexico"`` is the question's country, not ``"Mexico City"``). Words of a name may
       be abbreviated (``"221b Baker St"``). A name of two capitalised words or more also
       stands as its initialism written in capitals (``"NYC"``, ``"UK"``, ``"U.S.A."`` for
       ``"United States of America"``; a person's with three letters or more: ``"JFK"``),
       never next to a number (``"79 AD"``) nor in a sentence written all in capitals.
    F3 people (the question asks ``who`` or for ``the author``, ``the scientist``, ...): a name
       also without its title (``"Catherine the Great"``, ``"Baroness Thatcher"``), as its
       surname (``"Armstrong"``, ``"de Klerk"``, ``"von Goethe"``, ``"Goethe"``) or as its
       first word (``"Galileo"``), and with given names written out where it has initials or
       the other way round (``"John Ronald Reuel Tolkien"`` for ``"J.R.R. Tolkien"``). The
       surname also counts in lower case in a sentence written in lower case with nothing but
       function words around it (``" mussolini"``, ``"it was mussolini."``).
    F4 numbers: digits and words are one number (``"twelve"`` = ``"12"``, ``"two thousand"`` =
       ``"2,000"`` = ``"2000"``, ``"nineteen ninety-one"`` = ``"1991"``); ``"2,000 km"`` is
       also ``"2,000 kilometres"`` and ``"2,000"``; ``"May 2010"`` also ``"2010"``.
    F5 other spellings: a country's demonym from a fixed table (``Peru`` -> ``"Peruvian"``),
       ``Kyiv``/``Kiev``, a name with or without spaces (``"Al Jahra"``), a lower-case word in
       the singular or plural (``"friend"`` for ``"friends"``); a capitalised word's plural
       where the output writes it in lower case, as a common noun (``"elephants"`` for
       ``"Elephant"``, never ``"Kyotos"``); a name ending in a plural also in the singular
       (``"Great Pyramid"`` for ``"The Great Pyramids"``).
    F6 an answer made only of articles (``"A"``) keeps them.
    F7 proverb endings stored with a full stop (``"fonder."``) count only where an ending
       stands: the output's first word when it goes on with the prompt's sentence (not when
       it opens with two words of the prompt in a row, starting the quotation again: ``" the
       gambling known as business."``), the last word of a sentence or before ``;``, a dash or
       ``(``, the last word of a quotation of three words or more; ``egg``/``eggs``,
       ``serve``/``served`` are one ending.
    A form that is also a form of the other answer counts for neither.

Which mention counts
    M1 a mention inside a longer mention of the other answer (``York`` in ``New York``) is not
       a mention of it.
    M2 longer names: a mention joined to a capitalised word outside its answer is another name
       (``"New Amsterdam"``, ``"Lance Armstrong"``, ``"Tokyo Tower"``), except function words,
       titles, particles, demonyms and place heads (``"Kyoto City"``, ``"Mississippi River"``),
       the kind of thing the question asks for (``"Louvre Museum"`` for ``"which museum"``)
       and a person's full name going on (``"Michelangelo Buonarroti"``). When the question
       asks for a city (``city``, ``capital``, ``town``), a place named after a comma that
       follows another capitalised name, making up the rest of its clause, locates that name
       (``"Monrovia, Liberia"``: the country): it is not an answer (not after an adverb:
       ``"Geographically, ..."``).
    M3 restated question: words the question contains, repeated with the question's
       neighbouring word (``"Guinea-Bissau"`` for ``Bissau``, ``"capital of Luxembourg"``,
       ``"Europe or North America"``) or as a possessive (``"Luxembourg's"``), restate the
       question; ``"the city of X"`` still names X. A possessive before a thing the question
       names, in a clause that goes on in the question's words, is the thing's name
       (``"Newton's laws of motion were discovered by"``; ``"Newton's laws."`` names Newton).
       A preamble that restates the instruction or question in its words (``"Sure! Here's a
       quote that ends in "one":"``, marked by ``here``/``sure`` or by a colon after the
       quoted word) names its word, not an answer.
    M4 negated or former: ``not X``, ``never``, ``neither``/``nor``, ``formerly``, ``instead
       of``, ``rather than``, ``no longer``, ``replacing``, ``moved ... from X``, ``the former
       capital X``, ``X is not/wrong/incorrect/no longer``, ``X has not been`` (unless those
       are the question's own words: ``"Which city is not a capital?"``), ``X was ...
       until``, ``X, the former capital`` (``former`` before a word of the question; not ``"a
       former prison guard"``); a subject followed in its clause by ``ceased``, ``stopped
       being``, ``lost its``/``lost to``, ``was replaced by``, or as a possessive by
       ``ended`` (``"Lisbon's status as capital ended in 2027"``; not after a preposition,
       ``"In 1991 the war ended"``, nor when the question asks with the verb). With both
       answers named, ``<noun> of X`` (not a name's own ``of``: ``"the Hashemite Kingdom of
       Jordan"``). ``"X, or rather Y"`` (``"or more precisely"``) corrects X. A clause of
       ``not`` and the question's thing (its capitalised words) and no answer denies the
       answers of the clause before it when that clause does not answer the question (``"Mary
       Shelley wrote Frankenstein, not The Magic Flute"``). A proverb ending is negated only by
       a clause that opens with the negation (``"X, not Y"``).
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
       ``"... This is incorrect."``); a belief by any later contrast. Across sentences, a
       sentence read after them (R2; every sentence for yes/no) that opens with a verdict or
       with the real world (``"In reality, ..."``, ``"Actually, ..."``, ``"Historically,
       ..."``) takes back the reports before it.
    C3 conceded: in ``"while/although X, Y"`` (or ``"Y, although X"``) X is conceded when a main
       clause is reported or marked as the answer (``in fact``, ``actually``, ``really``,
       ``in reality``, ``still``, ``correct``, ``real``, ``the answer is``). A report set with
       ``instead`` against an asserted or believed answer named before it is conceded (``"Hong
       Kong is traditionally called ...; the passage attributes it to Singapore instead."``).
       A concession after a reported answer of the other side, in the model's own words and
       answering the question (marked, or in the question's words), is the model's answer
       set against the report, not conceded (``"The passage credits Edison, though The Scream
       was painted by Munch."``, ``"According to the passage, Canada ..., although Russia is
       actually larger."``), unless it reports too (``"..., though it also mentions Tokyo"``)
       or speaks of a former state: former words (``used to``, ``before``, ``once``, ``long``)
       or the past tense where the question asks in the present (``"..., although Tokyo was
       the capital"``).
    C4 refused: a clause that refuses (``"I can't"``, ``"I'm sorry"``, ``"discriminatory"``)
       asserts nothing.
    C5 decision: asserted mentions decide, then reported ones not taken back, then beliefs,
       then conceded ones. Among asserted ones, those in a clause that answers the question
       (its words outside any answer, the answer alone, or marked) beat the rest, marked ones
       (``"the answer is X"``) beat unmarked ones, and a proverb's final word beats its first
       word (an answer offered together with one that wins stays with it). An asserted
       answer in a clause that does not answer is a remark when a reported answer of the
       other side answers the question (``"According to the passage, Kyoto is the capital, but
       Tokyo is larger."``), and nothing is decided when neither answers. Among
       the mentions that decide, the first one named counts; both count when offered together
       (``"X or Y"``, ``"X and Y"``, ``"X/Y"``; after ``"or,"`` opening a clause or the next
       sentence: ``'X - or, to end in "joy": Y'``, ``"X. Or, as you asked: Y"``).

Yes/no answers (both answers are ``yes``/``no``: ConflictQA)
    Y1 words: ``yes``/``no``/``true``/``false`` opening a sentence (before punctuation, the end
       or a pronoun: ``"No, ..."``, ``"Yes it does"``; not ``"No one"``), in a sentence of two
       words (``"No way."``), after ``the answer is``, ``say``, ``so``, ``a``, alone or
       repeated in a clause (``"no no no"``), in any sentence of the line; a clause that is
       only an affirmation or a denial, after ``that's``/``it is`` (``"Absolutely."``,
       ``"That's true."``, ``"Correct."``, ``"I think so."``, ``"Of course not."``, ``"Not
       likely"``, ``"It is unlikely"``, ``"That's wrong."``, ``"I don't think so."``); ``"Yes
       and no"`` and ``"It could be yes or no"`` offer both.
    Y2 claims: a clause of the first sentence, or of a later one that opens with a contrast
       or the real world (``"In reality, Bach never won a Grammy."``), that restates the
       question's claim answers it: yes when its negations (``not``, ``n't``, ``never``,
       ``unable``, a negative prefix on a word of the question: ``untrustworthy``, the
       opposite of one from a fixed table, with the question's words in its order: ``north``
       for ``South``) match the question's in parity, else no. A name of the question is one
       word that a restatement may give by one of its words (``"Bach"`` for ``"Johann
       Sebastian Bach"``); an irregular past is its verb (``won`` for ``win``). A clause of
       ``not`` and the question's words (``"..., not the Byzantine one"``) after clauses that
       restate the rest with at most two words of their own (the substitute: ``"Ivan the
       Terrible used the Julian calendar"``) denies the claim. A restatement may end with a
       qualifier only when it names every content word of the question (``"A greyhound can
       walk on two legs for short periods"``); under a frame after ``that`` whose negatives
       flip it (``"There is no evidence that ..."``); or as the question's auxiliary (``"It
       doesn't."``, ``"Of course it would"``). A hedge (``may``, ``might``, ``depends``) or a
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
from collections.abc import Iterable

from .decide import CF, PARAM, REASON_METRIC, Decision, decide_entities
from .entities import read_entities
from .forms import Needle, Sides, _content, answer_alternatives, side_forms
from .letters import read_letters
from .tables import _PERSON_QUESTION, _QUESTION_STOP, number_words, parse_number_words
from .text import (
    ARTICLES,
    Word,
    answer_line,
    answer_present,
    contains_answer,
    first_line,
    normalize,
    split_sentences,
    words_of,
)
from .yes_no import read_yes_no

__all__ = [
    "ARTICLES", "CF", "PARAM", "REASON_METRIC", "Decision", "Needle", "Word", "answer_alternatives",
    "answer_line", "answer_present", "contains_answer", "first_line", "judge", "normalize",
    "number_words", "parse_number_words", "score_answer", "score_choice", "score_generation",
    "side_forms", "split_sentences", "words_of",
]  # fmt: skip


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
    line = answer_line(output)
    if not any(c.isalnum() for c in line) or not cf or not param:
        turn = any(c.isalnum() for c in first_line(output))
        return Decision(0, 0, "none: a new turn opens the output" if turn else "none: empty output")
    folded = {normalize(a) for a in cf + param}
    if folded <= {"yes", "no"} and len(folded) == 2:
        return read_yes_no(line, normalize(cf[0]) == "yes", question)
    if all(re.fullmatch(r"[A-E]", a.strip()) for a in cf + param):
        return read_letters(line, {a.strip() for a in cf}, {a.strip() for a in param}, context)
    cf_forms, param_forms = side_forms(cf, param, question)
    qwords = words_of(question)
    instruction = question or re.split(r"[:\n]", context, maxsplit=1)[0]  # memo-trap: its prompt
    sides = Sides(
        {CF: cf_forms, PARAM: param_forms},
        {CF: cf, PARAM: param},
        _content(question),
        bool(_PERSON_QUESTION.search(question)),
        entities=frozenset(w.text for w in qwords[1:] if w.cap),
        instruction=_content(instruction),
        kinds=frozenset(w.text for w in qwords if not w.cap) - _QUESTION_STOP - ARTICLES,
        prompt=() if question else _content(context),
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
