"""The scoreboard: where a notebook stands, graded item by graded item, in one table.

Every notebook ends with a summary cell that shows ``scoreboard(notebook_id)``:
a row per graded item of the notebook (``exercises.items_of``) with its name,
the shape of the tensor it checks, its maxdiff and its status. JupyterLab
shows it as an HTML table (``_repr_html_``); ``str()``/``repr()`` give the
same table as plain text, which is what an executed notebook keeps as
``text/plain`` and what ``backprop-ninja check`` prints.

How the status is decided. The scoreboard repeats the notebook's *visible*
checks, silently, on the notebook's variables as they are when the summary
cell runs (the hidden checks on unseen inputs are ``backprop-ninja check``'s job):

* **not attempted** when one of the item's answer cells still holds the
  released stub (``raise NotImplementedError()``) as the kernel last ran it,
  when the item's variable or function does not exist, or when calling the
  function still raises ``NotImplementedError``;
* **✅ passed** when the check passes: for a gradient of Exercises 1-3,
  ``compare(name, namespace[d<name>], namespace[name].grad)``, which is what
  ``cmp`` prints; for notebook 00, the ``.grad`` of the item's nodes against
  PyTorch's on the notebook's graph; for the functions of notebooks 04 and 05,
  what their test cells check (one batch against autograd, a few training
  steps against autograd or ``torch.optim.Adam``);
* **❌ failed** otherwise, with the reason and the likely cause (the hints of
  ``autograder.diagnosis.diagnose``) under the row. An answer cell that was run but
  stopped with an error before assigning its variable is failed, not "not
  attempted".

maxdiff is the largest difference from the reference over the tensors an item
checks; for the training items it is the largest difference of a parameter
relative to that parameter's scale, as their test cells print it.

The summary must work in a half-done notebook: the scoreboard never raises
(an item that cannot be checked is shown as not attempted, with the reason)
and never writes to stderr (nbgrader marks a cell with stderr output as
failed). Whatever a student's function prints while it is checked is dropped.
"""

from __future__ import annotations

import contextlib
import html
import inspect
import io
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ..cells import is_stub
from ..exercises import Item, items_of
from ..kinds import kind_of
from ..kinds.base import StudentError

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
STATUSES = (PASSED, FAILED, NOT_ATTEMPTED)
SYMBOLS = {PASSED: "✅", FAILED: "❌", NOT_ATTEMPTED: ""}
FOOTNOTE = ("Checked like the test cells, on this notebook's own variables. When grading, the answer "
            "cells run again on unseen inputs: `backprop-ninja check` tries that too, on a saved copy of this "
            "notebook (`make check` in a checkout of the repository).")


@dataclass(frozen=True)
class Row:
    """One graded item on the board."""

    grade_id: str
    name: str  # what is checked: "dcounts", "x1.grad", "manual_backward", ...
    shape: tuple[int, ...] | None  # the expected shape, where the item is one tensor
    status: str  # one of STATUSES
    maxdiff: float | None = None
    notes: tuple[str, ...] = ()  # why it failed and the likely cause, or why it could not be checked
    points: int = 0
    tensor: str = ""  # for a gradient: the tensor it is the gradient of, e.g. "counts"


@dataclass
class Scoreboard:
    """Every graded item of one notebook with its status; shows as a table."""

    notebook: str
    rows: list[Row] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(row.status == status for row in self.rows)

    @property
    def points(self) -> tuple[int, int]:
        """(points of the passed items, points of all items)."""
        return (sum(r.points for r in self.rows if r.status == PASSED), sum(r.points for r in self.rows))

    def tensor_statuses(self) -> dict[str, str]:
        """{tensor name: status} of the gradient items, e.g. {"counts": "passed"}: colours for a graph."""
        return {row.tensor: row.status for row in self.rows if row.tensor}

    def headline(self) -> str:
        earned, total = self.points
        return (f"{self.notebook}: {self.count(PASSED)} of {len(self.rows)} passed ✅ · {self.count(FAILED)} failed ❌ · "
                f"{self.count(NOT_ATTEMPTED)} not attempted   ({earned} of {total} points)")

    def text(self) -> str:
        """The plain-text table; notes follow their row, each after "->"."""
        header = ("item", "name", "shape", "maxdiff", "status")
        cells = [(r.grade_id, r.name, _shape(r.shape), _maxdiff(r.maxdiff), _status(r.status)) for r in self.rows]
        widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header) - 1)]
        lines = [self.headline(), ""]
        for line, row in zip([header, *cells], [None, *self.rows]):
            lines.append("  ".join(f"{value:{width}s}" for value, width in zip(line, widths)) + "  " + line[-1])
            for note in row.notes if row is not None else ():
                lines.append(f"{'':{widths[0]}s}  -> {note}")
        return "\n".join(lines + ["", FOOTNOTE.replace("`", "")])

    __str__ = text

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        colours = {PASSED: "#e8f5e9", FAILED: "#ffebee", NOT_ATTEMPTED: "#f5f5f5"}
        body = []
        for row in self.rows:
            notes = "".join(f"<div style='font-size:90%'>→ {html.escape(note)}</div>" for note in row.notes)
            body.append(
                f"<tr style='background:{colours[row.status]}'><td><code>{row.grade_id}</code></td>"
                f"<td><code>{html.escape(row.name)}</code></td><td>{_shape(row.shape)}</td>"
                f"<td style='text-align:left'>{_status(row.status)}</td>"
                f"<td style='font-family:monospace'>{_maxdiff(row.maxdiff)}</td>"
                f"<td style='text-align:left'>{notes}</td></tr>")
        return (f"<p><b>{html.escape(self.headline())}</b></p>"
                "<table><thead><tr><th>item</th><th>name</th><th>shape</th><th>status</th><th>maxdiff</th>"
                f"<th style='text-align:left'>why</th></tr></thead><tbody>{''.join(body)}</tbody></table>"
                f"<p style='font-size:90%'>{_code_spans(html.escape(FOOTNOTE))}</p>")


