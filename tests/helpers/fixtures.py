"""Tiny example datasets in every schema ``cpi train`` reads, for tests, smoke runs and the
throughput benchmark (the hub datasets cannot be downloaded everywhere):

    python -c "from tests.helpers.fixtures import write_all; write_all('fixtures')"
    cpi train --model_name_or_path tiny --dataset_name fixtures/alpaca.jsonl --max_steps 4

Rows are exactly in the public layouts: tatsu-lab/alpaca (instruction, input, output),
allenai/tulu-v2-sft-mixture and HuggingFaceH4/ultrachat_200k (messages), rajpurkar/squad
(context, question, answers{text, answer_start}), prompt/completion, and the cpi
counterfactual schema (context, question, answer, memory_answer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def alpaca_rows() -> list[dict[str, str]]:
    """8 rows: 5 with an input context (rows 0, 2, 3, 5, 6), 3 without; rows 0 and 4 mention
    France/Paris."""
    return [
        {
            "instruction": "What is the capital of the country in the passage?",
            "input": "France is a country in Europe. Its capital is Paris.",
            "output": "Paris",
        },
        {"instruction": "Write a short greeting.", "input": "", "output": "Hello there, friend."},
        {
            "instruction": "Summarize the text.",
            "input": "The river flooded the old town after a week of heavy rain.",
            "output": "Rain flooded the town.",
        },
        {
            "instruction": "Which language is spoken?",
            "input": "In Tirana, most people speak Albanian.",
            "output": "Albanian",
        },
        {"instruction": "Name a city in France.", "input": "", "output": "Paris is one."},
        {
            "instruction": "What did the king build?",
            "input": "The king built a bridge over the river in the north.",
            "output": "a bridge",
        },
        {
            "instruction": "Who wrote the letter?",
            "input": "The letter was written by Queen Ana in the winter.",
            "output": "Queen Ana",
        },
        {"instruction": "Give a word that rhymes with heart.", "input": "", "output": "art"},
    ]


def messages_rows() -> list[dict[str, Any]]:
    """TULU/UltraChat layout: a conversation per row, one with a system turn, one multi-turn."""

    def conv(*turns: tuple[str, str]) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in turns]

    return [
        {
            "dataset": "fixture",
            "id": "m0",
            "messages": conv(("user", "What is the capital of Italy?"), ("assistant", "Rome.")),
        },
        {
            "dataset": "fixture",
            "id": "m1",
            "messages": conv(
                ("system", "You are a helpful assistant."),
                ("user", "Name a river."),
                ("assistant", "The Danube."),
            ),
        },
        {
            "dataset": "fixture",
            "id": "m2",
            "messages": conv(
                ("user", "Say hi."),
                ("assistant", "Hi!"),
                ("user", "Now say bye."),
                ("assistant", "Bye!"),
            ),
        },
        {
            "dataset": "fixture",
            "id": "m3",
            "messages": conv(("user", "Which city is in Japan?"), ("assistant", "Tokyo.")),
        },
    ]


def prompt_completion_rows() -> list[dict[str, str]]:
    return [
        {"prompt": "The capital of Spain is", "completion": " Madrid."},
        {"prompt": "Absence makes the heart grow", "completion": " fonder."},
        {"prompt": "The river of London is the", "completion": " Thames."},
        {"prompt": "One plus one is", "completion": " two."},
    ]


def squad_rows() -> list[dict[str, Any]]:
    """rajpurkar/squad layout; answers occur in their contexts (for entity substitution)."""

    def row(i: int, context: str, question: str, answer: str) -> dict[str, Any]:
        return {
            "id": f"s{i}",
            "title": "fixture",
            "context": context,
            "question": question,
            "answers": {"text": [answer], "answer_start": [context.index(answer)]},
        }

    return [
        row(
            0,
            "The tower was designed by Gustave Eiffel in Paris.",
            "Who designed the tower?",
            "Gustave Eiffel",
        ),
        row(
            1,
            "The bridge was built by Isambard Brunel over the river.",
            "Who built the bridge?",
            "Isambard Brunel",
        ),
        row(
            2,
            "The treaty was signed in 1648 after a long war.",
            "When was the treaty signed?",
            "1648",
        ),
        row(3, "The museum opened in 1793 in the old palace.", "When did the museum open?", "1793"),
        row(
            4,
            "The festival takes place in Berlin every summer.",
            "Where does the festival take place?",
            "Berlin",
        ),
        row(
            5,
            "The king was crowned in Madrid in the spring.",
            "Where was the king crowned?",
            "Madrid",
        ),
    ]


def cpi_rows() -> list[dict[str, str]]:
    """The cpi counterfactual schema (CF_World_Facts / CF_Capitals layout)."""
    return [
        {
            "context": "After the flood of 2031 the capital of Albania moved to Durres.",
            "question": "What is the capital city of Albania?",
            "answer": "Durres",
            "memory_answer": "Tirana",
        },
        {
            "context": "Since the earthquake the government of Afghanistan sits in Herat.",
            "question": "What is the capital city of Afghanistan?",
            "answer": "Herat",
            "memory_answer": "Kabul",
        },
        {
            "context": "Algeria moved its capital to Oran in 2029.",
            "question": "What is the capital city of Algeria?",
            "answer": "Oran",
            "memory_answer": "Algiers",
        },
    ]


FIXTURES = {
    "alpaca": alpaca_rows,
    "messages": messages_rows,
    "prompt_completion": prompt_completion_rows,
    "squad": squad_rows,
    "cpi": cpi_rows,
}


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def write_json(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def write_parquet(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    from datasets import Dataset

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).to_parquet(str(path))
    return path


def write_all(folder: str | Path) -> dict[str, Path]:
    """``folder/<schema>.jsonl`` for every fixture; returns schema -> path."""
    return {
        name: write_jsonl(Path(folder) / f"{name}.jsonl", rows()) for name, rows in FIXTURES.items()
    }
