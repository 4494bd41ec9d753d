"""The kinds of graded item, by name: one module per kind, the one place that knows how each kind is checked.

``KINDS[item.kind]`` is the object that runs an item's answers on hidden
inputs, makes the reference, compares, describes and probes a notebook (see
``base.Kind``): ``gradient`` (a gradient tensor, Exercises 1-3),
``scalar_grad`` (the ``.grad`` of a scalar node, notebook 00),
``backward_function`` and ``sgd_training`` (Exercise 4's ``manual_backward``,
alone and driving SGD), ``mlp_backward``, ``adam_step`` and ``adam_training``
(notebook 05). Their hidden inputs are ``cases`` (and ``iris_cases``). The
test cells' checks (``checking.checks``), the scoreboard and the hidden judge
all go through these objects. A new kind is a module here and an entry in
KINDS; a notebook made of existing kinds needs only its items in
``autograder.exercises``.

Trust: ``Kind.run`` executes student code (untrusted; in grading it is called
only in the sandboxed ``judge.child``); everything else is trusted.

May import: ``diagnosis``, ``workbook`` and the top-level ``resources``, ``exercises`` and ``cells``; for now also
``judge.untrusted``, which runs an answer (the one import that points up).
"""

from __future__ import annotations

from ..exercises import Item
from .adam_step import AdamStepKind
from .adam_training import AdamTrainingKind
from .backward_function import BackwardFunctionKind
from .base import Kind
from .gradient import GradientKind
from .mlp_backward import MLPBackwardKind
from .scalar_grad import ScalarKind
from .sgd_training import SGDTrainingKind

KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    GradientKind(), ScalarKind(), BackwardFunctionKind(), SGDTrainingKind(), MLPBackwardKind(), AdamStepKind(),
    AdamTrainingKind())}


def kind_of(item: Item) -> Kind:
    return KINDS[item.kind]


def student_output(item: Item, sources: dict[str, str], case):
    """UNTRUSTED: run the item's answer cells (answer id -> code) on hidden ``case``; what they produce."""
    return kind_of(item).run(item, sources, case)


def describe_case(item: Item, case) -> str:
    """The hidden inputs of ``case`` in words, as they matter to ``item``."""
    return kind_of(item).describe_case(item, case)
