"""``cpi flips``, the statistics behind it (McNemar, Wilson, paired bootstrap), the per-item
summaries of inversion.json and ``cpi gate --confidence``: all from hand-made JSON files with
known answers (no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.constants import EVAL_DIR, INVERSION_JSON, INVERSION_MD
from cpi_bench.harness_ext.core.items import items_path, write_results_with_items
from cpi_bench.harness_ext.reports import stats
from cpi_bench.harness_ext.reports.flips import flips_report
from cpi_bench.harness_ext.reports.inversion import build_inversion
from cpi_bench.harness_ext.reports.run_report import enrich_inversion
from cpi_bench.harness_ext.reports.run_report import write as write_run_reports

# ----------------------------------------------------------------------------- statistics


def test_mcnemar_exact_matches_the_worked_example() -> None:
    # 8 lost vs 2 gained: 2 * P[Bin(10, 1/2) <= 2] = 2 * (1 + 10 + 45) / 1024
    assert stats.mcnemar_exact_p(8, 2) == pytest.approx(0.109375, abs=1e-12)
    assert stats.mcnemar_exact_p(2, 8) == stats.mcnemar_exact_p(8, 2)
    assert stats.mcnemar_exact_p(0, 0) == 1.0
    assert stats.mcnemar_exact_p(5, 5) == 1.0
    assert stats.mcnemar_exact_p(10, 0) == pytest.approx(2 / 1024)
    assert stats.mcnemar_exact_p(20, 3) < 0.001


def test_wilson_interval_known_values() -> None:
    low, high = stats.wilson_interval(0.5, 100)
    assert (low, high) == (pytest.approx(0.4038, abs=1e-4), pytest.approx(0.5962, abs=1e-4))
    low, high = stats.wilson_interval(0.0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert stats.wilson_interval(0.3, 0) is None


def test_paired_bootstrap_is_seeded_and_centred() -> None:
    pairs = {"a": [(1, 0)] * 30 + [(0, 0)] * 70, "b": [(1, 1)] * 50 + [(0, 1)] * 10}
    point = stats.point_difference(pairs)
    assert point == pytest.approx((0.3 + (-10 / 60)) / 2)
    d1, d2 = stats.paired_bootstrap(pairs), stats.paired_bootstrap(pairs)
    assert (d1 == d2).all() and len(d1) == stats.BOOTSTRAP_ITERATIONS
    low, high = stats.percentile_interval(d1)
    assert low < point < high
    assert stats.lower_bound(d1, 0.95) > low  # one-sided 95% bound lies inside the 95% interval


# ----------------------------------------------------------------------------- hand-made runs

# 20 capital items (ids 0-19) + 4 "other" world facts (ids 100-103) per step; at step 10 vs 20:
# items 0-7: context answer -> memorised answer (cf lost, param gained);
# items 8-9: memorised -> context (cf gained, param lost);
# items 10-14: context answer at both steps; items 15-19: neither answer at both;
# items 100-101: context lost, no answer at 20; 102-103: context at both.
FROM_STEP, TO_STEP = 10, 20


def _states(step: int) -> dict[int, tuple[int, int]]:
    early = step == FROM_STEP
    out = {}
    for i in range(8):
        out[i] = (1, 0) if early else (0, 1)
    for i in (8, 9):
        out[i] = (0, 1) if early else (1, 0)
    out.update({i: (1, 0) for i in range(10, 15)})
    out.update({i: (0, 0) for i in range(15, 20)})
    out.update({100: (1, 0) if early else (0, 0), 101: (1, 0) if early else (0, 0)})
    out.update({102: (1, 0), 103: (1, 0)})
    return out


def _record(item_id: int, cf: int, param: int, step: int) -> dict:
    capital = item_id < 100
    said = ("Arequipa" if cf else "") + (" Lima" if param else "") or "I do not know"
    return {
        "task": "cpi_world_facts",
        "item_id": item_id,
        "category": "capital" if capital else "other",
        "cf_hit": cf,
        "param_hit": param,
        "output": f"{said} (step {step})",
        "reason": {(1, 0): "asserted: context answer", (0, 1): "asserted: memorised answer"}.get(
            (cf, param), "none: neither answer named"
        ),
        "cf_answer": "Arequipa",
        "param_answer": "Lima",
    }


def step_file_results(step: int, records: list[dict]) -> dict:
    """A per-checkpoint results file whose cf/param means are those of ``records``."""
    n = len(records)
    cf = sum(r["cf_hit"] for r in records) / n
    param = sum(r["param_hit"] for r in records) / n
    entry = {"cf_acc,none": cf, "cf_acc_stderr,none": (cf * (1 - cf) / (n - 1)) ** 0.5}
    entry |= {"param_acc,none": param, "param_acc_stderr,none": 0.01, "sample_len": n}
    return {
        "results": {"cpi_world_facts": entry},
        "n-samples": {"cpi_world_facts": {"original": n, "effective": n}},
        "group_subtasks": {},
        "cpi": {"step": step, "label": f"checkpoint-{step}", "settings": {}},
    }


def write_step(run: Path, step: int, records: list[dict]) -> Path:
    path = run / EVAL_DIR / f"step-{step}.json"
    write_results_with_items(path, step_file_results(step, records), records)
    return path


@pytest.fixture
def flip_run(tmp_path: Path) -> Path:
    """A swept run folder: steps 0 (base, = step 10's answers), 10 (peak) and 20 (final)."""
    run = tmp_path / "run"
    by_step = {}
    for step in (0, FROM_STEP, TO_STEP):
        states = _states(FROM_STEP if step == 0 else step)
        if step == 0:  # the base: a little lower than the peak (item 10 not yet right)
            states[10] = (0, 0)
        records = [_record(i, *states[i], step) for i in sorted(states)]
        by_step[step] = step_file_results(step, records)
        write_step(run, step, records)
    inversion = build_inversion(by_step, id_tasks=[], run={"name": "run"})
    enrich_inversion(run, inversion, None)
    write_run_reports(run, inversion)
    return run


EXPECTED = {
    "n": 24,
    "cf_both": 7,  # 10-14, 102-103
    "cf_lost": 10,  # 0-7, 100-101
    "cf_gained": 2,  # 8-9
    "cf_neither": 5,  # 15-19
    "param_both": 0,
    "param_lost": 2,
    "param_gained": 8,
    "param_neither": 14,
}


def test_flips_json_has_the_known_table(flip_run: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["flips", str(flip_run), "--from", "10", "--to", "20", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["from"] == FROM_STEP and out["to"] == TO_STEP
    table = out["tasks"]["cpi_world_facts"]
    assert {k: table[k] for k in EXPECTED} == EXPECTED
    assert table["mcnemar_p"] == pytest.approx(stats.mcnemar_exact_p(10, 2))
    details = out["details"]["cpi_world_facts"]
    assert details["to_memorised"] == list(range(8)) and details["to_context"] == [8, 9]
    assert details["by_category"]["capital"] == {
        "n": 20, "cf_lost": 8, "cf_gained": 2, "to_memorised": 8, "to_context": 2
    }  # fmt: skip
    assert details["by_category"]["other"]["cf_lost"] == 2
    first = details["examples"][0]
    assert (first["from_reason"], first["to_reason"]) == (
        "asserted: context answer",
        "asserted: memorised answer",
    )


def test_flips_defaults_to_peak_and_final_and_shows_examples(
    flip_run: Path, capsys: pytest.CaptureFixture
) -> None:
    summary = json.loads((flip_run / INVERSION_JSON).read_text())["summary"]
    assert (summary["peak_step"], summary["final_step"]) == (FROM_STEP, TO_STEP)
    assert cli.main(["flips", str(flip_run), "--examples", "1"]) == 0
    text = capsys.readouterr().out
    assert "step 10 (peak) -> step 20 (final)" in text
    assert "exact McNemar test, context answer lost 10 vs gained 2: p = 0.0386" in text
    assert "moved context -> memorised answer: 8; memorised -> context: 2" in text
    assert "item 0 [capital] (context -> memorised)" in text
    assert "step 10: 'Arequipa (step 10)'" in text and "step 20: ' Lima (step 20)'" in text
    # the scoring rule that decided each shown output (the records' reason)
    assert "scored by: asserted: context answer" in text
    assert "scored by: asserted: memorised answer" in text
    assert "item 8 [capital] (memorised -> context)" in text
    assert "item 1 " not in text  # --examples 1: one per direction


def test_inversion_json_and_md_carry_flips_and_the_drop_interval(flip_run: Path) -> None:
    data = json.loads((flip_run / INVERSION_JSON).read_text())
    flips = data["flips"]
    assert (flips["from"], flips["to"]) == (FROM_STEP, TO_STEP)
    task = flips["tasks"]["cpi_world_facts"]
    assert task["cf_lost"] == 10 and task["to_memorised"] == 8 and task["to_context"] == 2
    interval = data["drop_interval"]
    assert interval["drop"] == pytest.approx(data["summary"]["drop"])  # all items paired
    low, high = interval["ci95"]
    assert low < interval["drop"] < high
    assert "10000 resamples, seed 0" in interval["method"]
    md = (flip_run / INVERSION_MD).read_text()
    assert "- cpi_world_facts: of 24 items, 10 lost the context answer" in md
    assert "95% interval [" in md and "Wilson" in md
    # the table's interval: Wilson from the row mean and its item count
    final = data["rows"][-1]
    lo, hi = stats.wilson_interval(final["cf_acc"], 24)
    assert f"[{100 * lo:.1f}, {100 * hi:.1f}]" in md
    # cpi table re-renders the same lines from inversion.json alone
    assert cli.main(["table", str(flip_run), "--output", str(flip_run / "t.md")]) == 0
    assert "of 24 items, 10 lost" in (flip_run / "t.md").read_text()


def test_flips_report_pairs_only_shared_items(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_step(run, 1, [_record(i, 1, 0, 1) for i in range(5)])
    write_step(run, 2, [_record(i, 0, 1, 2) for i in range(2, 8)])
    report = flips_report(run, 1, 2)
    assert report["tasks"]["cpi_world_facts"]["n"] == 3
    assert report["details"]["cpi_world_facts"]["unpaired"] == 5


def test_flips_bad_input_exits_2_with_one_line(
    flip_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # a step file rewritten after its records: the records no longer belong to it
    step20 = flip_run / EVAL_DIR / "step-20.json"
    step20.write_text(step20.read_text() + " ")
    assert cli.main(["flips", str(flip_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cpi flips: error: ") and "another version" in err
    assert len(err.splitlines()) == 1
    items_path(step20).unlink()
    assert cli.main(["flips", str(flip_run)]) == 2
    assert "no per-item records" in capsys.readouterr().err
    assert cli.main(["flips", str(flip_run), "--from", "7", "--to", "10"]) == 2
    assert "no results for step 7" in capsys.readouterr().err
    assert cli.main(["flips", str(flip_run), "--from", "top"]) == 2
    assert "give a step number, peak, final or initial" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["flips", str(empty)]) == 2
    assert "inversion.json" in capsys.readouterr().err


# ---------------------------------------------------------------- cpi gate --confidence


def _gate_files(tmp_path: Path, n: int, base_hits: int, cand_hits: int) -> tuple[Path, Path]:
    """Two step files of one task with ``n`` items; the candidate loses the context answer
    on items ``cand_hits..base_hits-1`` (a paired drop of (base - cand) / n)."""
    base = [_record(i, int(i < base_hits), 0, 0) for i in range(n)]
    cand = [_record(i, int(i < cand_hits), 0, 1) for i in range(n)]
    return write_step(tmp_path / "b", 0, base), write_step(tmp_path / "c", 1, cand)


def _gate(base: Path, cand: Path, *extra: str) -> int:
    return cli.main(
        ["gate", "--baseline", str(base), "--candidate", str(cand), "--max-drop", "0.05", *extra]
    )


def test_gate_confidence_passes_a_drop_within_noise(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base, cand = _gate_files(tmp_path, n=20, base_hits=12, cand_hits=10)  # drop 0.10 on 20
    assert _gate(base, cand) == 1  # the point estimate fails it
    capsys.readouterr()
    assert _gate(base, cand, "--confidence", "0.95", "--json", str(tmp_path / "g.json")) == 0
    out = capsys.readouterr().out
    assert "one-sided paired bootstrap over 20 paired items" in out and "not above" in out
    sig = json.loads((tmp_path / "g.json").read_text())["significance"]
    assert sig["method"] == "paired_bootstrap" and sig["exceeds"] is False
    assert sig["drop_items"] == pytest.approx(0.10) and sig["lower_bound"] <= 0.05


def test_gate_confidence_fails_a_significant_drop(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base, cand = _gate_files(tmp_path, n=400, base_hits=240, cand_hits=160)  # drop 0.20
    assert _gate(base, cand, "--confidence", "0.95") == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "above --max-drop 5.0" in out and "not above" not in out


def test_gate_confidence_falls_back_without_items(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base, cand = _gate_files(tmp_path, n=20, base_hits=12, cand_hits=10)
    items_path(cand).unlink()
    assert _gate(base, cand, "--confidence", "0.95") == 1  # point estimate: 0.10 > 0.05
    out = capsys.readouterr().out
    assert "falling back to the point estimate" in out and "no per-item records" in out
    assert _gate(base, cand, "--confidence", "1.5") == 2
    assert "--confidence 1.5 is invalid" in capsys.readouterr().err


def _lm_eval_output(folder: Path, date: str, hits: list[int]) -> Path:
    """An lm-eval --output_path folder: results_<date>.json and samples_<task>_<date>.jsonl
    as lm-eval writes them (responses serialised as strings)."""
    folder.mkdir(parents=True)
    n = len(hits)
    results = {
        "results": {"cpi_capitals": {"cf_acc,none": sum(hits) / n, "param_acc,none": 0.0}},
        "n-samples": {"cpi_capitals": {"original": n, "effective": n}},
    }
    (folder / f"results_{date}.json").write_text(json.dumps(results))
    lines = []
    for i, hit in enumerate(hits):
        doc = {"question": "What is the capital city of Peru?", "item_id": 40 + i}
        doc |= {"cf_answer": "Arequipa", "param_answer": "Lima"}
        said = "Arequipa" if hit else "Lima"
        lines.append(
            json.dumps(
                {"doc_id": i, "doc": doc, "target": "Arequipa", "resps": [[said]],
                 "filtered_resps": [said], "filter": "none",
                 "metrics": ["cf_acc", "param_acc"], "cf_acc": hit, "param_acc": 1 - hit}
            )
        )  # fmt: skip
    (folder / f"samples_cpi_capitals_{date}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_gate_confidence_reads_lm_eval_log_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    date_a, date_b = "2026-01-02T10-00-00.000001", "2026-01-03T10-00-00.000002"
    base = _lm_eval_output(tmp_path / "a", date_a, [1] * 14 + [0] * 6)
    cand = _lm_eval_output(tmp_path / "b", date_b, [1] * 12 + [0] * 8)
    assert _gate(base, cand) == 1
    capsys.readouterr()
    assert _gate(base, cand, "--confidence", "0.95", "--json", str(tmp_path / "g.json")) == 0
    assert "over 20 paired items" in capsys.readouterr().out
    sig = json.loads((tmp_path / "g.json").read_text())["significance"]
    assert f"samples_cpi_capitals_{date_a}.jsonl" in sig["records"]
    assert sig["drop_items"] == pytest.approx(0.10)
