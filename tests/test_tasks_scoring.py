"""The normaliser and the two metrics on the hard cases the task README documents."""

import math

import pytest

from cpi_bench.tasks.scoring import (
    answer_present,
    normalize,
    score_choice,
    score_generation,
    split_sentences,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Durrës", "durres"),
        ("  The   Hague.", "hague"),
        ("São Tomé", "sao tome"),
        ("Reykjavík!", "reykjavik"),
        ("Washington, D.C.", "washington d c"),
        ("an apple a day", "apple day"),
        ("Théâtre-Français", "theatre francais"),
        ("A\tB\nC", "b c"),  # 'a' is an article once lowercased
    ],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


def test_accents_match_both_ways():
    assert answer_present("The capital is Durres.", "Durrës")
    assert answer_present("The capital is Durrës.", "Durres")


def test_whole_words_only():
    assert not answer_present("I like oranges", "Oran")
    assert answer_present("Oran, in the west", "Oran")


def test_multi_word_answers_need_all_words_in_order():
    assert answer_present("It was painted by Leonardo da Vinci in Milan", "Leonardo da Vinci")
    assert not answer_present("Leonardo painted it", "Leonardo da Vinci")
    assert not answer_present("da Vinci Leonardo", "Leonardo da Vinci")


def test_answer_that_is_part_of_the_other():
    # cf answer "York" is a sub-span of the memorised "New York": saying "New York" is not "York".
    assert not answer_present("The capital is New York.", "York", competitor="New York")
    assert answer_present("The capital is New York.", "New York", competitor="York")
    assert answer_present("York, not New York.", "York", competitor="New York")
    assert score_generation("New York", "York", "New York") == {"cf_acc": 0, "param_acc": 1}
    assert score_generation("York", "York", "New York") == {"cf_acc": 1, "param_acc": 0}


def test_generation_scores_first_line_only():
    assert score_generation(" Herat\nKabul", "Herat", "Kabul") == {"cf_acc": 1, "param_acc": 0}
    assert score_generation("Herat or Kabul", "Herat", "Kabul") == {"cf_acc": 1, "param_acc": 1}
    assert score_generation("", "Herat", "Kabul") == {"cf_acc": 0, "param_acc": 0}


def test_empty_answer_never_matches():
    assert not answer_present("anything", "")
    assert not answer_present("anything", "...")


def test_choice_share_is_a_probability_ratio():
    got = score_choice(math.log(0.3), math.log(0.1))
    assert got["cf_pref"] == pytest.approx(0.75)
    assert got["acc"] == 1.0
    assert score_choice(-5.0, -1.0)["acc"] == 0.0
    assert score_choice(-1e6, 0.0)["cf_pref"] == 0.0
    assert score_choice(0.0, -1e6)["cf_pref"] == 1.0


# --- the rules of score_generation (tasks/scoring.py docstring); each fails on the old scorer


def _scores(output: str, cf: str, param: str) -> tuple[int, int]:
    got = score_generation(output, cf, param)
    return got["cf_acc"], got["param_acc"]


def test_rule1_first_sentence_only() -> None:
    # a later sentence mentioning the other answer in passing is not the answer
    out = " Osaka is the capital of Japan. It is larger than Tokyo."
    assert _scores(out, "Osaka", "Tokyo") == (1, 0)
    # abbreviations and initials do not end the sentence
    assert split_sentences("Washington, D.C. is it. P. W. Botha did. St. Petersburg!") == [
        "Washington, D.C. is it.",
        "P. W. Botha did.",
        "St. Petersburg!",
    ]
    assert _scores("It is Washington, D.C. in the east.", "Denver", "Washington, D.C.") == (0, 1)


def test_rule2_belief_then_contrast() -> None:
    out = (
        " The currency used in Japan is commonly referred to as the Yen. However, it is "
        "actually the Yuan that serves as the official currency."
    )
    assert _scores(out, "Yuan", "Yen") == (1, 0)
    cut = " The British prime minister is widely recognized as Neville Chamberlain. However, it"
    assert _scores(cut, "Anthony Eden", "Neville Chamberlain") == (0, 0)
    same_sentence = " It is often thought to be the Amazon, but it is actually the Mississippi."
    assert _scores(same_sentence, "Mississippi", "Amazon") == (1, 0)
    # without a belief frame a contrast does not move the scope
    assert _scores(" Kabul. However, it is small.", "Herat", "Kabul") == (0, 1)


@pytest.mark.parametrize(
    ("output", "param", "expected"),
    [
        (" La Paz", "La Paz (administrative); Sucre (judicial)", 1),
        (" Sucre", "La Paz (administrative); Sucre (judicial)", 1),
        (" Nay Pyi Taw", "Rangoon (Yangon); Naypyidaw or Nay Pyi Taw (administrative)", 1),
        (" Kiev", "Kyiv/Kiev", 1),
        (" DC", "AC/DC", 0),  # a side under 4 letters: not an alternative
    ],
)
def test_rule3_listed_alternatives(output: str, param: str, expected: int) -> None:
    assert _scores(output, "Cochabamba", param) == (0, expected)


