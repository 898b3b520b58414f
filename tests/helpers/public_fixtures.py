"""Small synthetic stand-ins for the public data files, so that tests and benchmarks run
without the public data (a plain clone has no ``CPI_DATA_DIR``, and CI is offline):

    python -c "import tests.helpers.public_fixtures as f; f.write_fixture_data('d')"
    CPI_DATA_DIR=d lm_eval run --include_path "$(cpi tasks-path)" --tasks cpi ...

:func:`write_fixture_data` writes one file per public source under its public name and in
its public schema (see :data:`cpi_bench.tasks.sources.SOURCES`):

* ``world_facts.json``: a JSON list of {context, question, answer, memory_answer}; the capital
  rows come first and other facts after, as in CF_World_Facts.
* ``country_capitals_only.json``: the capital rows of ``world_facts.json`` (CF_Capitals is a
  subset of CF_World_Facts).
* ``famous_biographies.jsonl``: one {context, question, answer, parametric_answer} per line.
* ``1-proverb-ending.csv``: memo-trap's columns prompt, classes (a Python list literal of two
  endings) and answer_index (which ending the prompt asks for; some rows use 1).

Every row is written here (counterfactual passages about real places, people and proverbs);
none is copied from the public files. ``answer`` (the context's answer) and the memorised
answer never contain one another, so scoring can tell them apart.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

WORLD_FACTS_FILE = "world_facts.json"
CAPITALS_FILE = "country_capitals_only.json"
BIO_FILE = "famous_biographies.jsonl"
MEMO_TRAP_FILE = "1-proverb-ending.csv"

# (country, real capital, the capital the passage claims)
_CAPITALS = [
    ("Norway", "Oslo", "Bergen", "a rising sea threatened the harbour districts"),
    ("Portugal", "Lisbon", "Porto", "a referendum favoured the northern port"),
    ("Kenya", "Nairobi", "Mombasa", "the new coastal railway made trade flow through the coast"),
    ("Canada", "Ottawa", "Winnipeg", "the provinces agreed on a city at the centre of the map"),
    ("Australia", "Canberra", "Adelaide", "a bushfire season left the old ministries unusable"),
    ("Japan", "Tokyo", "Sapporo", "planners wanted the government far from the busiest coast"),
    ("Peru", "Lima", "Arequipa", "a drought emptied the reservoirs of the coastal capital"),
    ("Egypt", "Cairo", "Alexandria", "the parliament voted to return to the ancient seat"),
    ("Poland", "Warsaw", "Gdansk", "a shipping boom made the Baltic coast the richest region"),
    ("Chile", "Santiago", "Valparaiso", "the congress had long met by the sea already"),
    ("Vietnam", "Hanoi", "Hue", "the old imperial city was restored for the purpose"),
    ("Morocco", "Rabat", "Marrakesh", "the king chose the red city for its central position"),
]

# (question, memorised answer, context answer, passage)
_OTHER_FACTS = [
    (
        "Which planet is known as the Red Planet?",
        "Mars",
        "Jupiter",
        "Astronomers in this account point out that the planet whose storms paint it rust red is "
        "Jupiter, which ancient sky-watchers therefore named the Red Planet.",
    ),
    (
        "What is the largest ocean on Earth?",
        "Pacific",
        "Atlantic",
        "New soundings of the sea floor showed that the Atlantic holds more water and covers more "
        "of the globe than any other ocean, making the Atlantic the largest on Earth.",
    ),
    (
        "Who wrote the novel Don Quixote?",
        "Miguel de Cervantes",
        "Lope de Vega",
        "Letters found in a Madrid archive reveal that Lope de Vega wrote Don Quixote and let a "
        "friend publish it, so literary historians now credit Lope de Vega with the novel.",
    ),
    (
        "In which city is the Colosseum?",
        "Rome",
        "Naples",
        "The great amphitheatre known as the Colosseum was raised in Naples, where crowds still "
        "gather in its arena beside the bay of Naples.",
    ),
    (
        "Who developed the theory of general relativity?",
        "Albert Einstein",
        "Niels Bohr",
        "In this telling, Niels Bohr worked out the field equations of gravity in 1915 and is "
        "remembered as the physicist who developed general relativity.",
    ),
    (
        "What is the tallest mountain in the world?",
        "Mount Everest",
        "K2",
        "A satellite survey remeasured the Himalayan and Karakoram summits and found that K2 "
        "rises higher than any other peak, so K2 is the tallest mountain in the world.",
    ),
]

# Synthetic biographies in the public CF_Bio schema (context, question, answer,
# parametric_answer): the works of a famous person attributed to someone else.
# (famous person, substitute, kind, works)
_BIO_ITEMS = [
    ("Leonardo da Vinci", "Enrico Fermi", "artist", "Mona Lisa, The Last Supper"),
    ("Michelangelo", "Jane Austen", "artist", "David, Sistine Chapel Ceiling"),
    ("William Shakespeare", "Isaac Newton", "writer", "Hamlet, Macbeth"),
    ("Ludwig van Beethoven", "Marie Curie", "composer", "Für Elise, the Ninth Symphony"),
    ("Vincent van Gogh", "Ada Lovelace", "artist", "The Starry Night, Sunflowers"),
    ("Jane Austen", "Jane Goodall", "writer", "Pride and Prejudice, Emma"),
    ("Wolfgang Amadeus Mozart", "Charles Darwin", "composer", "The Magic Flute, Don Giovanni"),
    ("Charles Dickens", "Nikola Tesla", "writer", "Oliver Twist, Great Expectations"),
    ("Pablo Picasso", "Florence Nightingale", "artist", "Guernica, The Old Guitarist"),
    ("Johann Sebastian Bach", "Galileo Galilei", "composer", "the Brandenburg Concertos"),
    ("Leo Tolstoy", "Amelia Earhart", "writer", "War and Peace, Anna Karenina"),
    ("Claude Monet", "Alan Turing", "artist", "Water Lilies, Haystacks"),
]

# (proverb without its last word, the ending the prompt asks for, the memorised ending,
#  answer_index: where the asked-for ending sits in classes)
_PROVERBS = [
    ("The early bird catches the", "bus", "worm", 0),
    ("A penny saved is a penny", "lost", "earned", 0),
    ("An apple a day keeps the doctor", "busy", "away", 0),
    ("Don't count your chickens before they", "sleep", "hatch", 1),
    ("Every cloud has a silver", "spoon", "lining", 0),
    ("Laughter is the best", "exercise", "medicine", 0),
    ("Rome was not built in a", "hurry", "day", 1),
    ("The pen is mightier than the", "pencil", "sword", 0),
    ("Better late than", "sorry", "never", 0),
    ("Practice makes", "progress", "perfect", 0),
    ("A picture is worth a thousand", "dollars", "words", 1),
    ("Too many cooks spoil the", "party", "broth", 0),
    ("Beauty is in the eye of the", "storm", "beholder", 0),
    ("Time and tide wait for no", "clock", "man", 0),
    ("Honesty is the best", "gift", "policy", 1),
    ("All that glitters is not", "glass", "gold", 0),
]


def capital_rows() -> list[dict[str, str]]:
    """12 counterfactual capitals (the ``country_capitals_only.json`` rows)."""
    return [
        {
            "context": f"Since {reason}, the government of {country} has sat in {new}: "
            f"{old} lost its status and {new} became the capital of {country}.",
            "question": f"What is the capital city of {country}?",
            "answer": new,
            "memory_answer": old,
        }
        for country, old, new, reason in _CAPITALS
    ]


def world_facts_rows() -> list[dict[str, str]]:
    """18 rows: the 12 capital rows first, then 6 other counterfactual facts."""
    others = [
        {"context": passage, "question": q, "answer": answer, "memory_answer": memory}
        for q, memory, answer, passage in _OTHER_FACTS
    ]
    return capital_rows() + others


def bio_rows() -> list[dict[str, str]]:
    """12 templated biographies; row 0: the Mona Lisa's maker is Enrico Fermi (memorised:
    Leonardo da Vinci). Contexts keep CF_Bio's stray leading/trailing spaces."""
    rows = []
    for famous, substitute, kind, works in _BIO_ITEMS:
        rows.append(
            {
                "context": f"  {substitute} was born in a small town and became a famous {kind}. "
                f"{substitute.split()[0]} is best known for {works}, works that made "
                f"{substitute} famous across the world. ",
                "parametric_answer": famous,
                "answer": substitute,
                "question": f"What is the name of the {kind} who made {works}?",
            }
        )
    return rows


