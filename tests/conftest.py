"""Shared fixtures: synthetic public data for the whole session, the real public data when
``CPI_DATA_DIR`` names it, a CF_Bio fixture, tiny models, a tiny run folder, alpaca rows.

The suite is self-contained: at import, the caller's ``CPI_DATA_DIR`` is remembered as the
*real* public data folder (CI points it at the public copies) and ``CPI_DATA_DIR`` is then
pointed, for the whole session (subprocesses that copy ``os.environ`` included), at a folder
of synthetic files in the public schemas (:func:`write_fixture_data`). Tests about the
published files themselves request ``real_data_dir`` and skip, with a reason, without them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers.public_fixtures import (
    bio_rows,
    write_fixture_data,
    write_suite_fixture_data,
)

__all__ = ["bio_rows"]  # re-exported: the CF_Bio rows now live in public_fixtures

DATA_DIR_ENV = "CPI_DATA_DIR"  # cpi_bench.tasks.sources.DATA_DIR_ENV
REAL_DATA_SKIP = (
    "real public data: set CPI_DATA_DIR to a folder with the public files (.ci/run sets it)"
)


def _real_data_dir_from_env() -> Path | None:
    value = os.environ.get(DATA_DIR_ENV)
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    return path if path.is_dir() else None


_CALLER_DATA_DIR = os.environ.get(DATA_DIR_ENV)
REAL_DATA_DIR: Path | None = _real_data_dir_from_env()
FIXTURE_DATA_DIR: Path = write_fixture_data(
    Path(tempfile.mkdtemp(prefix="cpi-public-fixtures-")) / "data"
)
write_suite_fixture_data(FIXTURE_DATA_DIR)  # NQ-Swap, ConflictQA, memo-trap files 2-4
os.environ[DATA_DIR_ENV] = str(FIXTURE_DATA_DIR)


def pytest_report_header(config: pytest.Config) -> list[str]:
    real = REAL_DATA_DIR or "not set (real-data tests skip)"
    return [f"cpi data: fixtures {FIXTURE_DATA_DIR}; real public data {real}"]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give the caller's CPI_DATA_DIR back and remove the session's fixture folder."""
    if _CALLER_DATA_DIR is None:
        os.environ.pop(DATA_DIR_ENV, None)
    else:
        os.environ[DATA_DIR_ENV] = _CALLER_DATA_DIR
    shutil.rmtree(FIXTURE_DATA_DIR.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def fixture_data_dir() -> Path:
    """The session's synthetic public files (what CPI_DATA_DIR points at by default)."""
    return FIXTURE_DATA_DIR


@pytest.fixture
def cpi_data_dir(fixture_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CPI_DATA_DIR with every public file name (synthetic rows), set for this test."""
    monkeypatch.setenv(DATA_DIR_ENV, str(fixture_data_dir))
    return fixture_data_dir


@pytest.fixture
def real_data_dir() -> Path:
    """The real public data folder (the caller's CPI_DATA_DIR); skips when there is none.

    CPI_DATA_DIR itself still points at the fixtures: set it to this folder to read it.
    """
    if REAL_DATA_DIR is None:
        pytest.skip(REAL_DATA_SKIP)
    return REAL_DATA_DIR


@pytest.fixture
def bio_file(tmp_path: Path) -> Path:
    path = tmp_path / "bio_src" / "famous_biographies.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in bio_rows()), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cpi_bench.harness_ext.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_llama"), arch="llama", seed=0)


@pytest.fixture
def offline_env():
    """Build the environment for CLI subprocesses: offline, deterministic, plus ``extra``."""

    from tests.helpers.env import offline_env as make

    return make


@pytest.fixture(scope="session")
def small_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random llama of 2 layers, width 32 and 2 heads, with its tokenizer, for tests that
    train a few steps. Shared by the session: copy it before changing a file in it."""
    from cpi_bench.harness_ext.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", hidden=32, heads=2)


@pytest.fixture(scope="session")
def alpaca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 rows in the alpaca schema ("Repeat i." -> "word i"), one JSON object a line."""
    rows = [{"instruction": f"Repeat {i}.", "input": "", "output": f"word {i}"} for i in range(16)]
    path = tmp_path_factory.mktemp("data") / "alpaca.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-finetune run folder of tiny models (base, checkpoint-2, checkpoint-4), not yet
    swept. Shared by the session: copy it before sweeping or changing it."""
    from tests.helpers.tiny_run import build_tiny_run

    return build_tiny_run(tmp_path_factory.mktemp("tiny_run") / "run", steps=(2, 4))
