"""Finding, reading and validating the public data files."""

import json
from pathlib import Path

import pytest

from cpi_bench.harness_ext.core.errors import CPIError
from cpi_bench.tasks import sources as common
from cpi_bench.tasks.sources import SOURCES, load_dataset, load_rows, locate

# ----------------------------------------------------------------------------- real files


def in_file_order(dataset_dict) -> list[dict]:
    """The test split in the public file's row order (load_dataset shuffles it, seeded)."""
    return sorted(dataset_dict["test"].to_list(), key=lambda row: row["item_id"])


@pytest.mark.parametrize("name", ["world_facts", "capitals", "quotes"])
def test_public_files_have_the_published_sizes(real_data_dir, monkeypatch, name):
    monkeypatch.setenv("CPI_DATA_DIR", str(real_data_dir))
    source = SOURCES[name]
    rows = load_rows(source, locate(source))
    assert len(rows) == source.expected_rows
    assert all(r["cf_answer"] and r["param_answer"] and r["context"] for r in rows)


def test_public_capitals_are_the_first_world_facts(real_data_dir, monkeypatch):
    monkeypatch.setenv("CPI_DATA_DIR", str(real_data_dir))
    capitals = load_rows(SOURCES["capitals"], locate(SOURCES["capitals"]))
    facts = load_rows(SOURCES["world_facts"], locate(SOURCES["world_facts"]))
    assert facts[: len(capitals)] == capitals


def test_public_quotes_use_answer_index_not_position(real_data_dir, monkeypatch):
    monkeypatch.setenv("CPI_DATA_DIR", str(real_data_dir))
    rows = load_rows(SOURCES["quotes"], locate(SOURCES["quotes"]))
    # row 4 of the CSV: classes [' families.', ' way.'], answer_index 1 -> the prompt asks for "way"
    assert rows[3]["cf_answer"] == "way."
    assert rows[3]["param_answer"] == "families."
    assert rows[0]["cf_answer"] == "heavy." and rows[0]["param_answer"] == "fonder."


# ----------------------------------------------------------------------------- fixture files


@pytest.mark.parametrize(
    ("name", "n"), [("world_facts", 18), ("capitals", 12), ("bio", 12), ("quotes", 16)]
)
def test_fixture_files_are_found_and_complete(cpi_data_dir, name, n):
    source = SOURCES[name]
    path = locate(source)
    assert path == cpi_data_dir / source.file_name
    rows = load_rows(source, path)
    assert len(rows) == n
    assert all(r["cf_answer"] and r["param_answer"] and r["context"] for r in rows)
    assert all(r["cf_answer"] != r["param_answer"] for r in rows)


def test_fixture_capitals_are_the_first_world_facts(cpi_data_dir):
    capitals = in_file_order(load_dataset(source="capitals"))
    facts = in_file_order(load_dataset(source="world_facts"))
    assert len(facts) > len(capitals)
    assert facts[: len(capitals)] == capitals
    assert capitals[0]["question"] == "What is the capital city of Norway?"
    assert capitals[0]["cf_answer"] == "Bergen" and capitals[0]["param_answer"] == "Oslo"
    assert not any("capital" in r["question"] for r in facts[len(capitals) :])


def test_bio_fixture_is_found_and_canonicalised(cpi_data_dir):
    ds = in_file_order(load_dataset(source="bio", version=1.0))
    assert len(ds) == 12
    assert ds[0]["cf_answer"] == "Enrico Fermi"
    assert ds[0]["param_answer"] == "Leonardo da Vinci"
    assert ds[0]["question"].startswith("What is the name of the artist")
    assert ds[0]["context"].startswith("Enrico Fermi was born")  # stray spaces stripped


