"""One lm-eval evaluator for many models: tasks built once, each model evaluated in place.

``lm_eval`` run once per checkpoint re-imports, re-indexes lm-eval's task folder and re-reads
every dataset for each model. :class:`CheckpointEvaluator` does that work once and then
evaluates any number of already-loaded models (``transformers`` or ``peft`` objects, wrapped
in lm-eval's ``HFLM`` with no reload). ``cpi sweep`` and the training callback both use it,
so their per-checkpoint files are the same format and interchangeable.

Every evaluation resets lm-eval's seeds (its CLI defaults), so a number never depends on which
checkpoints were evaluated before it in the same process: a resumed sweep and an uninterrupted
one give the same results, and so does the one-process-per-checkpoint ``lm_eval`` loop.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
import random
import time
from pathlib import Path
from typing import Any

from ..core.cli_args import parse_limit
from ..core.constants import (
    ATTENTION_KEY,
    CPI_KEY,
    DEFAULT_TASKS,
    FEWSHOT_SEED,
    NUMPY_SEED,
    RANDOM_SEED,
    RESULT_NEUTRAL_MODEL_ARGS,
    SCHEMA_VERSION,
    SETTINGS_KEY,
    TORCH_SEED,
)
from ..core.errors import (
    CPIError,
)
from ..core.items import records_from_samples, write_results_with_items
from .provenance import PROVENANCE_KEY

log = logging.getLogger("cpi_bench.evaluator")

# HFLM options that only matter when HFLM itself loads a model from a path; with a model
# object they are ignored or rejected, so --model_args never passes them to HFLM.
_HFLM_LOAD_ONLY = {
    "pretrained",
    "backend",
    "revision",
    "subfolder",
    "tokenizer",
    "device",
    "dtype",
    "parallelize",
    "max_memory_per_gpu",
    "max_cpu_memory",
    "offload_folder",
    "tp_plan",
    "peft",
    "delta",
    "autogptq",
    "gptqmodel",
    "gguf_file",
    "trust_remote_code",
    "use_fast_tokenizer",
}


def parse_model_args(text: str | None) -> dict[str, Any]:
    """lm-eval's ``key=value,key=value`` string as a dict (values typed like lm-eval does)."""
    if not text:
        return {}
    from lm_eval.utils import simple_parse_args_string

    try:
        return dict(simple_parse_args_string(text))
    except Exception as err:
        raise CPIError(f"--model_args {text!r} is not 'key=value,key=value' ({err})") from None


