"""Build hook: the data, the student release and the grading template go into the wheel.

``data/names.txt``, ``data/iris.csv`` and ``notebooks/*.ipynb`` are copied to
``autograder/_bundled/`` in the wheel (git keeps them only at the top level).

Grading (``backprop-ninja grade``) regenerates the assignment with nbgrader,
which needs the masters' test cells, hidden tests included, but not their
solutions. So the build ships each master of ``solutions/`` with the inside
of every ``### BEGIN SOLUTION`` / ``### END SOLUTION`` region cut out: nbgrader
turns such an empty region into the same stub as a full one, so the release
and the gradebook made from it are the ones made from the masters.

In the wheel they land in ``autograder/_bundled/course/``; in the sdist (which
never carries ``solutions/``) in ``grading_source/``, from where a wheel built
from the sdist takes them.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MASTERS = "solutions"
SDIST_FOLDER = "grading_source"
BUNDLE = "autograder/_bundled"
WHEEL_FOLDER = f"{BUNDLE}/course"
DATA_FILES = ("data/names.txt", "data/iris.csv")
RELEASE = "notebooks"
SOLUTION_REGION = re.compile(r"^([ \t]*### BEGIN SOLUTION[^\n]*\n).*?^([ \t]*### END SOLUTION)", re.M | re.S)


def without_solutions(notebook_json: str) -> str:
    """The notebook with every solution region emptied (its two marker lines kept)."""
    notebook = json.loads(notebook_json)
    for cell in notebook["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = SOLUTION_REGION.sub(r"\1\2", source)
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


class CourseTemplateHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if version == "editable":  # an editable install reads the checkout itself
            return
        root = Path(self.root)
        if self.target_name == "wheel":
            self._bundle_sources(root, build_data)
        source = root / MASTERS if (root / MASTERS).is_dir() else root / SDIST_FOLDER
        masters = sorted(source.glob("*.ipynb"))
        if not masters:
            raise FileNotFoundError(f"no masters in {root / MASTERS} or {root / SDIST_FOLDER}: cannot make the grading template")
        self._scratch = Path(tempfile.mkdtemp(prefix="backprop-ninja-build-"))
        target = SDIST_FOLDER if self.target_name == "sdist" else WHEEL_FOLDER
        for master in masters:
            stripped = self._scratch / master.name
            stripped.write_text(without_solutions(master.read_text(encoding="utf-8")), encoding="utf-8")
            build_data["force_include"][str(stripped)] = f"{target}/{master.name}"

    @staticmethod
    def _bundle_sources(root: Path, build_data: dict) -> None:
        release = sorted((root / RELEASE).glob("*.ipynb"))
        if not release:
            raise FileNotFoundError(f"no release notebooks in {root / RELEASE}: run `make release` first")
        for name in DATA_FILES:
            build_data["force_include"][str(root / name)] = f"{BUNDLE}/{name}"
        for notebook in release:
            build_data["force_include"][str(notebook)] = f"{BUNDLE}/{RELEASE}/{notebook.name}"

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