def test_rule4_parenthesised_alias_only() -> None:
    param = "Rangoon (Yangon); Naypyidaw or Nay Pyi Taw (administrative)"
    assert _scores(" Yangon", "Mandalay", param) == (0, 1)
    assert _scores(" administrative", "Mandalay", param) == (0, 0)
    gitega = "Gitega (changed from Bujumbura in December 2018)"
    assert _scores(" Gitega", "Ngozi", gitega) == (0, 1)
    assert _scores(" Bujumbura", "Ngozi", gitega) == (0, 0)


def test_rule5_place_before_comma() -> None:
    assert _scores(" Athens", "Athens, Greece", "Olympia, Greece") == (1, 0)
    assert _scores(" Peace", "Peace, love and harmony", "War") == (0, 0)


def test_rule6_short_form_needs_its_article() -> None:
    assert _scores(" The Amazon", "Congo Rainforest", "Amazon Rainforest") == (0, 1)
    assert _scores(" Amazon", "Congo Rainforest", "Amazon Rainforest") == (0, 0)
    assert _scores(" the Indian subcontinent", "Indian Ocean", "Pacific Ocean") == (0, 0)


def test_rule7_demonyms_from_the_table() -> None:
    assert _scores(" It is in the Peruvian Andes.", "Chile", "Peru") == (0, 1)
    assert _scores(" A French gift.", "Germany", "France") == (0, 1)
    # a country whose capital has its name has no demonym here
    assert _scores(" In the Luxembourgish hills.", "Esch-sur-Alzette", "Luxembourg") == (0, 0)


def test_rule8_units_and_spellings() -> None:
    out = " It is approximately 2,000 kilometers long."
    assert _scores(out, "2,000 km", "21,000 km") == (1, 0)
    assert _scores(" 21,000 kilometres", "2,000 km", "21,000 km") == (0, 1)
    assert _scores(" The capital city of Ukraine is Kiev.", "Lviv", "Kyiv") == (0, 1)


def test_rule9_article_only_answers() -> None:
    assert _scores(" A", "A", "B") == (1, 0)
    assert _scores(" The.", "The", "A") == (1, 0)
    assert _scores(" an apple", "A", "An") == (0, 1)


def test_rule11_mentions_that_are_not_the_answer() -> None:
    assert _scores(" Not Kabul but Herat", "Herat", "Kabul") == (1, 0)
    moved = " The government moved the capital from Manama to Riffa."
    assert _scores(moved, "Riffa", "Manama") == (1, 0)
    # "from" without a relocation verb is an answer (where did the Titanic depart from?)
    assert _scores(" It departed from Southampton.", "New York", "Southampton") == (0, 1)
    restated = " The capital city of Luxembourg is Esch-sur-Alzette."
    assert _scores(restated, "Esch-sur-Alzette", "Luxembourg") == (1, 0)
    nested = " Beira is the capital of the Mozambican province of Maputo."
    assert _scores(nested, "Beira", "Maputo") == (1, 0)
    named = " The capital city of San Marino is the city of San Marino."
    assert _scores(named, "Serravalle", "San Marino") == (0, 1)


def test_rule12_first_named_answer_counts_unless_a_choice() -> None:
    assert _scores(" Herat is the capital and Kabul lies in ruins", "Herat", "Kabul") == (1, 0)
    assert _scores(" Kabul is the capital, Herat the largest city", "Herat", "Kabul") == (0, 1)
    assert _scores(" Herat or Kabul", "Herat", "Kabul") == (1, 1)


@pytest.mark.parametrize(
    ("output", "cf", "param", "expected"),
    [
        (" expert to taste it. It's a taste of the soul.", " taste.", " bush.", (0, 0)),
        (" special taste to be good.", " taste.", " bush.", (0, 0)),
        (" evil that has consumed it.", " evil.", " mouse.", (1, 0)),
        (" who are not in need of shelter.", " shelter.", " lodging.", (1, 0)),
        (" a precious commodity.", " short.", " precious.", (0, 1)),
        (" egg.", " seeds.", " eggs.", (0, 1)),
        (" serve.", " go.", " served.", (0, 1)),
        (" says they are not ripe.", " edible.", " ripe.", (0, 1)),  # no negation rule
        (" First.", " First.", " first.", (1, 1)),  # the same word both ways
        # a capital where the ending has none opens a new sentence: its first word is no ending
        (" The seeds of a great idea are sown with care.", " seeds.", " eggs.", (0, 0)),
        (" Devil take the hindmost.", " Devil.", " death.", (1, 0)),
        ("The king can do no more", " more.", " wrong.", (1, 0)),
    ],
)
def test_rule13_proverb_endings_count_at_the_ends(
    output: str, cf: str, param: str, expected: tuple[int, int]
) -> None:
    assert _scores(output, cf, param) == expected
