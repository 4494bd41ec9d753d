"""The scoreboard: where a notebook stands, graded item by graded item, in one table.

Every notebook ends with a summary cell that shows ``scoreboard(notebook_id)``:
a row per graded item of the notebook (``exercises.items_of``) with its name,
the shape of the tensor it checks, its maxdiff and its status. JupyterLab
shows it as an HTML table (``_repr_html_``); ``str()``/``repr()`` give the
same table as plain text, which is what an executed notebook keeps as
``text/plain`` and what ``make check`` prints.

How the status is decided. The scoreboard repeats the notebook's *visible*
checks, silently, on the notebook's variables as they are when the summary
cell runs (the hidden checks on unseen inputs are ``make check``'s job):

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
  ``autograder.diagnose``) under the row. An answer cell that was run but
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from .check import TRAINED_RTOL, Comparison, compare, compare_gradients, forward_context
from .exercises import Item, items_of

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
STATUSES = (PASSED, FAILED, NOT_ATTEMPTED)
SYMBOLS = {PASSED: "✅", FAILED: "❌", NOT_ATTEMPTED: ""}
# An answer cell as released: nbgrader's stub ends in this line.
STUB = re.compile(r"^[ \t]*raise NotImplementedError\b", re.MULTILINE)
# Notebook 00 keeps each of its expression graphs in a variable of its own
# (the node names, x1, o, ..., are reused by later graphs).
SCALAR_GRAPHS = {"neuron": "g", "neuron_exp": "gx", "reuse": "gr"}
# The functions the answer cells of notebooks 04 and 05 define.
FUNCTIONS = {"ex4_manual_backward": "manual_backward", "ex5_mlp_backward": "mlp_backward",
             "ex5_adam_update": "adam_step"}
EX4_CHECK_STEPS = 5  # notebook 04's check_training: 5 SGD steps, batch 32, lr 0.1, seeded like the notebook
EX4_CHECK_BATCH, EX4_CHECK_LR = 32, 0.1
FOOTNOTE = ("Checked like the test cells, on this notebook's own variables. When grading, the answer "
            "cells run again on unseen inputs: `make check` tries that too.")


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
                f"<p style='font-size:90%'>{html.escape(FOOTNOTE).replace('`make check`', '<code>make check</code>')}</p>")


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
    that answer cell as last run (by default what ``judge.record_cells``
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
    from .judge import recorded_answer

    found = {}
    for answer in dict.fromkeys(a for item in items_of(notebook_id) for a in item.answers):
        try:
            found[answer] = recorded_answer(answer)
        except Exception:  # never run in this kernel, or no kernel at all
            pass
    return found


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


class _StudentError(Exception):
    """The student's function raised: that is a verdict, not a failure of the scoreboard."""


