"""What a sweep evaluates and where it writes: the three sources of ``cpi sweep``.

* ``cpi sweep RUN_DIR``: a run folder (``cpi_run.json`` of ``cpi train``, or any folder of
  ``checkpoint-N`` with ``--base_model``); results go into ``RUN_DIR`` (or ``--out``).
* ``cpi sweep --model ORG/NAME --revisions step1000,step2000 --out DIR``: hub revisions of one
  repo (``models/revisions.py``); each revision a row, its step parsed from its name or given
  as ``NAME=STEP``; results keyed by the commit each revision resolves to.
* ``cpi sweep --checkpoints FILE.yaml --out DIR``: a list of checkpoints of any trainer::

      base_model: ../base              # relative paths are relative to the file's folder
      checkpoints:
        - {step: 100, path: run/ckpt-100}        # a full model or a peft adapter folder
        - {step: 200, hub: org/model-sft@main}   # or a hub model (ORG/NAME[@REVISION])

Every source gives the same thing, a :class:`SweepSource`: the base model (step 0 of a run),
the targets in step order, the ``run`` block of ``inversion.json`` and the output folder, so
the output of each is a normal swept-run folder for ``cpi table``, ``flips``, ``compare`` and
``gate``. Every input problem raises :class:`CPIError` (one line naming the flag, file or
field) before any model is loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.cli_args import split_list
from ..core.constants import ADAPTER_CONFIG, CHECKPOINT_PREFIX, EVAL_DIR
from ..core.errors import CPIError
from ..core.files import check_writable, claim_output_dir, read_yaml
from ..core.run_folder import (
    Target,
    checkpoint_problem,
    list_checkpoints,
    read_manifest,
    resolve_base,
)
from . import guards

Discover = Callable[..., list[Target]]  # (run_dir, base_model, include_base, err) -> targets


@dataclass
class SweepSource:
    """What a sweep evaluates (see the module docstring)."""

    out_dir: Path  # where eval/ and inversion.* go
    base_model: str  # step 0's model and the adapters' base: a folder or hub id
    targets: list[Target]
    run: dict[str, Any]  # inversion.json's "run" block
    manifest: dict[str, Any] = field(default_factory=dict)  # cpi_run.json ({} for others)
    run_dir: Path | None = None  # the run folder read (None: --model, --checkpoints)
    origins: dict[int, dict[str, Any]] = field(default_factory=dict)  # step -> hub revision
    keeps_base: bool = False  # adapters may follow: keep the base model loaded


def source_kind(args: Any) -> str:
    """``run``, ``hub`` or ``list`` from the flags; a wrong combination is an error."""
    given = [
        name
        for name, value in (
            ("RUN_DIR", args.run_dir),
            ("--model", args.model),
            ("--checkpoints", args.checkpoints),
        )
        if value
    ]
    if len(given) != 1:
        got = " and ".join(given) or "none"
        raise CPIError(
            f"give one of RUN_DIR, --model ORG/NAME --revisions ... or --checkpoints FILE.yaml "
            f"(got {got})"
        )
    kind = {"RUN_DIR": "run", "--model": "hub", "--checkpoints": "list"}[given[0]]
    for flag, value, needs in (
        ("--revisions", args.revisions, "hub"),
        ("--base_revision", args.base_revision, "hub"),
        ("--follow", args.follow, "run"),
    ):
        if value and kind != needs:
            what = "--model ORG/NAME" if needs == "hub" else "a RUN_DIR"
            raise CPIError(f"{flag} needs {what} (it does not apply to {given[0]})")
    if kind == "hub" and not args.revisions:
        raise CPIError("--model needs --revisions (e.g. --revisions 'step*' or step1000,step2000)")
    if kind != "run" and not args.out:
        raise CPIError(f"{given[0]} needs --out DIR (the folder the results go to)")
    return kind


def discover_targets(
    run_dir: Path, base_model: str, include_base: bool = True, err: Any = None
) -> list[Target]:
    """Step 0 (the base) and every complete ``checkpoint-N`` folder, in step order; an
    incomplete checkpoint is skipped with a warning naming what it lacks."""
    checkpoints, warnings = list_checkpoints(run_dir)
    for line in warnings:
        print(f"cpi sweep: warning: {line}", file=err or sys.stderr)
    return ([Target(0, "base", base_model, "base")] if include_base else []) + checkpoints


def out_folder(args: Any, default: Path | None) -> Path:
    """The output folder: ``--out`` (claimed: created with cpi's marker, or one cpi made),
    else ``default`` (a run folder, checked writable); nothing is created by a dry run."""
    if args.out and not (default is not None and _same_dir(Path(args.out), default)):
        out = Path(args.out).expanduser()
        if not args.dry_run:  # the one claim (shared: sweeps split the steps themselves)
            with claim_output_dir(out, "sweep", "--out", shared=True):
                pass
        return out
    assert default is not None  # source_kind: only a run folder has no --out
    if not args.dry_run:
        check_writable(default / EVAL_DIR, "RUN_DIR")
    return default


def _same_dir(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()


def _kind(folder: str) -> str:
    return "adapter" if (Path(folder) / ADAPTER_CONFIG).is_file() else "full"


# ----------------------------------------------------------------------------- run folder


def _run_source(args: Any, err: Any, discover: Discover | None) -> SweepSource:
    """A ``cpi train`` folder, or another trainer's checkpoint-N folders with --base_model."""
    run_dir = Path(args.run_dir).expanduser()
    if not run_dir.is_dir():
        raise CPIError(f"{run_dir}: no such run folder (give the --output_dir of cpi train)")
    manifest = read_manifest(run_dir, args.base_model)
    base = resolve_base(manifest["base_model"], run_dir, from_cli=bool(args.base_model))
    targets = (discover or discover_targets)(run_dir, base, not args.skip_base, err)
    if discover is None and not any(t.step > 0 for t in targets):
        print(
            f"cpi sweep: note: {run_dir} has no complete {CHECKPOINT_PREFIX}N folders; "
            "evaluating the base model only",
            file=err,
        )
    out_dir = out_folder(args, run_dir)
    guards.check_sweep_inputs(
        run_dir, manifest, base, targets, bool(args.base_model), args.use_cache, out_dir
    )
    keys = ("finetune", "dataset", "template", "seed")
    run = {
        "name": run_dir.resolve().name,
        "base_model": manifest.get("base_model"),
        **{k: manifest.get(k) for k in keys if k in manifest},
    }
    lora = manifest.get("finetune") == "lora"
    return SweepSource(out_dir, base, targets, run, manifest, run_dir, keeps_base=lora)


# ----------------------------------------------------------------------------- hub revisions


def parse_step(value: Any, where: str, minimum: int = 0) -> int:
    """A training step: a whole number >= ``minimum`` (text from a flag, or a YAML int)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CPIError(f"{where}: step {value!r} is not a whole number >= {minimum}")
    return value


def revision_specs(text: str, flag: str) -> list[tuple[str, int | None]]:
    """``a,b=200,step*`` -> ``[("a", None), ("b", 200), ("step*", None)]``."""
    out = []
    for item in split_list(text):
        name, eq, step = item.partition("=")
        name = name.strip()
        if not name:
            raise CPIError(f"{flag} {item!r}: no revision name before '='")
        out.append((name, parse_step(step, f"{flag} {item}") if eq else None))
    return out


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


def _expand(repo: str, specs: list[tuple[str, int | None]]) -> list[tuple[str, int | None]]:
    """Patterns replaced by the matching branch and tag names (each name once)."""
    from ..models import revisions

    refs: dict[str, str] | None = None
    out: dict[str, int | None] = {}
    for name, step in specs:
        if not _is_pattern(name):
            out.setdefault(name, step)
            continue
        if step is not None:
            raise CPIError(f"--revisions {name}={step}: a pattern cannot take one step")
        refs = revisions.hub_refs(repo) if refs is None else refs
        for hit in revisions.match_refs(repo, name, refs):
            out.setdefault(hit, None)
    return list(out.items())


def _step_of(name: str, step: int | None, flag: str, default: int | None = None) -> int:
    """A revision's step: given, else parsed from its name (models/revisions.py's rule)."""
    from ..models import revisions

    if step is not None:
        return step
    parsed = None if revisions.is_commit(name) else revisions.step_from_name(name)
    if parsed is None and default is None:
        raise CPIError(f"{flag} {name}: no step in the name; give it as {name}=STEP")
    return parsed if parsed is not None else int(default or 0)


def _revision_steps(args: Any) -> tuple[tuple[str, int], list[tuple[str, int]]]:
    """((base name, step), [(name, step)...]) in step order, every step once."""
    names = _expand(args.model, revision_specs(args.revisions, "--revisions"))
    rows = [(n, _step_of(n, s, "--revisions")) for n, s in names]
    if args.base_revision:
        specs = revision_specs(args.base_revision, "--base_revision")
        if len(specs) != 1 or _is_pattern(specs[0][0]):
            raise CPIError(f"--base_revision {args.base_revision!r}: give one revision name")
        base = (specs[0][0], _step_of(*specs[0], "--base_revision", default=0))
        rows = [r for r in rows if r[0] != base[0]]
        later = [r for r in rows if r[1] <= base[1]]
        if later:
            raise CPIError(
                f"--base_revision {base[0]} (step {base[1]}): every other revision needs a "
                f"larger step ({later[0][0]} has step {later[0][1]}); give steps as NAME=STEP"
            )
    else:
        rows.sort(key=lambda r: r[1])
        base, rows = rows[0], rows[1:]
    seen: dict[int, str] = {base[1]: base[0]}
    for name, step in sorted(rows, key=lambda r: r[1]):
        if step in seen:
            raise CPIError(
                f"--revisions: {seen[step]} and {name} both have step {step} (give each "
                "revision its own step as NAME=STEP, or leave one out)"
            )
        seen[step] = name
    return base, sorted(rows, key=lambda r: r[1])


def _hub_source(args: Any, err: Any, discover: Discover | None) -> SweepSource:
    """Revisions of one hub repo, each resolved to its commit and local snapshot."""
    from ..models import revisions

    (base_name, base_step), rows = _revision_steps(args)
    flag = "--base_revision" if args.base_revision else "--revisions"
    base = revisions.resolve(args.model, base_name, flag)
    resolved = [(revisions.resolve(args.model, n), s) for n, s in rows]
    targets = [] if args.skip_base else [Target(base_step, base_name, base.folder, "base")]
    targets += [Target(s, r.name, r.folder, _kind(r.folder)) for r, s in resolved]
    origins = {base_step: base.origin(), **{s: r.origin() for r, s in resolved}}
    out_dir = out_folder(args, None)
    guards.check_base_model(base.folder, f"{flag} {base_name}", targets)
    guards.check_outputs_are_ours(out_dir, targets)
    guards.check_cache_dir(args.use_cache)
    run = {
        "name": args.model,
        "base_model": f"{args.model}@{base_name}",
        "source": "hub revisions",
        "revisions": {str(s): o for s, o in sorted(origins.items())},
    }
    return SweepSource(out_dir, base.folder, targets, run, origins=origins)


# ----------------------------------------------------------------------------- checkpoint list

_LIST_FIELDS = ("base_model", "checkpoints")
_ENTRY_FIELDS = ("step", "path", "hub")
_LIST_FIX = "write 'base_model: PATH' and 'checkpoints:' with one '- {step: N, path: PATH}' each"


def _list_base(args: Any, data: dict[str, Any], file: Path) -> tuple[str, dict[str, Any] | None]:
    """(base model folder or hub snapshot, its hub origin or None): ``--base_model`` (relative
    to the current folder) or the file's ``base_model`` (relative to the file's folder)."""
    if args.base_model:
        return _model_ref(args.base_model, Path.cwd(), "--base_model")
    value = data.get("base_model")
    if not isinstance(value, str) or not value.strip():
        raise CPIError(
            f"{file}: field 'base_model' is missing or not a path (got {value!r}); give the "
            "model the checkpoints were trained from, or pass --base_model"
        )
    return _model_ref(value, file.resolve().parent, f"{file}: field 'base_model'")


def _model_ref(text: str, anchor: Path, where: str) -> tuple[str, dict[str, Any] | None]:
    """A local model folder (relative to ``anchor``), or a hub model ``ORG/NAME[@REVISION]``
    resolved to its commit's snapshot."""
    from ..models import revisions
    from ..models.source import resolve_model

    local = Path(text).expanduser()
    full = local if local.is_absolute() else anchor / local
    if full.exists():
        return str(full.resolve()), None
    try:
        src = resolve_model(text.partition("@")[0], base_dir=anchor)
    except CPIError as err:
        raise CPIError(f"{where}: {err}") from None
    if src.kind != "hub":
        return src.path, None
    rev = revisions.resolve_spec(text, where)
    return rev.folder, rev.origin()


