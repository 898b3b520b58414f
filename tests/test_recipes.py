"""Every paper recipe under trainer/recipes parses into a valid `cpi train` configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpi_bench.trainer.train import parse_args

RECIPES = sorted((Path(__file__).resolve().parents[1] / "trainer" / "recipes").glob("*.yaml"))


def test_the_paper_runs_are_all_there():
    names = {p.stem for p in RECIPES}
    for data in ("alpaca", "tulu", "ultrachat"):
        assert {f"{data}_lora", f"{data}_full"} <= names
    assert {"alpaca_qk", "alpaca_lora_context_critical", "alpaca_lora_cf_augment"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_parses_with_the_paper_settings(recipe: Path, tmp_path: Path):
    extra = []
    if recipe.stem.startswith("cpu_"):  # CPU recipes name no model or data: the command does
        extra = ["--model_name_or_path", "org/model", "--dataset_name", "data.jsonl"]
    script, config, model = parse_args(
        ["--config", str(recipe), *extra, "--output_dir", str(tmp_path)]
    )
    assert config.save_steps == (4 if recipe.stem.startswith("cpu_") else 50)
    assert script.dataset_name and model.model_name_or_path
    if config.finetune == "lora":
        assert model.lora_r == 128 and config.learning_rate == pytest.approx(1e-4)
    else:
        assert config.learning_rate == pytest.approx(1e-5)
    if "context_critical" in recipe.stem:
        assert config.curation_names == ["context_critical"]
        assert config.context_critical_drop == pytest.approx(0.25)


def test_a_flag_overrides_the_recipe(tmp_path: Path):
    recipe = next(p for p in RECIPES if p.stem == "alpaca_lora")
    _, config, _ = parse_args(
        ["--config", str(recipe), "--learning_rate", "3e-4", "--output_dir", str(tmp_path)]
    )
    assert config.learning_rate == pytest.approx(3e-4)
