"""Turn whatever a student handed in into a well-formed notebook to grade.

Each submitted notebook is rebuilt on the released template: every provided
and test cell comes from the template (so deleted, edited, duplicated or
re-labelled test cells change nothing), every answer cell takes the student's
code, and the student's own extra cells are kept where they were. Anything
unusual is reported in ``notes``, which end up in the student's feedback.

What the student's own run printed under each test cell is kept for the
feedback, as text only and capped (``saved_output``): it could have been
edited, so it is shown as what the student's notebook says, never graded.
A notebook over the limits (bytes, cells, code) is not graded, with the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import nbformat
import nbformat.reader

from ..cells import ANSWER_DIRECTIVE
from .submissions import EXCHANGE_FILES, MAX_NOTEBOOK_BYTES, Submission

MAX_CELLS = 2000  # the longest release notebook has a few hundred
MAX_CELL_CHARS = 256 * 1024  # of one cell's source
MAX_SOURCE_CHARS = 4 * 2**20  # of all the sources of a notebook
SAVED_OUTPUT_CHARS = 4000  # shown per test cell of what the student's own run printed
SAVED_OUTPUT_NOTEBOOK_CHARS = 64 * 1024  # and per notebook
OWN_CELL = "backprop_ninja_own_cell"  # metadata of a student's own cell in a rebuilt notebook (shown as text)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class Sanitized:
    """The notebook to grade and what was wrong with the submission, in words."""

    notebook: nbformat.NotebookNode
    notes: list[str] = field(default_factory=list)
    readable: bool = True  # False when nothing of the student's could be used
    saved_outputs: dict[str, str] = field(default_factory=dict)  # test cell id -> what the student's run printed


def sanitize_submission(submission: Submission, templates: dict[str, nbformat.NotebookNode]
                        ) -> tuple[dict[str, Sanitized], list[str]]:
    """Sanitize every expected notebook of one student's submission.

    Returns {notebook id: Sanitized} and notes about the submission as a whole
    (extra files, a notebook graded under another name, links, limits).
    """
    notes: list[str] = list(submission.notes)
    if not submission.folder_is_link and not (submission.files or submission.links or submission.unread):
        notes.append("the submission folder is empty")
    elif not any(name.endswith(".ipynb") for name in submission.files) and any(e.endswith("/") for e in submission.unread):
        notes.append("no notebook here, only folders: expected the notebooks in the student's folder, or in "
                     "nbgrader's layout, <student>/<assignment>/*.ipynb")
    for link in submission.links:
        notes.append(f"{link} is a link (a symbolic link), not a file of your own: it was not read")
    notebooks = {name[: -len(".ipynb")]: name for name in submission.files if name.endswith(".ipynb")}
    used: set[str] = set()
    result = {}
    for name, template in templates.items():
        file = notebooks.get(name) or _renamed(template, submission, [f for f in notebooks.values()
                                                                     if f[:-6] not in templates and f not in used])
        if file is None:
            why = "was a link, not a file" if f"{name}.ipynb" in submission.links else "is missing"
            result[name] = Sanitized(blank_copy(template), [f"{name}.ipynb {why}: every item in it scores 0"], False)
            continue
        used.add(file)
        if file[:-6] != name:
            notes.append(f"{file} was graded as {name}.ipynb (the file was renamed)")
        result[name] = sanitize_bytes(file, submission.files[file], template)
    extras = [f for f in submission.files if f not in used and f not in EXCHANGE_FILES] + list(submission.unread)
    if extras:
        notes.append("ignored what is not part of the workbook: " + ", ".join(extras[:10])
                     + (f" and {len(extras) - 10} more" if len(extras) > 10 else ""))
    return result, notes


def _renamed(template, submission: Submission, candidates: list[str]) -> str | None:
    """An unexpected notebook that holds this notebook's answer cells (e.g. 'Copy1')."""
    wanted = [_grade_id(c) for c in template.cells if _is_answer(c)]
    for name in candidates:
        text = submission.files[name].decode("utf-8", errors="replace")
        if any(f"answer: {answer}" in text for answer in wanted):
            return name
    return None


