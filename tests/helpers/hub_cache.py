"""A local hub cache of model revisions, for tests of ``cpi sweep --model ... --revisions``
without a network: the layout huggingface_hub's ``snapshot_download`` writes and reads
offline (``HF_HUB_OFFLINE=1``)::

    HF_HUB_CACHE/models--ORG--NAME/blobs/<sha256 of the file>     the file's bytes
    HF_HUB_CACHE/models--ORG--NAME/snapshots/<commit>/<file>      a relative link to its blob
    HF_HUB_CACHE/models--ORG--NAME/refs/<branch>                  the commit, as text

Commits are made up (the SHA-1 of the folder's file hashes), as stable as the files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cpi_bench.harness_ext.core.files import file_sha256


def commit_of(folder: Path) -> str:
    """A 40-hex commit id for a model folder's contents."""
    h = hashlib.sha1()
    for f in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        h.update(f"{f.name}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


def add_revision(cache: Path, repo_id: str, branch: str, folder: Path) -> str:
    """Put the files of ``folder`` into ``cache`` as revision ``branch`` of ``repo_id``
    (``refs/<branch>`` -> a snapshot of links into ``blobs/``); returns the commit."""
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    commit = commit_of(folder)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for f in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        blob = repo / "blobs" / file_sha256(f)
        if not blob.exists():
            blob.write_bytes(f.read_bytes())
        link = snapshot / f.name
        if not link.exists():
            link.symlink_to(os.path.relpath(blob, snapshot))
    ref = repo / "refs" / branch
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit, encoding="utf-8")
    return commit
