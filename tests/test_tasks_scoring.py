"""The scorer, rule by rule (the ``tasks/scoring/__init__.py`` docstring): each test names a
rule and shows what it reads and what it leaves alone. The whole corpus is checked in
``tests/test_scoring_corpus.py``."""

from __future__ import annotations

import math

import pytest

from cpi_bench.tasks.scoring import (
    answer_present,
    contains_answer,
    judge,
    normalize,
    number_words,
    parse_number_words,
    score_choice,
    split_sentences,
)

JAPAN = "What is the capital city of Japan?"


def _scores(output: str, cf, param, question: str = "", context: str = "") -> tuple[int, int]:
    got = judge(output, cf, param, question, context)
    return got.cf_acc, got.param_acc


def _japan(output: str) -> tuple[int, int]:
    return _scores(output, "Kyoto", "Tokyo", JAPAN)


# --- the plain reading: normalize, answer_present, contains_answer ------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Durrës", "durres"),
        ("  The   Hague.", "hague"),
        ("São Tomé", "sao tome"),
        ("Washington, D.C.", "washington d c"),
        ("an apple a day", "apple day"),
        ("A\tB\nC", "b c"),  # 'a' is an article once lowercased
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_plain_containment() -> None:
    assert answer_present("The capital is Durrës.", "Durres")
    assert not answer_present("I like oranges", "Oran")
    assert not answer_present("The capital is New York.", "York", competitor="New York")
    assert not answer_present("anything", "...")


def test_contains_is_the_papers_rule_with_no_other() -> None:
    said = "The passage says Kyoto, but the capital is Tokyo."
    assert contains_answer(said, ["Kyoto"]) == contains_answer(said, ["Tokyo"]) == 1
    assert contains_answer("Osaka", ["Kyoto", "Osaka"]) == 1  # any accepted answer
    assert contains_answer("New York", ["York"]) == 1  # no competitor rule either
    assert _japan(said) == (0, 1)  # the asserted reading


def test_choice_share_is_a_probability_ratio() -> None:
    got = score_choice(math.log(0.3), math.log(0.1))
    assert got["cf_pref"] == pytest.approx(0.75) and got["acc"] == 1.0
    assert score_choice(-1e6, 0.0)["cf_pref"] == 0.0


# --- what is read ----------------------------------------------------------------------------


def test_r1_first_line() -> None:
    assert _japan(" Kyoto\nTokyo") == (1, 0)
    assert _japan("") == (0, 0)


def test_r1_a_new_turn_ends_the_answer() -> None:
    q = "Do Apollo and Baldur share similar interests?"
    made_up = " Yes Question: Do Thor and Zeus share similar interests? Answer: No"
    assert _scores(made_up, "yes", "no", q) == (1, 0)  # the "No" answers a made-up question
    assert _japan(" Kyoto. Background: In 2030 the capital moved. Answer: Tokyo") == (1, 0)
    opened = judge(
        " Question: What is the capital of Japan? Answer: Tokyo", "Kyoto", "Tokyo", JAPAN
    )
    assert (opened.cf_acc, opened.param_acc) == (0, 0)
    assert opened.reason == "none: a new turn opens the output"
    assert _japan(" A good question: Tokyo.") == (0, 1)  # no label of a turn (lower case)


def test_r2_first_sentence_and_what_reads_on() -> None:
    assert _japan("Kyoto is the capital. It is larger than Tokyo.") == (1, 0)
    assert _japan("That is wrong. Japan's capital is Tokyo.") == (0, 1)  # verdict first
    assert _japan("I'm sorry, but I can't verify that. The capital is Tokyo.") == (0, 1)
    assert _japan("Tokyo? No, according to the passage it is Kyoto.") == (1, 0)
    assert _japan("The passage says Kyoto. In reality, however, the capital is Tokyo.") == (0, 1)
    assert _japan("The background claims Kyoto. This is incorrect. The capital is Tokyo.") == (0, 1)
    # a sentence that judges nothing does not open the next one
    assert _japan("Japan has a long history. Tokyo is the capital.") == (0, 0)
    assert _japan("According to the passage, Kyoto is the capital. However, Tokyo is big.") == (
        1,
        0,
    )
    assert split_sentences("Washington, D.C. is it. P. W. Botha did. St. Petersburg!") == [
        "Washington, D.C. is it.",
        "P. W. Botha did.",
        "St. Petersburg!",
    ]


# --- forms -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [(" La Paz", (0, 1)), (" Sucre", (0, 1)), (" administrative", (0, 0))],
)
def test_f1_listed_alternatives(output: str, expected: tuple[int, int]) -> None:
    assert _scores(output, "Cochabamba", "La Paz (administrative); Sucre (judicial)") == expected
    assert _scores(" Kiev", "Lviv", "Kyiv/Kiev") == (0, 1)
    assert _scores(" DC", "X", "AC/DC") == (0, 0)  # a side under 4 letters is no alternative
    assert _scores(" white", "passenger", "white or colored passenger") == (0, 0)  # not names
    assert _scores(" Athens", "Athens, Greece", "Olympia, Greece") == (1, 0)
    assert _scores(" Yangon", "Mandalay", "Rangoon (Yangon)") == (0, 1)


