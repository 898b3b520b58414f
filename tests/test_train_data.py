"""cpi train's data side: schemas, templates (loss masks, saved chat template), curations.

No training here; the tiny tokenizer/model is built once per module in a temp folder.
"""

from __future__ import annotations

import json
import math

import pytest

from cpi_bench.trainer.curation import (
    CURATIONS,
    CurationContext,
    apply_curations,
    load_counterfactuals,
    load_entities,
    parse_curations,
    substitute_counterfactuals,
)
from cpi_bench.trainer.response_loss import ResponseLossScorer
from cpi_bench.trainer.schema import (
    CONTEXT,
    INSTRUCTION,
    RESPONSE,
    SCHEMAS,
    CPIError,
    detect_schema,
    load_source,
    to_canonical,
)
from cpi_bench.trainer.templates import TEMPLATES
from cpi_bench.trainer.train import main
from tests.helpers import fixtures


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from cpi_bench.harness_ext.models.tiny import build_tiny_model

    return str(
        build_tiny_model(
            tmp_path_factory.mktemp("tiny") / "llama", arch="llama", hidden=32, layers=2, heads=2
        )
    )


@pytest.fixture(scope="module")
def tokenizer(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny)


def canonical(tmp_path, name, writer=fixtures.write_jsonl, suffix=".jsonl"):
    path = writer(tmp_path / f"{name}{suffix}", fixtures.FIXTURES[name]())
    raw = load_source(str(path))
    schema = detect_schema(raw.column_names, str(path))
    ds, dropped = to_canonical(raw, schema)
    return schema, ds, dropped


# --- schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,template",
    [
        ("alpaca", "alpaca"),
        ("messages", "tulu"),
        ("prompt_completion", "prompt_completion"),
        ("squad", "squad"),
        ("cpi", "squad"),
    ],
)
def test_each_schema_is_recognised_and_canonicalised(tmp_path, name, template):
    schema, ds, dropped = canonical(tmp_path, name)
    assert schema.name == name and schema.template == template and dropped == 0
    rows = fixtures.FIXTURES[name]()
    assert len(ds) == len(rows)
    first = ds[0]
    if name == "alpaca":
        assert (first[INSTRUCTION], first[CONTEXT], first[RESPONSE]) == (
            rows[0]["instruction"],
            rows[0]["input"],
            rows[0]["output"],
        )
    elif name == "messages":
        assert (first[INSTRUCTION], first[RESPONSE], first["history"]) == (
            "What is the capital of Italy?",
            "Rome.",
            [],
        )
        multi = ds[2]  # the last exchange is the target, earlier turns are history
        assert multi[INSTRUCTION] == "Now say bye." and multi[RESPONSE] == "Bye!"
        assert [m["role"] for m in multi["history"]] == ["user", "assistant"]
        assert ds[1]["history"] == [{"role": "system", "content": "You are a helpful assistant."}]
    elif name == "squad":
        assert (first[INSTRUCTION], first[RESPONSE]) == (
            "Who designed the tower?",
            "Gustave Eiffel",
        )
        assert first[CONTEXT].startswith("The tower")
    elif name == "cpi":
        assert (first[CONTEXT], first[RESPONSE]) == (rows[0]["context"], "Durres")
    else:
        assert (first[INSTRUCTION], first[CONTEXT], first[RESPONSE]) == (
            "The capital of Spain is",
            "",
            " Madrid.",
        )


@pytest.mark.parametrize(
    "writer,suffix", [(fixtures.write_json, ".json"), (fixtures.write_parquet, ".parquet")]
)
def test_json_and_parquet_files_load_like_jsonl(tmp_path, writer, suffix):
    schema, ds, _ = canonical(tmp_path, "alpaca", writer, suffix)
    assert schema.name == "alpaca" and len(ds) == 8


def test_ultrachat_layout_with_prompt_and_messages_is_a_messages_dataset():
    assert detect_schema(["prompt", "prompt_id", "messages"], "x").name == "messages"


def test_unknown_schema_and_missing_columns_are_one_line_errors():
    with pytest.raises(CPIError, match="unknown dataset schema") as err:
        detect_schema(["foo", "bar"], "f.jsonl")
    assert "\n" not in str(err.value) and "alpaca (instruction, input, output)" in str(err.value)
    with pytest.raises(CPIError, match=r"missing column\(s\) output \(alpaca\)"):
        detect_schema(["instruction", "input"], "f.jsonl")


