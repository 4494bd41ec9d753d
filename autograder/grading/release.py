"""``make release``: the student notebooks, generated from the masters by nbgrader.

``generate_assignment`` replaces every solution region with
``# YOUR CODE HERE`` / ``raise NotImplementedError()``, strips the hidden
tests, locks the provided cells and records every cell (hidden tests included)
in the gradebook. The result is normalised (stable JSON, no outputs, a first
cell that says the file is generated) and written to ``notebooks/``, which is
committed; CI regenerates it and fails on any difference.

Every notebook starts with nbgrader's header (``_write_header``): the notice,
then a locked code cell that installs the package where ``autograder`` does
not import (Colab, a hub, a bare Jupyter) and does nothing otherwise. Being
part of the generated assignment, that cell has its checksum and its place in
the gradebook like every other locked cell. What it installs (``package_spec``)
is chosen at release time: ``course.PACKAGE_SPEC``, or ``make release
PACKAGE_SPEC=...``.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import nbformat

from ..cells import HIDDEN_TESTS_BEGIN, HIDDEN_TESTS_END
from ..exercises import ASSIGNMENT
from .course import (
    PACKAGE_SPEC,
    RELEASE_COURSE,
    RELEASE_DIR,
    ensure_tools_on_path,
    link_source,
    nbgrader_config,
    write_config_file,
)

# Text that must never reach a student's copy.
LEAK_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", HIDDEN_TESTS_BEGIN, HIDDEN_TESTS_END)
NOTICE_ID = "generated_notice"
NOTICE = """\
> **Your copy of the workbook.** Write your code in the answer cells (each starts with
> `#| answer:`) and run the check below each one. This file is generated from the
> instructors' master `solutions/{name}.ipynb` by `make release`; instructors edit the
> master, never this file."""
INSTALL_ID = "install_package"
INSTALL_CELL = """\
# Installs the workbook's package where it is missing (Colab, a JupyterHub, a plain
# Jupyter) and does nothing where it is there. Run this cell first.
try:
    import autograder
except ImportError:
    %pip install -q {spec}
    import autograder"""
INSTALL_LINE = re.compile(r"^\s*%pip install -q (.+)$", re.M)
# A pip requirement or URL: no spaces, quotes, or IPython's $/{} expansion in a magic line.
SPEC_CHARS = re.compile(r"[A-Za-z0-9._+\-:/@=<>!~,\[\]#%?&;]+")


class ReleaseError(RuntimeError):
    """nbgrader could not generate the release; the message carries its log."""


def generate_release(out_dir: Path = RELEASE_DIR, course_root: Path = RELEASE_COURSE,
                     package_spec: str = PACKAGE_SPEC, keep_own_source: bool = False) -> list[Path]:
    """Generate the student notebooks from ``solutions/`` into ``out_dir``.

    ``package_spec`` is what each notebook's first code cell installs where the
    package is missing. Returns the written paths. Notebooks in ``out_dir``
    with no master are removed, so a renamed master does not leave a stale
    copy behind.
    """
    install_cell = _install_cell(package_spec)
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    ensure_tools_on_path()
    course_root.mkdir(parents=True, exist_ok=True)
    link_source(course_root, keep_own=keep_own_source)
    config = nbgrader_config(course_root)
    config.IncludeHeaderFooter.header = str(_write_header(course_root, install_cell))
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


def release_into_course(course: Path, package_spec: str = PACKAGE_SPEC) -> list[Path]:
    """The assignment generated into an nbgrader course, for ``nbgrader release_assignment`` to publish.

    ``COURSE/source/<assignment>`` is the instructor's copy of the masters if
    the course has one, else a link to this package's (the masters in a
    checkout, their template without solutions in a wheel); the notebooks go
    to ``COURSE/release/<assignment>/`` and the assignment with its hidden
    tests into ``COURSE/gradebook.db``, beside the course's other assignments.
    The notebooks import ``autograder``, installed on the hub with the
    package, which also carries the data: a student's fetched copy runs from
    their own home folder.
    """
    released = course / "release" / ASSIGNMENT
    written = generate_release(released, course, package_spec, keep_own_source=True)
    leaks = leaked_markers(released)
    if leaks:
        raise ReleaseError("solution or hidden-test text in the release:\n  " + "\n  ".join(leaks))
    return written


def _install_cell(package_spec: str) -> str:
    """The source of the install cell for ``package_spec``; a spec the magic line would mangle is refused."""
    if not SPEC_CHARS.fullmatch(package_spec or ""):
        raise ReleaseError(f"package spec {package_spec!r}: expected a requirement or URL for `pip install`, "
                           "e.g. backprop-ninja==1.0.0, git+https://host/owner/repo@v1.0 or https://host/backprop_ninja-1.0.0-py3-none-any.whl "
                           "(no spaces, quotes, $ or braces)")
    return INSTALL_CELL.format(spec=shlex.quote(package_spec))


def released_package_spec(folder: Path = RELEASE_DIR) -> str:
    """What the install cell of the release in ``folder`` installs (``PACKAGE_SPEC`` when there is none)."""
    for path in sorted(folder.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.get("id") == INSTALL_ID:
                match = INSTALL_LINE.search(cell.source)
                if match:
                    return shlex.split(match.group(1))[0]
    return PACKAGE_SPEC


def _write_header(course_root: Path, install_cell: str) -> Path:
    header = nbformat.v4.new_notebook()
    install = nbformat.v4.new_code_cell(install_cell, id=INSTALL_ID)
    install.metadata["nbgrader"] = {"grade": False, "solution": False, "locked": True, "task": False,
                                    "grade_id": INSTALL_ID, "schema_version": 3}
    header.cells = [nbformat.v4.new_markdown_cell(NOTICE, id=NOTICE_ID), install]
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


def copy_release(target: Path, overwrite: bool = False) -> list[Path]:
    """Copy the student notebooks (of this checkout, or of the installed wheel) into ``target``.

    Refuses, before copying anything, when one of them is already there and
    ``overwrite`` is false: a student's work is never replaced by a blank copy.
    """
    sources = sorted(RELEASE_DIR.glob("*.ipynb"))
    if not sources:
        raise ReleaseError(f"no release notebooks in {RELEASE_DIR}")
    existing = [target / path.name for path in sources if (target / path.name).exists()]
    if existing and not overwrite:
        raise ReleaseError("not overwriting " + ", ".join(str(p) for p in existing) + " (pass --force to replace them)")
    target.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(path, target / path.name)) for path in sources]


COLAB = "https://colab.research.google.com/github/{owner}/{repo}/blob/{ref}/notebooks/{name}"
GITHUB_URL = re.compile(r"(?:https?://)?(?:www\.)?github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?")


def colab_links(repository_url: str, ref: str, folder: Path = RELEASE_DIR) -> list[tuple[str, str]]:
    """(notebook file, "Open in Colab" URL) for every release notebook, as committed in ``repository_url`` at ``ref``.

    Colab opens notebooks straight from public GitHub repositories only.
    """
    match = GITHUB_URL.fullmatch(repository_url.strip())
    if not match:
        raise ReleaseError(f"{repository_url!r} is not a GitHub repository URL (https://github.com/OWNER/REPO); "
                           "Colab opens notebooks from GitHub, so host notebooks/ there or give students the wheel")
    owner, repo = match.groups()
    return [(path.name, COLAB.format(owner=owner, repo=repo, ref=ref, name=path.name)) for path in sorted(folder.glob("*.ipynb"))]