def _call(function: Callable, *args, **kwargs):
    try:
        with torch.no_grad():
            return function(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as err:
        raise _StudentError(f"{getattr(function, '__name__', 'the function')} raised {type(err).__name__}: {err}") from err


def unwritten(item: Item, answers: Mapping[str, str]) -> list[str]:
    """The item's answer cells that still hold the released stub (as far as ``answers`` knows)."""
    return [a for a in item.answers if isinstance(answers.get(a), str) and STUB.search(answers[a])]


def _row(item: Item, namespace: Mapping, answers: Mapping[str, str]) -> Row:
    try:
        name, shape = _describe(item, namespace)
    except Exception:  # e.g. a tensor whose .shape is not a tuple of ints
        name, shape = item.variable or item.grade_id, None
    base = dict(grade_id=item.grade_id, name=name, shape=shape, points=item.points,
                tensor=item.tensor if item.kind == "gradient" else "")
    if unwritten(item, answers):
        return Row(status=NOT_ATTEMPTED, **base)
    try:
        status, maxdiff, notes = _PROBES[item.kind](item, namespace, answers)
    except NotImplementedError:
        return Row(status=NOT_ATTEMPTED, **base)
    except _StudentError as err:
        return Row(status=FAILED, notes=(str(err),), **base)
    except Exception as err:  # the notebook is not in a state to check this item
        return Row(status=NOT_ATTEMPTED, notes=(f"could not be checked ({type(err).__name__}: {err}); "
                                                "run the notebook from the top",), **base)
    return Row(status=status, maxdiff=maxdiff, notes=tuple(str(note) for note in notes), **base)


def _describe(item: Item, namespace: Mapping) -> tuple[str, tuple[int, ...] | None]:
    if item.kind == "gradient":
        tensor = namespace.get(item.tensor)
        return item.variable, tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else None
    if item.kind == "scalar":
        nodes = item.nodes
        return (f"{nodes[0]}.grad" if len(nodes) == 1 else f"{len(nodes)} grads: {', '.join(nodes)}"), None
    functions = [FUNCTIONS[a] for a in item.answers]
    suffix = {"ex4_training": f", {EX4_CHECK_STEPS} SGD steps", "adam_training": ", a training run"}
    return " + ".join(functions) + suffix.get(item.grade_id, suffix.get(item.kind, "")), None


def _verdict(results: list[Comparison]) -> tuple[str, float | None, list[str]]:
    """Status, maxdiff and notes of a group of comparisons (all must pass)."""
    diffs = [r.maxdiff for r in results if r.maxdiff is not None]
    failing = [r for r in results if not r.ok]
    notes = []
    for r in failing:
        notes += [f"{r.name}: {note}" if len(results) > 1 else note for note in (r.problem, r.hint) if note]
    return (PASSED if not failing else FAILED), (max(diffs) if diffs else None), notes


def _missing(namespace: Mapping, *names: str) -> None:
    absent = [name for name in names if name not in namespace]
    if absent:
        raise LookupError(f"{', '.join(absent)} not defined")


# ------------------------------------------------------------------ the probes, one per kind

def _gradient(item: Item, namespace: Mapping, answers: Mapping[str, str]):
    """Exercises 1-3: the student's d<name> against autograd's <name>.grad, as ``cmp`` does."""
    from . import model
    from .diagnose import context_of

    if item.variable not in namespace:
        if all(a in answers for a in item.answers):  # the cells ran, yet the variable never came to be
            return FAILED, None, [f"{item.variable} is not defined: its answer cell stopped with an error "
                                  "before assigning it (an earlier answer missing?)"]
        raise NotImplementedError
    reference = namespace.get(item.tensor)
    if not isinstance(reference, torch.Tensor) or reference.grad is None:
        raise LookupError(f"{item.tensor}.grad is missing")
    forward = model.forward_containing(reference)
    context = None if forward is None else context_of(forward, forward.inputs)
    got = namespace[item.variable]
    result = compare(item.tensor, got, reference.grad, context)
    status, maxdiff, notes = _verdict([result])
    if status == FAILED and result.code != "alias":  # the same explanation, found from the memory
        notes += _alias_notes(item.variable, got, namespace)
    return status, maxdiff, notes


def _alias_notes(variable: str, got, namespace: Mapping) -> list[str]:
    """Other gradient variables that are the very same tensor (``dX = dY`` without ``.clone()``)."""
    from .diagnose import alias_diagnosis

    if not isinstance(got, torch.Tensor):
        return []
    others = [key for key, value in namespace.items()
              if key.startswith("d") and key != variable and value is got]
    return [f"note: {alias_diagnosis(variable, other).message}" for other in sorted(others)]


def _scalar(item: Item, namespace: Mapping, answers: Mapping[str, str]):
    """Notebook 00: the ``.grad`` of the item's nodes against PyTorch's, on the notebook's graph."""
    from . import scalar

    graph = namespace.get(SCALAR_GRAPHS[item.graph])
    if not isinstance(graph, scalar.Graph):
        raise LookupError(f"the graph {SCALAR_GRAPHS[item.graph]} is not built")
    nodes = [graph[name] for name in item.nodes]
    if not any(node.grad_assigned for node in nodes):
        raise NotImplementedError
    reference = scalar.torch_grads(graph.output)
    results = []
    for name, node in zip(item.nodes, nodes):
        problem = None if node.grad_assigned else f"{name}.grad was never set"
        problem = problem or scalar.grad_problem(name, node.grad)
        if problem:
            results.append(Comparison(f"{name}.grad", False, False, None, None, (), problem))
        else:
            results.append(compare(f"{name}.grad", scalar.grad_tensor(node.grad),
                                   torch.tensor(reference[node], dtype=torch.float64)))
    return _verdict(results)


def _function(namespace: Mapping, answer: str) -> Callable:
    function = namespace.get(FUNCTIONS[answer])
    if not callable(function):
        raise NotImplementedError
    return function


def _ex4(item: Item, namespace: Mapping, answers: Mapping[str, str]):
    """Notebook 04: ``check_backward`` on the notebook's batch, or ``check_training``'s SGD steps."""
    from . import model

    backward = _function(namespace, "ex4_manual_backward")
    _missing(namespace, "parameters", "Xb", "Yb")
    parameters, Xb, Yb = namespace["parameters"], namespace["Xb"], namespace["Yb"]
    if item.grade_id == "ex4_backward":
        expected = model.autograd_grads(parameters, Xb, Yb)
        copies = [p.detach().clone() for p in parameters]  # the student's function gets copies
        with torch.no_grad():
            fw = model.fused_forward(copies, Xb, Yb)
        got = _call(backward, copies, fw, Xb, Yb)
        return _gradient_list(model.PARAM_NAMES, got, expected, forward_context(parameters, Xb, Yb))
    runs = []
    for grads_of in (lambda *args: _call(backward, *args), lambda ps, fw, X, Y: model.autograd_grads(ps, X, Y)):
        runs.append(model.sgd_steps(parameters, grads_of, EX4_CHECK_STEPS, EX4_CHECK_BATCH, EX4_CHECK_LR,
                                    model.make_generator()))
    return _drifts(model.PARAM_NAMES, *runs, TRAINED_RTOL, f"after {EX4_CHECK_STEPS} SGD steps")


def _gradient_list(names, got, expected, context: Mapping | None = None,
                   gradients: bool = True) -> tuple[str, float | None, list[str]]:
    """A returned list against the expected one; ``gradients``: the list holds one gradient per parameter,
    so right gradients in the wrong places are named as such."""
    got = list(got) if isinstance(got, (list, tuple)) else got
    if not isinstance(got, list) or len(got) != len(expected):
        size = f"{len(got)} values" if isinstance(got, list) else f"a {type(got).__name__}"
        return FAILED, None, [f"expected {len(expected)} gradients ({', '.join('d' + n for n in names)}), got {size}"]
    if not gradients:
        return _verdict([compare(name, g, e) for name, g, e in zip(names, got, expected)])
    return _verdict(compare_gradients(names, got, expected, context))


def _drifts(names, mine, reference, tolerance: float, when: str):
    """Parameters after training: each within ``tolerance`` of its scale (as the training checks print)."""
    drifts, notes = [], []
    for name, a, b in zip(names, mine, reference):
        drift = ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-12)).item()
        drifts.append(drift)
        if not drift <= tolerance:  # NaN fails too
            notes.append(f"{name}: {when} it is off by {drift:.1e} of its scale (tolerance {tolerance:.0e})")
    return (FAILED if notes else PASSED), max(drifts, default=None), notes


