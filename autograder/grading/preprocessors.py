"""Two nbgrader preprocessors that replace or follow nbgrader's ``Execute`` in autograding.

* ``BoundedExecute`` runs the notebook like nbgrader's ``Execute``, but with a
  time limit for the whole notebook, and it never lets a dead kernel or a
  hung cell turn into an exception (which would make nbgrader discard every
  notebook of the student).
* ``ApplyVerdicts`` writes the judge's verdicts into the graded test cells.
  The judge ran the student's answer cells in its own sandbox on hidden
  inputs; whatever the kernel printed or raised in those cells (and a kernel
  runs student code, so it may print anything) no longer decides the score.
  It also removes the hidden-test lines from the test cells, so neither the
  autograded notebook nor the feedback shows them.
"""

from __future__ import annotations

import json
from time import monotonic

from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Float, Unicode

from ..cells import HIDDEN_TESTS_REGION


class BoundedExecute(Execute):
    """nbgrader's Execute with a per-notebook time limit; survives a dead kernel."""

    notebook_seconds = Float(120.0, help="Seconds the whole notebook may run").tag(config=True)
    student_deadline = Float(float("inf"), help="time.monotonic() when the student's whole budget ends").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._deadline = min(monotonic() + self.notebook_seconds, self.student_deadline)
        self._stopped = ""
        try:
            return super().preprocess(nb, resources, km)
        except Exception as err:  # the kernel did not start, or nbclient gave up on it
            self._stop(f"the notebook could not run ({type(err).__name__}: {str(err)[:200]})")
            for cell in nb.cells:
                if cell.cell_type == "code" and not cell.get("outputs"):
                    self._mark_not_run(cell)
            return nb, resources if resources is not None else {}

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        remaining = self._deadline - monotonic()
        if not self._stopped and remaining < 1:
            self._stop(self._limit_reached())
        if self._stopped:
            self._mark_not_run(cell)
            return cell, resources
        self.timeout = int(remaining) + 1  # what is left of the notebook's budget
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except Exception as err:  # DeadKernelError, an unanswered interrupt, ...
            self._stop(f"the kernel stopped responding ({type(err).__name__}), e.g. os._exit or a crash")
            cell.outputs.append(_error("KernelDied", self._stopped))
            return cell, resources
        if any(o.get("ename") == "CellTimeoutError" for o in cell.outputs):
            self._stop(self._limit_reached(cell_timeout=True))
        return cell, resources

    def _limit_reached(self, cell_timeout: bool = False) -> str:
        if self._deadline >= self.student_deadline:
            return "the submission used up its time budget"
        if cell_timeout:
            return f"a cell ran past the notebook's time limit of {self.notebook_seconds:g} s"
        return f"the notebook reached its time limit of {self.notebook_seconds:g} s"

    def _stop(self, reason: str) -> None:
        if not self._stopped:
            self._stopped = reason
            self.log.warning("Stopped executing: %s", reason)

    def _mark_not_run(self, cell) -> None:
        cell.outputs = [_error("NotRun", f"not run: {self._stopped}")]


class ApplyVerdicts(NbGraderPreprocessor):
    """Put the judge's verdict into each graded test cell (see the module docstring)."""

    verdicts_file = Unicode("", help="JSON file {grade_id: {passed, message}} written by the judge").tag(config=True)

    def preprocess(self, nb, resources):
        with open(self.verdicts_file) as file:
            self._verdicts = json.load(file)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        if not utils.is_grade(cell):
            return cell, resources
        grade_id = cell.metadata.nbgrader["grade_id"]
        cell.source = HIDDEN_TESTS_REGION.sub("", cell.source).rstrip()
        ran = _kernel_summary(cell)
        verdict = self._verdicts.get(grade_id, {"passed": False, "message": "not judged (unknown item)"})
        # Keep what the visible check printed; drop stderr, rich output and errors,
        # which would decide nbgrader's score instead of the verdict.
        printed = "".join(o.get("text", "") for o in cell.get("outputs", [])
                          if o.get("output_type") == "stream" and o.get("name") == "stdout")
        cell.outputs = [_stdout(printed)] if printed.strip() else []
        if ran:
            cell.outputs.append(_stdout(ran + "\n"))
        if verdict["passed"]:
            cell.outputs.append(_stdout(f"{grade_id}: passed. {verdict['message']}\n"))
        else:
            cell.outputs.append(_error("HiddenCheckFailed", f"{grade_id}: {verdict['message']}"))
        return cell, resources


def _kernel_summary(cell) -> str:
    """One line on how this check went in the student's own notebook run, if it failed."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            if output.get("ename") == "NotRun":
                return f"In your notebook this check was {output.get('evalue', 'not run')}."
            value = str(output.get("evalue", "")).splitlines()[0][:200] if output.get("evalue") else ""
            return f"In your notebook this check raised {output.get('ename')}" + (f": {value}" if value else "") + "."
    return ""


def _stdout(text: str) -> NotebookNode:
    return NotebookNode(output_type="stream", name="stdout", text=text)


def _error(name: str, message: str) -> NotebookNode:
    lines = message.splitlines() or [message]
    return NotebookNode(output_type="error", ename=name, evalue=lines[0], traceback=[f"{name}: {lines[0]}", *lines[1:]])
