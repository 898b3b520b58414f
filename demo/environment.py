"""What a demo result depends on besides its settings: libraries, CPU kernels and code.

``cpi demo`` reuses a cached base model and finished runs from an earlier demo in the same
folder. The miniature's numbers move with the libraries that pretrain, train and evaluate it
and with the CPU kernels torch picks (a 1-layer model trained for 800 steps amplifies any
numerical change), and with this package's code, whose version string does not change
between commits. So a cached base model or run is reused only when it was made under the
same environment key, and ``demo.json`` records the key it was made under.
"""

from __future__ import annotations

import functools
import hashlib
import platform
from pathlib import Path
from typing import Any

from ..harness_ext.core.run_folder import library_versions

# The package's parts whose code decides a demo number (the wheel ships exactly these).
_PARTS = ("demo", "trainer", "harness_ext", "tasks")
_CODE_SUFFIXES = (".py", "yaml")  # the task folders' shared templates are named _*_yaml


def code_digest(root: Path | None = None) -> str:
    """SHA-256 (first 16 hex digits) over the package's Python and task YAML files.

    Paths and contents both count, so an added, removed or edited file changes the digest;
    READMEs and caches do not."""
    root = root or Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for part in _PARTS:
        files = (p for p in (root / part).rglob("*") if p.is_file())
        for path in sorted(f for f in files if f.name.endswith(_CODE_SUFFIXES)):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cpu_kernels() -> str:
    """The machine and the vector instructions torch's CPU kernels use (e.g. ``x86_64
    AVX512``): kernels for other instruction sets round differently, and a miniature trained
    for 800 steps turns that into other numbers."""
    import torch

    return f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """The environment key of this process: library versions, code digest, CPU kernels."""
    return {"versions": library_versions(), "code": code_digest(), "cpu": cpu_kernels()}