def _ex5(item: Item, namespace: Mapping, answers: Mapping[str, str]):
    """Notebook 05: the three checks of its test cells (backward, one Adam step, a training run)."""
    from . import iris

    functions = [_function(namespace, a) for a in item.answers]
    _missing(namespace, "parameters", "Xtr", "Ytr")
    parameters, X, Y = namespace["parameters"], namespace["Xtr"], namespace["Ytr"]
    if item.kind == "mlp_backward":
        expected = iris.autograd_grads(parameters, X, Y)
        copies = [p.detach().clone() for p in parameters]
        with torch.no_grad():
            fw = iris.forward(copies, X, Y)
        return _gradient_list(iris.PARAM_NAMES, _call(functions[0], copies, fw, X, Y), expected)
    params64 = [p.clone() for p in iris.in_check_dtype(parameters)]
    (X64,) = iris.in_check_dtype([X])
    if item.kind == "adam_step":
        grads = iris.autograd_grads(params64, X64, Y)
        expected, m_expected, v_expected = iris.torch_adam(params64, [grads])
        params = [p.clone() for p in params64]
        m, v = iris.zeros_like_all(params), iris.zeros_like_all(params)
        _call(functions[0], params, [g.clone() for g in grads], m, v, 1,
              lr=iris.LR, beta1=iris.BETA1, beta2=iris.BETA2, eps=iris.EPS)
        if all(torch.equal(p, q) for p, q in zip(params, params64)):
            return FAILED, None, ["no parameter changed: adam_step must update the tensors in place"]
        names = list(iris.PARAM_NAMES) + [f"m[{n}]" for n in iris.PARAM_NAMES] + [f"v[{n}]" for n in iris.PARAM_NAMES]
        return _gradient_list(names, params + m + v, expected + m_expected + v_expected, gradients=False)
    backward, step = functions
    mine, _ = iris.train_manual(params64, X64, Y, lambda *a: _call(backward, *a), lambda *a, **k: _call(step, *a, **k))
    reference, _ = iris.train_torch(params64, X64, Y)
    return _drifts(iris.PARAM_NAMES, mine, reference, iris.TRAINED_RTOL, f"after {iris.EPOCHS} epochs")


_PROBES = {"gradient": _gradient, "scalar": _scalar, "function": _ex4, "mlp_backward": _ex5,
           "adam_step": _ex5, "adam_training": _ex5}
