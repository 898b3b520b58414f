"""Every bad input of ``cpi train`` ends the same way: exit status 2 and ONE stderr line,
``cpi train: error: <what, where, how to fix>``, never a traceback, before any training.

Each case goes through ``main([...])`` (the console entry point) and reads stderr with capsys.
The tiny model is built once per module; broken variants are copies with one file changed.
Quantisation flags are refused where bitsandbytes cannot run and reach ``from_pretrained``
where it can; ``--eval_limit`` reads and refuses what ``cpi sweep --limit`` does.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cpi_bench.trainer.schema import (
    RESPONSE,
    CPIError,
    detect_schema,
    load_source,
    to_canonical,
)
from cpi_bench.trainer.train import main
from tests.helpers import fixtures, small_train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from cpi_bench.harness_ext.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    return build_tiny_model(root / "llama", arch="llama", hidden=32, layers=2, heads=2)


@pytest.fixture(scope="module")
def alpaca(tmp_path_factory) -> Path:
    return fixtures.write_jsonl(tmp_path_factory.mktemp("data") / "a.jsonl", fixtures.alpaca_rows())


def broken_copy(tiny: Path, tmp_path: Path, change) -> str:
    folder = tmp_path / "model"
    shutil.copytree(tiny, folder)
    change(folder)
    return str(folder)


def one_line_error(capsys, argv: list[str], only_line: bool = True) -> str:
    """Run cpi train; assert exit 2, no traceback and exactly one non-empty stderr line
    (``only_line=False``: one error line, the last, after progress bars); return it."""
    capsys.readouterr()  # what the test's own setup printed
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert [line for line in lines if "cpi train: error:" in line] == lines[-1:], err
    assert lines[-1].startswith("cpi train: error: "), err
    if only_line:
        assert len(lines) == 1, err
    return lines[-1]


def train_argv(model, data, tmp_path: Path, *extra: str, max_steps: str | None = "1") -> list[str]:
    """The flags of a small run; max_steps=None leaves --max_steps to a --config file."""
    steps = ["--max_steps", max_steps] if max_steps else []
    return [
        "--model_name_or_path",
        str(model),
        "--dataset_name",
        str(data),
        "--output_dir",
        str(tmp_path / "run"),
        *steps,
        "--report_to",
        "none",
        *extra,
    ]


def assert_nothing_trained(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert not (run / "cpi_run.json").exists() and not list(run.glob("checkpoint-*"))


# --- the model -----------------------------------------------------------------------------


def _remove_tokenizer(folder: Path) -> None:
    for path in folder.iterdir():
        if path.name.startswith(("tokenizer", "special_tokens", "vocab", "merges")):
            path.unlink()


@pytest.mark.parametrize(
    "change,expected",
    [
        (lambda f: shutil.rmtree(f), "does not exist"),
        (lambda f: (f / "config.json").unlink(), "has no config.json"),
        (
            lambda f: (f / "model.safetensors").write_bytes(b"\x00garbage" * 64),
            "model.safetensors are not a readable safetensors file",
        ),
        (lambda f: (f / "config.json").write_text("{not json"), "config.json is not readable JSON"),
        (_remove_tokenizer, "has no tokenizer files"),
    ],
    ids=["missing-folder", "no-config", "corrupt-safetensors", "bad-config-json", "no-tokenizer"],
)
def test_bad_model_folder(tiny, alpaca, tmp_path, capsys, change, expected):
    model = broken_copy(tiny, tmp_path, change)
    line = one_line_error(capsys, train_argv(model, alpaca, tmp_path))
    assert expected in line and model in line
    assert_nothing_trained(tmp_path)


def test_an_unknown_model_type_is_caught_before_the_data(tiny, alpaca, tmp_path, capsys):
    model = broken_copy(
        tiny, tmp_path, lambda f: (f / "config.json").write_text('{"model_type": "nope"}')
    )
    line = one_line_error(capsys, train_argv(model, alpaca, tmp_path))
    assert f"could not load the model config from {model}" in line and "nope" in line


def test_a_load_failure_past_the_checks_is_one_line_naming_the_model(
    tiny, alpaca, tmp_path, capsys
):
    """Weights that do not fit the config (a valid file of other shapes) fail only inside
    from_pretrained, after data preparation; the error still names the model and the flag."""

    def widen(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config["intermediate_size"] = config["intermediate_size"] * 2
        (folder / "config.json").write_text(json.dumps(config))

    model = broken_copy(tiny, tmp_path, widen)
    line = one_line_error(capsys, train_argv(model, alpaca, tmp_path), only_line=False)
    assert f"could not load the model weights from {model}" in line
    assert "--model_name_or_path" in line
    assert_nothing_trained(tmp_path)


# --- the data file -------------------------------------------------------------------------

ALPACA_LINE = '{"instruction": "a", "input": "", "output": "b"}\n'


@pytest.mark.parametrize(
    "name,content,expected",
    [
        ("empty.jsonl", b"", "is empty"),
        ("blank.jsonl", b"\n  \n", "has no rows"),
        ("latin1.jsonl", ALPACA_LINE.encode() + b'{"instruction": "caf\xe9"}\n',
         "line 2 is not UTF-8"),
        ("bad.jsonl", (ALPACA_LINE * 2 + '{"instruction": "x", "input"\n').encode(),
         "line 3 is not valid JSON"),
        ("array.jsonl", (ALPACA_LINE + '["x"]\n').encode(), "line 2 is a list"),
        ("bad.json", b'[{"instruction": "a",\n "input": }]', "line 2 is not valid JSON"),
        ("notes.txt", b"some text\n", "has type .txt"),
        ("table.csv", b"instruction,input,output\na,,b\n", "has type .csv"),
        ("broken.parquet", b"PAR1 not really", "is not a readable parquet file"),
        ("other.jsonl", b'{"text": "q"}\n', "unknown dataset schema"),
        ("partial.jsonl", b'{"question": "q"}\n', "is missing column(s)"),
    ],
)  # fmt: skip
def test_bad_data_file(tiny, tmp_path, capsys, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    line = one_line_error(capsys, train_argv(tiny, path, tmp_path))
    assert expected in line and str(path) in line
    assert_nothing_trained(tmp_path)


def test_a_number_among_string_targets_is_an_error_naming_line_and_field(tiny, tmp_path, capsys):
    """Issue "Numbers you can trust": one numeric output made datasets store the column as
    JSON text and quote every other target ('"Paris"'). Now it stops, naming line and field."""
    rows = fixtures.alpaca_rows()
    rows[2]["output"] = 7
    path = fixtures.write_jsonl(tmp_path / "mixed.jsonl", rows)
    line = one_line_error(capsys, train_argv(tiny, path, tmp_path))
    assert f"{path} line 3: field 'output' is a number (7)" in line and '"7"' in line


def test_string_targets_are_kept_exactly_as_written(tmp_path):
    """Strings that look like JSON stay the strings they are, also when another (unused)
    column mixes types and so becomes a JSON column in datasets."""
    targets = ["Paris", "7", '"quoted"', "true", "[1, 2]", " Madrid.", "null", "{}"]
    rows = [
        {"instruction": f"q{i}", "input": "", "output": t, "id": i if i % 2 else f"r{i}"}
        for i, t in enumerate(targets)
    ]
    path = fixtures.write_jsonl(tmp_path / "strings.jsonl", rows)
    raw = load_source(str(path))
    ds, dropped = to_canonical(raw, detect_schema(raw.column_names, str(path)), source=str(path))
    assert dropped == 0 and ds[RESPONSE] == targets


@pytest.mark.parametrize(
    "answer,expected",
    [
        (["Paris", "Lyon"],
         'field \'answer\' is a list (["Paris", "Lyon"]), not text; give one JSON string, '
         'e.g. "Paris"'),
        ({"text": "Paris"}, "field 'answer' is an object"),
        (1945, "field 'answer' is a number (1945)"),
        (True, "field 'answer' is a boolean (true)"),
    ],
)  # fmt: skip
def test_cpi_answer_must_be_one_string(tiny, tmp_path, capsys, answer, expected):
    rows = fixtures.cpi_rows()
    rows[1]["answer"] = answer
    path = fixtures.write_jsonl(tmp_path / "cpi.jsonl", rows)
    line = one_line_error(capsys, train_argv(tiny, path, tmp_path))
    assert f"{path} line 2: {expected}" in line and "(the cpi schema)" in line


def test_json_array_rows_are_named_by_position(tiny, tmp_path, capsys):
    rows = fixtures.cpi_rows()
    rows[-1]["answer"] = ["a", "b"]
    path = fixtures.write_json(tmp_path / "cpi.json", rows)
    line = one_line_error(capsys, train_argv(tiny, path, tmp_path))
    assert f"{path} row {len(rows)}: field 'answer' is a list" in line


def test_messages_content_must_be_text(tiny, tmp_path, capsys):
    rows = fixtures.messages_rows()
    rows[1]["messages"][-1]["content"] = [{"type": "text", "text": "hi"}]
    path = fixtures.write_jsonl(tmp_path / "m.jsonl", rows)
    line = one_line_error(capsys, train_argv(tiny, path, tmp_path))
    assert f"{path} line 2: field 'messages' turn 2's content is a list" in line


def test_squad_answer_texts_must_be_text(tmp_path):
    rows = fixtures.squad_rows()
    rows[0]["answers"] = {"text": [1889], "answer_start": [0]}
    path = fixtures.write_jsonl(tmp_path / "s.jsonl", rows)
    with pytest.raises(CPIError, match=r"line 1: field 'answers' holds an answer text that is"):
        load_source(str(path))


def test_parquet_number_column_is_an_error(tiny, tmp_path, capsys):
    """Parquet columns are typed: a numeric answer column is refused by its type."""
    rows = [dict(r, answer=i) for i, r in enumerate(fixtures.cpi_rows())]
    path = fixtures.write_parquet(tmp_path / "cpi.parquet", rows)
    line = one_line_error(capsys, train_argv(tiny, path, tmp_path))
    assert f"{path}: column 'answer' holds int64 values, not text" in line


def test_cf_augment_source_answers_are_checked(tiny, alpaca, tmp_path, capsys):
    rows = fixtures.cpi_rows()
    rows[0]["answer"] = ["x", "y"]
    cf = fixtures.write_jsonl(tmp_path / "cf.jsonl", rows)
    argv = train_argv(tiny, alpaca, tmp_path, "--curation", "cf_augment")
    line = one_line_error(capsys, [*argv, "--cf_augment_source", str(cf)])
    assert f"{cf} line 1: field 'answer' is a list" in line


def test_overlap_file_with_a_bad_json_line(tiny, alpaca, tmp_path, capsys):
    bad = tmp_path / "entities.jsonl"
    bad.write_text('{"answer": "Paris"}\n{"answer": \n')
    argv = train_argv(tiny, alpaca, tmp_path, "--curation", "drop_overlap")
    line = one_line_error(capsys, [*argv, "--overlap_file", str(bad)])
    assert f"--overlap_file {bad}: line 2 is not valid JSON" in line


# --- the options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag,value,expected",
    [
        ("--learning_rate", "nan", "--learning_rate nan is invalid"),
        ("--learning_rate", "inf", "--learning_rate inf is invalid"),
        ("--learning_rate", "0", "--learning_rate 0.0 is invalid"),
        ("--learning_rate", "-0.001", "--learning_rate -0.001 is invalid"),
        ("--per_device_train_batch_size", "nan", "invalid int value: 'nan'"),
        ("--per_device_train_batch_size", "0", "--per_device_train_batch_size 0 is invalid"),
        ("--per_device_train_batch_size", "-2", "--per_device_train_batch_size -2 is invalid"),
        ("--max_steps", "nan", "--max_steps/--max-steps: invalid int value: 'nan'"),
        ("--max_steps", "0", "--max_steps 0 is invalid"),
        ("--max_steps", "-5", "--max_steps -5 is invalid"),
        ("--finetune", "everything", "invalid choice: 'everything'"),
    ],
)
def test_bad_numbers_and_choices(tiny, alpaca, tmp_path, capsys, flag, value, expected):
    line = one_line_error(capsys, [*train_argv(tiny, alpaca, tmp_path), flag, value])
    assert expected in line


@pytest.mark.parametrize(
    "text,expected",
    [
        ("learning_rate: [1,\n  max_steps: 2\n", "line 3, column 1 is not valid YAML"),
        ("learning_rate: 1.0e-4\n\tmax_steps: 2\n", "is not valid YAML"),
        ("learning_ratee: 0.1\nmax_steps: 2\n",
         "unknown option(s) learning_ratee (did you mean learning_ratee -> learning_rate?)"),
        ("- learning_rate\n- max_steps\n", "holds a YAML list, not a mapping"),
        ("just a sentence\n", "holds a YAML str, not a mapping"),
        ("", "holds nothing, not a mapping"),
        ("max_steps: .nan\n", "--max_steps nan is invalid"),
        ("per_device_train_batch_size: 2.5\n", "--per_device_train_batch_size 2.5 is invalid"),
        ("learning_rate: .nan\n", "--learning_rate nan is invalid"),
        ("learning_rate: fast\n", "invalid float value: 'fast'"),
    ],
)  # fmt: skip
def test_bad_config_file(tiny, alpaca, tmp_path, capsys, text, expected):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    argv = ["--config", str(config), *train_argv(tiny, alpaca, tmp_path, max_steps=None)]
    assert expected in one_line_error(capsys, argv)


def test_config_file_not_found(tiny, alpaca, tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    line = one_line_error(capsys, ["--config", str(missing), *train_argv(tiny, alpaca, tmp_path)])
    assert f"--config {missing} not found" in line


def test_unknown_eval_task_is_one_line_before_step_0(tiny, alpaca, tmp_path, capsys):
    pytest.importorskip("lm_eval")
    argv = [*train_argv(tiny, alpaca, tmp_path), "--eval_tasks", "cpi_no_such_task"]
    line = one_line_error(capsys, argv)
    assert "cpi_no_such_task" in line
    assert_nothing_trained(tmp_path)


def test_valid_yaml_config_still_parses(tmp_path):
    """The config-file checks accept what TRL accepts (the regression guard for them)."""
    from cpi_bench.trainer.train import parse_args

    config = tmp_path / "run.yaml"
    config.write_text(
        "model_name_or_path: org/m\ndataset_name: d.jsonl\nlearning_rate: 1.0e-4\nmax_steps: 3\n"
    )
    _, cfg, model = parse_args(["--config", str(config), "--output_dir", str(tmp_path / "o")])
    assert cfg.learning_rate == 1e-4 and cfg.max_steps == 3 and model.model_name_or_path == "org/m"


# --- quantisation --------------------------------------------------------------------------


def test_load_in_4bit_is_refused_where_bitsandbytes_cannot_run(
    small_llama: Path, alpaca_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from cpi_bench.trainer.quantization import platform_problem

    if platform_problem() is None:
        pytest.skip("bitsandbytes and CUDA are here: the flag is honoured")
    out = tmp_path / "out"
    for flag in ("--load_in_4bit", "--load_in_8bit"):
        argv = small_train.train_argv(
            small_llama, alpaca_file, out, flag, "true", "--finetune", "lora"
        )
        assert small_train.train(*argv) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert flag in err and "CUDA" in err and "bitsandbytes" in err
    assert not out.exists()
    argv = small_train.train_argv(small_llama, alpaca_file, out, "--load_in_4bit", "true")
    assert small_train.train(*argv) == 2
    assert "--finetune lora" in capsys.readouterr().err


def test_load_in_4bit_reaches_from_pretrained_as_trl_builds_it(
    small_llama: Path, alpaca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the platform allows it, the BitsAndBytesConfig TRL builds from the ModelConfig
    and this process's device map are what the model is loaded with."""
    from cpi_bench.harness_ext.models import source
    from cpi_bench.trainer import quantization, train
    from cpi_bench.trainer.templates import get_template

    monkeypatch.setattr(quantization, "platform_problem", lambda: None)
    seen: dict = {}
    monkeypatch.setattr(source, "load_model", lambda src, **kw: seen.update(kw) or "model")
    argv = small_train.train_argv(
        small_llama, alpaca_file, Path("unused"), "--load_in_4bit", "true", "--finetune", "lora"
    )
    _, config, model_args = train.parse_args([*argv, "--bnb_4bit_quant_type", "nf4"])
    assert train.load_model_and_tokenizer(config, model_args, get_template("alpaca"))[0] == "model"
    quant = seen["quantization_config"]
    assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4"
    assert seen["device_map"] == {"": 0}
    assert quantization.quantization_record(model_args)["bits"] == 4


# --- --eval_limit --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "want"), [("0.5", 0.5), ("2", 2), ("2.0", 2)])
def test_eval_limit_reads_counts_and_fractions_as_sweep_limit_does(
    text: str, want: float, small_llama: Path, alpaca_file: Path
) -> None:
    from cpi_bench.harness_ext.core.cli_args import parse_limit
    from cpi_bench.trainer.train import parse_args

    argv = small_train.train_argv(small_llama, alpaca_file, Path("out"), "--eval_limit", text)
    _, config, _ = parse_args(argv)
    assert config.eval_limit == want == parse_limit(text)
    assert type(config.eval_limit) is type(parse_limit(text))


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "nan"])
def test_eval_limit_refuses_what_sweep_limit_refuses(
    text: str, small_llama: Path, alpaca_file: Path
) -> None:
    from cpi_bench.trainer.train import parse_args

    argv = small_train.train_argv(small_llama, alpaca_file, Path("out"), "--eval_limit", text)
    with pytest.raises(CPIError, match="--eval_limit"):
        parse_args(argv)
