"""The further conflict suites (NQ-Swap, ConflictQA, memo-trap files 2-4) and the cpisuite group:
loaders on synthetic fixtures, the ConflictQA polarity rule, list-answer scoring, malformed
files, lm-eval runs of the tasks, and the published files when CPI_DATA_DIR has them."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
import yaml
from lm_eval.api.model import LM

from cpi_bench.harness_ext.core.errors import CPIError
from cpi_bench.harness_ext.lm_eval_plugin.autoload import tasks_dir
from cpi_bench.tasks import scoring, sources, utils
from cpi_bench.tasks.sources import SOURCES, find_in_data_dir, load_dataset, load_rows, locate
from tests.helpers import public_fixtures as fx

CORE = ["cpi_world_facts", "cpi_capitals", "cpi_bio", "cpi_quotes"]
CONFLICTQA = [f"cpi_conflictqa_{g}" for g in fx.CONFLICTQA_GENERATORS]
MEMO_TRAP_MORE = ["cpi_quotes_translation", "cpi_quotes_hate_speech", "cpi_quotes_science"]
SUITE = [*CORE, "cpi_nqswap", *CONFLICTQA, *MEMO_TRAP_MORE]
NEW_TASKS = ["cpi_nqswap", "cpi_nqswap_instructed", "cpi_nqswap_choice", *CONFLICTQA]
NEW_TASKS += MEMO_TRAP_MORE
# The memorised side of the fixture ConflictQA rows (see public_fixtures.conflictqa_rows).
FIXTURE_MEMORY = ["no", "yes", "no", "yes", "yes", "no"]


def in_file_order(dataset_dict) -> list[dict]:
    """The test split in the public file's row order (load_dataset shuffles it, seeded)."""
    return sorted(dataset_dict["test"].to_list(), key=lambda row: row["item_id"])


