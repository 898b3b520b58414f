"""`cpi demo`: the world, the across-seed statistics (on hand-made numbers), the folder layout
(with fake training), and `cpi demo --quick` end to end."""

import json
import math
import subprocess
from pathlib import Path

import pytest

from cpi_bench.demo import aggregate
from cpi_bench.demo.demo import ALIASES, QUICK, VARIANTS
from cpi_bench.demo.world import RELATIONS, World, WorldConfig


def _subject(row: dict) -> str:
    return row["instruction"].split()[-1].rstrip("?")


def test_curation_pools_start_with_the_mixture_and_keep_its_shares(tmp_path):
    cfg = WorldConfig(seed=3, n_known=10, n_ift=200)
    paths = World(cfg).write(tmp_path, drops=(0.5, 0.75))
    mixture = [json.loads(x) for x in paths["ift"].read_text().splitlines()]
    for drop, n in ((0.5, 400), (0.75, 800)):
        rows = [
            json.loads(x) for x in paths[f"ift_pool_{round(drop * 100)}"].read_text().splitlines()
        ]
        kinds = json.loads(paths[f"ift_pool_{round(drop * 100)}_kinds"].read_text())
        # dropping `drop` of the pool leaves as many rows as the mixture has
        assert len(rows) == len(kinds) == n and round(n * (1 - drop)) == len(mixture)
        assert rows[: len(mixture)] == mixture
        assert kinds.count("C") == round(n * cfg.c_fraction)
        assert kinds.count("S") == round(n * cfg.s_fraction)
        assert all(bool(r["input"]) == (k != "S") for r, k in zip(rows, kinds, strict=True))
        c_subjects = [_subject(r) for r, k in zip(rows, kinds, strict=True) if k == "C"]
        assert len(set(c_subjects)) == len(c_subjects)  # new C subjects, each once
        world = World(cfg)
        taken = set(world.known) | set(world.id_subjects) | set(world.c_only_subjects)
        assert not set(c_subjects) & taken
    assert "ift_pool_25" not in paths  # pools only for the drops asked for


def test_world_is_seeded_and_has_the_three_kinds(tmp_path):
    a = World(WorldConfig(seed=1, n_known=10, n_ift=200)).write(tmp_path / "a")
    b = World(WorldConfig(seed=1, n_known=10, n_ift=200)).write(tmp_path / "b")
    for key in ("pretrain", "ift", "cf", "id"):
        assert a[key].read_text() == b[key].read_text()
    kinds = json.loads(a["kinds"].read_text())
    assert set(kinds) == {"C", "C+S", "S"}
    assert kinds.count("C") == round(200 * WorldConfig().c_fraction)
    rows = [json.loads(x) for x in a["ift"].read_text().splitlines()]
    assert all(bool(r["input"]) == (k != "S") for r, k in zip(rows, kinds, strict=True))
    # the context_only control: the mixture's C rows kept, every other row a fresh C row
    all_c = [json.loads(x) for x in a["ift_all_c"].read_text().splitlines()]
    assert len(all_c) == len(rows) and all(r["input"] for r in all_c)
    assert [r for r, k in zip(all_c, kinds, strict=True) if k == "C"] == [
        r for r, k in zip(rows, kinds, strict=True) if k == "C"
    ]
    subjects = [r["instruction"].split()[-1].rstrip("?") for r in all_c]
    assert len(set(subjects)) == len(subjects)  # every subject fresh and unknown
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
    # the base model depends on the facts, not on the IFT mixture: one base per seed
    other_mix = World(WorldConfig(seed=1, n_known=10, n_ift=300, c_fraction=0.3, s_fraction=0.3))
    assert other_mix.pretraining_config() == world.pretraining_config()
    assert other_mix.pretraining_lines() == world.pretraining_lines()
    assert other_mix.layout_rows(50) == world.layout_rows(50)


