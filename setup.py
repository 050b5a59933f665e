"""Build step only (metadata is in pyproject.toml): copy the top-level ``runbooks/`` into the wheel.

The runbooks live beside ``policies/`` where a team edits them; the package must still ship them. Copying
at build time keeps one source of truth: wheels (and the container image) carry
``mcp_autoscale/data/runbooks``, while editable installs and checkouts read ``runbooks/`` directly
(``mcp_autoscale.runbooks.packaged_runbook_dir``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithRunbooks(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads runbooks/ from the checkout
        target = Path(self.build_lib) / "mcp_autoscale" / "data" / "runbooks"
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted((HERE / "runbooks").glob("*.md")):
            shutil.copyfile(source, target / source.name)


setup(cmdclass={"build_py": BuildPyWithRunbooks})
