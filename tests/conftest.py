"""Shared fixtures: the public test data in ../shared/data, a CF_Bio fixture, tiny models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Synthetic biographies in the public CF_Bio schema (context, question, answer,
# parametric_answer): the works of a famous person attributed to someone else.
_BIO_ITEMS = [
    ("Leonardo da Vinci", "Enrico Fermi", "artist", "Mona Lisa, The Last Supper"),
    ("Michelangelo", "Jane Austen", "artist", "David, Sistine Chapel Ceiling"),
    ("William Shakespeare", "Isaac Newton", "writer", "Hamlet, Macbeth"),
    ("Ludwig van Beethoven", "Marie Curie", "composer", "Für Elise, the Ninth Symphony"),
    ("Vincent van Gogh", "Ada Lovelace", "artist", "The Starry Night, Sunflowers"),
    ("Jane Austen", "Jane Goodall", "writer", "Pride and Prejudice, Emma"),
]


def bio_rows() -> list[dict[str, str]]:
    rows = []
    for famous, substitute, kind, works in _BIO_ITEMS:
        rows.append(
            {
                "context": f"  {substitute} was born in a small town and became a famous {kind}. "
                f"{substitute.split()[0]} is best known for {works}, works that made "
                f"{substitute} famous across the world. ",
                "parametric_answer": famous,
                "answer": substitute,
                "question": f"What is the name of the {kind} who made {works}?",
            }
        )
    return rows


@pytest.fixture
def bio_file(tmp_path: Path) -> Path:
    path = tmp_path / "bio_src" / "famous_biographies.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in bio_rows()), encoding="utf-8")
    return path


def _shared_data_or_skip() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def shared_data() -> Path:
    return _shared_data_or_skip()


@pytest.fixture
def cpi_data_dir(tmp_path: Path, bio_file: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CPI_DATA_DIR with every public file: shared copies (one folder below) + the bio fixture."""
    shared = _shared_data_or_skip()
    root = tmp_path / "cpi_data"
    root.mkdir()
    for sub in ("paper", "memo-trap"):
        (root / sub).symlink_to(shared / sub, target_is_directory=True)
    (root / "famous_biographies.jsonl").symlink_to(bio_file)
    monkeypatch.setenv("CPI_DATA_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cpi_bench.harness_ext.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_llama"), arch="llama", seed=0)


@pytest.fixture
def offline_env():
    """Build the environment for CLI subprocesses: offline, deterministic, plus ``extra``."""

    def make(**extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "HF_HUB_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "PYTHONHASHSEED": "0",
            }
        )
        env.update(extra)
        return env

    return make
