"""The training callback's metrics in the Trainer's own logging (TensorBoard when installed,
``state.log_history`` always) and ``--early_stop_on_inversion``, with a fake evaluator that
returns a scripted cf_acc per save (no lm-eval run: the numbers are the test's)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cpi_bench.harness_ext.core.constants import EVAL_DIR
from cpi_bench.harness_ext.core.items import items_problem
from cpi_bench.harness_ext.evaluation.evaluator import CheckpointEvaluator
from cpi_bench.trainer.early_stop import InversionStopper

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


class FakeEvaluator:
    """Stands in for CheckpointEvaluator: evaluation at the k-th save returns cf_acc
    ``SCRIPT[k]`` on cpi_capitals (param_acc = 1 - cf_acc) and cf_pref 0.5 on its _choice."""

    SCRIPT: list[float] = []
    calls: list[int] = []
    attention_limit = 0

    def __init__(self, tasks=(), limit=None, batch_size=8, apply_chat_template=False, **_):
        self.tasks, self.limit = list(tasks), limit
        self.settings = {"tasks": sorted(self.tasks), "limit": limit}

    def load_tasks(self) -> dict:
        return {"tasks": {}}

    evaluate_to = CheckpointEvaluator.evaluate_to  # the real writer, over the scripted results

    def evaluate(self, model, tokenizer, *, step, label, **kwargs) -> tuple[dict, list[dict]]:
        cf = self.SCRIPT[len(FakeEvaluator.calls)]
        FakeEvaluator.calls.append(step)
        n = 10
        hits = round(cf * n)
        records = [
            {"task": "cpi_capitals", "item_id": i, "category": "capital",
             "cf_hit": int(i < hits), "param_hit": int(i >= hits), "output": "x"}
            for i in range(n)
        ]  # fmt: skip
        entry = {"cf_acc,none": cf, "cf_acc_stderr,none": 0.01}
        entry |= {"param_acc,none": 1 - cf, "param_acc_stderr,none": 0.01}
        results = {
            "results": {
                "cpi_capitals": entry,
                "cpi_capitals_choice": {"cf_pref,none": 0.5, "cf_pref_stderr,none": 0.02},
            },
            "n-samples": {"cpi_capitals": {"effective": n}},
            "group_subtasks": {},
            "cpi": {"step": step, "label": label, "source": "callback"},
        }
        return results, records


@pytest.fixture
def fake_evaluator(monkeypatch: pytest.MonkeyPatch):
    from cpi_bench.harness_ext.evaluation import evaluator

    monkeypatch.setattr(evaluator, "CheckpointEvaluator", FakeEvaluator)
    FakeEvaluator.calls = []

    def script(values: list[float]) -> None:
        FakeEvaluator.SCRIPT = list(values)

    return script


class _TokenDataset:
    def __init__(self, n: int, length: int, vocab: int) -> None:
        import torch

        self.ids = torch.randint(3, vocab, (n, length), generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.ids[i].clone()}


def _trainer(tmp_path: Path, callback, max_steps: int, report_to: list[str]):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from cpi_bench.harness_ext.models.tiny import build_tiny_model

    base = build_tiny_model(tmp_path / "base", seed=1, hidden=32, layers=1, heads=2)
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(base)
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"),
        max_steps=max_steps,
        save_steps=1,
        save_strategy="steps",
        per_device_train_batch_size=4,
        report_to=report_to,
        use_cpu=True,
        logging_strategy="no",
        save_only_model=True,
        disable_tqdm=True,
    )
    model = AutoModelForCausalLM.from_pretrained(base)
    data = _TokenDataset(4 * max_steps, 8, len(tok))
    trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tok)
    trainer.add_callback(callback)
    return trainer


def _tensorboard_scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = [p.parent for p in folder.rglob("events.out.tfevents.*")]
    assert events, f"no TensorBoard event file under {folder}"
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    return [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]


def test_metrics_reach_the_trainers_logging(tmp_path: Path, fake_evaluator) -> None:
    from cpi_bench.trainer.callback import CPIEvalCallback

    fake_evaluator([0.2, 0.6, 0.4])
    callback = CPIEvalCallback(["cpi_capitals", "cpi_capitals_choice"], limit=10)
    report_to = ["tensorboard"] if HAS_TENSORBOARD else []
    trainer = _trainer(tmp_path, callback, max_steps=3, report_to=report_to)
    callback.bind(trainer)
    trainer.train()
    logged = [h for h in trainer.state.log_history if "cpi/cf_acc" in h]
    assert [(h["step"], h["cpi/cf_acc"]) for h in logged] == [(1, 0.2), (2, 0.6), (3, 0.4)]
    assert [h["cpi/param_acc"] for h in logged] == pytest.approx([0.8, 0.4, 0.6])
    assert all(h["cpi/cpi_capitals_choice/cf_pref"] == 0.5 for h in logged)
    assert logged[0]["cpi/cpi_capitals/cf_acc"] == 0.2
    for step in (1, 2, 3):  # the sweep's files, with their per-item records
        assert items_problem(tmp_path / "run" / EVAL_DIR / f"step-{step}.json") is None
    if HAS_TENSORBOARD:  # transformers' TensorBoard callback prefixes non-eval keys: train/
        scalars = _tensorboard_scalars(tmp_path / "run", "train/cpi/cf_acc")
        assert scalars == [(1, 0.2), (2, 0.6), (3, 0.4)]
        per_task = _tensorboard_scalars(tmp_path / "run", "train/cpi/cpi_capitals/param_acc")
        assert [v for _, v in per_task] == pytest.approx([0.8, 0.4, 0.6])


def test_unbound_callback_still_fills_log_history(tmp_path: Path, fake_evaluator) -> None:
    from cpi_bench.trainer.callback import CPIEvalCallback

    fake_evaluator([0.3, 0.1])
    callback = CPIEvalCallback(["cpi_capitals"], limit=10)
    trainer = _trainer(tmp_path, callback, max_steps=2, report_to=[])
    trainer.train()
    steps = [(h["step"], h["cpi/cf_acc"]) for h in trainer.state.log_history if "cpi/cf_acc" in h]
    assert steps == [(1, 0.3), (2, 0.1)]


@pytest.mark.parametrize(("patience", "stop_step"), [(1, 4), (2, 5), (4, None)])
def test_early_stop_at_the_right_step(
    tmp_path: Path, fake_evaluator, patience: int, stop_step: int | None
) -> None:
    """cf_acc per save: peak 0.5 at step 2; 0.45 is within 0.1 of it (no count); 0.3, 0.35
    and 0.1 are at least 0.1 below."""
    from cpi_bench.trainer.callback import CPIEvalCallback

    fake_evaluator([0.2, 0.5, 0.45, 0.3, 0.35, 0.1])
    callback = CPIEvalCallback(
        ["cpi_capitals"], limit=10, early_stop_on_inversion=0.1, early_stop_patience=patience
    )
    trainer = _trainer(tmp_path, callback, max_steps=6, report_to=[])
    callback.bind(trainer)
    trainer.train()
    assert trainer.state.global_step == (stop_step or 6)
    assert FakeEvaluator.calls == list(range(1, (stop_step or 6) + 1))
    assert callback.stopper.best_step == 2 and callback.stopper.stop_step == stop_step
    run = tmp_path / "run"
    assert (run / f"checkpoint-{stop_step or 6}").is_dir()
    assert not (run / f"checkpoint-{(stop_step or 6) + 1}").exists()


def test_stopper_resets_when_cf_acc_recovers() -> None:
    stopper = InversionStopper(drop=0.1, patience=2)
    # at least 0.1 below, then back within 0.1 (count resets), then a new peak
    assert not any(stopper.update(s, v) for s, v in [(1, 0.5), (2, 0.35), (3, 0.45), (4, 0.3)])
    assert not stopper.update(5, 0.6)
    assert stopper.best_step == 5
    assert not stopper.update(6, 0.5) and stopper.update(7, 0.49)
    fields = stopper.manifest_fields()
    assert fields["best_step"] == 5 and fields["early_stop"]["stop_step"] == 7
    assert "running peak 0.6000 (step 5) for 2 consecutive" in fields["stop_reason"]


# ----------------------------------------------------------------------------- cpi train


@pytest.fixture(scope="module")
def train_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from cpi_bench.harness_ext.models.tiny import build_tiny_model
    from tests.helpers import fixtures

    root = tmp_path_factory.mktemp("train")
    model = build_tiny_model(root / "model", hidden=32, layers=2, heads=2)
    return {"model": str(model), "data": str(fixtures.write_all(root / "data")["cpi"])}


def _train_args(inputs: dict[str, str], out: Path, *extra: str) -> list[str]:
    return [
        "--model_name_or_path", inputs["model"], "--dataset_name", inputs["data"],
        "--max_steps", "6", "--save_steps", "1", "--per_device_train_batch_size", "2",
        "--max_length", "128", "--report_to", "none", "--disable_tqdm", "true",
        "--gradient_checkpointing", "false", "--output_dir", str(out), *extra,
    ]  # fmt: skip


def test_cpi_train_records_the_early_stop_in_the_manifest(
    tmp_path: Path, fake_evaluator, train_inputs: dict[str, str]
) -> None:
    from cpi_bench.trainer.train import main

    fake_evaluator([0.2, 0.5, 0.45, 0.3, 0.35, 0.1])
    run = tmp_path / "run"
    early = ["--eval_tasks", "cpi_capitals", "--eval_limit", "10"]
    early += ["--early_stop_on_inversion", "0.1", "--early_stop_patience", "2"]
    assert main(_train_args(train_inputs, run, *early)) == 0
    manifest = json.loads((run / "cpi_run.json").read_text())
    assert manifest["status"] == "finished" and manifest["global_step"] == 5
    assert manifest["best_step"] == 2
    assert "cf_acc 0.3500 at step 5" in manifest["stop_reason"]
    stop = manifest["early_stop"]
    assert stop["stopped"] is True and stop["stop_step"] == 5 and stop["patience"] == 2
    assert stop["cf_acc_by_step"] == {"1": 0.2, "2": 0.5, "3": 0.45, "4": 0.3, "5": 0.35}
    assert not (run / "checkpoint-6").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--early_stop_on_inversion", "0.1"], "needs --eval_tasks"),
        (["--eval_tasks", "cpi_capitals", "--early_stop_on_inversion", "0"], "outside (0, 1]"),
        (["--eval_tasks", "cpi_capitals", "--early_stop_on_inversion", "nan"], "outside (0, 1]"),
        (["--eval_tasks", "cpi_capitals", "--early_stop_patience", "0"], "--early_stop_patience"),
    ],
)
def test_early_stop_options_are_checked(
    tmp_path: Path, train_inputs: dict[str, str], capsys, extra: list[str], message: str
) -> None:
    from cpi_bench.trainer.train import main

    assert main(_train_args(train_inputs, tmp_path / "run", *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cpi train: error: ") and message in err[0]


# --- the step's claim, shared with `cpi sweep --follow` -------------------------------------


def _stored_result(path: Path, provenance: dict) -> dict:
    from cpi_bench.harness_ext.core.items import write_results_with_items

    results = {
        "results": {"cpi_capitals": {"cf_acc,none": 0.7, "param_acc,none": 0.2}},
        "cpi": {"step": 1, "source": "sweep", "provenance": provenance},
    }
    records = [{"task": "cpi_capitals", "item_id": 0, "cf_hit": 1, "param_hit": 0}]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_results_with_items(path, results, records)
    return results


def test_a_step_the_follower_evaluated_is_read_not_evaluated_again(tmp_path: Path) -> None:
    from cpi_bench.trainer.callback import CPIEvalCallback

    callback = CPIEvalCallback(["cpi_capitals"], limit=10)
    path = tmp_path / EVAL_DIR / "step-1.json"
    same = {"model": {"weights": "abc"}, "settings": {"limit": 10}}
    stored = _stored_result(path, same)
    evaluated = []

    def evaluate() -> dict:
        evaluated.append(1)
        return {"fresh": True}

    assert callback._evaluate_claimed(path, 1, same, evaluate) == (stored, True)
    assert evaluated == []
    other = {"model": {"weights": "def"}, "settings": {"limit": 10}}  # other weights
    assert callback._evaluate_claimed(path, 1, other, evaluate) == ({"fresh": True}, False)
    assert evaluated == [1]
    path.write_text("{not json")  # unreadable: evaluated again, not a crash
    assert callback._evaluate_claimed(path, 1, same, evaluate) == ({"fresh": True}, False)


def test_the_callback_waits_for_a_follower_holding_the_step(tmp_path: Path) -> None:
    """A follower (here: this test) holds step 1's claim while it evaluates; the callback
    waits for it, then reads its result instead of evaluating the step a second time."""
    import threading

    from cpi_bench.harness_ext.evaluation.workers import claim_path, release, try_claim
    from cpi_bench.trainer.callback import CPIEvalCallback

    callback = CPIEvalCallback(["cpi_capitals"], limit=10)
    path = tmp_path / EVAL_DIR / "step-1.json"
    provenance = {"model": {"weights": "abc"}}
    claim = claim_path(path.parent, 1)
    fd, _ = try_claim(claim)
    assert fd is not None
    out: list = []
    worker = threading.Thread(
        target=lambda: out.append(callback._evaluate_claimed(path, 1, provenance, dict)),
        daemon=True,
    )
    try:
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive() and not out  # blocked on the follower's claim
        stored = _stored_result(path, provenance)
    finally:
        release(fd, claim)
    worker.join(timeout=30)
    assert out == [(stored, True)]
    assert not claim.exists()  # the callback released its claim too