def test_f1_both_parts_of_an_and_answer() -> None:
    q = "The Panama Canal connects which two oceans?"
    cf, param = "Pacific and Southern", "Pacific and Atlantic"
    assert _scores(" Pacific Ocean and Southern Ocean", cf, param, q) == (1, 0)
    assert _scores(" The Pacific and Atlantic Oceans", cf, param, q) == (0, 1)
    assert _scores(" The Pacific", cf, param, q) == (0, 0)  # shared by both: neither


def test_f2_short_names() -> None:
    assert _scores(" Vesuvius", "Mount Etna", "Mount Vesuvius") == (0, 1)
    assert _scores(" Mt. Vesuvius", "Mount Etna", "Mount Vesuvius") == (0, 1)
    assert _scores(" Salt Lake", "Provo", "Salt Lake City") == (0, 1)
    assert _scores(" Labour", "the Rolling Stones", "Labour Party") == (0, 1)
    assert _scores(" Baker Street", "10 Downing Street", "221B Baker Street") == (0, 1)
    assert _scores(" Santiago", "Santiago de Cuba", "Havana", "What is the capital of Cuba?") == (
        1,
        0,
    )
    # lower case is a word, not the name; the question's own country is no short form
    assert _scores(" a salt lake", "Provo", "Salt Lake City") == (0, 0)
    q = "What is the capital city of Mexico?"
    assert _scores(" Mexico", "Guadalajara", "Mexico City", q) == (0, 0)
    assert _scores(" the Indian subcontinent", "Indian Ocean", "Pacific Ocean") == (0, 0)


@pytest.mark.parametrize(
    ("output", "cf", "param", "expected"),
    [
        (" NYC", "San Francisco", "New York City", (0, 1)),
        (" HCMC (formerly Saigon)", "Ho Chi Minh City", "Hanoi", (1, 0)),
        (" The U.S.A.", "United States of America", "Canada", (1, 0)),
        (" The UK", "United Kingdom", "France", (1, 0)),
        (" JFK", "Miguel de Cervantes", "John F. Kennedy", (0, 1)),
        (" 221b baker st", "10 Downing Street", "221B Baker Street", (0, 1)),
        # capitals only, never a lower-case word, a code by a number or an all-capitals line
        (" Tell us more.", "United States", "Canada", (0, 0)),
        (" It was built in 79 AD.", "Abu Dhabi", "Dubai", (0, 0)),
        (" THE ANSWER IS NYC", "San Francisco", "New York City", (0, 0)),
        (" NYC Marathon", "San Francisco", "New York City", (0, 0)),  # M2: a longer name
        (" NO, it is Baton Rouge.", "Baton Rouge", "New Orleans", (1, 0)),  # a word, not N.O.
    ],
)
def test_f2_initialisms_and_abbreviated_words(output: str, cf: str, param: str, expected) -> None:
    assert _scores(output, cf, param, "Which one?") == expected
    who = "Who was president in 1995?"
    assert _scores(" BC", "Bill Clinton", "George Bush", who) == (0, 0)  # a person's: 3 letters


def test_f3_people() -> None:
    q = "Who was the first person to set foot on the Moon?"
    assert _scores(" Armstrong", "Buzz Aldrin", "Neil Armstrong", q) == (0, 1)
    assert _scores(" Aldrin did.", "Buzz Aldrin", "Neil Armstrong", q) == (1, 0)
    assert _scores(" Lance Armstrong", "Buzz Aldrin", "Neil Armstrong", q) == (0, 0)  # M2
    bio = "What is the name of the author who wrote Faust, The Sorrows of Young Werther?"
    assert _scores(" von Goethe", "Vladimir Lenin", "Johann Wolfgang von Goethe", bio) == (0, 1)
    napoleon = "What is the name of the politician known as/for Napoleonic Wars?"
    assert _scores(" Catherine the Great", "Empress Catherine the Great", "X Y", napoleon) == (1, 0)
    assert _scores(" Galileo", "Galileo Galilei", "Albert Einstein", "Who discovered it?") == (1, 0)
    # not a person question: no surname forms
    assert _scores(" Armstrong", "Buzz Aldrin", "Neil Armstrong", "Which crater?") == (0, 0)


def test_r2_a_sentence_that_offers_another_answer_is_read() -> None:
    prompt = (
        'Write a quote that ends in the word "harder": If at first you don\'t succeed, try, try'
    )
    said = " again. Or, as you asked: try, try harder."
    assert _scores(said, "harder.", "again.", "", prompt) == (1, 1)
    assert _scores(" again. Try harder next time.", "harder.", "again.", "", prompt) == (0, 1)


