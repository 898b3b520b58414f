"""The cpi tasks as lm-eval sees them: indexing, building, prompts, and scoring end to end."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from lm_eval.api.model import LM

from cpi_bench.harness_ext.lm_eval_plugin.autoload import tasks_dir
from cpi_bench.tasks.prompts import QA_INSTRUCTION, QUOTE_INSTRUCTION
from cpi_bench.tasks.sources import SOURCES
from tests.helpers import public_fixtures

FAMILIES = ("world_facts", "capitals", "bio", "quotes")
CORE = [f"cpi_{f}" for f in FAMILIES]
PAPER_TASKS = CORE + [f"{t}_instructed" for t in CORE] + [f"{t}_choice" for t in CORE]
GENERATORS = (
    "chatgpt",
    "gpt4",
    "llama2-70b",
    "llama2-7b",
    "palm2",
    "qwen7b",
    "vicuna33b",
    "vicuna7b",
)
SUITE_TASKS = [
    "cpi_nqswap",
    "cpi_nqswap_instructed",
    "cpi_nqswap_choice",
    *(f"cpi_conflictqa_{g}" for g in GENERATORS),
    "cpi_quotes_translation",
    "cpi_quotes_hate_speech",
    "cpi_quotes_science",
]
# closed-book probes (tasks/closedbook): the question without its context
CLOSEDBOOK_TASKS = [f"cpi_{f}_closedbook" for f in ("world_facts", "capitals", "bio", "nqswap")]
ALL_TASKS = sorted(PAPER_TASKS + SUITE_TASKS + CLOSEDBOOK_TASKS)
# the synthetic files of public_fixtures (CPI_DATA_DIR for the session, see conftest.py)
FIXTURE_ROWS = {
    "world_facts": public_fixtures.world_facts_rows(),
    "capitals": public_fixtures.capital_rows(),
    "bio": public_fixtures.bio_rows(),
    "quotes": public_fixtures.memo_trap_rows(),
}


@pytest.fixture(scope="module")
def task_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(tasks_dir()))


def test_every_cpi_yaml_is_indexed(task_manager):
    names = set(task_manager.all_tasks)
    assert set(ALL_TASKS) <= names
    assert "cpi" in task_manager.all_groups
    # 'cpi_*' must mean exactly the tasks (a group named cpi_* would be matched too)
    from lm_eval.utils import pattern_match

    assert sorted(pattern_match(["cpi_*"], task_manager.all_tasks)) == ALL_TASKS
    yamls = sorted(p.stem for p in tasks_dir().rglob("*.yaml") if p.parent.name != "synth")
    assert yamls == sorted([*ALL_TASKS, "cpi", "cpisuite"])
    synth = {"cpisynth_cf", "cpisynth_cf_choice", "cpisynth_id", "cpisynth_cf_closedbook"}
    assert synth <= names and not synth & set(pattern_match(["cpi_*"], task_manager.all_tasks))


@pytest.mark.parametrize("family", FAMILIES)
def test_tasks_build_with_prompts_and_choices(task_manager, cpi_data_dir, family):
    loaded = task_manager.load(
        [f"cpi_{family}", f"cpi_{family}_instructed", f"cpi_{family}_choice"]
    )
    gen, instr, choice = (
        loaded["tasks"][f"cpi_{family}{s}"] for s in ("", "_instructed", "_choice")
    )
    docs = sorted(gen.test_docs(), key=lambda d: d["item_id"])
    assert len(docs) == len(FIXTURE_ROWS[family])
    doc = next(d for d in docs if d["item_id"] == 0)  # docs come in a seeded random order
    first = FIXTURE_ROWS[family][0]
    if family == "quotes":
        assert gen.doc_to_text(doc) == doc["context"] == first["prompt"]
        assert gen.doc_to_text(doc).startswith('Write a quote that ends in the word "bus"')
        assert (doc["cf_answer"], doc["param_answer"]) == ("bus.", "worm.")
        assert instr.doc_to_text(doc) == f"{QUOTE_INSTRUCTION}\n{doc['context']}"
    else:
        assert doc["question"] == first["question"] and doc["cf_answer"] == first["answer"]
        expected = f"Background: {doc['context']}\nQuestion: {doc['question']}\nAnswer:"
        assert gen.doc_to_text(doc) == expected
        assert instr.doc_to_text(doc) == (
            f"Background: {doc['context']}\n{QA_INSTRUCTION}\nQuestion: {doc['question']}\nAnswer:"
        )
    assert choice.doc_to_choice(doc) == [doc["cf_answer"], doc["param_answer"]]
    assert gen.config.generation_kwargs["until"] == ["\n"]
    assert gen.config.generation_kwargs["do_sample"] is False
    assert gen.config.metadata["version"] >= 1.0


@pytest.mark.parametrize("family", ["world_facts", "capitals", "quotes"])
def test_tasks_build_on_the_public_files(task_manager, real_data_dir, monkeypatch, family):
    """With CPI_DATA_DIR at the real public copies, each task sees the published rows."""
    monkeypatch.setenv("CPI_DATA_DIR", str(real_data_dir))
    gen = task_manager.load([f"cpi_{family}"])["tasks"][f"cpi_{family}"]
    docs = sorted(gen.test_docs(), key=lambda d: d["item_id"])
    assert len(docs) == SOURCES[family].expected_rows
    if family == "quotes":
        assert gen.doc_to_text(docs[0]).startswith('Write a quote that ends in the word "heavy"')
    else:
        assert docs[0]["question"] == "What is the capital city of Afghanistan?"


class OracleLM(LM):
    """Always gives the answer in ``answers[prompt]``: generated, and 4x likelier as a choice."""

    def __init__(self, answers: dict[str, str]):
        super().__init__()
        self.answers = answers

    def generate_until(self, requests):
        return [f" {self.answers[r.args[0]]}\nextra line" for r in requests]

    def loglikelihood(self, requests):
        out = []
        for r in requests:
            context, continuation = r.args
            mine = continuation.strip() == self.answers[context]
            out.append((math.log(0.8) if mine else math.log(0.2), False))
        return out

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError


@pytest.mark.parametrize("which", ["cf_answer", "param_answer"])
def test_oracle_scores_exactly(task_manager, cpi_data_dir, which):
    """A model that always gives the context (or memorised) answer gets cf_acc 1 (or 0)."""
    from lm_eval import evaluator

    tasks = task_manager.load(ALL_TASKS)["tasks"]
    answers = {}
    for task in tasks.values():
        for doc in task.test_docs():
            answers[task.doc_to_text(doc)] = doc[which]
    lm = OracleLM(answers)
    out = evaluator.simple_evaluate(
        model=lm, tasks=list(tasks.values()), limit=40, task_manager=task_manager
    )
    res = out["results"]
    for name in CORE + [f"{t}_instructed" for t in CORE]:
        cf, param = res[name]["cf_acc,none"], res[name]["param_acc,none"]
        if which == "cf_answer":
            assert cf == 1.0, name
            assert param == 0.0 or name.startswith("cpi_quotes"), name
        else:
            assert param == 1.0, name
            assert cf == 0.0 or name.startswith("cpi_quotes"), name
    for name in [f"{t}_choice" for t in CORE]:
        expect = 0.8 if which == "cf_answer" else 0.2
        assert res[name]["cf_pref,none"] == pytest.approx(expect), name
        assert res[name]["acc,none"] == (1.0 if which == "cf_answer" else 0.0), name


def _lm_eval(args, env, cwd):
    return subprocess.run(
        [sys.executable, "-m", "lm_eval", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_run_of_group_and_variants(tmp_path, tiny_llama, cpi_data_dir, offline_env):
    """`lm_eval --include_path "$(cpi tasks-path)"` on a tiny model reports every metric."""
    out_dir = tmp_path / "results"
    tasks = "cpi,cpi_world_facts_instructed,cpi_capitals_choice,cpi_quotes_choice,cpi_bio_choice"
    proc = _lm_eval(
        [
            "run",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_llama}",
            "--include_path",
            str(tasks_dir()),
            "--tasks",
            tasks,
            "--limit",
            "3",
            "--device",
            "cpu",
            "--batch_size",
            "4",
            "--output_path",
            str(out_dir),
            "--apply_chat_template",
            "--system_instruction",
            "Be brief.",
        ],
        offline_env(CPI_DATA_DIR=str(cpi_data_dir)),
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results_file = next(out_dir.rglob("results_*.json"))
    res = json.loads(results_file.read_text())["results"]
    for name in [*CORE, "cpi", "cpi_world_facts_instructed"]:
        assert 0.0 <= res[name]["cf_acc,none"] <= 1.0, name
        assert 0.0 <= res[name]["param_acc,none"] <= 1.0, name
    for name in ("cpi_capitals_choice", "cpi_quotes_choice", "cpi_bio_choice"):
        assert 0.0 < res[name]["cf_pref,none"] < 1.0, name
    # the group is the unweighted mean of its four tasks
    mean = sum(res[t]["cf_acc,none"] for t in CORE) / 4
    assert res["cpi"]["cf_acc,none"] == pytest.approx(mean)


def test_cli_missing_data_fails_with_one_clear_line(tmp_path, tiny_llama, offline_env):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _lm_eval(
        [
            "run",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_llama}",
            "--include_path",
            str(tasks_dir()),
            "--tasks",
            "cpi_capitals",
            "--limit",
            "2",
            "--device",
            "cpu",
        ],
        offline_env(CPI_DATA_DIR=str(empty)),
        tmp_path,
    )
    assert proc.returncode != 0
    assert "CPI_DATA_DIR" in proc.stderr and "country_capitals_only.json" in proc.stderr
    assert "Traceback" not in proc.stderr


def _pth_installed() -> bool:
    import site

    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    return any((Path(d) / "cpi_bench.pth").is_file() for d in dirs)


def test_lm_eval_finds_cpi_tasks_without_include_path(tmp_path, offline_env):
    """The installed .pth hook: a fresh interpreter's TaskManager indexes the cpi tasks."""
    if not _pth_installed():
        pytest.skip("cpi_bench.pth is not installed (editable install: run `cpi register`)")
    code = (
        "from lm_eval.tasks import TaskManager; tm = TaskManager(); "
        "print(sorted(t for t in tm.all_tasks if t.startswith('cpi_') or t == 'cpi'))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=offline_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert eval(proc.stdout.strip().splitlines()[-1]) == sorted(["cpi", *ALL_TASKS])
    # cpisuite (a group) is found too, but is not matched by 'cpi_*'
    assert "cpisuite" not in ALL_TASKS
    off = subprocess.run(
        [sys.executable, "-c", code],
        env=offline_env(CPI_AUTOLOAD="0"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert eval(off.stdout.strip().splitlines()[-1]) == []


def test_autoload_patch_keeps_user_paths_and_never_duplicates(tmp_path):
    from cpi_bench.harness_ext.lm_eval_plugin.autoload import _with_cpi_tasks

    ours = str(tasks_dir())
    assert _with_cpi_tasks(None) == [ours]
    assert _with_cpi_tasks("/x") == ["/x", ours]
    assert _with_cpi_tasks(["/x", "/y"]) == ["/x", "/y", ours]
    assert _with_cpi_tasks(ours) == ours
    assert _with_cpi_tasks(["/x", ours]) == ["/x", ours]


def test_cpi_tasks_path_cli(offline_env):
    proc = subprocess.run(["cpi", "tasks-path"], capture_output=True, text=True, env=offline_env())
    assert proc.returncode == 0
    path = Path(proc.stdout.strip())
    assert path.is_absolute() and (path / "cpi.yaml").is_file()
