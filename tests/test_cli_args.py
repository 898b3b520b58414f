"""``core/cli_args.py``: the one reader of comma lists and of lm-eval's ``k=v,k=v`` text."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpi_bench.harness_ext.core.cli_args import parse_key_values, split_list
from cpi_bench.harness_ext.reports.results import model_label


def test_split_list_strips_drops_empties_and_duplicates() -> None:
    assert split_list(" a, b,,a ,c") == ["a", "b", "c"]
    assert split_list(None) == [] and split_list(["x ", "x", ""]) == ["x"]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("temperature=0,do_sample=False", {"temperature": 0, "do_sample": False}),
        ("max_gen_toks=64, until=None", {"max_gen_toks": 64, "until": None}),
        ("pretrained=org/model,dtype=float32", {"pretrained": "org/model", "dtype": "float32"}),
        ("pretrained=a,junk", {"pretrained": "a"}),  # a part without '=' is not a setting
        ({"top_p": 0.9}, {"top_p": 0.9}),
        ("", {}),
        (None, {}),
    ],
)
def test_parse_key_values_types_values_as_lm_eval_does(text: object, want: dict) -> None:
    assert parse_key_values(text) == want


def test_model_label_reads_model_args_text_and_dict() -> None:
    text = {"config": {"model_args": "pretrained=org/m,peft=runs/a,dtype=float32"}}
    as_dict = {"config": {"model_args": {"pretrained": "org/m"}}}
    assert model_label(text, Path("x/results.json")) == "org/m+runs/a"
    assert model_label(as_dict, Path("x/results.json")) == "org/m"
    assert model_label({"config": {"model_args": "dtype=float32"}}, Path("run/r.json")) == "run"