def test_messages_without_an_assistant_turn_are_skipped(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "hi"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
    ]
    path = fixtures.write_jsonl(tmp_path / "m.jsonl", rows)
    ds, dropped = to_canonical(load_source(str(path)), SCHEMAS["messages"])
    assert len(ds) == 1 and dropped == 1


# --- templates -------------------------------------------------------------------------------

ROW = {
    INSTRUCTION: "What is the capital?",
    CONTEXT: "The capital moved to Lyon.",
    RESPONSE: "Lyon",
    "history": [],
}


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_template_puts_the_loss_on_the_response_only(tokenizer, name):
    template = TEMPLATES[name]
    messages = template.to_messages(ROW)
    full = tokenizer.apply_chat_template(
        messages, chat_template=template.chat_template, tokenize=False
    )
    prompt = tokenizer.apply_chat_template(
        messages[:-1],
        chat_template=template.chat_template,
        tokenize=False,
        add_generation_prompt=True,
    )
    assert full.startswith(prompt) and "Lyon." in full  # the prompt is a prefix (TRL needs it)
    out = tokenizer.apply_chat_template(
        messages,
        chat_template=template.chat_template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    trained = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(trained).strip() == "Lyon</s>"


def test_alpaca_template_renders_the_input_section_only_with_a_context(tokenizer):
    t = TEMPLATES["alpaca"]
    with_ctx = tokenizer.apply_chat_template(
        t.to_messages(ROW), chat_template=t.chat_template, tokenize=False
    )
    without = tokenizer.apply_chat_template(
        t.to_messages(ROW, with_context=False), chat_template=t.chat_template, tokenize=False
    )
    assert (
        "paired with an input" in with_ctx and "### Input:\nThe capital moved to Lyon." in with_ctx
    )
    assert "### Input" not in without and "Lyon." not in without
    assert with_ctx.endswith("### Response:\nLyon</s>")


def test_squad_template_matches_the_cpi_task_prompt(tokenizer):
    t = TEMPLATES["squad"]
    text = tokenizer.apply_chat_template(
        t.to_messages(ROW), chat_template=t.chat_template, tokenize=False
    )
    assert text == (
        "<s>Background: The capital moved to Lyon.\nQuestion: What is the capital?"
        "\nAnswer: Lyon</s>"
    )


def test_tulu_template_is_tulus_markers(tokenizer):
    t = TEMPLATES["tulu"]
    msgs = [{"role": "user", "content": "hi"}]
    assert (
        tokenizer.apply_chat_template(
            msgs, chat_template=t.chat_template, tokenize=False, add_generation_prompt=True
        )
        == "<s><|user|>\nhi\n<|assistant|>\n"
    )


# --- curations -------------------------------------------------------------------------------


def ctx(**kw):
    return CurationContext(template=TEMPLATES["alpaca"], **kw)


def test_curation_table_and_parsing():
    assert set(CURATIONS) == {
        "context_only",
        "context_critical",
        "context_critical_all",
        "drop_overlap",
        "cf_augment",
    }
    assert parse_curations(" context_only, drop_overlap ") == ["context_only", "drop_overlap"]
    # the trainer loads the base model (the scorer) for exactly the loss-ranking curations
    assert {n for n, c in CURATIONS.items() if c.needs_scorer} == {
        "context_critical",
        "context_critical_all",
    }
    with pytest.raises(CPIError, match="unknown --curation nope"):
        parse_curations("context_only,nope")


def test_context_only_keeps_rows_with_an_input(tmp_path):
    _, ds, _ = canonical(tmp_path, "alpaca")
    out, report = apply_curations(ds, ["context_only"], ctx())
    assert report == [{"name": "context_only", "kept": 5, "total": 8}]
    assert out[RESPONSE] == ["Paris", "Rain flooded the town.", "Albanian", "a bridge", "Queen Ana"]


def test_context_critical_drops_the_lowest_no_context_losses(tmp_path):
    _, ds, _ = canonical(tmp_path, "alpaca")
    seen = []

    def scorer(conversations):  # loss = length of the response: shortest are "easiest"
        seen.extend(conversations)
        return [float(len(c[-1]["content"])) for c in conversations]

    out, report = apply_curations(
        ds, ["context_critical"], ctx(scorer=scorer, context_critical_drop=0.4)
    )
    # 5 rows have a context; floor(0.4 * 5) = 2 dropped: "Paris" (5) and "Albanian" (8, ties
    # with "a bridge" and comes first)
    assert report == [{"name": "context_critical", "kept": 6, "total": 8}]
    assert list(out[RESPONSE]) == [
        "Hello there, friend.",
        "Rain flooded the town.",
        "Paris is one.",
        "a bridge",
        "Queen Ana",
        "art",
    ]
    assert len(seen) == 5 and all(m["role"] != "input" for c in seen for m in c)  # no context


def test_context_critical_all_ranks_rows_without_a_context_too(tmp_path):
    _, ds, _ = canonical(tmp_path, "alpaca")
    seen = []

    def scorer(conversations):
        seen.extend(conversations)
        return [float(len(c[-1]["content"])) for c in conversations]

    out, report = apply_curations(
        ds, ["context_critical_all"], ctx(scorer=scorer, context_critical_drop=0.25)
    )
    # all 8 rows ranked; floor(0.25 * 8) = 2 dropped: "art" (3, no context) and "Paris" (5):
    # context_critical would have kept "art" because it has no context
    assert report == [{"name": "context_critical_all", "kept": 6, "total": 8}]
    assert "art" not in out[RESPONSE] and "Paris" not in out[RESPONSE]
    assert len(seen) == 8


def test_drop_overlap_drops_rows_mentioning_an_entity(tmp_path):
    _, ds, _ = canonical(tmp_path, "alpaca")
    out, report = apply_curations(ds, ["drop_overlap"], ctx(entities=("france", "Tirana")))
    assert report == [{"name": "drop_overlap", "kept": 5, "total": 8}]
    assert not any(
        "France" in t or "Tirana" in t for t in list(out[INSTRUCTION]) + list(out[CONTEXT])
    )


def test_overlap_entities_from_an_evaluation_file(tmp_path):
    path = fixtures.write_json(tmp_path / "caps.json", fixtures.cpi_rows())
    entities = load_entities("Paris", str(path))
    assert {"Paris", "Durres", "Tirana", "Albania", "Afghanistan", "Kabul"} <= set(entities)
    assert "What" not in entities


def test_cf_augment_from_a_cpi_file_reaches_the_fraction(tmp_path):
    _, ds, _ = canonical(tmp_path, "alpaca")
    path = fixtures.write_jsonl(tmp_path / "cf.jsonl", fixtures.cpi_rows())
    cf = load_counterfactuals(str(path), seed=0)
    out, report = apply_curations(
        ds, ["cf_augment"], ctx(counterfactuals=cf, cf_augment_fraction=0.2)
    )
    # round(0.2 * 8 / 0.8) = 2 counterfactuals appended after the 8 originals
    assert report == [{"name": "cf_augment", "kept": 10, "total": 8}]
    added = out.select(range(8, 10)).to_list()
    assert {r[RESPONSE] for r in added} <= {"Durres", "Herat", "Oran"}
    assert all(r[RESPONSE] in r[CONTEXT] for r in added)


def test_squad_entity_substitution_builds_counterfactuals():
    rows = fixtures.squad_rows()
    cf = substitute_counterfactuals(rows, seed=0)
    assert len(cf) == len(rows)
    by_q = {r[INSTRUCTION]: r for r in cf}
    tower = by_q["Who designed the tower?"]
    assert tower[RESPONSE] == "Isambard Brunel"  # the only other "who" answer
    assert "Isambard Brunel" in tower[CONTEXT] and "Gustave Eiffel" not in tower[CONTEXT]
    treaty = by_q["When was the treaty signed?"]
    assert treaty[RESPONSE] == "1793" and "1793" in treaty[CONTEXT]


def test_an_empty_curated_set_is_an_error(tmp_path):
    _, ds, _ = canonical(tmp_path, "messages")
    with pytest.raises(CPIError, match="context_only left 0 of 4"):
        apply_curations(ds, ["context_only"], ctx())


def test_context_critical_scores_with_the_base_model_and_caches(tmp_path, tiny):
    _, ds, _ = canonical(tmp_path, "alpaca")
    scorer = ResponseLossScorer(
        tiny, TEMPLATES["alpaca"], batch_size=2, cache_dir=tmp_path / "c", show_progress=False
    )
    out, report = apply_curations(ds, ["context_critical"], ctx(scorer=scorer))
    assert report == [{"name": "context_critical", "kept": 7, "total": 8}]  # floor(0.25*5)=1
    assert scorer.n_scored == 5
    cache = json.loads(scorer.cache_path.read_text())["scores"]
    assert len(cache) == 5 and all(math.isfinite(v) and v > 0 for v in cache.values())

    again = ResponseLossScorer(
        tiny, TEMPLATES["alpaca"], batch_size=4, cache_dir=tmp_path / "c", show_progress=False
    )
    out2, _ = apply_curations(ds, ["context_critical"], ctx(scorer=again))
    assert again.n_scored == 0 and out2[RESPONSE] == out[RESPONSE]  # a rerun does not rescore
    # batching does not change the scores: one-at-a-time scoring agrees
    single = ResponseLossScorer(
        tiny, TEMPLATES["alpaca"], batch_size=1, cache_dir=tmp_path / "d", show_progress=False
    )
    conv = [
        TEMPLATES["alpaca"].to_messages(r, with_context=False) for r in ds.to_list() if r[CONTEXT]
    ]
    assert single(conv) == pytest.approx(scorer(conv), rel=1e-4)


# --- bad input through the command ----------------------------------------------------------


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--context_critical_drop", "1.0"], "--context_critical_drop 1.0 is outside [0, 1)"),
        (["--context_critical_drop", "-0.1"], "--context_critical_drop -0.1 is outside [0, 1)"),
        (["--curation", "context_only", "--dataset_name", "MSG"], "context_only left 0 of 4"),
        (["--dataset_name", "BAD"], "unknown dataset schema"),
        (["--dataset_name", "MISSING"], "missing column(s) output (alpaca)"),
        (["--dataset_name", "nowhere.jsonl"], "dataset file nowhere.jsonl not found"),
        (["--curation", "drop_overlap"], "drop_overlap needs --overlap_entities"),
        (["--use_peft"], "--use_peft contradicts --finetune full"),
        (["--finetune", "everything"], "invalid choice"),
    ],
)
def test_bad_input_is_a_one_line_error_before_training(tmp_path, tiny, capsys, extra, message):
    data = {
        "ALPACA": fixtures.write_jsonl(tmp_path / "a.jsonl", fixtures.alpaca_rows()),
        "MSG": fixtures.write_jsonl(tmp_path / "m.jsonl", fixtures.messages_rows()),
        "BAD": fixtures.write_jsonl(tmp_path / "b.jsonl", [{"foo": 1}]),
        "MISSING": fixtures.write_jsonl(tmp_path / "c.jsonl", [{"instruction": "a", "input": "b"}]),
    }
    argv = [
        "--model_name_or_path",
        tiny,
        "--output_dir",
        str(tmp_path / "run"),
        "--dataset_name",
        str(data["ALPACA"]),
    ]
    extra = [str(data.get(a, a)) for a in extra]
    assert main(argv + extra) == 2  # argparse's own errors too (--finetune choices): one line
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cpi train: error: ") and message in err[-1]
    assert "Traceback" not in "\n".join(err)
    run = tmp_path / "run"  # nothing trained, no manifest (--output_dir may have been made)
    assert not (run / "cpi_run.json").exists() and not list(run.glob("checkpoint-*"))


