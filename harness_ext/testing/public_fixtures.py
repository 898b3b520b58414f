"""Small synthetic stand-ins for the public data files, so that tests and benchmarks run
without the public data (a plain clone has no ``CPI_DATA_DIR``, and CI is offline):

    python -c "import cpi_bench.harness_ext.testing.public_fixtures as f; f.write_fixture_data('d')"
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
