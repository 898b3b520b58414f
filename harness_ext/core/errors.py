"""The one error type of cpi-bench, and the one place that turns it into an exit status.

Every bad input anywhere (a flag, a file, a field, a data row) raises :class:`CPIError` with
a message that names what is wrong and says how to fix it. Entry points never print
tracebacks for it: :func:`run_entry` prints one line,
``cpi <command>: error: <message>``, and returns the error's exit code (2 for bad input).
``CPI_DEBUG=1`` (or ``--debug`` on the ``cpi`` command line) shows the traceback instead.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable

EXIT_OK = 0
EXIT_FAIL = 1  # a checkpoint failed to evaluate, or the gate found a regression
EXIT_USAGE = 2  # bad input, or any other error
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM)
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (128 + SIGPIPE): `cpi table RUN | head`


class CPIError(Exception):
    """Bad user input (file, field, option) or an unusable environment.

    Args:
        message: one line naming the file/field/flag and, in parentheses or after a
            semicolon, how to fix it.
        exit_code: the process exit status this error ends a command with (2 by default).
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def debug_enabled() -> bool:
    """True when the user asked for tracebacks (``CPI_DEBUG=1``, or ``cpi --debug``)."""
    return os.environ.get("CPI_DEBUG", "") not in ("", "0")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message; when it has none, its cause's (a wrapper
    raised ``from`` another error), else ``TypeName``."""
    text = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    if not text and cause is not None:
        text = str(cause).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def failure_reason(exc: BaseException) -> str:
    """``TypeName: first line`` of an exception: the ``reason`` a failure record (a step of a
    sweep, a failed training run) keeps."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``, a CI timeout, a cluster pre-emption) raised as an exception, so
    that everything a Ctrl-C runs also runs for it: ``finally`` blocks, the trainer marking
    its manifest ``failed``. Only ``kill -9`` still ends a command without any clean-up."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(f"terminated by signal {signum}")


def catch_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` in this process (main thread only, and only
    where nobody installed a handler of their own)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _raise_terminated)


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null, so the interpreter's final flush does
    not raise again (Python's documented way to end quietly on SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _prog(command: str) -> str:
    """How a message names its command: ``cpi sweep``, or ``cpi`` itself."""
    return f"cpi {command}" if command else "cpi"


def run_entry(command: str, entry: Callable[[list[str]], int | None], argv: list[str]) -> int:
    """Run one subcommand's ``main(argv)`` and map every way it can end to an exit status.

    :class:`CPIError` -> its message on one line and its exit code; any other exception ->
    one line naming the exception type and how to see the traceback, exit 2; Ctrl-C -> 130;
    SIGTERM -> 143 (after the same clean-up as Ctrl-C, see :class:`Terminated`).
    """
    catch_sigterm()
    try:
        return int(entry(argv) or 0)
    except CPIError as err:
        if debug_enabled():
            traceback.print_exc()
        print(f"{_prog(command)}: error: {one_line(err)}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt as err:
        what = "terminated" if isinstance(err, Terminated) else "interrupted"
        print(f"{_prog(command)}: {what} (finished work is kept; rerun to resume)", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(err, Terminated) else EXIT_INTERRUPTED
    except SystemExit:
        raise
    except Exception as err:  # noqa: BLE001 - the last line of defence: never a bare traceback
        if debug_enabled():
            traceback.print_exc()
        print(
            f"{_prog(command)}: error: {type(err).__name__}: {one_line(err)} "
            "(rerun with CPI_DEBUG=1 for the traceback; if the input is valid, please report it)",
            file=sys.stderr,
        )
        return EXIT_USAGE


def install_excepthook() -> None:
    """In processes we do not own (``lm_eval`` building our tasks), print an uncaught
    :class:`CPIError` as one line instead of lm-eval's 40-line traceback."""
    previous = sys.excepthook
    if getattr(previous, "_cpi", False):
        return

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, CPIError) and not debug_enabled():
            print(f"cpi data error: {exc}", file=sys.stderr)
        else:
            previous(exc_type, exc, tb)

    hook._cpi = True  # type: ignore[attr-defined]
    sys.excepthook = hook
