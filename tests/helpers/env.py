"""The environment of ``cpi``/``lm_eval`` subprocesses in tests and benchmarks: no hub access,
deterministic hashing and tokenizers, plus the caller's extras (data folder, caches, threads).
One owner, so a test and the benchmark that times the same command run it the same way."""

from __future__ import annotations

import os

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONHASHSEED": "0",
}


def offline_env(**extra: str) -> dict[str, str]:
    """``os.environ`` with ``OFFLINE`` and ``extra`` (extra wins)."""
    return {**os.environ, **OFFLINE, **extra}
