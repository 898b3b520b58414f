"""What a ``cpi`` command prints on bad input: exactly one stderr line
``cpi <command>: error: <what> (<fix>)``, written by the command's own check."""

from __future__ import annotations


def one_error_line(err: str, command: str) -> str:
    """Assert that ``err`` (captured stderr) is one non-empty line ``cpi <command>: error: ...``
    and not run_entry's catch-all for an uncaught exception (which points at CPI_DEBUG);
    return that line."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"cpi {command}: error: ")
    assert "CPI_DEBUG" not in lines[0]  # not the catch-all of an uncaught exception
    return lines[0]
