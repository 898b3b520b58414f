"""Per-item records (``eval/step-N.items.jsonl``): extraction from lm-eval's logged samples,
categories, the file's link to its results file, and the sweep writing and reusing them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.constants import EVAL_DIR
from cpi_bench.harness_ext.core.items import (
    item_category,
    item_value,
    items_path,
    items_problem,
    read_items,
    records_for_results_file,
    records_from_samples,
    write_results_with_items,
)
from cpi_bench.harness_ext.reports.results import task_metrics
from cpi_bench.tasks import utils

DOC = {
    "context": "Lima lost its status and Arequipa became the capital of Peru.",
    "question": "What is the capital city of Peru?",
    "cf_answer": "Arequipa",
    "param_answer": "Lima",
    "item_id": 7,
}


def _generation_sample(output: str, cf: int, param: int, doc: dict = DOC) -> dict:
    """A logged sample as lm-eval keeps it in memory for a generate_until task."""
    return {
        "doc_id": 0,
        "doc": doc,
        "resps": [[output]],
        "filtered_resps": [output],
        "filter": "none",
        "metrics": ["cf_acc", "param_acc", "cf_contains", "param_contains", "reason"],
        "cf_acc": cf,
        "param_acc": param,
        "cf_contains": cf,
        "param_contains": param,
        "reason": "asserted: context answer" if cf else "none: neither answer named",
    }


def test_records_from_generation_and_choice_samples() -> None:
    choice = {
        "doc": DOC,
        "filtered_resps": [(-3.5, False), (-1.25, True)],  # in memory: tuples
        "filter": "none",
        "cf_pref": 0.0952,
        "acc": 0.0,
    }
    serialised = {**choice, "filtered_resps": [["-3.5", "False"], ["-1.25", "True"]]}
    bench = {"doc": {"question": "2+2?"}, "filtered_resps": ["4"], "filter": "none", "acc": 1}
    records = records_from_samples(
        {
            "cpi_capitals": [_generation_sample("Arequipa", 1, 0)],
            "cpi_capitals_choice": [choice],
            "cpi_bio_choice": [serialised],  # as lm-eval writes it to samples_*.jsonl
            "gsm8k": [bench],  # not cpi data (no item_id): left out
        }
    )
    assert [r["task"] for r in records] == ["cpi_bio_choice", "cpi_capitals", "cpi_capitals_choice"]
    gen = records[1]
    assert gen == {
        "task": "cpi_capitals",
        "item_id": 7,
        "category": "capital",
        "cf_hit": 1,
        "param_hit": 0,
        "cf_contains": 1,
        "param_contains": 0,
        "reason": "asserted: context answer",
        "output": "Arequipa",
        "cf_answer": "Arequipa",
        "param_answer": "Lima",
    }
    assert item_value(gen, "cf_contains") == 1.0 and item_value(gen, "param_contains") == 0.0
    ch = records[2]
    assert (ch["cf_hit"], ch["param_hit"]) == (0, 1)
    assert (ch["logprob_cf"], ch["logprob_param"], ch["cf_pref"]) == (-3.5, -1.25, 0.0952)
    assert records[0]["logprob_param"] == -1.25 and records[0]["category"] is None
    assert item_value(ch, "acc") == 0.0 and item_value(ch, "cf_pref") == 0.0952
    assert item_value(gen, "cf_acc") == 1.0 and item_value(gen, "param_acc") == 0.0


@pytest.mark.parametrize(
    ("task", "question", "category"),
    [
        ("cpi_world_facts", "What is the capital city of Vietnam?", "capital"),
        ("cpi_world_facts", "What is the capital of the U.S. state of Georgia?", "capital"),
        ("cpi_world_facts_instructed", "what's the capital of Spain?", "capital"),
        ("cpi_world_facts", "Which of these cities is not a national capital?", "other"),
        ("cpi_world_facts", "Where would you find the Eiffel Tower?", "other"),
        ("cpi_capitals_choice", "What is the capital city of Peru?", "capital"),
        ("cpisynth_cf", "What is the capital of Bodaki?", "capital"),
        ("cpisynth_cf", "What language is spoken in Bodaki?", "other"),
        ("cpi_bio", "What is the name of the artist who made Guernica?", None),
        ("cpi_nqswap", "what is the capital of france", None),
    ],
)
def test_category_rule(task: str, question: str, category: str | None) -> None:
    assert item_category(task, {"question": question}) == category


def test_records_file_belongs_to_its_results_file(tmp_path: Path) -> None:
    path = tmp_path / "eval" / "step-3.json"
    records = records_from_samples({"cpi_capitals": [_generation_sample("Lima", 0, 1)]})
    results = {"results": {"cpi_capitals": {"cf_acc,none": 0.0}}, "cpi": {"step": 3}}
    written = write_results_with_items(path, results, records)
    assert written == items_path(path) == tmp_path / "eval" / "step-3.items.jsonl"
    header, back = read_items(written)
    assert header["step"] == 3 and header["tasks"] == {"cpi_capitals": 1}
    assert header["results_file"] == "step-3.json" and back == records
    assert items_problem(path) is None
    assert records_for_results_file(path) == (records, str(written))
    assert json.loads(path.read_text()) == results  # the results file holds no samples
    path.write_text(path.read_text().replace("0.0", "0.5"))  # results changed afterwards
    assert items_problem(path) == "per-item records belong to another version of the results"
    assert records_for_results_file(path) is None
    written.unlink()
    assert items_problem(path) == "no per-item records"


# ----------------------------------------------------------------------------- the sweep

TASKS = "cpi_capitals,cpi_world_facts,cpi_capitals_choice"
COMMON = ["--tasks", TASKS, "--limit", "5", "--device", "cpu", "--batch_size", "8"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory, fixture_data_dir: Path) -> Path:
    """A tiny full-finetune run (steps 0, 2), swept once."""
    import torch

    from tests.helpers.tiny_run import build_tiny_run

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CPI_DATA_DIR", str(fixture_data_dir))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            run = build_tiny_run(tmp_path_factory.mktemp("items") / "run", steps=(2,))
            assert cli.main(["sweep", str(run), *COMMON]) == 0
        finally:
            torch.set_num_threads(threads)
    return run


def test_sweep_writes_records_that_match_its_metrics(swept: Path) -> None:
    for step in (0, 2):
        path = swept / EVAL_DIR / f"step-{step}.json"
        data = json.loads(path.read_text())
        assert "samples" not in data and items_problem(path) is None
        header, records = read_items(items_path(path))
        assert header["tasks"] == {t: 5 for t in TASKS.split(",")}
        for task, entry in data["results"].items():
            mine = [r for r in records if r["task"] == task]
            ids = [r["item_id"] for r in mine]
            assert len(set(ids)) == len(ids) == 5
            if task == "cpi_capitals_choice":
                mean = sum(r["cf_pref"] for r in mine) / 5
                assert mean == pytest.approx(entry["cf_pref,none"])
                assert all(r["cf_hit"] + r["param_hit"] <= 1 for r in mine)
            else:
                pairs = [("cf_acc", "cf_hit"), ("param_acc", "param_hit")]
                pairs += [("cf_contains", "cf_contains"), ("param_contains", "param_contains")]
                for metric, key in pairs:
                    assert sum(r[key] for r in mine) / 5 == pytest.approx(entry[f"{metric},none"])
                assert all(isinstance(r["output"], str) for r in mine)
                # the rule that decided each item, from lm-eval's logged samples
                assert all(r["reason"].split(":")[0] for r in mine)
                counts = utils.reason_counts([r["reason"] for r in mine])
                assert entry["reason,none"] == counts and entry["reason_stderr,none"] == "N/A"
        cats = {r["category"] for r in records if r["task"] == "cpi_world_facts"}
        assert cats <= {"capital", "other"}
    # the same --limit draws the same items in every task of a family
    _, records = read_items(items_path(swept / EVAL_DIR / "step-0.json"))
    by = {t: {r["item_id"] for r in records if r["task"] == t} for t in TASKS.split(",")}
    assert by["cpi_capitals"] == by["cpi_capitals_choice"]


def test_reason_is_text_in_lm_eval_table_and_left_out_of_reports(swept: Path) -> None:
    """lm-eval's own results table prints the per-task rule counts (text, no arrow, no
    stderr); the reports, which read numbers, leave the reason out."""
    from lm_eval.utils import make_table

    data = json.loads((swept / EVAL_DIR / "step-0.json").read_text())
    entry = data["results"]["cpi_capitals"]
    assert isinstance(entry["reason,none"], str) and entry["reason,none"]
    table = make_table({**data, "versions": data.get("versions", {})})
    row = next(line for line in table.splitlines() if "|reason" in line.replace(" ", ""))
    assert entry["reason,none"] in row and "↑" not in row and "↓" not in row
    metrics = task_metrics(data)["cpi_capitals"]
    assert "reason" not in metrics and "reason_stderr" not in metrics
    assert 0.0 <= metrics["cf_contains"] <= 1.0


def test_records_from_a_log_samples_file_keep_the_reason(tmp_path: Path) -> None:
    """lm-eval ``--log_samples`` files keep every key process_results returns, ``reason``
    included; the records read from them (``cpi gate``, ``cpi table`` on lm-eval output) too."""
    from cpi_bench.harness_ext.core.items import records_from_samples_file

    sample = _generation_sample(" Arequipa, per the passage.", 1, 0)
    sample["reason"] = "reported, not taken back: context answer"
    path = tmp_path / "samples_cpi_capitals_2026-01-02T10-00-00.000001.jsonl"
    path.write_text(json.dumps(sample) + "\n")
    (record,) = records_from_samples_file(path)
    assert record["reason"] == "reported, not taken back: context answer"
    assert (record["cf_hit"], record["cf_contains"]) == (1, 1)


def test_records_are_reused_only_with_their_step_file(
    swept: Path, fixture_data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CPI_DATA_DIR", str(fixture_data_dir))
    assert cli.main(["sweep", str(swept), *COMMON, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "step-0: reuse (base, unchanged)",
        "step-2: reuse (checkpoint-2, unchanged)",
    ]
    items_path(swept / EVAL_DIR / "step-2.json").unlink()
    assert cli.main(["sweep", str(swept), *COMMON, "--dry-run"]) == 0
    assert "step-2: re-evaluating, no per-item records" in capsys.readouterr().out