def split_model_args(model_args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``--model_args`` into (``from_pretrained`` kwargs, ``HFLM`` kwargs).

    Mirrors HFLM: its own parameters configure the evaluation wrapper (``max_length``,
    ``add_bos_token``, ``truncation`` ...); loading options (``dtype``, ``revision``,
    ``trust_remote_code``) and every unknown key go to ``from_pretrained``.
    """
    from lm_eval.models.huggingface import HFLM

    hflm_params = set(inspect.signature(HFLM.__init__).parameters) - {"self", "kwargs"}
    load: dict[str, Any] = {}
    wrap: dict[str, Any] = {}
    for key, value in model_args.items():
        if key in {"pretrained", "peft", "tokenizer"}:
            raise CPIError(
                f"--model_args {key}=... is set by the sweep from the run folder; remove it"
            )
        if key in hflm_params and key not in _HFLM_LOAD_ONLY:
            wrap[key] = value
        elif key not in RESULT_NEUTRAL_MODEL_ARGS:
            load[key] = value
    return load, wrap


def quiet_logs() -> None:
    """For the command line: lm-eval logs every request batch at INFO and transformers draws a
    bar per weight file; keep the sweep's own progress bar readable (not --verbose)."""
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # pragma: no cover - optional niceties
        pass


def _quiet_task_bars() -> None:
    """lm-eval draws a progress bar per task while building requests; hide those only."""
    try:
        import functools

        import lm_eval.api.task as task_mod
        from tqdm import tqdm

        task_mod.tqdm = functools.partial(tqdm, disable=True)
    except Exception:  # pragma: no cover
        pass


def _make_hflm_class(quiet: bool):
    """HFLM, or a subclass that does not draw lm-eval's per-request progress bars."""
    from lm_eval.models.huggingface import HFLM

    if not quiet:
        return HFLM

    class QuietHFLM(HFLM):
        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return super().loglikelihood(requests, disable_tqdm=True)

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return super().loglikelihood_rolling(requests, disable_tqdm=True)

        def generate_until(self, requests, disable_tqdm: bool = False):
            return super().generate_until(requests, disable_tqdm=True)

    return QuietHFLM


class CheckpointEvaluator:
    """Evaluate many in-memory models on one set of lm-eval tasks built once.

    Args:
        tasks: lm-eval task or group names (globs allowed), e.g. ``["cpi"]``.
        id_tasks: standard-benchmark tasks, optionally ``task:metric,filter``; their mean is
            the inversion table's ID accuracy.
        limit: items per task (lm-eval ``--limit``; < 1 is a fraction).
        batch_size: lm-eval batch size (int or ``auto``).
        apply_chat_template: ``False``, ``True`` or a template name, as lm-eval's option.
        model_args: parsed ``--model_args`` (see :func:`split_model_args`).
        include_path: extra task folders besides the cpi tasks.
        attention_limit: > 0 adds the attention-to-context measurement on up to that many
            counterfactual items per task (see :mod:`.attention`).
        bootstrap_iters: lm-eval's bootstrap iterations for stderrs of non-mean metrics.
        verbose: keep lm-eval's logging and progress bars.
    """

    def __init__(
        self,
        tasks: list[str] | tuple[str, ...] = DEFAULT_TASKS,
        id_tasks: list[str] | tuple[str, ...] = (),
        limit: int | float | None = None,
        batch_size: int | str = 8,
        apply_chat_template: bool | str = False,
        model_args: dict[str, Any] | None = None,
        include_path: list[str] | None = None,
        attention_limit: int = 0,
        bootstrap_iters: int = 100000,
        verbose: bool = False,
    ) -> None:
        self.tasks = [t for t in tasks if t]
        self.id_tasks = [t for t in id_tasks if t]
        if not self.tasks:
            raise CPIError("--tasks is empty; name at least one task (default: cpi)")
        self.limit = parse_limit(limit, "limit")
        self.batch_size = batch_size
        self.apply_chat_template = apply_chat_template
        self.model_args = dict(model_args or {})
        self.include_path = list(include_path or [])
        self.attention_limit = int(attention_limit or 0)
        self.bootstrap_iters = bootstrap_iters
        self.verbose = verbose
        self.load_kwargs, self.hflm_kwargs = split_model_args(self.model_args)
        self._loaded: dict[str, Any] | None = None
        self._hflm_cls = None
        # Per-item records of the last evaluate() (see .items): lm-eval's logged samples,
        # reduced to what each item scored; the results dict itself keeps no samples.

    # ------------------------------------------------------------------ settings
    @property
    def settings(self) -> dict[str, Any]:
        """Everything that changes the numbers; a finished file is reused only on a match."""
        return settings_dict(
            self.tasks,
            self.id_tasks,
            self.limit,
            self.apply_chat_template,
            {k: v for k, v in self.model_args.items() if k not in RESULT_NEUTRAL_MODEL_ARGS},
        )

    # ------------------------------------------------------------------ tasks
    def _task_manager(self, include_defaults: bool):
        from lm_eval.tasks import TaskManager

        from ..lm_eval_plugin.autoload import tasks_dir

        paths = [*self.include_path, str(tasks_dir())]
        return TaskManager(
            include_path=paths,
            include_defaults=include_defaults,
            metadata=dict(self.model_args) or None,
        )

    @staticmethod
    def _resolve(names: list[str], known: list[str]) -> tuple[list[str], list[str]]:
        resolved, unknown = [], []
        for name in names:
            if name in known:
                resolved.append(name)
            elif any(c in name for c in "*?["):
                hits = sorted(fnmatch.filter(known, name))
                (resolved.extend(hits) if hits else unknown.append(name))
            else:
                unknown.append(name)
        return list(dict.fromkeys(resolved)), unknown

    def load_tasks(self) -> dict[str, Any]:
        """Index and build the tasks once (datasets read here). Idempotent.

        Only this package's task folder (and ``include_path``) is indexed when every name is
        found there: indexing lm-eval's own thousands of task files costs seconds to tens of
        seconds and is needed only for standard benchmarks such as ``mmlu``.
        """
        if self._loaded is not None:
            return self._loaded
        if not self.verbose:
            _quiet_task_bars()
        names = self.tasks + [t.partition(":")[0] for t in self.id_tasks]
        manager = self._task_manager(include_defaults=False)
        resolved, unknown = self._resolve(names, list(manager.all_tasks))
        if unknown:
            manager = self._task_manager(include_defaults=True)
            resolved, unknown = self._resolve(names, list(manager.all_tasks))
        if unknown:
            raise CPIError(
                f"unknown lm-eval task(s): {', '.join(unknown)}; list the names with "
                "'lm_eval ls tasks' (cpi tasks: cpi, cpi_<family>[_instructed|_choice])"
            )
        try:
            loaded = manager.load(resolved)
        except CPIError:
            raise
        except Exception as err:
            raise CPIError(
                f"could not build tasks {', '.join(resolved)}: {type(err).__name__}: {err}"
            ) from None
        for task in loaded["tasks"].values():
            if task.get_config("num_fewshot") is None:
                task.set_config(key="num_fewshot", value=0)
        self._loaded = loaded
        self._hflm_cls = _make_hflm_class(quiet=not self.verbose)
        return loaded

    # ------------------------------------------------------------------ evaluation
    def wrap(self, model, tokenizer):
        """An lm-eval ``HFLM`` around an in-memory model: no copy, no reload."""
        self.load_tasks()
        return self._hflm_cls(
            pretrained=model, tokenizer=tokenizer, batch_size=self.batch_size, **self.hflm_kwargs
        )

    def evaluate(
        self,
        model,
        tokenizer,
        *,
        step: int,
        label: str,
        source: str = "sweep",
        model_path: str | None = None,
        cache_db: str | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Evaluate one loaded model; return (an lm-eval results dict plus our ``cpi`` block,
        its per-item records); write both with ``core/items.write_results_with_items``.

        Args:
            model: a ``transformers`` causal LM or ``peft`` model, already on its device.
            tokenizer: its tokenizer (chat template included when one is applied).
            step: training global step (0 = the base model).
            label: the checkpoint's name in tables (``base``, ``checkpoint-N``).
            source: who evaluated (``sweep`` or ``callback``), for provenance.
            model_path: where the model was loaded from, for provenance.
            cache_db: a per-checkpoint lm-eval response cache (SQLite) path, or None.
            provenance: what the result is made from (see :mod:`.provenance`); stored with
                it and compared before any reuse.
        """
        loaded = self.load_tasks()
        was_training = bool(getattr(model, "training", False))
        started = time.time()
        try:
            lm = self.wrap(model, tokenizer)
            results, records = self._run_lm_eval(lm, loaded, cache_db)
            attention = self._attention(lm, loaded)
        finally:
            model.train(was_training)
        results["config"] = self._config_block(model, lm, model_path)
        results[CPI_KEY] = {
            "schema_version": SCHEMA_VERSION,
            "step": int(step),
            "label": label,
            "model": model_path,
            "source": source,
            SETTINGS_KEY: self.settings,
            PROVENANCE_KEY: provenance,
            ATTENTION_KEY: attention,
            "eval_seconds": round(time.time() - started, 3),
        }
        return results, records

    def evaluate_to(self, path: Path, model, tokenizer, **kwargs: Any) -> dict[str, Any]:
        """:meth:`evaluate`, then write the results file and its per-item records at ``path``
        (``core/items.write_results_with_items``: atomically, records first); the results."""
        results, records = self.evaluate(model, tokenizer, **kwargs)
        write_results_with_items(path, results, records)
        return results

    def _run_lm_eval(
        self, lm, loaded: dict[str, Any], cache_db: str | None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """lm-eval's evaluate() with its CLI seeds reset first (order-independent numbers);
        the results without the bulky samples, and the per-item records made from them."""
        import numpy as np
        import torch
        from lm_eval import evaluator as lm_evaluator

        runner = lm
        if cache_db:
            from lm_eval.api.model import CachingLM

            runner = CachingLM(lm, cache_db)
        random.seed(RANDOM_SEED)
        np.random.seed(NUMPY_SEED)
        torch.manual_seed(TORCH_SEED)
        for task in loaded["tasks"].values():
            task.set_fewshot_seed(seed=FEWSHOT_SEED)
        with torch.no_grad():
            results = lm_evaluator.evaluate(
                lm=runner,
                task_dict=loaded,
                limit=self.limit,
                bootstrap_iters=self.bootstrap_iters,
                log_samples=True,
                apply_chat_template=self.apply_chat_template,
                fewshot_as_multiturn=bool(self.apply_chat_template),
            )
        return results, records_from_samples(results.pop("samples", None))

    def _attention(self, lm, loaded: dict[str, Any]) -> dict[str, Any] | None:
        """The attention-to-context measurement, when asked for (else None)."""
        if self.attention_limit <= 0:
            return None
        from .attention import attention_to_context

        return attention_to_context(
            lm,
            loaded,
            limit=self.limit,
            max_items=self.attention_limit,
            apply_chat_template=self.apply_chat_template,
        )

    def _config_block(self, model, lm, model_path: str | None) -> dict[str, Any]:
        """lm-eval's ``config`` block, without its network look-ups (model SHA on the hub)."""
        try:
            n_params = sum(p.numel() for p in model.parameters())
        except Exception:
            n_params = None
        return {
            "model": "hf",
            "model_args": {"pretrained": model_path, **self.model_args},
            "model_num_parameters": n_params,
            "model_dtype": str(getattr(model, "dtype", "")),
            "batch_size": str(self.batch_size),
            "batch_sizes": list(getattr(lm, "batch_sizes", {}).values()),
            "device": str(getattr(model, "device", "")),
            "limit": self.limit,
            "bootstrap_iters": self.bootstrap_iters,
            "apply_chat_template": self.apply_chat_template,
            "random_seed": RANDOM_SEED,
            "numpy_seed": NUMPY_SEED,
            "torch_seed": TORCH_SEED,
            "fewshot_seed": FEWSHOT_SEED,
        }


def settings_dict(
    tasks: list[str],
    id_tasks: list[str],
    limit: int | float | None,
    apply_chat_template: bool | str,
    model_args: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The settings a per-checkpoint file records (sorted, so option order never matters;
    the limit as core/cli_args.parse_limit reads it, so 5, 5.0 and "5" are one setting)."""
    limit = parse_limit(limit)
    return {
        "tasks": sorted(set(tasks)),
        "id_tasks": sorted(set(id_tasks)),
        "limit": limit,
        "apply_chat_template": apply_chat_template,
        "model_args": {k: str(v) for k, v in sorted((model_args or {}).items())},
    }


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``mps`` on Apple silicon, else ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"
