"""The kinds of graded item, by name: one module per kind, each the one place that knows how it is checked.

``KINDS[item.kind]`` is the object that hands an item's answers their
inputs, runs them on hidden inputs, makes the reference, compares,
describes, checks a notebook's variables (the test cells' checks and the
scoreboard's rows) and writes a cheating sample (see ``kinds.base.Kind``):
``gradient`` (a gradient tensor, Exercises 1-3), ``scalar_grad`` (the
``.grad`` of a scalar node, notebook 00), ``backward_function`` and
``sgd_training`` (Exercise 4's ``manual_backward``, alone and driving SGD),
``mlp_backward``, ``adam_step`` and ``adam_training`` (notebook 05),
``transformer_gradient``, ``transformer_backward`` and ``transformer_training``
(notebook 06). Their hidden inputs are ``cases`` (and ``iris_cases``,
``transformer_cases``). A new kind is a module with a ``Kind`` subclass passed to ``register``; a
notebook made of existing kinds needs only its items in
``autograder.exercises``.

May import: ``diagnosis``, ``workbook`` and the top-level ``exercises``;
never the judge (kinds execute answer code only through the ``AnswerRunner``
they are handed) or anything above.

Trust: ``Kind.run`` executes student code (untrusted; in grading it is called
only in the sandboxed ``judge.child``); everything else is trusted.
"""

from __future__ import annotations

from ..exercises import Item
from .base import Kind

KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add ``kind`` to KINDS under its name (a kind defined elsewhere, e.g. by a course, registers itself)."""
    if not kind.name or kind.name in KINDS and type(KINDS[kind.name]) is not type(kind):
        raise ValueError(f"a kind needs a name of its own: {kind.name!r}")
    KINDS[kind.name] = kind
    return kind


def kind_of(item: Item) -> Kind:
    return KINDS[item.kind]


def describe_case(item: Item, case) -> str:
    """The hidden inputs of ``case`` in words, as they matter to ``item``."""
    return kind_of(item).describe_case(item, case)


def _register_builtin() -> None:
    from .adam_step import AdamStepKind
    from .adam_training import AdamTrainingKind
    from .backward_function import BackwardFunctionKind
    from .gradient import GradientKind
    from .mlp_backward import MLPBackwardKind
    from .scalar_grad import ScalarKind
    from .sgd_training import SGDTrainingKind
    from .transformer_backward import TransformerBackwardKind
    from .transformer_gradient import TransformerGradientKind
    from .transformer_training import TransformerTrainingKind

    for kind in (GradientKind, ScalarKind, BackwardFunctionKind, SGDTrainingKind, MLPBackwardKind, AdamStepKind,
                 AdamTrainingKind, TransformerGradientKind, TransformerBackwardKind, TransformerTrainingKind):
        register(kind())


_register_builtin()
