"""Hub revisions: the one owner of turning ``ORG/NAME`` plus branch names into local folders.

Released training trajectories (Pythia's ``step1000`` ... ``step143000``, OLMo's
``stage1-step1000-tokens5B`` ...) are branches of one hub repository. A sweep over them needs,
per revision, the commit it points to (what a result is keyed by) and a local folder of that
commit's files. Both come from huggingface_hub's cache (``$HF_HUB_CACHE``, by default
``~/.cache/huggingface/hub``), whose layout is::

    models--ORG--NAME/refs/<branch or tag>     a text file holding the commit hash
    models--ORG--NAME/snapshots/<commit>/...   that commit's files (links into blobs/)

Online, ``snapshot_download`` resolves the name on the hub and fills the cache; offline
(``HF_HUB_OFFLINE=1``), the names are read from ``refs/`` and nothing is fetched, so an
uncached revision is an error naming it. Listing the revisions that match a pattern uses the
hub's branch and tag list online, and the ``refs/`` folder offline.

The step of a revision is parsed from its name (:func:`step_from_name`): the number after
``step`` when the name holds one (``stage1-step1000-tokens5B`` -> 1000, ``global_step500``
-> 500), else the last number in it (``checkpoint-200`` -> 200, ``iter_0001000`` -> 1000).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import CPIError, failure_reason

_STEP_RE = re.compile(r"step[_-]?(\d+)", re.IGNORECASE)
_NUMBER_RE = re.compile(r"\d+")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# The files a causal LM needs (weights, configs, tokenizer, chat template, remote code):
# optimizer states, training arguments and other formats in a repo are not downloaded.
_MODEL_FILES = [
    "*.json",
    "*.safetensors",
    "pytorch_model*.bin",
    "adapter_model.bin",
    "*.model",
    "*.txt",
    "*.jinja",
    "*.tiktoken",
    "*.py",
]


@dataclass(frozen=True)
class Revision:
    """One resolved revision of a hub repo.

    Attributes:
        repo_id: ``ORG/NAME``.
        name: the branch, tag or commit as asked.
        commit: the 40-hex commit it points to now.
        folder: the local snapshot folder of that commit.
    """

    repo_id: str
    name: str
    commit: str
    folder: str

    def origin(self) -> dict[str, str]:
        """What a result made from this revision records (see evaluation/provenance.py)."""
        return {"hub_id": self.repo_id, "revision": self.name, "commit": self.commit}


def step_from_name(name: str) -> int | None:
    """The training step a revision name encodes (module docstring), or None."""
    found = _STEP_RE.findall(name)
    if found:
        return int(found[-1])
    numbers = _NUMBER_RE.findall(name)
    return int(numbers[-1]) if numbers else None


def is_commit(name: str) -> bool:
    """A full 40-hex commit hash (its digits are no step)."""
    return bool(_COMMIT_RE.match(name))


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as huggingface_hub reads it."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def cache_folder(repo_id: str) -> Path:
    """``$HF_HUB_CACHE/models--ORG--NAME``."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    return Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")


def cached_refs(repo_id: str) -> dict[str, str]:
    """Branch and tag names -> commit, as the local cache recorded them (``refs/``; pull
    request refs ``refs/pr/N`` left out)."""
    refs = cache_folder(repo_id) / "refs"
    if not refs.is_dir():
        return {}
    out: dict[str, str] = {}
    for path in sorted(refs.rglob("*")):
        name = path.relative_to(refs).as_posix()
        if path.is_file() and not name.startswith("pr/"):
            out[name] = path.read_text(encoding="utf-8").strip()
    return out


def hub_refs(repo_id: str) -> dict[str, str]:
    """Branch and tag names -> commit: from the hub, or offline from the cache."""
    if hub_offline():
        return cached_refs(repo_id)
    from huggingface_hub import HfApi

    try:
        refs = HfApi().list_repo_refs(repo_id)
    except Exception as err:  # noqa: BLE001 - any hub failure is one line for the user
        raise CPIError(
            f"--model {repo_id}: cannot list its branches ({failure_reason(err)}); check the "
            "name, or set "
            "HF_HUB_OFFLINE=1 to use the local hub cache"
        ) from None
    return {r.name: r.target_commit for r in [*refs.branches, *refs.tags]}


def match_refs(repo_id: str, pattern: str, refs: dict[str, str]) -> list[str]:
    """The names in ``refs`` matching a glob (``step*``); an error when none does."""
    hits = sorted(n for n in refs if fnmatch.fnmatchcase(n, pattern))
    if not hits:
        where = f"the local hub cache ({cache_folder(repo_id)})" if hub_offline() else "the hub"
        shown = ", ".join(sorted(refs)[:8]) or "none"
        raise CPIError(
            f"--revisions {pattern!r}: no branch or tag of {repo_id} in {where} matches "
            f"(it has: {shown}); check the pattern"
        )
    return hits


def resolve(repo_id: str, name: str, flag: str = "--revisions") -> Revision:
    """The commit ``name`` points to and its local folder (downloaded when online)."""
    from huggingface_hub import snapshot_download

    offline = hub_offline()
    try:
        folder = snapshot_download(
            repo_id, revision=name, allow_patterns=_MODEL_FILES, local_files_only=offline
        )
    except Exception as err:  # noqa: BLE001 - one line naming the revision
        if offline:
            raise CPIError(
                f"{flag} {name}: no such revision of {repo_id} in the local hub cache "
                f"({cache_folder(repo_id)}, HF_HUB_OFFLINE=1); download it first, or unset "
                "HF_HUB_OFFLINE"
            ) from None
        raise CPIError(
            f"{flag} {name}: cannot get revision {name} of {repo_id} "
            f"({failure_reason(err)}); check the name"
        ) from None
    commit = Path(folder).name
    if not _COMMIT_RE.match(commit):  # not a snapshot folder: cannot key results by it
        raise CPIError(f"{flag} {name}: {folder} is not a hub cache snapshot (no commit hash)")
    return Revision(repo_id, name, commit, str(Path(folder)))


def resolve_spec(spec: str, flag: str) -> Revision:
    """``ORG/NAME`` or ``ORG/NAME@REVISION`` (default ``main``) resolved as :func:`resolve`."""
    repo, _, revision = spec.strip().partition("@")
    if repo.count("/") != 1:
        raise CPIError(f"{flag} {spec!r}: not a hub model id ORG/NAME[@REVISION]")
    return resolve(repo, revision or "main", flag=flag)