def test_pretraining_lines_end_with_their_answer_then_eos():
    from cpi_bench.demo.base_model import encode_lines
    from cpi_bench.harness_ext.models.tiny import train_tokenizer

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
    report = json.loads((out / "demo.json").read_text())
    assert report["seeds"] == [0] and report["schedule"]["max_steps"] == QUICK.max_steps
    for name in [*VARIANTS, *ALIASES]:
        assert f"| {name} |" in table
        assert set(report["variants"][name]["per_seed"]) == {"0"}
    for name in VARIANTS:
        res = json.loads((out / "seed-0" / name / "inversion.json").read_text())
        steps = [r["step"] for r in res["rows"]]
        assert steps == list(range(0, QUICK.max_steps + 1, QUICK.save_steps))
        for row in res["rows"]:
            assert 0 <= row["cf_acc"] <= 1 and 0 <= row["param_acc"] <= 1
            assert row["id_acc"] is not None and 0 <= row["id_acc"] <= 1
        assert {"rise", "drop", "peak_step"} <= set(res["summary"])
    assert json.loads((out / "seed-0/standard/cpi_run.json").read_text())["finetune"] == "qk"
    assert json.loads((out / "seed-0/full/cpi_run.json").read_text())["finetune"] == "full"
    shares = {r["variant"]: r["removed_share_mean"] for r in report["dose_response"]}
    assert shares["context_critical_0"]["C+S"] == 0 < shares["context_critical_25"]["C+S"]
    assert shares["context_critical_25"]["C+S"] < shares["context_critical_50"]["C+S"]
    # context_critical_all ranks the S points (no context) too: they go with the C+S points
    assert shares["context_critical_25"]["S"] < shares["context_critical_75"]["S"]
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
    from cpi_bench.harness_ext.commands import sweep
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


def test_a_run_made_under_other_library_versions_is_redone_not_reused(tmp_path, monkeypatch):
    """Same settings, another torch: the demo's numbers move with the libraries, so the old
    run must not be reused (nor may a base model pretrained under them)."""
    from cpi_bench.demo import base_model, demo, environment
    from cpi_bench.harness_ext.commands import sweep
    from cpi_bench.trainer import train

    calls = []
    monkeypatch.setattr(train, "main", lambda args: calls.append("train") or 0)

    def fake_sweep(args):
        (Path(args[0]) / "inversion.json").write_text(json.dumps({"made_by": len(calls)}))
        return 0

    monkeypatch.setattr(sweep, "main", fake_sweep)
    paths = {"ift": tmp_path / "ift.jsonl", "cf": tmp_path / "cf.jsonl"}
    env = environment.environment()
    assert set(env) == {"versions", "code", "cpu"} and env["cpu"].split()[0]  # e.g. x86_64 AVX2
    world = World(WorldConfig())
    run = lambda: demo.run_variant("standard", tmp_path, paths, tmp_path, demo.QUICK, 0)  # noqa: E731

    first = run()
    base_before = base_model.base_model_dir(world, base_model.PretrainConfig(), tmp_path)
    upgraded = {**env, "versions": {**env["versions"], "torch": "99.0"}}
    monkeypatch.setattr(demo, "environment", lambda: upgraded)
    monkeypatch.setattr(base_model, "environment", lambda: upgraded)
    assert run() != first and calls == ["train", "train"]
    assert base_model.base_model_dir(world, base_model.PretrainConfig(), tmp_path) != base_before
    stamp = json.loads((tmp_path / "standard" / demo.RUN_STAMP).read_text())
    assert stamp["environment"]["versions"]["torch"] == "99.0"


def test_code_digest_follows_code_and_task_yaml_not_readmes(tmp_path):
    from cpi_bench.demo.environment import code_digest

    for part in ("demo", "trainer", "harness_ext", "tasks"):
        (tmp_path / part).mkdir()
        (tmp_path / part / "x.py").write_text("A = 1\n")
    (tmp_path / "tasks" / "_template_yaml").write_text("output_type: generate_until\n")
    (tmp_path / "tasks" / "README.md").write_text("words")
    before = code_digest(tmp_path)
    (tmp_path / "tasks" / "README.md").write_text("other words")
    assert code_digest(tmp_path) == before
    (tmp_path / "tasks" / "_template_yaml").write_text("output_type: loglikelihood\n")
    after_yaml = code_digest(tmp_path)
    assert after_yaml != before
    (tmp_path / "trainer" / "x.py").rename(tmp_path / "trainer" / "y.py")  # same bytes, new name
    assert code_digest(tmp_path) not in (before, after_yaml)


# --- across-seed statistics on hand-made numbers --------------------------------------------


