"""``cpi tasks-path`` and ``cpi register``: how lm-eval finds the cpi tasks.

lm_eval --model hf --model_args pretrained=MODEL --include_path "$(cpi tasks-path)" --tasks 'cpi_*'
cpi register            # once, for editable installs; then --include_path is optional
cpi register --remove   # undo
"""

from __future__ import annotations

import argparse

from ..core.cli_args import ArgumentParser
from .autoload import PTH_LINE, site_packages_pth, tasks_dir


def parse_args_tasks_path(argv: list[str]) -> argparse.Namespace:
    return ArgumentParser(prog="cpi tasks-path", description=__doc__).parse_args(argv)


def main_tasks_path(argv: list[str]) -> int:
    parse_args_tasks_path(argv)
    print(tasks_dir())
    return 0


def parse_args_register(argv: list[str]) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="cpi register",
        description="Write (or --remove) cpi_bench.pth in this interpreter's site-packages so "
        "lm_eval indexes the cpi tasks with no --include_path. Wheel installs already have it.",
    )
    parser.add_argument("--remove", action="store_true", help="delete the .pth instead")
    return parser.parse_args(argv)


def main_register(argv: list[str]) -> int:
    args = parse_args_register(argv)
    pth = site_packages_pth()
    if args.remove:
        if pth.exists():
            pth.unlink()
            print(f"removed {pth}")
        else:
            print(f"nothing to remove: {pth} does not exist")
        return 0
    pth.write_text(PTH_LINE)
    print(f"wrote {pth}\nlm_eval now finds the cpi tasks: lm_eval ls tasks | grep cpi_")
    return 0