def _code_spans(text: str) -> str:
    """`name` as <code>name</code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _shape(shape) -> str:
    return "–" if shape is None else str(tuple(shape))


def _maxdiff(value) -> str:
    return "–" if value is None else f"{value:.1e}"


def _status(status: str) -> str:
    return f"{SYMBOLS[status]} {status}".strip()


# ------------------------------------------------------------------ building it

def scoreboard(notebook_id: str, namespace: Mapping | None = None, answers: Mapping[str, str] | None = None) -> Scoreboard:
    """The board of ``notebook_id`` (e.g. "01_atomic_backprop").

    ``namespace`` holds the notebook's variables (by default the caller's
    globals, i.e. the notebook's); ``answers`` maps answer id -> the source of
    that answer cell as last run (by default what ``cells.record_cells``
    recorded in this kernel; an answer missing from it tells nothing). Never
    raises: an item that cannot be checked shows as not attempted, and an
    unknown notebook gives an empty board.
    """
    if namespace is None:
        frame = inspect.currentframe()
        namespace = frame.f_back.f_globals if frame is not None and frame.f_back is not None else {}
    namespace = namespace if isinstance(namespace, Mapping) else {}
    rows = []
    with _quiet():
        answers = _recorded_answers(notebook_id) if answers is None else answers
        answers = {k: v for k, v in answers.items() if isinstance(v, str)} if isinstance(answers, Mapping) else {}
        for item in items_of(notebook_id):
            rows.append(_row(item, namespace, answers))
    return Scoreboard(notebook_id, rows)


def _recorded_answers(notebook_id: str) -> dict[str, str]:
    """The notebook's answer cells as this kernel last ran them (none outside a kernel)."""
    from ..cells import recorded_answers

    wanted = {a for item in items_of(notebook_id) for a in item.answers}
    return {answer: source for answer, source in recorded_answers().items() if answer in wanted}


@contextlib.contextmanager
def _quiet():
    """Nothing reaches stdout or stderr, warnings are dropped, and grad mode is restored."""
    grad_mode = torch.is_grad_enabled()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            torch.set_grad_enabled(grad_mode)


def unwritten(item: Item, answers: Mapping[str, str]) -> list[str]:
    """The item's answer cells that still hold the released stub (as far as ``answers`` knows)."""
    return [a for a in item.answers if isinstance(answers.get(a), str) and is_stub(answers[a])]


def _probe(kind, item: Item, namespace: Mapping, answers: Mapping[str, str]):
    """The kind's ``probe``; a kind that can explain a cascade gets a runner for the answer cells."""
    if "runner" in inspect.signature(kind.probe).parameters:
        from ..judge.untrusted import IN_PROCESS

        return kind.probe(item, namespace, answers, runner=IN_PROCESS)
    return kind.probe(item, namespace, answers)


def _row(item: Item, namespace: Mapping, answers: Mapping[str, str]) -> Row:
    """The item's visible check (its kind's ``probe``) on the notebook's variables, as a row."""
    kind = kind_of(item)
    try:
        name, shape = kind.label(item), kind.shape(item, namespace)
    except Exception:  # e.g. a tensor whose .shape is not a tuple of ints
        name, shape = item.grade_id, None
    base = dict(grade_id=item.grade_id, name=name, shape=shape, points=item.points, tensor=kind.tensor(item))
    if unwritten(item, answers):
        return Row(status=NOT_ATTEMPTED, **base)
    try:
        result = _probe(kind, item, namespace, answers).result
    except NotImplementedError:
        return Row(status=NOT_ATTEMPTED, **base)
    except StudentError as err:
        return Row(status=FAILED, notes=(str(err),), **base)
    except Exception as err:  # the notebook is not in a state to check this item
        return Row(status=NOT_ATTEMPTED, notes=(f"could not be checked ({type(err).__name__}: {err}); "
                                                "run the notebook from the top",), **base)
    return Row(status=PASSED if result.ok else FAILED, maxdiff=result.maxdiff,
               notes=tuple(str(note) for note in result.reasons()), **base)