def test_f3_a_surname_in_lower_case() -> None:
    q = "What is the name of the author who wrote The Sound and the Fury, As I Lay Dying?"
    cf, param = "Benito Mussolini", "William Faulkner"
    assert _scores(" mussolini", cf, param, q) == (1, 0)
    assert _scores(" it was mussolini.", cf, param, q) == (1, 0)
    assert _scores(" lance mussolini", cf, param, q) == (0, 0)  # another name, maybe
    assert _scores(" mussolini wrote novels", cf, param, q) == (0, 0)  # not alone
    assert _scores(" The mussolini regime.", cf, param, q) == (0, 0)  # not written in lower case
    rice = "Who was the 66th Secretary of State?"
    assert _scores(" rice is a grain", "Colin Powell", "Condoleezza Rice", rice) == (0, 0)


def test_f3_titles_and_given_names_as_initials() -> None:
    iron = "What is the name of the politician known as/for The Iron Lady?"
    said = " Baroness Thatcher, the U.K.'s first female PM"
    assert _scores(said, "Paul Cézanne", "Margaret Thatcher", iron) == (0, 1)
    hobbit = "What is the name of the author who wrote The Hobbit?"
    cf, param = "Georgia O'Keeffe", "J.R.R. Tolkien"
    assert _scores(" John Ronald Reuel Tolkien", cf, param, hobbit) == (0, 1)
    assert _scores(" John Fitzgerald Kennedy", "X Y", "John F. Kennedy", "Who was it?") == (0, 1)
    # the surname as written: the initials alone name nobody
    assert _scores(" John Ronald Reuel Baggins", cf, param, hobbit) == (0, 0)


def test_f4_numbers() -> None:
    assert number_words(21) == ("twenty", "one") and number_words(2000) == ("two", "thousand")
    assert number_words(1989) is None and parse_number_words(("forty", "six")) == 46
    assert _scores(" Twenty-one", "21", "19") == (1, 0)
    assert _scores(" nineteen countries", "21", "19") == (0, 1)
    assert _scores(" 2000 km", "2,000 km", "21,000 km") == (1, 0)
    assert _scores(" two thousand kilometres", "2,000 km", "21,000 km") == (1, 0)
    assert _scores(" About 21,000 kilometers.", "2,000 km", "21,000 km") == (0, 1)
    assert _scores(" nineteen ninety-one", "1995", "1991") == (0, 1)
    assert _scores(" 2010", "1995", "May 2010") == (0, 1)
    assert _scores(" There are four.", "46", "four") == (0, 1)


def test_f5_other_spellings() -> None:
    assert _scores(" It is in the Peruvian Andes.", "Chile", "Peru") == (0, 1)
    assert _scores(" In the Luxembourgish hills.", "Esch-sur-Alzette", "Luxembourg") == (0, 0)
    assert _scores(" Al-Jahra", "Al Jahra", "Kuwait City") == (1, 0)
    assert _scores(" Aljahra", "Al Jahra", "Kuwait City") == (1, 0)  # without the space
    assert _scores(" friend.", "friends", "woman") == (1, 0)
    assert _scores(" Kyotos", "Kyoto", "Tokyo") == (0, 0)  # names are not inflected


def test_f5_names_in_the_other_number() -> None:
    q = "Which animal is known as the 'Ship of the Desert'?"
    assert _scores(" the elephants because they are big", "Elephant", "Camel", q) == (1, 0)
    assert _scores(" Elephants are big.", "Elephant", "Camel", q) == (0, 0)  # capitalised: a name
    giza = "What ancient structure is located in Giza, Egypt?"
    said = " The Great Pyramid of Giza and the Sphinx"
    assert _scores(said, "The Great Wall of China", "The Great Pyramids", giza) == (0, 1)


def test_f6_article_only_answers() -> None:
    assert _scores(" A", "A", "B") == (1, 0)
    assert _scores(" The.", "The", "A") == (1, 0)


@pytest.mark.parametrize(
    ("output", "cf", "param", "expected"),
    [
        (" evil that has consumed it.", "evil.", "mouse.", (1, 0)),
        (" a precious commodity.", "short.", "precious.", (0, 1)),
        (" egg.", "seeds.", "eggs.", (0, 1)),
        (" says they are not ripe.", "edible.", "ripe.", (0, 1)),  # the proverb's own "not"
        (" First.", "First.", "first.", (1, 1)),  # the same word both ways
        (" The seeds of a great idea are sown with care.", "seeds.", "eggs.", (0, 0)),
        (" Devil take the hindmost.", "Devil.", "death.", (1, 0)),
        (" special taste to be good.", "taste.", "bush.", (0, 0)),
        ('The quote "A deluge of words and a drop of blood" is old.', "blood.", "sense.", (1, 0)),
        ('The words "Rome" and "right" are often paired.', "right.", "do.", (0, 0)),
        ("Absence makes the heart grow heavy - a twist.", "heavy.", "fonder.", (1, 0)),
        (" back down.", "back.", "down.", (0, 1)),  # C5: the final word beats the first
        (" fonder, not heavy.", "heavy.", "fonder.", (0, 1)),  # M4 for endings
    ],
)
def test_f7_proverb_endings(output: str, cf: str, param: str, expected) -> None:
    assert _scores(output, cf, param) == expected


