"""The knowledge filter: closed-book probe tasks, the known-item columns computed from
per-item files, and ``cpi sweep --knowledge_filter`` on a tiny model whose closed-book hits
are constructed (the random model knows nothing, so the test decides what it "knows")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.constants import EVAL_DIR, INVERSION_JSON, INVERSION_MD
from cpi_bench.harness_ext.core.items import read_items, write_results_with_items
from cpi_bench.harness_ext.reports.knowledge_filter import attach_known
from cpi_bench.tasks.closedbook import probe_for


def test_probe_for_pairs_each_task_with_its_family_probe() -> None:
    assert probe_for("cpi_capitals") == "cpi_capitals_closedbook"
    assert probe_for("cpi_capitals_choice") == "cpi_capitals_closedbook"
    assert probe_for("cpi_world_facts_instructed") == "cpi_world_facts_closedbook"
    assert probe_for("cpi_nqswap") == "cpi_nqswap_closedbook"
    assert probe_for("cpisynth_cf") == "cpisynth_cf_closedbook"
    assert probe_for("cpi_quotes") is None and probe_for("cpi_conflictqa_gpt4") is None


def test_closedbook_tasks_ask_the_question_alone(cpi_data_dir: Path) -> None:
    from lm_eval.tasks import TaskManager

    from cpi_bench.harness_ext.lm_eval_plugin.autoload import tasks_dir

    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False)
    names = [f"cpi_{f}_closedbook" for f in ("world_facts", "capitals", "bio", "nqswap")]
    loaded = manager.load([*names, "cpi_capitals"])["tasks"]
    probe, open_book = loaded["cpi_capitals_closedbook"], loaded["cpi_capitals"]
    docs = list(probe.test_docs())
    assert [d["item_id"] for d in docs] == [d["item_id"] for d in open_book.test_docs()]
    doc = docs[0]
    assert probe.doc_to_text(doc) == f"Question: {doc['question']}\nAnswer:"
    assert open_book.doc_to_text(doc).startswith("Background: ")
    score = probe.process_results
    assert score(doc, [f" {doc['param_answer']}."]) == {"acc": 1}
    assert score(doc, [f" {doc['cf_answer']}"]) == {"acc": 0}
    nq = loaded["cpi_nqswap_closedbook"]
    nq_doc = next(iter(nq.test_docs()))
    other = nq_doc["param_answers"][-1]  # any accepted memorised answer counts
    assert nq.process_results(nq_doc, [other]) == {"acc": 1}
    for name in names:
        assert [m["metric"] for m in loaded[name].config.metric_list] == ["acc"]


# ----------------------------------------------------------------------------- known columns


def _write(run: Path, name: str, step: int, records: list[dict]) -> None:
    results = {"results": {}, "cpi": {"step": step}}
    write_results_with_items(run / EVAL_DIR / f"{name}-{step}.json", results, records)


def _gen(task: str, item_id: int, cf: int, param: int) -> dict:
    return {"task": task, "item_id": item_id, "cf_hit": cf, "param_hit": param, "output": "x"}


def _probe(task: str, item_id: int, acc: int) -> dict:
    return {"task": task, "item_id": item_id, "acc": acc, "output": "y"}


def test_known_columns_from_constructed_known_sets(tmp_path: Path) -> None:
    """capitals: ids 0-9, known at the base {0, 1, 2, 3}; at step 5 the model knows {0, 1}.
    cf_hit at step 5: ids 0, 2, 4, 6, 8; param_hit: 1, 3. world_facts: ids 0-3, known {3}."""
    run = tmp_path / "run"
    cap = [_gen("cpi_capitals", i, int(i % 2 == 0), int(i in (1, 3))) for i in range(10)]
    wf = [_gen("cpi_world_facts", i, int(i == 3), 0) for i in range(4)]
    choice = [{**_gen("cpi_capitals_choice", i, 1, 0), "cf_pref": 0.9} for i in range(10)]
    choice = [{k: v for k, v in r.items() if k != "output"} for r in choice]
    for step in (0, 5):
        _write(run, "step", step, cap + wf + choice)
    base_probe = [_probe("cpi_capitals_closedbook", i, int(i < 4)) for i in range(10)]
    base_probe += [_probe("cpi_world_facts_closedbook", i, int(i == 3)) for i in range(4)]
    _write(run, "closedbook", 0, base_probe)
    late = [_probe("cpi_capitals_closedbook", i, int(i < 2)) for i in range(10)]
    _write(run, "closedbook", 5, late)
    inversion = {"rows": [{"step": 0, "tasks": {}}, {"step": 5, "tasks": {}}]}

    attach_known(run, inversion, "base")
    row = inversion["rows"][1]
    cap_known = row["tasks"]["cpi_capitals"]
    assert cap_known == {
        "cf_acc_known": 0.5,  # known {0,1,2,3}: cf at 0 and 2
        "param_acc_known": 0.5,  # param at 1 and 3
        "known_frac": 0.4,
        "n_known": 4,
    }
    assert row["tasks"]["cpi_world_facts"]["cf_acc_known"] == 1.0
    assert "cpi_capitals_choice" not in row["tasks"]  # only generation tasks (as cf_acc)
    assert row["cf_acc_known"] == pytest.approx((0.5 + 1.0) / 2)
    assert row["known_frac"] == pytest.approx((0.4 + 0.25) / 2)
    assert row["n_known"] == 5
    assert inversion["knowledge_filter"]["mode"] == "base"

    attach_known(run, inversion, "every")  # each step's own probes
    row = inversion["rows"][1]
    assert row["tasks"]["cpi_capitals"]["n_known"] == 2  # {0, 1}
    assert row["cf_acc_known"] == 0.5 and row["known_frac"] == 0.2  # world_facts: no probe


# ----------------------------------------------------------------------------- the sweep

TASKS = "cpi_capitals,cpi_quotes"
COMMON = ["--tasks", TASKS, "--limit", "6", "--device", "cpu", "--batch_size", "8"]


@pytest.fixture
def tiny_env(fixture_data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """Offline, one torch thread, and constructed per-item hits: the closed-book probe
    'knows' the items whose id is a multiple of 3; cpi_capitals states the context answer
    on even ids and the memorised one on odd ids."""
    import torch

    from cpi_bench.harness_ext.core import items
    from cpi_bench.harness_ext.evaluation import evaluator

    monkeypatch.setenv("CPI_DATA_DIR", str(fixture_data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")

    def constructed(samples):
        records = items.records_from_samples(samples)
        for r in records:
            if r["task"].endswith("_closedbook"):
                r["acc"] = int(r["item_id"] % 3 == 0)
            elif r["task"] == "cpi_capitals":
                r["cf_hit"], r["param_hit"] = int(r["item_id"] % 2 == 0), r["item_id"] % 2
        return records

    monkeypatch.setattr(evaluator, "records_from_samples", constructed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _expected(run: Path, step: int) -> dict:
    _, probes = read_items(run / EVAL_DIR / f"closedbook-{step}.items.jsonl")
    known = {r["item_id"] for r in probes if r["acc"] == 1}
    _, recs = read_items(run / EVAL_DIR / f"step-{step}.items.jsonl")
    cap = [r for r in recs if r["task"] == "cpi_capitals"]
    hits = [r for r in cap if r["item_id"] in known]
    assert hits and len(hits) < len(cap)  # the constructed set is a real subset
    return {
        "cf_acc_known": sum(r["cf_hit"] for r in hits) / len(hits),
        "param_acc_known": sum(r["param_hit"] for r in hits) / len(hits),
        "known_frac": len(hits) / len(cap),
    }


def test_sweep_knowledge_filter_on_a_tiny_model(
    tiny_env, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from tests.helpers.tiny_run import build_tiny_run

    run = build_tiny_run(tmp_path / "run", steps=(2,))
    assert cli.main(["sweep", str(run), *COMMON, "--knowledge_filter"]) == 0
    eval_dir = run / EVAL_DIR
    assert (eval_dir / "closedbook-0.json").is_file() and not (
        eval_dir / "closedbook-2.json"
    ).exists()
    cb = json.loads((eval_dir / "closedbook-0.json").read_text())
    assert set(cb["results"]) == {"cpi_capitals_closedbook"}  # quotes have no probe
    _, probes = read_items(eval_dir / "closedbook-0.items.jsonl")
    assert sorted(r["item_id"] for r in probes) == sorted(
        r["item_id"] for r in read_items(eval_dir / "step-0.items.jsonl")[1]
        if r["task"] == "cpi_capitals"
    )  # fmt: skip
    data = json.loads((run / INVERSION_JSON).read_text())
    expected = _expected(run, 0)  # the base's known set, applied to every row
    for row in data["rows"]:
        assert {k: row[k] for k in expected} == pytest.approx(expected)
    md = (run / INVERSION_MD).read_text()
    assert "CF acc known (%)" in md and "known (%)" in md and "closed-book probe" in md
    capsys.readouterr()

    # adding `every` later evaluates only the probes of the checkpoints
    every = [*COMMON, "--knowledge_filter", "every"]
    assert cli.main(["sweep", str(run), *every, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "step-0: reuse (base, unchanged)",
        "step-2: reuse (checkpoint-2, unchanged)",
        "closedbook-0: reuse (closed-book probes, unchanged)",
        "closedbook-2: evaluate, not evaluated yet",
    ]
    assert cli.main(["sweep", str(run), *every]) == 0
    assert "closed-book probes for 1 step(s)" in capsys.readouterr().err
    data = json.loads((run / INVERSION_JSON).read_text())
    assert data["knowledge_filter"]["mode"] == "every"
    row = data["rows"][1]
    assert {k: row[k] for k in ("cf_acc_known", "known_frac")} == pytest.approx(
        {k: v for k, v in _expected(run, 2).items() if k in ("cf_acc_known", "known_frac")}
    )


def test_knowledge_filter_bad_input_exits_2(
    tiny_env, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from tests.helpers.tiny_run import build_tiny_run

    run = build_tiny_run(tmp_path / "run", steps=(2,))
    quotes = ["--tasks", "cpi_quotes", "--limit", "2", "--device", "cpu"]
    assert cli.main(["sweep", str(run), *quotes, "--knowledge_filter", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "none of the tasks has a closed-book probe" in err and len(err.splitlines()) == 1
    skip = [*COMMON, "--skip_base", "--knowledge_filter", "--dry-run"]
    assert cli.main(["sweep", str(run), *skip]) == 2
    assert "drop --skip_base" in capsys.readouterr().err
    assert cli.main(["sweep", str(run), *COMMON, "--knowledge_filter", "all"]) == 2
    assert "invalid choice" in capsys.readouterr().err