def _inversion(cf: list[float], drop_stderr: float = 0.01, step: int = 50) -> dict:
    """A minimal inversion.json: cf acc per checkpoint, summary as cpi sweep computes it."""
    rows = [
        {"step": i * step, "cf_acc": v, "param_acc": 1 - v, "id_acc": 0.9} for i, v in enumerate(cf)
    ]
    peak = max(range(len(cf)), key=lambda i: (cf[i], -i))
    summary = {
        "initial_cf_acc": cf[0],
        "peak_cf_acc": cf[peak],
        "peak_step": peak * step,
        "final_cf_acc": cf[-1],
        "rise": cf[peak] - cf[0],
        "drop": cf[peak] - cf[-1],
        "drop_stderr": drop_stderr,
    }
    return {"rows": rows, "summary": summary}


def test_mean_ci_is_the_student_t_interval():
    stat = aggregate.mean_ci([0.1, 0.2, 0.3])
    assert stat["n"] == 3 and stat["mean"] == pytest.approx(0.2)
    assert stat["sd"] == pytest.approx(0.1)
    assert stat["ci"] == pytest.approx(4.303 * 0.1 / math.sqrt(3))  # t(0.975, 2) = 4.303
    five = aggregate.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])  # sd = sqrt(2.5)
    assert five["ci"] == pytest.approx(2.776 * math.sqrt(2.5) / math.sqrt(5))
    assert math.isnan(aggregate.mean_ci([0.4])["ci"]) and aggregate.mean_ci([0.4])["mean"] == 0.4
    assert aggregate.t975(1) == 12.706 and aggregate.t975(100) == 1.96
    assert (
        aggregate.fmt(stat) == "0.20 ± 0.25" and aggregate.fmt(aggregate.mean_ci([0.4])) == "0.40"
    )


def test_noise_is_twice_the_larger_of_stderr_and_checkpoint_jitter():
    # a smooth fall after the peak: jitter 0, so the noise is 2 x drop_stderr
    smooth = aggregate.seed_record(_inversion([0.1, 0.8, 0.7, 0.6, 0.5], drop_stderr=0.02))
    assert smooth["checkpoint_jitter"] == pytest.approx(0.0, abs=1e-12)
    assert smooth["noise"] == pytest.approx(0.04)
    assert smooth["drop"] == pytest.approx(0.3) and smooth["drop_exceeds_noise"]
    # a zig-zag after the peak: changes -0.2, +0.1, -0.2, +0.1 (sd 0.1732), noise 0.346 > drop
    zigzag = aggregate.seed_record(_inversion([0.1, 0.9, 0.7, 0.8, 0.6, 0.7]))
    assert zigzag["checkpoint_jitter"] == pytest.approx(math.sqrt(0.03))
    assert zigzag["noise"] == pytest.approx(2 * math.sqrt(0.03))
    assert zigzag["drop"] == pytest.approx(0.2) and not zigzag["drop_exceeds_noise"]
    # a peak at the last checkpoint: no jitter to measure, the stderr alone counts
    late = aggregate.seed_record(_inversion([0.1, 0.5, 0.9], drop_stderr=0.03))
    assert late["checkpoint_jitter"] is None and late["noise"] == pytest.approx(0.06)


def test_summarize_counts_the_seeds_whose_drop_exceeds_their_noise():
    records = [
        aggregate.seed_record(_inversion(cf))
        for cf in (
            [0.1, 0.8, 0.7, 0.6, 0.5],  # drop 0.3 > 0.02
            [0.1, 0.9, 0.7, 0.8, 0.6, 0.7],  # drop 0.2 <= 0.35
            [0.1, 0.7, 0.6, 0.5, 0.4],  # drop 0.3 > 0.02
        )
    ]
    s = aggregate.summarize(records)
    assert s["n_seeds"] == 3 and s["n_drop_exceeds_noise"] == 2
    assert s["drop"]["mean"] == pytest.approx((0.3 + 0.2 + 0.3) / 3)
    assert s["peak"]["mean"] == pytest.approx(0.8)
    assert s["drop"]["ci"] == pytest.approx(4.303 * math.sqrt(1 / 300) / math.sqrt(3))
    curve = aggregate.mean_curve(records[::2])
    assert curve["steps"] == [0, 50, 100, 150, 200]
    assert curve["mean"] == pytest.approx([0.1, 0.75, 0.65, 0.55, 0.45])
    assert curve["ci"][0] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="different steps"):
        aggregate.mean_curve(records)


# --- folder layout and report, with fake pretraining, training and sweeps --------------------