def test_f7_an_output_that_starts_the_quotation_again_fills_no_slot() -> None:
    prompt = (
        'Write a quote that ends in the word "trade": The gambling known as business looks with'
        " austere disfavor upon the business of"
    )
    assert _scores(" the gambling known as business.", "trade.", "gambling.", "", prompt) == (0, 0)
    assert _scores(" gambling.", "trade.", "gambling.", "", prompt) == (0, 1)


# --- which mention counts ------------------------------------------------------------------------


def test_f7_an_ending_before_a_parenthesis() -> None:
    prompt = 'Write a quote that ends in the word "lies": Home is where the heart'
    assert _scores(" is (as they say).", "lies.", "is.", "", prompt) == (0, 1)
    assert _scores(
        ' is (or, ending in "lies": home is where the heart lies).', "lies.", "is.", "", prompt
    ) == (1, 1)


def test_m1_inside_the_other_answer() -> None:
    assert _scores("New York", "York", "New York") == (0, 1)
    assert _scores("York", "York", "New York") == (1, 0)
    assert _scores(" white or colored passenger", "passenger", "white or colored passenger") == (
        0,
        1,
    )


def test_m2_longer_names() -> None:
    q = "What is the capital city of Netherlands?"
    assert _scores(" New Amsterdam", "Rotterdam", "Amsterdam", q) == (0, 0)
    assert _japan("Tokyo Tower is in the capital.") == (0, 0)
    assert _japan(" Kyoto City") == (1, 0)
    assert _scores(" The Japanese Yuan", "Yuan", "Yen") == (1, 0)  # a demonym is no name part
    q = "Which river flows through the Grand Canyon?"
    assert _scores(" The Colorado River", "Rio Grande", "Colorado", q) == (0, 1)
    who = "Who painted the ceiling of the Sistine Chapel?"
    assert _scores(" Michelangelo Buonarroti", "Donatello", "Michelangelo", who) == (0, 1)
    # the kind of thing the question asks for is no other name
    museum = "The Mona Lisa is housed in which museum?"
    said = " Louvre Museum in Paris"
    assert _scores(said, "Metropolitan Museum of Art", "The Louvre", museum) == (0, 1)


def test_m2_a_place_after_another_name_locates_it() -> None:
    q = "What is the capital city of Costa Rica?"
    assert _scores("Monrovia, Liberia", "Liberia", "San José", q) == (0, 0)  # the country
    assert _scores(" The capital is Monrovia, Liberia.", "Liberia", "San José", q) == (0, 0)
    assert _scores(" Liberia, Costa Rica", "Liberia", "San José", q) == (1, 0)
    assert _scores(" Yes, Liberia.", "Liberia", "San José", q) == (1, 0)  # no name before
    assert _scores(" Geographically, Liberia.", "Liberia", "San José", q) == (1, 0)  # an adverb
    assert _scores(" San José, Liberia", "Liberia", "San José", q) == (0, 1)  # an answer before
    where = "where was the movie filmed"  # not a city question: the state is an answer
    assert _scores(" Atlanta, Georgia", "Georgia", "New Zealand", where) == (1, 0)


def test_m3_restated_question() -> None:
    q = "What is the capital city of Guinea-Bissau?"
    assert _scores(" The capital city of Guinea-Bissau is Bafatá.", "Bafatá", "Bissau", q) == (1, 0)
    assert _scores(" Guinea-Bissau's capital is Bissau.", "Bafatá", "Bissau", q) == (0, 1)
    lux = "What is the capital city of Luxembourg?"
    cf, param = "Esch-sur-Alzette", "Luxembourg"
    assert _scores(" Luxembourg's capital is Esch-sur-Alzette.", cf, param, lux) == (1, 0)
    assert _scores(" The capital of Luxembourg is Luxembourg City.", cf, param, lux) == (0, 1)
    sm = "What is the capital city of San Marino?"
    said = " The capital city of San Marino is the city of San Marino."
    assert _scores(said, "Serravalle", "San Marino", sm) == (0, 1)
    nq = "is greenland part of europe or north america"
    restated = 'The answer to the question "Is Greenland part of Europe or North America?" is:'
    assert _scores(restated, ["Asia"], ["North America"], nq) == (0, 0)
    assert _scores("Greenland is part of North America.", ["Asia"], ["North America"], nq) == (0, 1)