def sanitize_bytes(name: str, data: bytes, template: nbformat.NotebookNode) -> Sanitized:
    """Read one submitted notebook (its file's bytes) and rebuild it on ``template``."""
    try:
        if len(data) > MAX_NOTEBOOK_BYTES:
            raise ValueError(f"the file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
        raw = json.loads(data.decode("utf-8"))
        _within_limits(raw)  # before nbformat reads it cell by cell
        submitted = nbformat.reads(json.dumps(raw), as_version=4)
        if not isinstance(submitted.get("cells"), list):
            raise ValueError("it has no list of cells")
        return rebuild(submitted, template)
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError, RecursionError) as err:
        # nbformat's NotJSONError and json's JSONDecodeError are ValueErrors; odd
        # types where a notebook has strings or dicts give TypeError/AttributeError.
        reason = _unreadable(err)
        return Sanitized(blank_copy(template), [f"{name} could not be read as a notebook ({reason}): "
                                                "every item in it scores 0"], False)


def _within_limits(raw) -> None:
    """ValueError when a notebook has more cells or code than any real one (it would only cost time)."""
    cells = raw.get("cells") if isinstance(raw, dict) else None
    if not isinstance(cells, list):
        return  # nbformat says what is wrong with it
    if len(cells) > MAX_CELLS:
        raise ValueError(f"it has {len(cells)} cells, more than the {MAX_CELLS} a notebook may have here")
    total = 0
    for cell in cells:
        source = cell.get("source", "") if isinstance(cell, dict) else ""
        size = sum(len(part) for part in source if isinstance(part, str)) if isinstance(source, list) else \
            len(source) if isinstance(source, str) else 0
        if size > MAX_CELL_CHARS:
            raise ValueError(f"a cell holds {size} characters, more than the {MAX_CELL_CHARS} a cell may have here")
        total += size
    if total > MAX_SOURCE_CHARS:
        raise ValueError(f"its cells hold {total} characters, more than the {MAX_SOURCE_CHARS} allowed here")


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
    # The release's own cells without an id (its header): kept from the template, never an extra.
    release_text = {(c.get("cell_type"), _source(c).strip()) for c in template.cells if not _grade_id(c)}
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
        if not _grade_id(cell) and (cell.get("cell_type"), _source(cell).strip()) in release_text:
            continue
        if _grade_id(cell):
            notes.append(f"a cell carried the unknown id '{_grade_id(cell)}'; it was kept as an ordinary cell")
        extras_after.setdefault(anchor, []).append(_plain_copy(cell))
    notes += _provided_cell_notes(template, provided)
    saved = _saved_outputs(provided)
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
    return Sanitized(rebuilt, notes, saved_outputs=saved)


def _saved_outputs(provided: dict[str, list]) -> dict[str, str]:
    """Test cell id -> what the student's notebook shows under it: text only, capped, control characters out."""
    saved, total = {}, 0
    for grade_id, copies in provided.items():
        text = inert_text(_output_text(copies[0]), SAVED_OUTPUT_CHARS)
        if text and total + len(text) <= SAVED_OUTPUT_NOTEBOOK_CHARS:
            saved[grade_id] = text
            total += len(text)
    return saved


def _output_text(cell) -> str:
    parts = []
    for output in cell.get("outputs") or []:
        if not isinstance(output, dict):
            continue
        if output.get("output_type") == "stream":
            parts.append(_joined(output.get("text", "")))
        elif output.get("output_type") == "error":
            parts.append(f"{_joined(output.get('ename', ''))}: {_joined(output.get('evalue', ''))}")
        elif isinstance(output.get("data"), dict) and "text/plain" in output["data"]:
            parts.append(_joined(output["data"]["text/plain"]))  # never its HTML or scripts
        if sum(map(len, parts)) > SAVED_OUTPUT_CHARS:
            break
    return "".join(part if part.endswith("\n") else part + "\n" for part in parts)


def _joined(value) -> str:
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def inert_text(text: str, limit: int) -> str:
    """``text`` with terminal colours and control characters removed, cut at ``limit`` characters."""
    text = _CONTROL.sub("", _ANSI.sub("", text))
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters not shown)"


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
    """A student's own cell, without nbgrader metadata, attachments or outputs.

    Their markdown becomes a fenced text block: formgrader and nbconvert would
    otherwise render any HTML in it (a script, an image that loads a tracker)
    for whoever opens the notebook.
    """
    source = _source(cell)
    if cell.get("cell_type") == "code":
        return nbformat.v4.new_code_cell(source, metadata={OWN_CELL: True})
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", source)), default=0))
    return nbformat.v4.new_markdown_cell(f"*Your own cell, shown as text:*\n\n{fence}text\n{source}\n{fence}",
                                         metadata={OWN_CELL: True})


def _unique_ids(nb) -> None:
    seen = set()
    for index, cell in enumerate(nb.cells):
        if "nbgrader" not in cell.metadata or cell.get("id") in seen:
            cell["id"] = f"student-cell-{index}"  # deterministic, unlike nbformat's random ids
        seen.add(cell["id"])
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