@pytest.fixture
def suite_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every public file of cpisuite (synthetic rows) under tmp_path; CPI_DATA_DIR points there."""
    root = fx.write_fixture_data(tmp_path / "data")
    fx.write_suite_fixture_data(root)
    monkeypatch.setenv("CPI_DATA_DIR", str(root))
    return root


@pytest.fixture(scope="module")
def task_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(tasks_dir()))


# ----------------------------------------------------------------------------- loaders


def test_nqswap_rows_keep_every_answer(suite_data: Path) -> None:
    assert locate(SOURCES["nqswap"]) == suite_data / "nq-swap" / "merged.jsonl"  # one level down
    rows = in_file_order(load_dataset(source="nqswap"))
    raw = fx.nqswap_rows()
    assert len(rows) == len(raw) == 6
    for row, src in zip(rows, raw, strict=True):
        assert row["context"] == src["sub_context"] and row["question"] == src["question"]
        assert row["cf_answers"] == src["sub_answer"] and row["param_answers"] == src["org_answer"]
        assert row["cf_answer"] == src["sub_answer"][0]
        assert row["param_answer"] == src["org_answer"][0]
    assert rows[2]["param_answers"] == ["two", "2"]


@pytest.mark.parametrize("generator", fx.CONFLICTQA_GENERATORS)
def test_conflictqa_rows_use_counter_memory_and_memory_polarity(
    suite_data: Path, generator: str
) -> None:
    rows = in_file_order(load_dataset(source=f"conflictqa_{generator}"))
    raw = fx.conflictqa_rows(generator)
    assert [r["context"] for r in rows] == [r["counter_memory"] for r in raw]
    assert [r["question"] for r in rows] == [r["question"] for r in raw]
    assert [r["param_answer"] for r in rows] == FIXTURE_MEMORY
    assert [r["cf_answer"] for r in rows] == [{"yes": "no", "no": "yes"}[m] for m in FIXTURE_MEMORY]
    # row 4's memory is wrong (ground truth False, memory yes): the label follows the memory
    assert raw[4]["ground_truth"] == ["False"] and rows[4]["param_answer"] == "yes"


@pytest.mark.parametrize("source", list(fx.MEMO_TRAP_MORE_FILES))
def test_memo_trap_files_2_to_4_follow_answer_index(suite_data: Path, source: str) -> None:
    rows = load_rows(SOURCES[source], locate(SOURCES[source]))
    raw = fx.memo_trap_more_rows(source)
    assert len(rows) == len(raw) == 4
    for row, src in zip(rows, raw, strict=True):
        classes, index = ast.literal_eval(src["classes"]), int(src["answer_index"])
        assert row["cf_answer"] == classes[index].strip()
        assert row["param_answer"] == classes[1 - index].strip()
        assert row["context"] == src["prompt"] and row["question"] == ""
    if source == "quotes_science":  # letters survive loading, "A" included
        assert [(r["cf_answer"], r["param_answer"]) for r in rows] == [
            ("A", "B"),
            ("A", "B"),
            ("B", "A"),
            ("B", "A"),
        ]


def test_core_sources_keep_their_four_columns(suite_data: Path) -> None:
    """The list columns are NQ-Swap's only: the existing sets' rows are unchanged."""
    for name in ("world_facts", "capitals", "bio", "quotes"):
        rows = load_rows(SOURCES[name], locate(SOURCES[name]))
        assert set(rows[0]) == {"context", "question", "cf_answer", "param_answer"}, name


# ----------------------------------------------------------------------------- polarity rule


@pytest.mark.parametrize(
    ("question", "memory", "counter", "truth", "expected"),
    [
        # the ground truth never overrides what the memory answer says
        (
            "Is the Nile in Africa?",
            "The Nile is in Africa.",
            "The Nile is not in Africa.",
            False,
            (True, "negation"),
        ),
        ("Can pigs fly?", "Pigs cannot fly.", "Pigs can fly.", True, (False, "negation")),
        # StrategyQA's negated questions: yes = the negated statement holds
        (
            "Would a fish not drown in water?",
            "A fish would not drown in water.",
            "A fish would drown in water.",
            False,
            (True, "negation"),
        ),
        (
            "Does a penguin not fly?",
            "A penguin does fly.",
            "A penguin does not fly.",
            True,
            (False, "negation"),
        ),
        # stray negations with the same parity on both sides: more cues = no
        (
            "Did the bridge open before the war?",
            "No bridge opened before the war, and none was planned.",
            "The bridge opened before the war.",
            True,
            (False, "negation"),
        ),
        # "No one" is a negation, not an explicit "No"
        (
            "Can anyone run at 100 km/h?",
            "No one can run at 100 km/h.",
            "Someone can run at 100 km/h.",
            True,
            (False, "negation"),
        ),
        # no negation differs: the closer restatement of the question is the yes
        (
            "Is a whale bigger than a mouse?",
            "A whale is bigger than a mouse.",
            "A mouse is bigger than a whale.",
            False,
            (True, "likeness"),
        ),
        (
            "Is it impossible to swim in a lake?",
            "It is possible to swim in a lake.",
            "It is impossible to swim in a lake.",
            True,
            (False, "likeness"),
        ),
        (
            "Is it likely to rain in Bergen?",
            "It is likely that it rains in Bergen.",
            "It is unlikely that it rains in Bergen.",
            False,
            (True, "likeness"),
        ),
        # bare yes/no/true/false answers
        ("Is ice cold?", "Yes.", "Ice is not cold.", False, (True, "explicit")),
        (
            "Did the Romans use smartphones?",
            "The Romans did not use smartphones.",
            "True.",
            True,
            (False, "explicit"),
        ),
        # identical answers: only the dataset label is left
        (
            "Could salt cure a cold?",
            "Salt cannot cure a cold.",
            "Salt cannot cure a cold.",
            True,
            (True, "ground_truth"),
        ),
        (
            "Could salt cure a cold?",
            "Salt cannot cure a cold.",
            "Salt cannot cure a cold.",
            False,
            (False, "ground_truth"),
        ),
    ],
)
def test_memory_polarity_rule(question, memory, counter, truth, expected) -> None:
    assert sources.memory_polarity(question, memory, counter, truth) == expected


def test_conflictqa_row_labels_are_opposite_yes_no() -> None:
    base = {"question": "Can pigs fly?", "counter_memory": "  Pigs fly south.  "}
    row = sources._conflictqa_row(
        {
            **base,
            "memory_answer": "Pigs cannot fly.",
            "counter_answer": "Pigs can fly.",
            "ground_truth": "['True']",
        }
    )
    assert row == {
        "context": "Pigs fly south.",
        "question": "Can pigs fly?",
        "cf_answer": "yes",
        "param_answer": "no",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [(["True"], True), (["False"], False), ("['True']", True), ("False", False), (True, True)],
)
def test_ground_truth_forms(value, expected) -> None:
    assert sources._ground_truth(value) is expected


# ----------------------------------------------------------------------------- list scoring


@pytest.mark.parametrize(
    ("output", "cf", "param", "expected"),
    [
        ("2", ["eleven"], ["two", "2"], (0, 1)),  # a later alternative counts
        ("It has two moons.", ["eleven"], ["two", "2"], (0, 1)),
        ("eleven", ["eleven"], ["two", "2"], (1, 0)),
        ("Melville wrote it", ["Emily Bronte"], ["Herman Melville", "Melville"], (0, 1)),
        ("Herman", ["Emily Bronte"], ["Herman Melville", "Melville"], (0, 0)),
        # containment across sides: the longer answer's mention is not the shorter one's
        ("the 1924 season", ["1924 season"], ["1924"], (1, 0)),
        ("1924", ["1924 season"], ["1924"], (0, 1)),
        ("New York", ["York"], ["New York", "NYC"], (0, 1)),
        ("York, then NYC", ["York"], ["New York", "NYC"], (1, 0)),  # the first named counts
        ("Lake Geneva\nPittsburgh", ["Lake Geneva"], ["Pittsburgh"], (1, 0)),  # first line only
    ],
)
def test_any_listed_answer_counts(output, cf, param, expected) -> None:
    got = scoring.judge(output, cf, param)
    assert (got.cf_acc, got.param_acc) == expected
    doc = {"cf_answer": cf[0], "param_answer": param[0], "cf_answers": cf, "param_answers": param}
    metrics = utils.process_generation(doc, [output])
    assert (metrics["cf_acc"], metrics["param_acc"], metrics["reason"]) == (
        got.cf_acc,
        got.param_acc,
        got.reason,
    )


@pytest.mark.parametrize(
    ("cf", "param"),
    [
        ("Bergen", "Oslo"),
        ("York", "New York"),
        ("New York", "York"),
        ("heavy.", "fonder."),
        ("First.", "first."),
        ("Durrës", "Tirana"),
    ],
)
def test_single_answers_are_lists_of_one(cf: str, param: str) -> None:
    """A row without list columns scores exactly as its one answer per side."""
    outputs = [cf, param, f"{cf} or {param}", f"not {param} but {cf}", "nothing", f" {cf}\n{param}"]
    for output in outputs:
        expected = scoring.judge(output, [cf], [param]).as_dict()
        got = utils.process_generation({"cf_answer": cf, "param_answer": param}, [output])
        assert {k: got[k] for k in expected} == expected, output


def test_process_generation_reports_both_readings() -> None:
    """cf_acc/param_acc read the asserted answer; cf_contains/param_contains are the paper's
    containment, which counts an answer the output only attributes and rejects."""
    doc = {"question": "What is the capital city of Japan?", "cf_answer": "Kyoto",
           "param_answer": "Tokyo", "context": "..."}  # fmt: skip
    got = utils.process_generation(doc, ["The passage says Kyoto, but the capital is Tokyo."])
    assert (got["cf_acc"], got["param_acc"]) == (0, 1)
    assert (got["cf_contains"], got["param_contains"]) == (1, 1)
    assert got["reason"].startswith("override:")


def test_letter_answers_count() -> None:
    assert scoring.judge(" A", ["A"], ["B"]).as_dict()["cf_acc"] == 1
    assert scoring.judge(" A good guess is B", ["A"], ["B"]).param_acc == 1


# ----------------------------------------------------------------------------- malformed files


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def test_nqswap_bad_json_line_names_file_and_line(tmp_path: Path, monkeypatch) -> None:
    good = json.dumps(fx.nqswap_rows()[0])
    _write_lines(tmp_path / "nq-swap" / "merged.jsonl", [good, '{"question": "who', good])
    monkeypatch.setenv("CPI_DATA_DIR", str(tmp_path))
    with pytest.raises(CPIError, match=r"nq-swap/merged\.jsonl: line 2 is not valid JSON"):
        load_dataset(source="nqswap")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sub_answer": []}, r"row 2: sub_answer must be a non-empty list"),
        ({"org_answer": ["Oslo", ""]}, r"row 2: org_answer must hold non-empty strings"),
        ({"org_answer": 7}, r"row 2: org_answer must be a non-empty list"),
        ({"sub_context": ""}, r"row 2 lacks field 'sub_context'"),
    ],
)
def test_nqswap_malformed_rows(tmp_path: Path, change: dict, message: str) -> None:
    good = fx.nqswap_rows()[0]
    path = _write_lines(
        tmp_path / "merged.jsonl", [json.dumps(good), json.dumps({**good, **change})]
    )
    with pytest.raises(CPIError, match=r"merged\.jsonl: " + message):
        load_rows(SOURCES["nqswap"], path)


def test_conflictqa_row_without_counter_memory(tmp_path: Path, monkeypatch) -> None:
    rows = fx.conflictqa_rows()
    del rows[1]["counter_memory"]
    name = "conflictQA-strategyQA-chatgpt.json"
    _write_lines(tmp_path / name, [json.dumps(r) for r in rows])
    monkeypatch.setenv("CPI_DATA_DIR", str(tmp_path))
    with pytest.raises(CPIError) as err:
        load_dataset(source="conflictqa_chatgpt")
    assert str(err.value).startswith(str(tmp_path / name))
    assert "row 2 lacks field 'counter_memory'" in str(err.value)


def test_conflictqa_bad_ground_truth(tmp_path: Path) -> None:
    rows = fx.conflictqa_rows()
    rows[0]["ground_truth"] = ["Maybe"]
    path = _write_lines(tmp_path / "conflictQA-strategyQA-gpt4.json", [json.dumps(r) for r in rows])
    with pytest.raises(CPIError, match=r"gpt4\.json: row 1: ground_truth must be"):
        load_rows(SOURCES["conflictqa_gpt4"], path)


def test_missing_nqswap_says_where_to_get_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CPI_DATA_DIR", str(tmp_path))
    with pytest.raises(CPIError) as err:
        load_dataset(source="nqswap")
    msg = str(err.value)
    assert "CPI_DATA_DIR" in msg and "merged.jsonl" in msg
    assert sources.NQ_SWAP_COMMIT in msg and "leaderboard/cli/nqswap/merged.jsonl" in msg


# ----------------------------------------------------------------------------- lm-eval


def test_suite_group_lists_each_plain_generation_task_once(task_manager) -> None:
    config = yaml.safe_load((tasks_dir() / "cpisuite.yaml").read_text())
    assert config["task"] == SUITE
    assert all(m["weight_by_size"] is False for m in config["aggregate_metric_list"])
    metrics = {m["metric"] for m in config["aggregate_metric_list"]}
    assert metrics == {"cf_acc", "param_acc", "cf_contains", "param_contains"}
    assert set(NEW_TASKS) <= set(task_manager.all_subtasks)
    assert "cpisuite" in task_manager.all_groups


def test_cpi_glob_still_matches_tasks_only(task_manager) -> None:
    """`--tasks 'cpi_*'` fails in lm-eval if it matches a group together with its tasks."""
    from lm_eval.utils import pattern_match

    matched = set(pattern_match(["cpi_*"], task_manager.all_tasks))
    assert set(NEW_TASKS) <= matched
    assert not matched & set(task_manager.all_groups)


class OracleLM(LM):
    """Generates ``answers[prompt]`` (then a second line that scoring must ignore)."""

    def __init__(self, answers: dict[str, str]) -> None:
        super().__init__()
        self.answers = answers

    def generate_until(self, requests):
        return [f" {self.answers[r.args[0]]}\nno yes" for r in requests]

    def loglikelihood(self, requests):
        return [(math.log(0.5), False) for _ in requests]

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError


@pytest.mark.parametrize("side", ["cf", "param"])
def test_oracle_scores_the_new_tasks_exactly(task_manager, suite_data: Path, side: str) -> None:
    """Giving the *last* listed alternative of one side scores 1 for it and 0 for the other."""
    from lm_eval import evaluator

    names = [t for t in NEW_TASKS if t not in ("cpi_nqswap_choice", "cpi_quotes_science")]
    tasks = task_manager.load(names)["tasks"]
    answers = {}
    for task in tasks.values():
        for doc in task.test_docs():
            key = "cf_answers" if side == "cf" else "param_answers"
            single = doc["cf_answer"] if side == "cf" else doc["param_answer"]
            answers[task.doc_to_text(doc)] = (doc.get(key) or [single])[-1]
    out = evaluator.simple_evaluate(
        model=OracleLM(answers), tasks=list(tasks.values()), task_manager=task_manager
    )
    for name in names:
        res = out["results"][name]
        hit, miss = ("cf_acc,none", "param_acc,none")[:: 1 if side == "cf" else -1]
        assert (res[hit], res[miss]) == (1.0, 0.0), name


def test_lm_eval_runs_cpisuite_on_a_tiny_model(task_manager, suite_data: Path, tiny_llama) -> None:
    """simple_evaluate on the group: every task reports both metrics, the group their mean."""
    from lm_eval import evaluator

    out = evaluator.simple_evaluate(
        model="hf",
        model_args=f"pretrained={tiny_llama}",
        tasks=["cpisuite"],
        limit=2,
        device="cpu",
        batch_size=8,
        task_manager=task_manager,
    )
    res = out["results"]
    for name in SUITE:
        for metric in ("cf_acc,none", "param_acc,none"):
            assert 0.0 <= res[name][metric] <= 1.0, (name, metric)
        assert out["n-samples"][name]["effective"] == 2, name
    group = out["groups"]["cpisuite"] if "groups" in out else res["cpisuite"]
    for metric in ("cf_acc,none", "param_acc,none"):
        mean = sum(res[t][metric] for t in SUITE) / len(SUITE)
        assert group[metric] == pytest.approx(mean), metric


# ----------------------------------------------------------------------------- real files

# The polarity of ChatGPT's memory_answer in rows 1-30 of conflictQA-strategyQA-chatgpt.json,
# read by hand (tasks/conflictqa/README.md); 7 of the 30 disagree with ground_truth.
CHATGPT_MEMORY_1_30 = "y n y n n n y n n n n n n n y n y n y n y n n y n n y y n n".split()


def _real(real_data_dir: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> list[dict]:
    """The canonical rows of one real public file; skips when that file is not at hand."""
    spec = SOURCES[source]
    if find_in_data_dir(real_data_dir, spec.file_name) is None:
        pytest.skip(f"real public data: {spec.file_name} is not in {real_data_dir}")
    monkeypatch.setenv("CPI_DATA_DIR", str(real_data_dir))
    return load_rows(spec, locate(spec))


def test_real_nqswap(real_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _real(real_data_dir, monkeypatch, "nqswap")
    assert len(rows) == SOURCES["nqswap"].expected_rows == 4746
    assert len({r["question"] for r in rows}) == 1667
    assert all(r["cf_answers"] and r["param_answers"] and r["context"] for r in rows)
    assert (rows[0]["cf_answer"], rows[0]["param_answer"]) == ("775", "23")
    assert max(len(r["param_answers"]) for r in rows) > 1


def test_real_conflictqa_chatgpt(real_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _real(real_data_dir, monkeypatch, "conflictqa_chatgpt")
    assert len(rows) == SOURCES["conflictqa_chatgpt"].expected_rows == 1245
    memory = [{"yes": "y", "no": "n"}[r["param_answer"]] for r in rows[:30]]
    assert memory == CHATGPT_MEMORY_1_30
    assert all({r["cf_answer"], r["param_answer"]} == {"yes", "no"} for r in rows)
    assert rows[0]["context"].startswith("Recent studies have shown that the genetic legacy")


def test_real_memo_trap_file_1(real_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _real(real_data_dir, monkeypatch, "quotes")
    assert len(rows) == SOURCES["quotes"].expected_rows == 860


def test_real_files_build_as_lm_eval_tasks(
    task_manager, real_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for source in ("nqswap", "conflictqa_chatgpt"):
        if find_in_data_dir(real_data_dir, SOURCES[source].file_name) is None:
            pytest.skip(f"real public data: {SOURCES[source].file_name} is not in {real_data_dir}")
    monkeypatch.setenv("CPI_DATA_DIR", str(real_data_dir))
    tasks = task_manager.load(["cpi_nqswap", "cpi_conflictqa_chatgpt"])["tasks"]
    nq = next(d for d in tasks["cpi_nqswap"].test_docs() if d["item_id"] == 0)
    assert (
        tasks["cpi_nqswap"]
        .doc_to_text(nq)
        .endswith("Question: how many episodes are in chicago fire season 4\nAnswer:")
    )
    cq = next(d for d in tasks["cpi_conflictqa_chatgpt"].test_docs() if d["item_id"] == 0)
    assert (
        tasks["cpi_conflictqa_chatgpt"]
        .doc_to_text(cq)
        .endswith(
            "Question: Are more people today related to Genghis Khan than Julius Caesar?\nAnswer:"
        )
    )
