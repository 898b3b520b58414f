"""`cpi demo --quick` end to end: world, cached base model, four variants, table and plot."""

import json
import subprocess
from pathlib import Path

import pytest

from cpi_bench.demo.demo import VARIANTS
from cpi_bench.demo.world import RELATIONS, World, WorldConfig


def test_world_is_seeded_and_has_the_three_kinds(tmp_path):
    a = World(WorldConfig(seed=1, n_known=10, n_ift=200)).write(tmp_path / "a")
    b = World(WorldConfig(seed=1, n_known=10, n_ift=200)).write(tmp_path / "b")
    for key in ("pretrain", "ift", "cf", "id"):
        assert a[key].read_text() == b[key].read_text()
    kinds = json.loads(a["kinds"].read_text())
    assert set(kinds) == {"C", "C+S", "S"} and kinds.count("C") == 50
    rows = [json.loads(x) for x in a["ift"].read_text().splitlines()]
    assert all(bool(r["input"]) == (k != "S") for r, k in zip(rows, kinds, strict=True))
    world = World(WorldConfig(seed=1, n_known=10, n_ift=200))
    assert world.pretraining_lines() == world.pretraining_lines()  # builders are pure
    assert world.ift_rows() == world.ift_rows()
    c_subjects = {
        r["instruction"].split()[-1].rstrip("?")
        for r, k in zip(rows, kinds, strict=True)
        if k == "C"
    }
    assert not c_subjects & set(world.known)
    cf = [json.loads(x) for x in a["cf"].read_text().splitlines()]
    assert all(r["answer"] != r["memory_answer"] and r["answer"] in r["context"] for r in cf)


def test_pretraining_lines_end_with_their_answer_then_eos():
    from cpi_bench.demo.base_model import encode_lines
    from cpi_bench.harness_ext.testing.tiny_model import train_tokenizer

    world = World(WorldConfig(seed=0, n_known=10, n_ift=100, qa_recall_fraction=1.0))
    lines = world.pretraining_lines()
    tokenizer = train_tokenizer(lines, vocab_size=300)
    eos, period = tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(".")
    with_eos = encode_lines(lines, tokenizer, eos_after_answer=True)["input_ids"]
    plain = encode_lines(lines, tokenizer, eos_after_answer=False)["input_ids"]
    assert all(ids[-1] == eos and ids[-2] != period for ids in with_eos)
    assert not any(eos in ids for ids in plain)
    # each fact's answer is the last word before EOS
    facts = {RELATIONS[r][1].format(s=s, a=a): a for (s, r), a in world.facts.items()}
    for line, ids in zip(lines, with_eos, strict=True):
        if line in facts:
            assert tokenizer.decode(ids[:-1]).endswith(facts[line])


@pytest.mark.slow
def test_quick_demo_writes_well_formed_outputs(tmp_path, offline_env):
    out = tmp_path / "demo"
    proc = subprocess.run(
        ["cpi", "demo", "--out", str(out), "--quick"],
        capture_output=True,
        text=True,
        env=offline_env(),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (out / "demo.md").read_text()
    assert (out / "demo.png").stat().st_size > 10_000
    for name in VARIANTS:
        assert f"| {name} |" in table
        res = json.loads((out / name / "inversion.json").read_text())
        steps = [r["step"] for r in res["rows"]]
        assert steps == [0, 25, 50, 75, 100, 125, 150]
        for row in res["rows"]:
            assert 0 <= row["cf_acc"] <= 1 and 0 <= row["param_acc"] <= 1
            assert row["id_acc"] is not None and 0 <= row["id_acc"] <= 1
        assert {"rise", "drop", "peak_step"} <= set(res["summary"])
    assert json.loads((out / "standard" / "cpi_run.json").read_text())["finetune"] == "qk"
    assert json.loads((out / "full" / "cpi_run.json").read_text())["finetune"] == "full"
    # the base model is cached: a second run skips pretraining
    again = subprocess.run(
        ["cpi", "demo", "--out", str(out), "--quick", "--variants", "standard"],
        capture_output=True,
        text=True,
        env=offline_env(),
        timeout=600,
    )
    assert again.returncode == 0 and "cached" in again.stdout + again.stderr


def test_a_run_made_with_other_settings_is_redone_not_reused(tmp_path, monkeypatch):
    """A --quick run's outputs in the same OUT must not pass for a full run's."""
    from cpi_bench.demo import demo
    from cpi_bench.harness_ext.evaluation import sweep
    from cpi_bench.trainer import train

    calls = []

    def fake_train(args):
        calls.append("train")
        return 0

    def fake_sweep(args):
        calls.append("sweep")
        (Path(args[0]) / "inversion.json").write_text(json.dumps({"made_by": len(calls)}))
        return 0

    monkeypatch.setattr(train, "main", fake_train)
    monkeypatch.setattr(sweep, "main", fake_sweep)
    paths = {"ift": tmp_path / "ift.jsonl", "cf": tmp_path / "cf.jsonl"}
    run = lambda sched: demo.run_variant("standard", tmp_path, paths, tmp_path, sched, 0)  # noqa: E731

    first = run(demo.QUICK)
    assert calls == ["train", "sweep"]
    assert run(demo.QUICK) == first and calls == ["train", "sweep"]  # same settings: reused
    stale = tmp_path / "standard" / "checkpoint-150"
    stale.mkdir()
    assert run(demo.FULL) != first and calls == ["train", "sweep"] * 2  # other settings: redone
    assert not stale.exists()