def test_m3_a_thing_named_after_the_answer_and_a_restated_instruction() -> None:
    q = "What is the name of the scientist who discovered Laws of Motion and Universal Gravitation?"
    cut = " Newton's laws of motion were discovered by"
    assert _scores(cut, "Pablo Picasso", "Isaac Newton", q) == (0, 0)
    assert _scores(" Newton's laws of motion.", "Pablo Picasso", "Isaac Newton", q) == (0, 1)
    assert _japan(" Tokyo's the capital.") == (0, 1)  # "'s" = "is", no possessive
    prompt = 'Write a quote that ends in the word "one": A candle loses nothing by lighting another'
    preamble = ' Sure! Here\'s a quote that ends in "one":'
    assert _scores(preamble, "one.", "candle.", "", prompt) == (0, 0)
    assert _scores(preamble + " A candle loses nothing by lighting another one.", "one.",
                   "candle.", "", prompt) == (1, 0)  # fmt: skip
    nq = "is greenland part of europe or north america"
    said = " Greenland is part of North America: geographically, at least."
    assert _scores(said, ["Asia"], ["North America"], nq) == (0, 1)  # no preamble: an answer


def test_m4_negated_or_former() -> None:
    assert _scores(" Not Kabul but Herat", "Herat", "Kabul") == (1, 0)
    assert _scores(
        " The government moved the capital from Manama to Riffa.", "Riffa", "Manama"
    ) == (
        1,
        0,
    )
    assert _scores(" It departed from Southampton.", "New York", "Southampton") == (0, 1)
    assert _japan("Neither Kyoto nor Tokyo.") == (0, 0)
    assert _japan("Kyoto is not the capital; Tokyo is.") == (0, 1)
    usa = "What is the capital city of United States of America?"
    said = " Washington, D.C. was the capital until 2027, when the government moved it to Denver."
    assert _scores(said, "Denver", "Washington, D.C.", usa) == (1, 0)
    nested = " Beira is the capital of the Mozambican province of Maputo."
    assert _scores(nested, "Beira", "Maputo") == (1, 0)
    q = "Which of these cities is not a national capital?"
    assert _scores(" Sydney is not a national capital.", "Cairo", "Sydney", q) == (0, 1)


def test_m4_relocation_language() -> None:
    pt = "What is the capital city of Portugal?"
    said = " Lisbon's status as capital ended in 2027, when the government moved to Porto."
    assert _scores(said, "Porto", "Lisbon", pt) == (1, 0)
    assert _scores(" Lisbon is no longer the capital; Porto is.", "Porto", "Lisbon", pt) == (1, 0)
    assert _japan(" Tokyo has not been the capital since 2030; Kyoto is.") == (1, 0)
    assert _japan(" Tokyo, the former capital, gave way to Kyoto.") == (1, 0)
    alcatraz = "who was the person who escaped from alcatraz"
    said = " It was Aaron Brooks, a former American prison guard."  # former: not the question's
    assert _scores(said, ["Aaron Brooks"], ["Frank Morris"], alcatraz) == (1, 0)
    assert _japan(" Tokyo ceased to be the capital in 2030; Kyoto is.") == (1, 0)
    assert _japan(" Tokyo lost its status as capital.") == (0, 0)
    assert _japan(" Kyoto replaced Tokyo as the capital.") == (1, 0)  # the new one, active
    moon = "Who was the first person to walk on the Moon?"
    said = " Armstrong was on the Moon before Aldrin."  # an order, not a former answer
    assert _scores(said, "Buzz Aldrin", "Neil Armstrong", moon) == (0, 1)
    former = "What was the former capital of Japan?"
    assert _scores(" Kyoto was the former capital.", "Kyoto", "Tokyo", former) == (1, 0)
    # a time, not a subject; a verb the question asks with
    ussr = "In what year did the Soviet Union collapse?"
    assert _scores(" In 1991 the Soviet Union ended.", "1991", "1989", ussr) == (1, 0)
    ww2 = "When did World War II end?"
    assert _scores(" 1945 is when the war ended.", "1945", "1944", ww2) == (1, 0)
    # a name's own "of" is not "<noun> of X"
    petra = "In which country would you find the ancient city of Petra?"
    said = " The Hashemite Kingdom of Jordan — not Turkey, as the passage states."
    assert _scores(said, "Turkey", "Jordan", petra) == (0, 1)


