"""Screenshot of an HTML leaderboard (``cpi compare --format html``) for the docs.

Renders the board of PATHS (anything ``cpi compare`` takes: results files, lm-eval output
folders, swept run folders) to HTML, opens it in headless Chromium
(``tests/helpers/browser.py``: Debian's chromium + chromedriver) and saves the whole
page as a PNG. The figure in docs/figures/board.png was made with::

    cpi demo --quick --out /tmp/demoq
    cd /tmp/demoq/seed-0 && python $REPO/benchmarks/board_screenshot.py standard \\
        context_only context_critical_50 cf_augment full --out $REPO/docs/figures/board.png

Extra ``cpi compare`` options go after ``--``, e.g. ``-- --allow-settings-mismatch``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from cpi_bench.harness_ext import cli
from cpi_bench.harness_ext.core.errors import CPIError, run_entry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/helpers, shared with the tests
from tests.helpers.browser import screenshot  # noqa: E402


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="what cpi compare compares")
    parser.add_argument("--out", required=True, type=Path, help="the PNG to write")
    parser.add_argument("--run_step", default="final", help="for run folders: final/peak/N")
    parser.add_argument("--width", type=int, default=1400, help="page width (CSS pixels)")
    parser.add_argument("--html", type=Path, default=None, help="also keep the HTML here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cpi-board-") as tmp:
        html = args.html or Path(tmp) / "board.html"
        code = cli.main(
            ["compare", *args.paths, "--run_step", args.run_step, "--format", "html",
             "--output", str(html), *extra]
        )  # fmt: skip
        if code != 0:
            raise CPIError(f"cpi compare exited {code}")
        screenshot(html, args.out, width=args.width, height=600)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_entry("board_screenshot", main, sys.argv[1:]))
