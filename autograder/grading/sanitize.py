"""Turn whatever a student handed in into a well-formed notebook to grade.

Each submitted notebook is rebuilt on the released template: every provided
and test cell comes from the template (so deleted, edited, duplicated or
re-labelled test cells change nothing), every answer cell takes the student's
code, and the student's own extra cells are kept where they were. Anything
unusual is reported in ``notes``, which end up in the student's feedback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import nbformat.reader

from ..cells import ANSWER_DIRECTIVE

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024


@dataclass
class Sanitized:
    """The notebook to grade and what was wrong with the submission, in words."""

    notebook: nbformat.NotebookNode
    notes: list[str] = field(default_factory=list)
    readable: bool = True  # False when nothing of the student's could be used


def sanitize_folder(folder: Path, templates: dict[str, nbformat.NotebookNode]) -> tuple[dict[str, Sanitized], list[str]]:
    """Sanitize every expected notebook of one student's folder.

    Returns {notebook id: Sanitized} and notes about the folder as a whole
    (extra files, a notebook graded under another name).
    """
    notes: list[str] = []
    if folder.is_symlink():  # it could lead anywhere the grader can read, the masters included
        notes.append("the submission folder is a link to another folder, which was not read")
    entries = sorted(folder.iterdir()) if folder.is_dir() and not folder.is_symlink() else []
    if not folder.is_dir():
        notes.append("no submission folder")
    elif not entries and not folder.is_symlink():
        notes.append("the submission folder is empty")
    links = [p for p in entries if p.is_symlink()]
    for link in links:
        notes.append(f"{link.name} is a link (a symbolic link), not a file of your own: it was not read")
    notebooks = {p.stem: p for p in entries if p.suffix == ".ipynb" and p.is_file() and p not in links}
    used: set[Path] = set()
    result = {}
    for name, template in templates.items():
        path = notebooks.get(name) or _renamed(template, [p for p in notebooks.values() if p.stem not in templates and p not in used])
        if path is None:
            why = "was a link, not a file" if any(p.name == f"{name}.ipynb" for p in links) else "is missing"
            result[name] = Sanitized(blank_copy(template), [f"{name}.ipynb {why}: every item in it scores 0"], False)
            continue
        used.add(path)
        if path.stem != name:
            notes.append(f"{path.name} was graded as {name}.ipynb (the file was renamed)")
        result[name] = sanitize_file(path, template)
    extras = [p.name + ("/" if p.is_dir() else "") for p in entries if p not in used and p not in links]
    if extras:
        notes.append("ignored what is not part of the workbook: " + ", ".join(extras[:10])
                     + (f" and {len(extras) - 10} more" if len(extras) > 10 else ""))
    return result, notes


def _renamed(template, candidates: list[Path]) -> Path | None:
    """An unexpected notebook that holds this notebook's answer cells (e.g. 'Copy1')."""
    wanted = [_grade_id(c) for c in template.cells if _is_answer(c)]
    for path in candidates:
        try:
            with path.open(encoding="utf-8", errors="replace") as file:
                text = file.read(MAX_NOTEBOOK_BYTES)
        except OSError:
            continue
        if any(f"answer: {answer}" in text for answer in wanted):
            return path
    return None


def sanitize_file(path: Path, template: nbformat.NotebookNode) -> Sanitized:
    """Read one submitted notebook and rebuild it on ``template``."""
    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            raise ValueError(f"the file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
        submitted = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
        if not isinstance(submitted.get("cells"), list):
            raise ValueError("it has no list of cells")
        return rebuild(submitted, template)
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError, RecursionError) as err:
        # nbformat's NotJSONError and json's JSONDecodeError are ValueErrors; odd
        # types where a notebook has strings or dicts give TypeError/AttributeError.
        reason = _unreadable(err)
        return Sanitized(blank_copy(template), [f"{path.name} could not be read as a notebook ({reason}): "
                                                "every item in it scores 0"], False)


