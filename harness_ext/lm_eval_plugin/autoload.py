"""Make ``lm_eval --tasks 'cpi_*'`` work without ``--include_path``.

Two mechanisms, one per generation of lm-eval:

* lm-eval with task plug-ins (upstream PR #4015, not in a release yet) reads the entry point
  group ``lm_eval.tasks``; pyproject.toml declares ``cpi = "cpi_bench.tasks"`` there, and
  lm-eval indexes that package's folder itself. This module then does nothing.
* Released lm-eval (0.4.x) has no such group: ``TaskManager`` indexes its own tasks plus
  ``include_path``. The wheel ships a one-line ``cpi_bench.pth`` that calls :func:`install`
  at interpreter start-up. :func:`install` only puts a tiny finder on ``sys.meta_path``;
  nothing is imported until a program imports the module that defines ``TaskManager``
  (``lm_eval.tasks.manager`` from 0.4.10, ``lm_eval.tasks`` before). Right after it
  executes, ``TaskManager.__init__`` is wrapped so that this package's task folder is
  appended to ``include_path`` (after the user's own paths, never twice). lm-eval's
  installed files are never modified.

Opt out with ``CPI_AUTOLOAD=0``; ``--include_path "$(cpi tasks-path)"`` always works.
Editable installs (``pip install -e``) do not ship the .pth: run ``cpi register`` once.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import os
import sys
from pathlib import Path

TARGET_MODULES = ("lm_eval.tasks.manager", "lm_eval.tasks")  # 0.4.10+, and 0.4.9
PLUGIN_GROUP_ATTR = "TASKS_ENTRY_POINT_GROUP"  # lm-eval with task plug-ins (PR #4015)
ENV_SWITCH = "CPI_AUTOLOAD"


def tasks_dir() -> Path:
    """Absolute folder holding the cpi task YAMLs (what ``cpi tasks-path`` prints)."""
    from ... import tasks

    return Path(tasks.__file__).resolve().parent


def _with_cpi_tasks(include_path):
    """Return ``include_path`` with the cpi task folder appended unless already present."""
    ours = tasks_dir()
    if include_path is None:
        paths = []
    elif isinstance(include_path, (list, tuple)):
        paths = list(include_path)
    else:
        paths = [include_path]
    for p in paths:
        try:
            if Path(p).expanduser().resolve() == ours:
                return include_path
        except (OSError, TypeError):
            continue
    return [*paths, str(ours)]


def patch_task_manager(module) -> None:
    """Wrap ``module.TaskManager.__init__`` to index the cpi tasks too (idempotent); no-op
    when lm-eval discovers task plug-ins itself (it then reads our entry point)."""
    cls = getattr(module, "TaskManager", None)
    if cls is None or hasattr(module, PLUGIN_GROUP_ATTR):
        return
    if getattr(cls.__init__, "_cpi_patched", False):
        return
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        # include_path is the 2nd positional parameter of TaskManager.__init__ in 0.4.x.
        if len(args) >= 2:
            args = (args[0], _with_cpi_tasks(args[1]), *args[2:])
        else:
            kwargs["include_path"] = _with_cpi_tasks(kwargs.get("include_path"))
        original(self, *args, **kwargs)

    __init__._cpi_patched = True
    cls.__init__ = __init__


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:
        self._inner.exec_module(module)
        try:
            patch_task_manager(module)
        except Exception as err:  # never break lm-eval because of us
            print(
                f"cpi-bench: could not register cpi tasks with lm-eval ({err}); "
                'pass --include_path "$(cpi tasks-path)" instead.',
                file=sys.stderr,
            )


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in TARGET_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PatchingLoader(spec.loader)
        return spec


def install() -> None:
    """Called from ``cpi_bench.pth``: register the lazy finder unless disabled."""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in {"0", "false", "no", "off"}:
        return
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    for name in TARGET_MODULES:
        module = sys.modules.get(name)
        if module is not None:  # already imported (unusual at start-up): patch in place
            patch_task_manager(module)
    sys.meta_path.insert(0, _Finder())


def site_packages_pth() -> Path:
    """Where ``cpi register`` writes the .pth for this interpreter."""
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"]) / "cpi_bench.pth"


PTH_LINE = "import cpi_bench.harness_ext.lm_eval_plugin.autoload as _cpi; _cpi.install()\n"
