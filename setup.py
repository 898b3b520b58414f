"""Build hook: ship ``cpi_bench.pth`` at the top of site-packages.

The .pth line makes ``lm_eval --tasks 'cpi_*'`` find this package's tasks with no
``--include_path`` (see ``harness_ext/lm_eval_plugin/autoload.py``). Everything else is in
pyproject.toml.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "cpi_bench.pth"


class BuildPyWithPth(build_py):
    def run(self) -> None:
        super().run()
        self.copy_file(
            os.path.join("harness_ext", "lm_eval_plugin", PTH), os.path.join(self.build_lib, PTH)
        )


setup(cmdclass={"build_py": BuildPyWithPth})