def _fake_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretraining writes an empty base; `cpi train` does nothing; `cpi sweep` writes an
    inversion.json whose curve depends on the variant (the folder name) and the seed."""
    from cpi_bench.demo import base_model, report
    from cpi_bench.harness_ext.commands import sweep
    from cpi_bench.trainer import train

    def fake_pretrain(world, cfg, cache, log=print):
        out = base_model.base_model_dir(world, cfg, cache)
        out.mkdir(parents=True)
        (out / base_model.DONE_MARKER).write_text(json.dumps({"recall": 0.99}))
        return out, 0.99

    def fake_sweep(args):
        run_dir = Path(args[0])
        seed = int(run_dir.parent.name.split("-")[1])
        fall = 0.0 if run_dir.name == "context_only" else 0.1 * (seed + 1)
        if run_dir.name.startswith("context_critical_"):  # the curation halves the fall at 50%
            fall *= 1 - int(run_dir.name.rsplit("_", 1)[1]) / 100
        cf = [0.1, 0.9, 0.9 - fall / 2, 0.9 - fall]
        (run_dir / "inversion.json").write_text(json.dumps(_inversion(cf, 0.01)))
        return 0

    monkeypatch.setattr(base_model, "pretrain_base_model", fake_pretrain)
    monkeypatch.setattr(train, "main", lambda args: 0)
    monkeypatch.setattr(sweep, "main", fake_sweep)
    monkeypatch.setattr(
        report,
        "removed_shares",
        lambda base, paths, variant: {"C": 0.0, "C+S": variant.drop, "S": 0.0},
    )


def test_every_seed_and_variant_gets_its_own_run_folder_and_demo_json(tmp_path, monkeypatch):
    from cpi_bench.demo import demo

    _fake_pipeline(monkeypatch)
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--seeds", "1,2", "--jobs", "1", "--quick"]) == 0
    for seed in (1, 2):
        assert (out / f"seed-{seed}" / "world" / "ift_all_c.jsonl").is_file()
        for name in VARIANTS:
            assert (out / f"seed-{seed}" / name / "inversion.json").is_file()
            assert (out / f"seed-{seed}" / "logs" / f"{name}.log").is_file()
        assert not (out / f"seed-{seed}" / "context_critical_0").exists()  # = standard
    report = json.loads((out / "demo.json").read_text())
    assert report["seeds"] == [1, 2]
    standard = report["variants"]["standard"]
    assert {k: v["drop"] for k, v in standard["per_seed"].items()} == pytest.approx(
        {"1": 0.2, "2": 0.3}
    )
    assert standard["per_seed"]["1"]["run_dir"] == "seed-1/standard"
    assert standard["summary"]["drop"]["mean"] == pytest.approx(0.25)
    assert standard["summary"]["drop"]["ci"] == pytest.approx(12.706 * 0.05)  # sd 0.0707, n 2
    assert standard["summary"]["n_drop_exceeds_noise"] == 2
    assert report["variants"]["context_only"]["summary"]["drop"]["mean"] == pytest.approx(0)
    assert report["variants"]["context_critical_0"]["runs_as"] == "standard"
    dose = report["dose_response"]
    assert [r["drop_fraction"] for r in dose] == [0.0, 0.25, 0.5, 0.75]
    assert [r["removed_share_mean"]["C+S"] for r in dose] == [0.0, 0.25, 0.5, 0.75]
    # standard minus curated drop, per seed: seeds 1, 2 fall 0.2, 0.3; at 50% half of that
    paired = [r["drop_reduction_paired"]["mean"] for r in dose]
    assert paired == pytest.approx([0.0, 0.0625, 0.125, 0.1875])
    table = (out / "demo.md").read_text()
    row = "| standard | 0.10 ± 0.00 | 0.90 ± 0.00 | 0.65 ± 0.64 | +0.80 ± 0.00 | 0.25 ± 0.64 |"
    assert row + " 2 of 2 |" in table
    assert "Student t" in table and (out / "demo.png").stat().st_size > 10_000
    assert "reused" not in table
    # a second run in the same folder reuses every finished run and says so
    assert demo.main(["--out", str(out), "--seeds", "1,2", "--jobs", "1", "--quick"]) == 0
    assert "(14 of 14 runs reused from an earlier cpi demo" in (out / "demo.md").read_text()