def _list_entry(entry: Any, i: int, file: Path) -> tuple[int, str, Any, str]:
    """(step, model folder, hub origin or None, label) of ``checkpoints[i]``."""
    where = f"{file}: checkpoints[{i}]"
    if not isinstance(entry, dict):
        raise CPIError(f"{where} is not a mapping ({_LIST_FIX})")
    unknown = sorted(set(map(str, entry)) - set(_ENTRY_FIELDS))
    if unknown:
        raise CPIError(f"{where}: unknown field {unknown[0]!r} (fields: step, path or hub)")
    if "step" not in entry:
        raise CPIError(f"{where}: field 'step' is missing ({_LIST_FIX})")
    step = parse_step(entry["step"], f"{where}.step", minimum=1)
    if ("path" in entry) == ("hub" in entry):
        raise CPIError(f"{where}: give exactly one of 'path' (a folder) and 'hub' (ORG/NAME)")
    key = "path" if "path" in entry else "hub"
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise CPIError(f"{where}.{key}: not a path (got {value!r})")
    if key == "hub":
        from ..models import revisions

        rev = revisions.resolve_spec(value, f"{where}.hub")
        return step, rev.folder, rev.origin(), value.strip()
    local = Path(value).expanduser()
    folder = local if local.is_absolute() else file.resolve().parent / local
    if not folder.is_dir():
        raise CPIError(
            f"{where}.path: {folder} does not exist (a relative path is relative to the "
            "file's folder)"
        )
    problem = checkpoint_problem(folder)
    if problem:
        raise CPIError(f"{where}.path: {folder} is not a complete checkpoint ({problem})")
    return step, str(folder.resolve()), None, folder.resolve().name


