"""The sdist and the wheel both build, install into a fresh environment and make
``lm_eval --tasks cpi_capitals`` find and run the tasks with no ``--include_path``.

Slow (about a minute): builds with ``python -m build`` (isolated, needs the package index
for setuptools), installs each artifact with ``--no-deps`` into a venv that sees this
environment's dependencies (``--system-site-packages``), and runs lm-eval there on a tiny
model and the generated fixture data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def _see_dependencies_of_this_environment(py: str) -> None:
    """Let the fresh venv import this environment's dependencies (torch, lm-eval...) after its
    own packages, without this environment's .pth hooks: only the artifact can register."""
    inner = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    import sysconfig

    Path(inner, "zz_outer_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("build", reason="python -m build needs the 'build' package (dev extra)")
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(REPO)], env
    )
    return {"sdist": next(out.glob("*.tar.gz")), "wheel": next(out.glob("*.whl"))}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sdist", "wheel"])
def test_artifact_installs_and_lm_eval_finds_the_tasks(
    kind: str, artifacts: dict[str, Path], tmp_path: Path, tiny_llama: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = str(env_dir / "bin" / "python")
    env = {**os.environ, "CPI_AUTOLOAD": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    # Install first: once this environment's packages are visible, pip would see cpi-bench
    # 0.1.0 "already satisfied" (from outside) and install nothing.
    _run([py, "-m", "pip", "install", "-q", "--no-deps", str(artifacts[kind])], env)
    _see_dependencies_of_this_environment(py)
    where = _run([py, "-c", "import cpi_bench.tasks as t; print(t.__file__)"], env).stdout
    assert str(env_dir) in where  # the installed copy, not the source tree
    proc = _run(
        [
            py,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_llama}",
            "--tasks",
            "cpi_capitals",
            "--limit",
            "2",
            "--device",
            "cpu",
        ],
        env,
    )
    assert "cf_acc" in proc.stdout and "cpi_capitals" in proc.stdout
    installed = _run(
        [
            py,
            "-c",
            "import cpi_bench.trainer as t, pathlib; print(pathlib.Path(t.__file__).parent)",
        ],
        env,
    ).stdout.strip()
    assert (Path(installed) / "recipes" / "alpaca_lora.yaml").is_file()


def test_the_shipped_pth_is_the_line_cpi_register_writes() -> None:
    from cpi_bench.harness_ext.lm_eval_plugin.autoload import PTH_LINE

    shipped = REPO / "harness_ext" / "lm_eval_plugin" / "cpi_bench.pth"
    assert shipped.read_text() == PTH_LINE
