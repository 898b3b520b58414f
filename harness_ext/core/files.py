"""How cpi-bench writes, reads, locks, owns and identifies files: the one owner of these rules.

* Atomic writes: a hidden temporary file in the same folder, fsync'ed, then ``os.replace``:
  a reader sees the old file or the new one, never a part, and a process killed at any moment
  (``kill -9`` included) leaves at most a stray ``.<name>.<pid>.tmp`` that only a later run
  *of a dead pid* removes (a concurrent writer's temporary file is never touched).
* Content fingerprints: SHA-256 of a file's bytes, cached by (path, size, mtime, inode) so a
  re-run does not re-hash gigabytes; the key of every "may this result be reused" decision
  (which files make a model: core/model_files.py; a model's fingerprint:
  harness_ext/models/source.py ``model_fingerprint``).
* Ownership: folders a command creates carry a ``.cpi_owner`` marker; a command deletes or
  overwrites only inside folders that carry it, and refuses a non-empty folder without it.
  Every command claims its output folder through :func:`claim_output_dir`, which holds the
  marker under an exclusive lock while the command runs (one wins, the other exits 2).
* Locks: ``flock`` on a lock file; the OS releases it when the holder dies, so a killed
  process never leaves a lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import CPIError, one_line

TMP_SUFFIX = ".tmp"
OWNER_MARKER = ".cpi_owner"
CLAIM_NOTE = ".cpi_claim.json"  # who holds a folder's claim now (command, pid)
_HASH_CHUNK = 1 << 20  # bytes read per update when hashing


# ----------------------------------------------------------------------------- atomic writes


def _json_default(obj: Any) -> Any:
    """numpy scalars, sets, anything else as text (what lm-eval's own writer does)."""
    try:
        import numpy as np

        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return float(obj)
    except ImportError:  # pragma: no cover - numpy ships with every install
        pass
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    return str(obj)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}{TMP_SUFFIX}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dump_json(obj: Any) -> str:
    """Stable, readable JSON (indent 2, keys in insertion order, UTF-8 kept)."""
    return json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, dump_json(obj))


def write_output(text: str, output: str | os.PathLike | None) -> None:
    """A report command's result: into ``output`` (``--output``, atomically), else stdout."""
    if output:
        atomic_write_text(output, text)
    else:
        sys.stdout.write(text)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def _writer_pid(name: str) -> int | None:
    """The pid in ``.<name>.<pid>.<thread>.tmp`` (see ``_tmp_name``), or None."""
    parts = name[: -len(TMP_SUFFIX)].split(".")
    if len(parts) >= 4 and parts[-1].isdigit() and parts[-2].isdigit():
        return int(parts[-2])
    return None