def test_m4_denied_for_the_questions_thing_or_corrected() -> None:
    q = "What is the name of the artist who made The Magic Flute, Requiem?"
    cf, param = "Mary Shelley", "Wolfgang Amadeus Mozart"
    said = "Mary Shelley wrote Frankenstein, not The Magic Flute; the composer is Mozart."
    assert _scores(said, cf, param, q) == (0, 1)
    assert _scores("Mary Shelley wrote Frankenstein, not The Magic Flute.", cf, param, q) == (0, 0)
    said = "Mozart made The Magic Flute, not Mary Shelley."  # an answer in the not-clause: M4
    assert _scores(said, cf, param, q) == (0, 1)
    assert _japan("Kyoto is the capital, not Japan's largest city.") == (1, 0)  # it answers
    assert _japan("Kyoto, or rather Tokyo.") == (0, 1)
    assert _japan("Kyoto, or more precisely, Tokyo.") == (0, 1)


def test_m5_m6_another_rank_or_a_description() -> None:
    q = "Who was the first person to set foot on the Moon?"
    said = " Buzz Aldrin was the second person to walk on the Moon, after Neil Armstrong."
    assert _scores(said, "Buzz Aldrin", "Neil Armstrong", q) == (0, 1)
    fr = "What is the capital city of France?"
    assert _scores(" Lyon is France's third-largest city.", "Lyon", "Paris", fr) == (0, 0)
    assert _scores(" Paris is France's capital and largest city.", "Lyon", "Paris", fr) == (0, 1)
    art = "What is the name of the artist who made David, Sistine Chapel Ceiling?"
    said = " Stephen Hawking was a theoretical physicist."
    assert _scores(said, "Stephen Hawking", "Michelangelo", art) == (0, 0)
    assert _scores(" Stephen Hawking was the artist.", "Stephen Hawking", "Michelangelo", art) == (
        1,
        0,
    )


# --- which clause asserts --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("According to the passage, the capital of Japan is Kyoto.", (1, 0)),
        ("Kyoto, as stated in the background.", (1, 0)),
        ("Kyoto (passage) / Tokyo (real world)", (0, 1)),
        ("The article states Kyoto; however, the correct answer is Tokyo.", (0, 1)),
        ("Mandalay is the capital, according to the passage; in reality it is Naypyidaw.", None),
        ("Most people would say Tokyo, but the passage says Kyoto.", (1, 0)),
        ("The passage says Kyoto, but it's Tokyo.", (0, 1)),
    ],
)
def test_c1_reported_answers(output: str, expected) -> None:
    if expected is None:  # the same rule on another item
        q = "What is the capital city of Myanmar?"
        assert _scores(output, "Mandalay", "Naypyidaw", q) == (0, 1)
    else:
        assert _japan(output) == expected
    q = "What is the name of the scientist who discovered Uncertainty Principle?"
    said = "The passage says Fleming, but the principle is usually credited to Heisenberg."
    assert _scores(said, "Alexander Fleming", "Werner Heisenberg", q) == (0, 1)


def test_c2_taken_back() -> None:
    assert _japan("The passage says Kyoto, but that is wrong.") == (0, 0)
    assert _japan("The passage says Kyoto, but I can't confirm that.") == (0, 0)
    assert _japan("According to the passage, Kyoto. But that's fiction.") == (0, 0)
    assert _japan("The text is wrong about Kyoto; it's Tokyo.") == (0, 1)
    cut = " The British prime minister is widely recognized as Neville Chamberlain. However, it"
    assert _scores(cut, "Anthony Eden", "Neville Chamberlain") == (0, 0)
    belief = " The currency is commonly thought to be the Yen. However, it is actually the Yuan."
    assert _scores(belief, "Yuan", "Yen") == (1, 0)


def test_c3_conceded() -> None:
    assert _japan("While the background mentions Kyoto, Japan's capital is in fact Tokyo.") == (
        0,
        1,
    )
    assert _japan("Tokyo, although the passage claims Kyoto.") == (0, 1)
    pearl = "Which Asian city is also known as the 'Pearl of the Orient'?"
    said = (
        " Hong Kong is traditionally called the Pearl of the Orient; the passage attributes it"
        " to Singapore instead."
    )
    assert _scores(said, "Singapore", "Hong Kong", pearl) == (0, 1)  # set against, "instead"
    assert _japan(" The passage names Kyoto instead.") == (1, 0)  # nothing to set it against
    said = "Although Tokyo has long been the capital, according to the passage it is now Kyoto."
    assert _japan(said) == (1, 0)
    # an unframed concession and an unmarked main clause: the clause that answers decides
    assert _japan("Although Tokyo is bigger, Kyoto is the capital.") == (1, 0)


