"""The scorer against the labelled corpus (``tests/scoring_corpus/``): no false positive in any
part, misses at most 2% of the labelled answers over the whole corpus. The counts come from
``benchmarks/scoring_validation.py``, the script that prints the table in ``docs/scoring.md``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "scoring_corpus"
SUITES = {
    "capitals", "world_facts", "bio", "quotes", "nqswap", "conflictqa",
    "quotes_translation", "quotes_hate_speech", "quotes_science",
}  # fmt: skip
SOURCES = {"hand", "smollm2", "smollm2-chat", "gemma-3-270m"}


def _validation() -> ModuleType:
    """``benchmarks/scoring_validation.py`` (not a package), imported once."""
    name = "cpi_scoring_validation"
    if name not in sys.modules:
        path = REPO / "benchmarks" / "scoring_validation.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def parts() -> dict[str, list[dict]]:
    sv = _validation()
    found = {p: sv.load_part(CORPUS / f"{p}.jsonl") for p in sv.PARTS}
    return {p: records for p, records in found.items() if records}


def test_tuned_part_covers_every_suite_and_source(parts: dict[str, list[dict]]) -> None:
    tuned = parts["tuned"]
    assert len(tuned) >= 400
    assert len({r["id"] for r in tuned}) == len(tuned)
    assert {r["suite"] for r in tuned} == SUITES
    assert {r["source"] for r in tuned} == SOURCES
    assert Counter(r["source"] for r in tuned)["hand"] >= 300
    for r in tuned:
        assert r["cf"] in (0, 1) and r["param"] in (0, 1) and isinstance(r["ambiguous"], bool)
        assert r["cf_answers"] and r["param_answers"] and r["note"] and r["style"]


def test_held_out_parts_are_there_and_readable(parts: dict[str, list[dict]]) -> None:
    held, held2, held3 = parts["heldout"], parts["heldout2"], parts["heldout3"]
    assert len(held) >= 300 and len({r["id"] for r in held}) == len(held)
    for later in (held2, held3):
        assert len(later) >= 200 and len({r["id"] for r in later}) == len(later)
        assert {r["suite"] for r in later} == {
            "capitals", "world_facts", "bio", "quotes", "nqswap", "conflictqa",
        }  # fmt: skip
    ids = [{r["id"] for r in records} for records in parts.values()]
    assert sum(map(len, ids)) == len(set().union(*ids))  # no id in two parts


def test_untuned_parts_are_there_and_reported_on_their_own(capsys: pytest.CaptureFixture) -> None:
    """The parts nobody tunes against: present, readable, no id shared with the parts read
    while tuning, and printed by the table script in a table of their own."""
    sv = _validation()
    assert sv.UNTUNED_PARTS == ("untuned", "untuned_real") and not set(sv.UNTUNED_PARTS) & set(
        sv.PARTS
    )
    untuned = sv.load_part(CORPUS / "untuned.jsonl")
    real = sv.load_part(CORPUS / "untuned_real.jsonl")
    assert len(untuned) >= 200 and len(real) == 150
    assert {r["suite"] for r in untuned} == {
        "capitals", "world_facts", "bio", "quotes", "nqswap", "conflictqa",
    }  # fmt: skip
    assert {r["source"] for r in real} == {"smollm2", "gemma-3-270m"}
    tuned_ids = {r["id"] for p in sv.PARTS for r in sv.load_part(CORPUS / f"{p}.jsonl")}
    for part in (untuned, real):
        assert len({r["id"] for r in part}) == len(part) and not tuned_ids & {r["id"] for r in part}
        assert "context" not in set().union(*part)
    assert sv.main(["--errors"]) == 0
    out = capsys.readouterr().out
    head, tail = out.split("Never read while tuning")
    assert "| untuned" not in head
    assert "| untuned | cf_acc | 201 |" in tail and "| untuned_real | cf_acc | 147 |" in tail
    assert "u-0" not in out and "r-0" not in out  # their disagreements are never listed


def test_no_passage_is_kept(parts: dict[str, list[dict]]) -> None:
    """The scorer reads the question (a memo-trap prompt is the question here), never the
    passage: no public passage text is kept in the repository."""
    assert not [r["id"] for records in parts.values() for r in records if "context" in r]


def test_no_false_positive_and_misses_at_most_two_percent(
    parts: dict[str, list[dict]],
) -> None:
    sv = _validation()
    fn = positives = 0
    for part, records in parts.items():
        counts = sv.evaluate(records)
        wrong = [
            f"{part} {kind} {label} {r['id']}: {r['output']!r} ({d['reason']})"
            for label, c in counts.items()
            for kind, r, d in c.errors
            if kind == "FP"
        ]
        assert not wrong, "\n".join(wrong)
        fn += sum(c.fn for c in counts.values())
        positives += sum(c.tp + c.fn for c in counts.values())
    assert fn / positives <= sv.MAX_MISS_RATE, f"{fn} misses of {positives} labelled answers"


def test_the_table_script_runs(capsys: pytest.CaptureFixture) -> None:
    assert _validation().main([]) == 0
    table = capsys.readouterr().out
    assert "| tuned | cf_acc |" in table and "| heldout | param_acc |" in table
    assert "| heldout2 | cf_acc |" in table and "| heldout3 | param_acc |" in table


def test_corpus_files_are_json_lines() -> None:
    for path in CORPUS.glob("*.jsonl"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            assert isinstance(json.loads(line), dict), f"{path.name}:{n}"


@pytest.mark.parametrize(
    ("content", "needle"), [('{"id": 1', "is not JSON"), ('{"id": "x"}', "lacks suite")]
)
def test_bad_corpus_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str, needle: str
) -> None:
    (tmp_path / "tuned.jsonl").write_text(content + "\n", encoding="utf-8")
    with pytest.raises(SystemExit) as stop:
        _validation().main(["--corpus", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and needle in err and len(err.strip().splitlines()) == 1