def _unreadable(err: Exception) -> str:
    """Why a file is not a notebook, in words for the student."""
    if isinstance(err, nbformat.reader.NotJSONError) or isinstance(err, json.JSONDecodeError):
        return "it is not valid JSON: cut off by an upload, or edited outside Jupyter?"
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def rebuild(submitted: nbformat.NotebookNode, template: nbformat.NotebookNode) -> Sanitized:
    """The template's cells with the student's answers and extra cells put in."""
    notes: list[str] = []
    template_ids = {_grade_id(c) for c in template.cells if _grade_id(c)}
    answers: dict[str, nbformat.NotebookNode] = {}
    provided: dict[str, list] = {}  # grade id of a locked or test cell -> the student's copies of it
    extras_after: dict[str | None, list] = {}  # template grade id (or None: before all) -> extra cells
    anchor = None
    for cell in submitted.cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            continue
        # The metadata names the cell; a cell whose grade id is not the template's
        # (edited, or lost) is still an answer cell when its `#| answer:` line says so.
        grade_id = _grade_id(cell) if _grade_id(cell) in template_ids else _directive(cell) or _grade_id(cell)
        if grade_id in template_ids:
            if _is_answer_id(grade_id, template):
                if grade_id in answers:
                    notes.append(f"answer cell {grade_id} appears twice; the last copy is graded")
                elif _grade_id(cell) and _grade_id(cell) != grade_id:
                    notes.append(f"answer cell {grade_id} carried the id '{_grade_id(cell)}'; it was graded "
                                 f"as {grade_id}, which its '#| answer:' line names")
                elif _directive(cell) not in (None, grade_id):
                    notes.append(f"the '#| answer:' line of answer cell {grade_id} named {_directive(cell)}; "
                                 f"it was graded as {grade_id}")
                answers[grade_id] = cell
            else:
                provided.setdefault(grade_id, []).append(cell)
            anchor = grade_id
            continue
        if _grade_id(cell):
            notes.append(f"a cell carried the unknown id '{_grade_id(cell)}'; it was kept as an ordinary cell")
        extras_after.setdefault(anchor, []).append(_plain_copy(cell))
    notes += _provided_cell_notes(template, provided)
    cells = list(extras_after.get(None, []))
    for cell in template.cells:
        grade_id = _grade_id(cell)
        if _is_answer(cell):
            if grade_id in answers:
                cells.append(_answer_copy(cell, answers[grade_id]))
            else:
                notes.append(f"answer cell {grade_id} was missing; the blank one from the release was used")
                cells.append(_copy(cell))
        else:
            cells.append(_copy(cell))
        if grade_id:
            cells.extend(extras_after.get(grade_id, []))
    rebuilt = nbformat.v4.new_notebook(cells=cells, metadata=dict(template.metadata))
    _unique_ids(rebuilt)
    return Sanitized(rebuilt, notes)


def _provided_cell_notes(template, provided: dict[str, list]) -> list[str]:
    """What the student did to the test and locked code cells (all of them are graded as released)."""
    notes = []
    for cell in template.cells:
        grade_id = _grade_id(cell)
        if not grade_id or _is_answer(cell) or cell.get("cell_type") != "code":
            continue
        kind = "test cell" if cell.get("metadata", {}).get("nbgrader", {}).get("grade") else "locked cell"
        copies = provided.get(grade_id, [])
        if not copies:
            notes.append(f"{kind} {grade_id} is missing; it was put back as released")
        elif len(copies) > 1:
            notes.append(f"{kind} {grade_id} appears {len(copies)} times; it was graded once, as released")
        elif _source(copies[0]).strip() != cell.source.strip():
            notes.append(f"{kind} {grade_id} differs from the release; it was graded as released")
    return notes


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def blank_copy(template: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The template as it was released (all answers blank)."""
    nb = nbformat.v4.new_notebook(cells=[_copy(c) for c in template.cells], metadata=dict(template.metadata))
    _unique_ids(nb)
    return nb


def _grade_id(cell) -> str | None:
    meta = cell.get("metadata") or {}
    nbgrader = meta.get("nbgrader") if isinstance(meta, dict) else None
    value = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
    return value if isinstance(value, str) else None


def _directive(cell) -> str | None:
    source = _source(cell)
    match = ANSWER_DIRECTIVE.search(source) if cell.get("cell_type") == "code" else None
    return match.group(1) if match else None


def _is_answer(cell) -> bool:
    nbgrader = cell.get("metadata", {}).get("nbgrader", {})
    return bool(nbgrader.get("solution")) and not nbgrader.get("grade")


def _is_answer_id(grade_id: str, template) -> bool:
    return any(_grade_id(c) == grade_id and _is_answer(c) for c in template.cells)


def _copy(cell) -> nbformat.NotebookNode:
    return nbformat.from_dict(json.loads(json.dumps(cell)))


def _answer_copy(template_cell, student_cell) -> nbformat.NotebookNode:
    """The template's answer cell (metadata, id) holding the student's code."""
    cell = _copy(template_cell)
    source = _source(student_cell)
    directive = f"#| answer: {_grade_id(template_cell)}"
    # The grader finds answers by this line, and the metadata says which answer this is.
    match = ANSWER_DIRECTIVE.search(source)
    if match is None:
        source = directive + "\n" + source
    elif match.group(1) != _grade_id(template_cell):
        source = source[:match.start(1)] + _grade_id(template_cell) + source[match.end(1):]
    cell.source = source
    return cell


def _plain_copy(cell) -> nbformat.NotebookNode:
    """A student's own cell, without nbgrader metadata or outputs."""
    source = _source(cell)
    if cell.get("cell_type") == "code":
        return nbformat.v4.new_code_cell(source)
    if cell.get("cell_type") == "raw":
        return nbformat.v4.new_raw_cell(source)
    return nbformat.v4.new_markdown_cell(source)


def _unique_ids(nb) -> None:
    seen = set()
    for index, cell in enumerate(nb.cells):
        if "nbgrader" not in cell.metadata or cell.get("id") in seen:
            cell["id"] = f"student-cell-{index}"  # deterministic, unlike nbformat's random ids
        seen.add(cell["id"])
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