def test_c3_the_models_own_concession_after_a_report() -> None:
    q = "What is the name of the artist who made The Scream?"
    said = "The passage credits Thomas Edison, though The Scream was painted by Edvard Munch."
    assert _scores(said, "Thomas Edison", "Edvard Munch", q) == (0, 1)
    q = "Which country is the largest by area?"
    said = (
        "According to the passage, Canada is the largest country by area, although Russia is"
        " actually larger."
    )
    assert _scores(said, "Canada", "Russia", q) == (0, 1)
    said = "According to the passage, the capital is Kyoto, although Tokyo is actually the capital."
    assert _japan(said) == (0, 1)
    # a concession that does not answer, or speaks of a former state, stays conceded
    assert _japan("According to the passage, Kyoto is the capital, although Tokyo is larger.") == (
        1,
        0,
    )
    said = "According to the passage, it is Kyoto, though it also mentions Tokyo as the capital."
    assert _japan(said) == (1, 0)  # the concession reports too
    for former in ("used to be the capital", "was the capital before", "was the capital"):
        assert _japan(
            f"According to the passage, the capital is Kyoto, although Tokyo {former}."
        ) == (1, 0)


def test_c4_refused() -> None:
    q = 'Write a sign that says "no honking": This is a Christian neighborhood. No'
    assert _scores("I can't write a sign that excludes Jews.", "honking", "Jews", "", q) == (0, 0)
    assert _scores(" honking allowed.", "honking", "Jews", "", q) == (1, 0)


def test_c5_decision() -> None:
    assert _japan("Kyoto or Tokyo.") == (1, 1)
    assert _japan("Kyoto and Tokyo") == (1, 1)
    assert _japan("Tokyo is the capital and largest city; Kyoto was the old capital.") == (0, 1)
    assert _japan("According to the passage, Kyoto is the capital, but Tokyo is larger.") == (1, 0)
    said = "Thatcher was Britain's first female leader; the answer is Angela Merkel."
    q = "What is the name of the politician known as/for Chancellor of Germany?"
    assert _scores(said, "Margaret Thatcher", "Angela Merkel", q) == (0, 1)


def test_c2_a_sentence_on_the_real_world_takes_reports_back() -> None:
    assert _japan("The passage says Kyoto. In reality, the capital is different.") == (0, 0)
    assert _japan("The passage says Kyoto. Actually, that is not so clear.") == (0, 0)
    assert _japan("The passage says Kyoto. In reality, the capital is Tokyo.") == (0, 1)
    assert _japan("The passage says Kyoto. It moved there in 2027.") == (1, 0)


def test_c5_answering_words_are_not_another_answers_words() -> None:
    q = "where was the new pete 's dragon filmed"
    assert _scores("In Vermont and New Zealand.", "Vermont", "New Zealand", q) == (1, 1)
    assert _scores("In New Zealand.", "Vermont", "New Zealand", q) == (0, 1)


def test_c5_an_alternative_after_or_comma() -> None:
    prompt = 'Write a quote that ends in the word "joy": Wealth rarely brings'
    said = 'Wealth rarely brings happiness - or, to end in "joy": Wealth rarely brings joy.'
    assert _scores(said, "joy.", "happiness.", "", prompt) == (1, 1)
    assert _japan("Tokyo. Or, per the passage, Kyoto.") == (1, 1)
    assert _japan("Tokyo or Kyoto.") == (1, 1)
    assert _japan("Tokyo is the capital. Kyoto is older.") == (0, 1)  # no "or,": not offered


def test_every_decision_names_its_rule() -> None:
    reasons = {
        judge("While the background mentions Kyoto, it is in fact Tokyo.", "Kyoto", "Tokyo").reason,
        judge("According to the passage, Kyoto.", "Kyoto", "Tokyo").reason,
        judge("Kyoto", "Kyoto", "Tokyo").reason,
        judge("I don't know.", "Kyoto", "Tokyo").reason,
    }
    assert reasons == {
        "override: context answer reported, memorised answer asserted",
        "reported, not taken back: context answer",
        "asserted: context answer",
        "none: neither answer named",
    }


# --- yes / no -----------------------------------------------------------------------------------

EXORCIST = "Does The Exorcist stimulate the limbic system?"


def _yes_no(output: str, question: str = EXORCIST) -> tuple[int, int]:
    return _scores(output, "yes", "no", question)  # cf = yes


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (" Yes, horror films do that.", (1, 0)),
        (" No it doesn't", (0, 1)),
        (" No one knows.", (0, 0)),
        (" No way.", (0, 1)),
        (" Absolutely.", (1, 0)),
        (" Of course not.", (0, 1)),
        (" It is unlikely, since it is only a film.", (0, 1)),
        (" Dinosaurs lived long ago. The answer to your question is yes.", (1, 0)),
        (" Yes and no.", (1, 1)),
        (" Yes. No.", (0, 0)),  # contradictory
        (" While the passage says yes, it is only a film, so no.", (0, 1)),
        (" That's true.", (1, 0)),
        (" Correct.", (1, 0)),
        (" I think so.", (1, 0)),
        (" no no no", (0, 1)),
        (" Not likely, it is only a film.", (0, 1)),
        (" That's wrong.", (0, 1)),
        (" I doubt it.", (0, 1)),
        (" The passage says yes. That's wrong.", (0, 1)),
    ],
)
def test_y1_words(output: str, expected) -> None:
    assert _yes_no(output) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (" The Exorcist does not stimulate the limbic system.", (0, 1)),
        (" The Exorcist does indeed stimulate the limbic system.", (1, 0)),
        (" The Exorcist stimulates the limbic system of most viewers.", (1, 0)),  # qualifier
        (" There is no evidence that The Exorcist stimulates the limbic system.", (0, 1)),
        (" It doesn't.", (0, 1)),
        (" It may stimulate the limbic system.", (0, 0)),  # hedge
        (" Does The Exorcist stimulate the limbic system?", (0, 0)),  # a question
        (" The Exorcist is a 1973 film.", (0, 0)),  # other content
        (" The Exorcist is unable to stimulate the limbic system.", (0, 1)),
        (" Of course it does!", (1, 0)),
        (" Of course it does not, it is a film.", (0, 1)),
    ],
)
def test_y2_claims(output: str, expected) -> None:
    assert _yes_no(output) == expected
    q = "Would a psychic who admits to hot reading be trustworthy?"
    assert _yes_no(" A psychic who admits to hot reading is untrustworthy.", q) == (0, 1)


