"""``make release``: the student notebooks, generated from the masters by nbgrader.

``generate_assignment`` replaces every solution region with
``# YOUR CODE HERE`` / ``raise NotImplementedError()``, strips the hidden
tests, locks the provided cells and records every cell (hidden tests included)
in the gradebook. The result is normalised (stable JSON, no outputs, a first
cell that says the file is generated) and written to ``notebooks/``, which is
committed; CI regenerates it and fails on any difference.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat

from ..cells import HIDDEN_TESTS_BEGIN, HIDDEN_TESTS_END
from ..exercises import ASSIGNMENT
from .course import RELEASE_COURSE, RELEASE_DIR, ensure_tools_on_path, link_source, nbgrader_config, write_config_file

# Text that must never reach a student's copy.
LEAK_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", HIDDEN_TESTS_BEGIN, HIDDEN_TESTS_END)
NOTICE_ID = "generated_notice"
NOTICE = """\
> **Your copy of the workbook.** Write your code in the answer cells (each starts with
> `#| answer:`) and run the check below each one. This file is generated from the
> instructors' master `solutions/{name}.ipynb` by `make release`; instructors edit the
> master, never this file."""


class ReleaseError(RuntimeError):
    """nbgrader could not generate the release; the message carries its log."""


def generate_release(out_dir: Path = RELEASE_DIR, course_root: Path = RELEASE_COURSE) -> list[Path]:
    """Generate the student notebooks from ``solutions/`` into ``out_dir``.

    Returns the written paths. Notebooks in ``out_dir`` with no master are
    removed, so a renamed master does not leave a stale copy behind.
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    ensure_tools_on_path()
    course_root.mkdir(parents=True, exist_ok=True)
    link_source(course_root)
    config = nbgrader_config(course_root)
    config.IncludeHeaderFooter.header = str(_write_header(course_root))
    write_config_file(course_root, config)
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    result = api.generate_assignment(ASSIGNMENT, force=True, create=True)
    if not result["success"]:
        raise ReleaseError(f"nbgrader generate_assignment failed:\n{result.get('error') or result.get('log')}")
    released = course_root / "release" / ASSIGNMENT
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(released.glob("*.ipynb")):
        target = out_dir / source.name
        _write_normalised(nbformat.read(source, as_version=4), target, source.stem)
        written.append(target)
    for stale in set(out_dir.glob("*.ipynb")) - set(written):
        stale.unlink()
    return written


def _write_header(course_root: Path) -> Path:
    header = nbformat.v4.new_notebook()
    header.cells = [nbformat.v4.new_markdown_cell(NOTICE, id=NOTICE_ID)]
    path = course_root / "header.ipynb"
    nbformat.write(header, path)
    return path


def _write_normalised(nb, target: Path, name: str) -> None:
    """Stable JSON: the same masters always give byte-identical files."""
    nb.metadata = {key: nb.metadata[key] for key in ("kernelspec", "language_info") if key in nb.metadata}
    for cell in nb.cells:
        if cell.get("id") == NOTICE_ID:
            cell.source = NOTICE.format(name=name)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.validate(nb)
    nbformat.write(nb, target)


def leaked_markers(folder: Path = RELEASE_DIR) -> list[str]:
    """'<file>: <marker>' for every solution or hidden-test marker in ``folder``'s notebooks."""
    found = []
    for path in sorted(folder.glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        found += [f"{path.name}: {marker}" for marker in LEAK_MARKERS if marker in text]
    return found


def release_differences(committed: Path = RELEASE_DIR) -> list[str]:
    """Names of committed student notebooks that regeneration would change, add or remove."""
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch) / "notebooks"
        generate_release(fresh, Path(scratch) / "course")
        return folder_differences(committed, fresh)


def folder_differences(committed: Path, fresh: Path) -> list[str]:
    """Names of notebooks that are in only one of the folders, or differ in a single byte."""
    names = {p.name for p in fresh.glob("*.ipynb")} | {p.name for p in committed.glob("*.ipynb")}
    return sorted(name for name in names
                  if not (committed / name).exists() or not (fresh / name).exists()
                  or (committed / name).read_bytes() != (fresh / name).read_bytes())


def validate(notebook: Path, invert: bool = False) -> dict:
    """nbgrader's validator on one notebook: {'passed'|'failed'|'changed': [...]} or {}.

    ``invert=False``: every test must pass (for a master). ``invert=True``:
    every test must fail (for a blank student copy: no test passes vacuously).
    Note that ``nbgrader validate`` on the command line exits 0 either way.
    """
    return validate_and_run(notebook, invert)[0]


def validate_and_run(notebook: Path, invert: bool = False) -> tuple[dict, nbformat.NotebookNode]:
    """``validate``, and the notebook as the validator executed it (every cell, errors kept)."""
    from nbgrader.validator import Validator
    from traitlets.config import Config

    class KeepingValidator(Validator):
        def _preprocess(self, nb):
            self.executed = super()._preprocess(nb)
            return self.executed

    config = Config()
    config.Validator.invert = invert
    config.Validator.ignore_checksums = True  # checksums guard students' copies, not this check
    config.Execute.timeout = 600
    validator = KeepingValidator(config=config)
    results = validator.validate(str(notebook))
    return results, getattr(validator, "executed", None)