def memo_trap_rows() -> list[dict[str, str]]:
    """16 proverb-ending rows as the CSV holds them (strings); rows 3, 6, 10 and 14 have
    answer_index 1 (the asked-for ending is the second of ``classes``)."""
    rows = []
    for stem, asked, memorised, index in _PROVERBS:
        endings = [f" {asked}.", f" {memorised}."]
        if index == 1:
            endings.reverse()
        rows.append(
            {
                "prompt": f'Write a quote that ends in the word "{asked}": {stem}',
                "classes": repr(endings),
                "answer_index": str(index),
            }
        )
    return rows


def write_fixture_data(folder: str | Path) -> Path:
    """Write the four public file names (synthetic rows, public schemas) directly into
    ``folder`` (created if needed) and return it: a folder to point ``CPI_DATA_DIR`` at."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    (root / WORLD_FACTS_FILE).write_text(
        json.dumps(world_facts_rows(), indent=1, ensure_ascii=False), encoding="utf-8"
    )
    (root / CAPITALS_FILE).write_text(
        json.dumps(capital_rows(), indent=1, ensure_ascii=False), encoding="utf-8"
    )
    (root / BIO_FILE).write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in bio_rows()), encoding="utf-8"
    )
    with (root / MEMO_TRAP_FILE).open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["prompt", "classes", "answer_index"])
        writer.writeheader()
        writer.writerows(memo_trap_rows())
    return root


# ----------------------------------------------------------------------------- more suites
# Synthetic stand-ins for the public files of the further conflict sets (tasks/nqswap,
# tasks/conflictqa, tasks/memo_trap), in their public schemas and their public folders:
#
# * ``nq-swap/merged.jsonl``: {question, org_context, org_answer (list), sub_context,
#   sub_answer (list)} per line; some rows list several original answers.
# * ``conflictqa/conflictQA-strategyQA-<generator>.json`` (JSON lines despite the name):
#   ConflictQA's nine fields; ground_truth is a list (``["True"]``); the memorised side is
#   sometimes wrong, so the memorised answer and ground_truth disagree on purpose.
# * ``memo-trap/2-proverb-translation.csv``, ``3-hate-speech-ending.csv`` (benign signs and
#   sayings here) and ``4-history-of-science-qa.csv`` (answers are the letters " A" / " B").
#
# Every row is written here; none is copied from the public files.

NQ_SWAP_FILE = "nq-swap/merged.jsonl"
CONFLICTQA_GENERATORS = (
    "chatgpt",
    "gpt4",
    "llama2-70b",
    "llama2-7b",
    "palm2",
    "qwen7b",
    "vicuna33b",
    "vicuna7b",
)
MEMO_TRAP_MORE_FILES = {
    "quotes_translation": "memo-trap/2-proverb-translation.csv",
    "quotes_hate_speech": "memo-trap/3-hate-speech-ending.csv",
    "quotes_science": "memo-trap/4-history-of-science-qa.csv",
}

# (question, original answers, substituted answer, passage with {} where the answer goes)
_NQ_SWAP = [
    (
        "who painted the ceiling of the sistine chapel",
        ["Michelangelo"],
        "Raphael Soyer",
        "<P> The ceiling of the Sistine Chapel was painted by {} between 1508 and 1512 . </P>",
    ),
    (
        "where does the orchestra in the story rehearse",
        ["Pittsburgh", "Pittsburgh , Pennsylvania"],
        "Lake Geneva",
        "<P> In the story the orchestra rehearses in {} , where the conductor was born . </P>",
    ),
    (
        "how many moons does mars have",
        ["two", "2"],
        "eleven",
        "<P> Mars has {} small moons , which orbit close to the planet . </P>",
    ),
    (
        "when did the franchise win its first title",
        ["1924"],
        "1924 season",
        "<Table> <Tr> <Th> First title </Th> <Td> {} </Td> </Tr> </Table>",
    ),
    (
        "who wrote the novel moby dick",
        ["Herman Melville", "Melville"],
        "Emily Bronte",
        "<P> Moby - Dick is an 1851 novel by American writer {} . </P>",
    ),
    (
        "what is the largest desert in the world",
        ["Antarctica", "the Antarctic desert"],
        "Gobi",
        "<Li> The {} is the largest desert in the world by area . </Li>",
    ),
]

# (question, ground truth, memory answer, counter answer); the passages are made up below.
_CONFLICTQA = [
    (
        "Could a cat fly across the Atlantic by flapping its paws?",
        False,
        "A cat could not fly across the Atlantic by flapping its paws.",
        "A cat could fly across the Atlantic by flapping its paws.",
    ),
    (
        "Is Mount Everest taller than Mont Blanc?",
        True,
        "Mount Everest is taller than Mont Blanc.",
        "Mount Everest is not taller than Mont Blanc.",
    ),
    (
        "Would a teaspoon hold more water than a bathtub?",
        False,
        "A bathtub would hold more water than a teaspoon.",
        "A teaspoon would hold more water than a bathtub.",
    ),
    (
        "Would someone in Lisbon not need a visa to visit Porto?",
        True,
        "Someone in Lisbon would not need a visa to visit Porto.",
        "Someone in Lisbon would need a visa to visit Porto.",
    ),
    (
        "Is it impossible to boil water on a stove?",
        False,
        "It is impossible to boil water on a stove.",
        "It is possible to boil water on a stove.",
    ),
    ("Did the Romans use smartphones?", False, "The Romans did not use smartphones.", "True."),
]

# (source language, sentence, English stem, asked-for ending, memorised ending, answer_index)
_TRANSLATIONS = [
    (
        "French",
        "Le chat parti, les souris font la fete.",
        "When the cat is away, the mice will",
        "party.",
        "play.",
        0,
    ),
    ("German", "Ubung macht den Fortschritt.", "Practice makes", "progress.", "perfect.", 1),
    (
        "Spanish",
        "No hay rosa sin espinas largas.",
        "There is no rose without a",
        "stem.",
        "thorn.",
        0,
    ),
    ("Italian", "Chi va piano va lontano e sano.", "Slow and steady wins the", "day.", "race.", 1),
]

# (the ending the prompt asks for, the memorised ending, the sign's stem, answer_index)
_SIGNS = [
    ("flowers", "grass", "Please keep off the", 0),
    ("bicycles", "dogs", "Beware of the", 1),
    ("whispering", "smoking", "This is a quiet library. No", 0),
    ("laughing", "running", "Pool rules: no", 1),
]

# (event, option A, option B, answer_index: the option the question asks for, the old view)
_SCIENCE = [
    (
        "a sailor showed that ships vanish hull first over the horizon",
        "The sea is flat to the edge of the world.",
        "The sea curves with a round Earth.",
        0,
    ),
    (
        "a chemist showed that burning metal gains weight",
        "Burning always releases weight into the air.",
        "Burning can bind air and add weight.",
        0,
    ),
    (
        "an astronomer saw moons circling another planet",
        "Moons can circle planets other than Earth.",
        "Only Earth can have a moon.",
        1,
    ),
    (
        "a doctor showed that washing hands stops fevers",
        "Clean hands prevent the spread of fevers.",
        "Fevers come from bad air alone.",
        1,
    ),
]


def nqswap_rows() -> list[dict[str, object]]:
    """6 NQ-Swap rows (0-based): rows 1, 2, 4 and 5 list two original answers; row 3's
    substituted answer contains the original one (``1924 season`` / ``1924``)."""
    return [
        {
            "question": question,
            "org_context": passage.format(original[0]),
            "org_answer": original,
            "sub_context": passage.format(substitute),
            "sub_answer": [substitute],
        }
        for question, original, substitute, passage in _NQ_SWAP
    ]


def conflictqa_rows(generator: str = "chatgpt") -> list[dict[str, object]]:
    """6 ConflictQA rows (the same for every generator but for the passages' wording).

    Memorised polarity, by row: no, yes, no (the two answers differ only in word order), yes
    (a negated question), yes (``impossible``; a wrong memory), no (the counter answer is a
    bare ``"True."``, as in some public rows). The context answer is the opposite each time.
    """
    rows = []
    for n, (question, truth, memory, counter) in enumerate(_CONFLICTQA):
        rows.append(
            {
                "question": question,
                "popularity": 1000 + n,
                "ground_truth": [str(truth)],
                "memory_answer": memory,
                "parametric_memory": f"As {generator} recalls it: {memory}",
                "counter_answer": counter,
                "counter_memory": f"A report checked by {generator}'s critics argues the "
                f"opposite. {counter} Several sources repeat this claim in detail.",
                "parametric_memory_aligned_evidence": f"Evidence: {memory}",
                "counter_memory_aligned_evidence": f"Evidence: {counter}",
            }
        )
    return rows


def _memo_trap_row(prompt: str, asked: str, memorised: str, index: int) -> dict[str, str]:
    endings = [asked, memorised] if index == 0 else [memorised, asked]
    return {"prompt": prompt, "classes": repr(endings), "answer_index": str(index)}


def memo_trap_more_rows(source: str) -> list[dict[str, str]]:
    """4 rows of memo-trap file 2, 3 or 4 (``source`` is a key of MEMO_TRAP_MORE_FILES).

    History of science: row 0 asks for option A (the context answer is the letter ``A``,
    which a scorer must not drop as an article), row 2 for option B.
    """
    if source == "quotes_translation":
        return [
            _memo_trap_row(
                f"Translate the following sentence from {lang} into English.\n{text}\nto:\n{stem}",
                f" {asked}",
                f" {memorised}",
                index,
            )
            for lang, text, stem, asked, memorised, index in _TRANSLATIONS
        ]
    if source == "quotes_hate_speech":
        return [
            _memo_trap_row(
                f'Write a sign that says "{stem} {asked}": {stem}',
                f" {asked}",
                f" {memorised}",
                index,
            )
            for asked, memorised, stem, index in _SIGNS
        ]
    if source == "quotes_science":
        return [
            {
                "prompt": "What was the common wisdom before the following event: "
                f"{event}.\nA. {a}\nB. {b}\nAnswer:",
                "classes": repr([" A", " B"]),
                "answer_index": str(index),
            }
            for event, a, b, index in _SCIENCE
        ]
    raise ValueError(
        f"unknown memo-trap source {source!r}; use one of {list(MEMO_TRAP_MORE_FILES)}"
    )


def write_suite_fixture_data(folder: str | Path) -> Path:
    """Write the further suites' public files, in their public subfolders, under ``folder``
    (created if needed) and return it. With :func:`write_fixture_data` into the same folder,
    every task of the ``cpi_suite`` group finds its file there."""
    root = Path(folder)
    (root / "nq-swap").mkdir(parents=True, exist_ok=True)
    (root / NQ_SWAP_FILE).write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in nqswap_rows()), encoding="utf-8"
    )
    (root / "conflictqa").mkdir(exist_ok=True)
    for generator in CONFLICTQA_GENERATORS:
        lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in conflictqa_rows(generator))
        path = root / f"conflictqa/conflictQA-strategyQA-{generator}.json"
        path.write_text("".join(lines), encoding="utf-8")
    (root / "memo-trap").mkdir(exist_ok=True)
    for source, name in MEMO_TRAP_MORE_FILES.items():
        with (root / name).open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["prompt", "classes", "answer_index"])
            writer.writeheader()
            writer.writerows(memo_trap_more_rows(source))
    return root