def test_yaml_config_with_command_line_overrides(tmp_path):
    from cpi_bench.trainer.train import parse_args

    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "model_name_or_path: org/m\ndataset_name: d.jsonl\nlearning_rate: 0.001\n"
        "finetune: lora\ncuration: context_only\nmax_steps: 7\n"
    )
    script, config, model = parse_args(
        ["--config", str(cfg), "--learning_rate", "0.002", "--output_dir", str(tmp_path / "o")]
    )
    assert (model.model_name_or_path, script.dataset_name) == ("org/m", "d.jsonl")
    assert config.learning_rate == 0.002 and config.max_steps == 7
    assert config.finetune == "lora" and model.use_peft and model.lora_r == 128
    assert config.save_steps == 50 and config.curation_names == ["context_only"]


@pytest.mark.parametrize(
    "hub_id,split,fixture",
    [
        ("tatsu-lab/alpaca", "train", "alpaca"),
        ("allenai/tulu-v2-sft-mixture", "train", "messages"),
        ("HuggingFaceH4/ultrachat_200k", "train_sft", "messages"),
        ("rajpurkar/squad", "train", "squad"),
    ],
)
def test_hub_loaders_use_the_right_split_and_schema(monkeypatch, hub_id, split, fixture):
    """The hub cannot be reached here: load_dataset is replaced by the fixture rows, in
    exactly the hub dataset's layout, and the call it receives is checked."""
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return datasets.Dataset.from_list(fixtures.FIXTURES[fixture]())

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    raw = load_source(hub_id)
    assert calls == [(hub_id, None, split)]
    schema = detect_schema(raw.column_names, hub_id)
    assert schema.name == fixture
    ds, dropped = to_canonical(raw, schema)
    assert len(ds) == len(fixtures.FIXTURES[fixture]()) and dropped == 0
