"""Finding, reading and validating the public data files."""

import json
from pathlib import Path

import pytest

from cpi_bench.tasks import common
from cpi_bench.tasks.common import SOURCES, CPIDataError, load_dataset, load_rows, locate


@pytest.mark.parametrize("name", ["world_facts", "capitals", "quotes"])
def test_shared_copies_have_the_published_sizes(cpi_data_dir, name):
    source = SOURCES[name]
    rows = load_rows(source, locate(source))
    assert len(rows) == source.expected_rows
    assert all(r["cf_answer"] and r["param_answer"] and r["context"] for r in rows)


def test_bio_fixture_is_found_and_canonicalised(cpi_data_dir):
    ds = load_dataset(source="bio", version=1.0)["test"]
    assert len(ds) == 6
    assert ds[0]["cf_answer"] == "Enrico Fermi"
    assert ds[0]["param_answer"] == "Leonardo da Vinci"
    assert ds[0]["question"].startswith("What is the name of the artist")


def test_quotes_use_answer_index_not_position(cpi_data_dir):
    rows = load_rows(SOURCES["quotes"], locate(SOURCES["quotes"]))
    # row 4 of the CSV: classes [' families.', ' way.'], answer_index 1 -> the prompt asks for "way"
    assert rows[3]["cf_answer"] == "way."
    assert rows[3]["param_answer"] == "families."
    assert rows[0]["cf_answer"] == "heavy." and rows[0]["param_answer"] == "fonder."


def test_data_dir_lookup_direct_and_one_level_below(tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.setenv("CPI_DATA_DIR", str(tmp_path))
    with pytest.raises(CPIDataError):
        locate(SOURCES["world_facts"])
    (tmp_path / "a" / "b" / "world_facts.json").write_text("[]")
    with pytest.raises(CPIDataError):  # two levels below is not searched
        locate(SOURCES["world_facts"])
    (tmp_path / "a" / "world_facts.json").write_text("[]")
    assert locate(SOURCES["world_facts"]) == tmp_path / "a" / "world_facts.json"
    (tmp_path / "world_facts.json").write_text("[]")
    assert locate(SOURCES["world_facts"]) == tmp_path / "world_facts.json"


def test_missing_file_message_names_env_var_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CPI_DATA_DIR", str(tmp_path))
    with pytest.raises(CPIDataError) as err:
        load_dataset(source="capitals")
    msg = str(err.value)
    assert "CPI_DATA_DIR" in msg and "country_capitals_only.json" in msg
    assert common.CPI_COMMIT in msg  # says where to get it


def _write(path: Path, rows) -> Path:
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_row_missing_a_field_names_file_row_and_field(tmp_path):
    good = {"context": "c", "question": "q", "answer": "a", "memory_answer": "m"}
    path = _write(tmp_path / "world_facts.json", [good, {**good, "memory_answer": ""}])
    with pytest.raises(CPIDataError, match=r"world_facts\.json: row 2 lacks field 'memory_answer'"):
        load_rows(SOURCES["world_facts"], path)


def test_bio_rows_need_parametric_answer(tmp_path):
    path = tmp_path / "famous_biographies.jsonl"
    path.write_text(json.dumps({"context": "c", "question": "q", "answer": "a"}) + "\n")
    with pytest.raises(CPIDataError, match="row 1 lacks field 'parametric_answer'"):
        load_rows(SOURCES["bio"], path)


def test_bad_memo_trap_classes(tmp_path):
    path = tmp_path / "1-proverb-ending.csv"
    path.write_text('prompt,classes,answer_index\n"p","[\' a.\']",0\n')
    with pytest.raises(CPIDataError, match="row 1: classes must hold exactly two"):
        load_rows(SOURCES["quotes"], path)


def test_not_json(tmp_path):
    path = tmp_path / "world_facts.json"
    path.write_text("{oops")
    with pytest.raises(CPIDataError, match="not valid JSON"):
        load_rows(SOURCES["world_facts"], path)


def test_unknown_source():
    with pytest.raises(CPIDataError, match="unknown"):
        load_dataset(source="nope")