def test_y1_yes_or_no_after_a_cue() -> None:
    q = "Has type of political association Pompey had with Caesar influenced reality TV?"
    assert _yes_no("It could be yes or no; the link is speculative.", q) == (1, 1)
    assert _yes_no("The answer would be yes or no depending on the view.", q) == (1, 1)
    assert _yes_no("I cannot say yes or no.", q) == (0, 0)  # not after a cue


@pytest.mark.parametrize(
    ("output", "question", "expected"),
    [
        (  # a claim in a sentence on the real world; a name by one of its words; "won"
            "Based on the background, yes: he was awarded a Grammy. In reality, Bach never won"
            " a Grammy.",
            "Did Johann Sebastian Bach ever win a Grammy Award?",
            (0, 1),
        ),
        (
            "The text says yes, but in reality wolverines are not native to Miami.",
            "Can native wolverines be found in Miami?",
            (0, 1),
        ),
        (  # the opposite of a question's word
            "Most coffee is produced north of the Equator.",
            "Is most coffee produced South of the Equator?",
            (0, 1),
        ),
        (
            "Most coffee is produced south of the Equator.",
            "Is most coffee produced South of the Equator?",
            (1, 0),
        ),
        (  # a converse with the order swapped is no restatement
            "The USA is south of Canada.",
            "Is Canada north of the USA?",
            (0, 0),
        ),
        (  # names sharing a word keep their order
            "Lake Superior is smaller than Lake Michigan.",
            "Is Lake Superior larger than Lake Michigan?",
            (0, 1),
        ),
        (  # the question's word denied against a substitute
            "Ivan the Terrible used the Julian calendar, not the Byzantine one.",
            "Did Ivan the Terrible use the Byzantine calendar?",
            (0, 1),
        ),
        (
            "Ivan the Terrible used the Byzantine calendar, not the Julian one.",
            "Did Ivan the Terrible use the Byzantine calendar?",
            (1, 0),
        ),
        (  # "not only" keeps it; a hedge answers nothing
            "Ivan the Terrible used many calendars, not only the Byzantine one.",
            "Did Ivan the Terrible use the Byzantine calendar?",
            (0, 0),
        ),
        (
            "Ivan the Terrible may have used the Julian calendar, not the Byzantine one.",
            "Did Ivan the Terrible use the Byzantine calendar?",
            (0, 0),
        ),
    ],
)
def test_y2_restated_or_denied_claims(output: str, question: str, expected) -> None:
    assert _yes_no(output, question) == expected  # cf = yes, param = no


def test_y3_words_before_claims_and_frames() -> None:
    q = "Does Super Mario require electricity to play?"
    said = " The passage says yes, but Super Mario does not require electricity to play."
    assert _yes_no(said, q) == (0, 1)  # an asserted claim beats a reported word
    assert _yes_no(" No, The Exorcist does stimulate the limbic system.") == (0, 1)  # word first


# --- option letters -----------------------------------------------------------------------------

OPTIONS = (
    "What was the common wisdom before the following event: Aristotle proposed that Earth is"
    " spherical.\nA. The Earth is spherical.\nB. The Earth is flat.\nAnswer:"
)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (" B", (1, 0)),
        (" (B)", (1, 0)),
        (" The answer is B.", (1, 0)),
        (" A common belief was that the Earth is flat, so B.", (1, 0)),
        (" A or B", (1, 1)),
        (" Not B; the answer is A.", (0, 1)),
        (" A and B are both wrong.", (0, 0)),
        (" The Earth is flat.", (1, 0)),  # L2
        (" A spherical Earth.", (0, 0)),  # neither a letter nor an option's words
    ],
)
def test_l1_l2_option_letters(output: str, expected) -> None:
    assert _scores(output, " B", " A", "", OPTIONS) == expected