def remove_stale_tmp(folder: str | os.PathLike) -> None:
    """Delete temporary files left by *dead* writers of this tool (``.<name>.<pid>...tmp``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for tmp in folder.glob(f".*{TMP_SUFFIX}"):
        pid = _writer_pid(tmp.name)
        if pid is None or pid == os.getpid() or _pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Parse ``path`` or raise :class:`CPIError` with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise CPIError(f"{path}: no such {what} (check the path)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CPIError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}); is it a {what}?"
        ) from None
    except UnicodeDecodeError:
        raise CPIError(f"{path}: not UTF-8 text; is it a {what}?") from None
    except OSError as err:
        raise CPIError(f"{path}: cannot read ({err.strerror or err})") from None


def read_jsonl(path: str | os.PathLike, what: str = "JSON Lines file") -> list[Any]:
    """Parse every non-blank line of ``path`` (JSON Lines) or raise :class:`CPIError` naming
    ``what`` (a flag or a kind of file), the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise CPIError(f"{what} {path}: no such file (check the path)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = err.object.count(b"\n", 0, err.start) + 1
        raise CPIError(
            f"{what} {path}: line {line} is not UTF-8 text (re-save the file as UTF-8)"
        ) from None
    except OSError as err:
        raise CPIError(f"{what} {path}: cannot read ({err.strerror or err})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise CPIError(
                    f"{what} {path}: line {n} is not valid JSON ({err.msg}); fix or remove "
                    "that line (JSON Lines: one object per line)"
                ) from None
    return rows


def read_yaml(path: str | os.PathLike, flag: str, fix: str) -> Any:
    """Parse a YAML file a user gave with ``flag`` or raise :class:`CPIError` naming it (and
    the line and column of a syntax error); ``fix`` says how to repair a malformed file."""
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CPIError(f"{flag} {path}: no such file (check the path)") from None
    except UnicodeDecodeError:
        raise CPIError(f"{flag} {path} is not UTF-8 text; re-save it as UTF-8") from None
    except OSError as err:
        raise CPIError(f"{flag} {path}: cannot read ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or one_line(err)
        raise CPIError(f"{flag} {path}{where} is not valid YAML ({problem}); {fix}") from None


# ----------------------------------------------------------------------------- fingerprints

_memo: dict[tuple[str, int, int, int, int], str] = {}


CACHE_ENV = "CPI_CACHE_DIR"


def cache_dir(kind: str) -> Path:
    """The folder of one kind of cpi cache (``file_hashes``, ``context_critical``):
    ``$CPI_CACHE_DIR/<kind>``, by default under ``~/.cache/cpi-bench`` (``$XDG_CACHE_HOME``
    when set). Every cache lives under this one root, so one variable moves them all."""
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cpi-bench"
    )
    return Path(root) / kind


def _cache_root() -> Path:
    return cache_dir("file_hashes")


def _cache_entry(disk_key: str) -> Path:
    """One small file per (path, size, mtime, ctime, inode) key: a lookup reads ~64 bytes and a
    new hash writes one file (atomically), so the cost does not grow with the cache and
    concurrent runs never lose each other's entries."""
    name = hashlib.sha256(disk_key.encode()).hexdigest()
    return _cache_root() / name[:2] / name


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes, cached by (path, size, mtime, ctime, inode) in
    memory and under ``$CPI_CACHE_DIR/file_hashes/`` so a re-run does not re-read big weights.
    ctime is in the key because any write changes it and no tool can set it back (mtime can)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if key in _memo:
        return _memo[key]
    entry = _cache_entry("|".join(map(str, key)))
    try:
        digest = entry.read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        digest = ""
    if len(digest) != 64:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
                h.update(chunk)
        digest = h.hexdigest()
        with contextlib.suppress(OSError):
            entry.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(entry, digest)
    _memo[key] = digest
    return digest


def fingerprint_files(paths: list[Path], root: Path | None = None) -> str:
    """One digest over several files' names (relative to ``root``) and contents."""
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        name = str(p.relative_to(root)) if root is not None else p.name
        h.update(f"{name}\0{file_sha256(p)}\n".encode())
    return h.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- ownership


def owned_by_cpi(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` carries cpi's owner marker (or the one ``cpi models fetch`` wrote
    before all commands shared ``.cpi_owner``)."""
    return (Path(folder) / OWNER_MARKER).is_file()


def _user_entries(folder: Path) -> list[str]:
    """What a folder holds apart from cpi's own hidden files (``.cpi*``)."""
    return sorted(e.name for e in folder.iterdir() if not e.name.startswith(".cpi"))


def check_claimable(
    folder: str | os.PathLike,
    flag: str,
    ours: Callable[[Path], bool] | None = None,
) -> Path:
    """Raise :class:`CPIError` unless a command may write in ``folder``: it is absent, empty,
    carries cpi's marker, or ``ours(folder)`` says an older cpi version wrote it (e.g. a run
    folder with ``cpi_run.json``). Creates nothing: usable to refuse before slow work."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CPIError(f"{flag} {folder}: is a file, not a folder (choose another path)")
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CPIError(f"{flag} {folder}: {parent} is a file (choose another path)")
            break
    if not folder.is_dir() or owned_by_cpi(folder) or not _user_entries(folder):
        return folder
    if ours is None or not ours(folder):
        raise CPIError(
            f"{flag} {folder}: folder is not empty and was not created by cpi "
            "(choose a new or empty folder; cpi never overwrites files it did not create)"
        )
    return folder


def _open_marker(folder: Path, command: str, details: dict[str, Any] | None) -> int:
    """The marker's file descriptor; created with O_EXCL when absent, so of two commands
    claiming one new folder each writes no marker over the other's."""
    marker = folder / OWNER_MARKER
    try:
        fd = os.open(marker, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return os.open(marker, os.O_RDWR)
    os.write(fd, dump_json({"created_by": f"cpi {command}", **(details or {})}).encode())
    os.fsync(fd)
    return fd


def _holder(folder: Path, wait: float = 1.0) -> str:
    """Who holds a claim, from the note its holder writes right after locking (waiting up
    to ``wait`` seconds for a holder that has just won), for the error message."""
    import time

    deadline = time.monotonic() + wait
    while True:
        try:
            note = json.loads((folder / CLAIM_NOTE).read_text(encoding="utf-8"))
            return f"cpi {note['command']} (pid {note['pid']})"
        except (OSError, ValueError, KeyError, TypeError):
            if time.monotonic() > deadline:
                return "another cpi command"
            time.sleep(0.05)


def _lock_marker(fd: int, folder: Path, flag: str, shared: bool) -> None:
    """flock the marker (shared or exclusive, never waiting) or raise naming the holder."""
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        raise CPIError(
            f"{flag} {folder}: in use by {_holder(folder)}; wait for it to finish or "
            "choose another folder"
        ) from None


@contextlib.contextmanager
def claim_output_dir(
    folder: str | os.PathLike,
    command: str,
    flag: str = "--out",
    ours: Callable[[Path], bool] | None = None,
    details: dict[str, Any] | None = None,
    shared: bool = False,
) -> Iterator[Path]:
    """Make ``folder`` this command's to write in, for as long as the ``with`` block runs.

    The one claim of every command that writes a folder (cpi train, demo, theory,
    tiny-model, models fetch, sweep --out): the folder must be absent, empty, carry the
    ``.cpi_owner`` marker, or be ``ours`` (see :func:`check_claimable`); it is created with
    the marker, and the marker is held under an exclusive ``flock`` until the block ends. So
    of two commands started at the same moment on one folder exactly one proceeds; the other
    raises :class:`CPIError` naming the folder and the holder (exit 2). The OS drops the lock
    when its holder dies, however it dies. Command-specific checks of the folder's contents
    belong inside the block, where no other command can change them. ``shared``: commands
    built to share a folder (sweeps, which split the steps through their own locks) hold it
    together, and only exclusive claimants are refused while they do.
    """
    folder = check_claimable(folder, flag, ours)
    created = False
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
            created = True  # by this claim (not by a concurrent one)
        fd = _open_marker(folder, command, details)
    except OSError as err:
        raise CPIError(f"{flag} {folder}: cannot write there ({err.strerror or err})") from None
    note = folder / CLAIM_NOTE
    try:
        _lock_marker(fd, folder, flag, shared)
        check_writable(folder, flag)
        if not shared:
            atomic_write_json(note, {"command": command, "pid": os.getpid()})
        try:
            yield folder
        except BaseException:
            if created and not _user_entries(folder):  # failed before writing anything:
                shutil.rmtree(folder, ignore_errors=True)  # leave no empty folder behind
            raise
        finally:
            if not shared:
                with contextlib.suppress(OSError):
                    note.unlink()  # still locked: the note is ours
    finally:
        os.close(fd)


def check_writable(folder: str | os.PathLike, flag: str) -> None:
    """Fail now, not after an hour of evaluation, when ``folder`` cannot take a file."""
    folder = Path(folder)
    probe = folder / f".cpi-write-probe.{os.getpid()}{TMP_SUFFIX}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise CPIError(
            f"{flag} {folder}: not writable ({err.strerror or err}); choose a folder you can write"
        ) from None


def check_output_file(
    path: str | os.PathLike, flag: str, inputs: tuple[str | os.PathLike, ...] = ()
) -> Path:
    """Fail now, before any work, when the file a command was told to write (``--output``,
    ``--json``) cannot be written: its folder cannot be created or written, it is a folder,
    or it is one of the command's own input files (which it would overwrite)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise CPIError(f"{flag} {path}: is a folder (give a file name)")
    same = [str(p) for p in inputs if Path(p).exists() and _same_file(path, Path(p))]
    if same:
        raise CPIError(
            f"{flag} {path}: is the input file {same[0]}; writing there would overwrite it "
            "(give another file name)"
        )
    try:
        check_writable(path.parent, flag)
    except CPIError:
        raise CPIError(
            f"{flag} {path}: cannot write there ({path.parent} is not a writable folder; "
            "choose another path)"
        ) from None
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and os.path.samefile(a, b)
    except OSError:
        return False


# ----------------------------------------------------------------------------- locks


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` or raise :class:`CPIError` naming the holder's pid.

    The OS drops the lock when its holder exits, however it exits, so a stale lock is never
    left behind (``flock``; on network filesystems without it, see issue-tracker notes)."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise CPIError(
                f"{what} is locked by pid {holder} ({path}); wait for it to finish, "
                "or stop it and rerun",
                exit_code=2,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