def read_checkpoint_list(file: Path) -> tuple[dict[str, Any], list[tuple[int, str, Any, str]]]:
    """The parsed ``--checkpoints`` file and its entries in step order (module docstring)."""
    data = read_yaml(file, "--checkpoints", _LIST_FIX)
    if not isinstance(data, dict):
        raise CPIError(f"{file}: expected a mapping with base_model and checkpoints ({_LIST_FIX})")
    unknown = sorted(set(map(str, data)) - set(_LIST_FIELDS))
    if unknown:
        raise CPIError(f"{file}: unknown field {unknown[0]!r} (fields: base_model, checkpoints)")
    items = data.get("checkpoints")
    if not isinstance(items, list) or not items:
        raise CPIError(f"{file}: field 'checkpoints' must be a non-empty list ({_LIST_FIX})")
    entries = [_list_entry(e, i, file) for i, e in enumerate(items)]
    first: dict[int, int] = {}
    for i, (step, *_) in enumerate(entries):
        if step in first:
            raise CPIError(
                f"{file}: checkpoints[{i}].step: step {step} is also checkpoints[{first[step]}]'s "
                "(give each checkpoint its own step)"
            )
        first[step] = i
    return data, sorted(entries, key=lambda e: e[0])


def _list_source(args: Any, err: Any, discover: Discover | None) -> SweepSource:
    """The checkpoints a ``--checkpoints`` file lists, full models or peft adapters."""
    file = Path(args.checkpoints).expanduser()
    data, entries = read_checkpoint_list(file)
    base, base_origin = _list_base(args, data, file)
    targets = [] if args.skip_base else [Target(0, "base", base, "base")]
    targets += [Target(s, label, path, _kind(path)) for s, path, _, label in entries]
    origins = {s: o for s, _, o, _ in entries if o}
    if base_origin:
        origins[0] = base_origin
    out_dir = out_folder(args, None)
    where = "--base_model" if args.base_model else f"{file}: field 'base_model'"
    guards.check_base_model(base, where, targets)
    if not args.base_model:  # --base_model says "this base, on purpose"
        guards.check_adapters_match_base(targets, base)
    guards.check_outputs_are_ours(out_dir, targets)
    guards.check_cache_dir(args.use_cache)
    run = {
        "name": out_dir.resolve().name,
        "base_model": args.base_model or data.get("base_model"),
        "source": "checkpoint list",
        "checkpoints_file": str(file.resolve()),
    }
    keeps = any(t.kind == "adapter" for t in targets)
    return SweepSource(out_dir, base, targets, run, origins=origins, keeps_base=keeps)


# kind -> the function that builds its SweepSource (see source_kind)
SOURCES: dict[str, Callable[[Any, Any, Discover | None], SweepSource]] = {
    "run": _run_source,
    "hub": _hub_source,
    "list": _list_source,
}


def plan_source(args: Any, err: Any, discover: Discover | None = None) -> SweepSource:
    """The sweep's source from its flags (``discover``: how a run folder's checkpoints are
    listed; ``cpi sweep --follow`` lists only those a live trainer has finished writing)."""
    return SOURCES[source_kind(args)](args, err, discover)