def test_quotes_use_answer_index_not_position(cpi_data_dir):
    rows = load_rows(SOURCES["quotes"], locate(SOURCES["quotes"]))
    # row 4 of the fixture CSV: classes [' hatch.', ' sleep.'], answer_index 1 -> "sleep"
    assert rows[3]["cf_answer"] == "sleep."
    assert rows[3]["param_answer"] == "hatch."
    assert rows[3]["context"].startswith('Write a quote that ends in the word "sleep"')
    assert rows[0]["cf_answer"] == "bus." and rows[0]["param_answer"] == "worm."


def test_data_dir_lookup_direct_and_one_level_below(tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.setenv("CPI_DATA_DIR", str(tmp_path))
    with pytest.raises(CPIError):
        locate(SOURCES["world_facts"])
    (tmp_path / "a" / "b" / "world_facts.json").write_text("[]")
    with pytest.raises(CPIError):  # two levels below is not searched
        locate(SOURCES["world_facts"])
    (tmp_path / "a" / "world_facts.json").write_text("[]")
    assert locate(SOURCES["world_facts"]) == tmp_path / "a" / "world_facts.json"
    (tmp_path / "world_facts.json").write_text("[]")
    assert locate(SOURCES["world_facts"]) == tmp_path / "world_facts.json"


def test_missing_file_message_names_env_var_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CPI_DATA_DIR", str(tmp_path))
    with pytest.raises(CPIError) as err:
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
    with pytest.raises(CPIError, match=r"world_facts\.json: row 2 lacks field 'memory_answer'"):
        load_rows(SOURCES["world_facts"], path)


def test_bio_rows_need_parametric_answer(tmp_path):
    path = tmp_path / "famous_biographies.jsonl"
    path.write_text(json.dumps({"context": "c", "question": "q", "answer": "a"}) + "\n")
    with pytest.raises(CPIError, match="row 1 lacks field 'parametric_answer'"):
        load_rows(SOURCES["bio"], path)


def test_bad_memo_trap_classes(tmp_path):
    path = tmp_path / "1-proverb-ending.csv"
    path.write_text('prompt,classes,answer_index\n"p","[\' a.\']",0\n')
    with pytest.raises(CPIError, match="row 1: classes must hold exactly two"):
        load_rows(SOURCES["quotes"], path)


def test_not_json(tmp_path):
    path = tmp_path / "world_facts.json"
    path.write_text("{oops")
    with pytest.raises(CPIError, match="not valid JSON"):
        load_rows(SOURCES["world_facts"], path)


@pytest.mark.parametrize("bad", [["Porto"], True, 7, {"city": "Porto"}])
def test_task_data_answer_must_be_text(tmp_path, monkeypatch, bad):
    """str() of a list/bool would silently become the answer "['Porto']" / "True"."""
    rows = [{"context": "c", "question": "q", "answer": bad, "memory_answer": "Lisbon"}]
    path = tmp_path / "country_capitals_only.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(CPIError, match="row 1: field 'answer' is a"):
        load_rows(SOURCES["capitals"], path)


def test_task_data_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "country_capitals_only.json"
    path.write_bytes(b'[{"context": "\xff"}]')
    with pytest.raises(CPIError, match=r"country_capitals_only.json: not UTF-8 text"):
        load_rows(SOURCES["capitals"], path)


def test_unknown_source():
    with pytest.raises(CPIError, match="unknown"):
        load_dataset(source="nope")


def test_limit_draws_a_seeded_representative_subset(cpi_data_dir):
    """lm-eval's --limit N takes the first N docs: they must not be the file's first N rows
    (world_facts starts with all its capitals), and must be the same on every run."""
    first = load_dataset(source="world_facts")["test"].to_list()
    again = load_dataset(source="world_facts")["test"].to_list()
    assert [r["item_id"] for r in first] == [r["item_id"] for r in again]
    assert sorted(r["item_id"] for r in first) == list(range(len(first)))
    head = first[: len(first) // 3]
    assert any("capital" in r["question"] for r in head)
    assert any("capital" not in r["question"] for r in head)
