"""What every kind of graded item can do, and helpers its implementations share.

A kind (``Kind``) is one way of grading an item: a gradient tensor, the
``.grad`` of scalar nodes, a backward function, a training run, ... Each
kind is one module of this package, holding everything particular to it:

* its item fields (``Item.spec``, read through the kind's own dataclass);
* the hidden check: ``inputs`` (trusted: the correct values an answer is
  handed, such as upstream gradients), ``run`` (UNTRUSTED: executes the
  answer through the ``AnswerRunner`` it is given, in grading only in the
  sandboxed child, ``judge.child``), ``reference`` (trusted: autograd or
  ``torch.optim``), ``compare`` and ``describe_case``; ``given`` and
  ``computes`` name the quantities ``inputs`` hands in and the answer makes,
  so that the judge never hands a child the answer to a later trial;
* the visible checks of the test cells (methods marked ``@visible_check``;
  ``checking.checks`` publishes them as ``cmp``, ``check_backward``, ...),
  and ``probe``, the same check on a notebook's variables, for the scoreboard;
* ``cheating_answer``: how autograd's answer would be copied into its answer
  cells, for the ``copies_grad`` sample submission.

``register`` adds a kind to the registry (``autograder.kinds.KINDS``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import torch

from ..diagnosis.codes import Diagnosis
from ..diagnosis.comparison import CheckResult
from ..diagnosis.diagnose import hardcoded_size
from ..exercises import Item
from .cases import NOTEBOOK_SIZES


class AnswerRunner(Protocol):
    """How a kind executes answer code (``judge.untrusted`` provides it): kinds never import the judge."""

    def run_cell(self, source: str, answer_id: str, namespace: dict) -> None:
        """Execute an answer cell in ``namespace``, with autograd locked out."""

    def load_function(self, source: str, answer_id: str, name: str) -> Callable:
        """Execute an answer cell that defines function ``name``; the function."""

    def forbidden(self) -> contextlib.AbstractContextManager:
        """A context in which calling a student's function cannot reach autograd."""


@dataclass(frozen=True)
class Report:
    """What a visible check found, and the lines the test cell prints."""

    result: CheckResult
    lines: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.result.ok


def visible_check(method: Callable) -> Callable:
    """Mark a kind's method as a check of the notebooks' test cells (published by ``checking.checks``)."""
    method.is_visible_check = True
    return method


class Kind:
    """One kind of graded item; subclasses fill in the methods."""

    name = ""
    oracle = "autograd"  # what the hidden check compares with, named in a passing verdict
    # Whether a failure on hidden sizes after a pass on the notebook's sizes means a size typed in as a
    # number (``diagnose.hardcoded_size``): true where the answer's shapes follow n, n_hidden and n_embd.
    shapes_follow_sizes = False

    # ---- the hidden check
    def inputs(self, item: Item, case, sources: Mapping[str, str] | None = None) -> dict:
        """TRUSTED: correct values the answer cells are handed on ``case`` (name -> tensor or number).

        ``sources`` (answer id -> code), when known, lets a kind leave out what the code never names.
        """
        return {}

    def given(self, item: Item) -> frozenset[str]:
        """The quantities ``inputs`` hands in (names shared by every kind that makes them)."""
        return frozenset()

    def computes(self, item: Item) -> frozenset[str]:
        """The quantities the item's answer produces: a child that was handed one of them never runs it."""
        return frozenset({item.grade_id})

    def reads(self, item: Item, sources: Mapping[str, str]) -> frozenset[str]:
        """The quantities of ``given`` that the answer cells (``sources``) use: what a cascade would come through."""
        return frozenset()

    def run(self, item: Item, sources: Mapping[str, str], case, inputs: Mapping, runner: AnswerRunner):
        """UNTRUSTED: run the item's answer cells (``sources``: answer id -> code) on ``case``; their output."""
        raise NotImplementedError

    def reference(self, item: Item, case):
        """What a correct answer outputs on ``case``."""
        raise NotImplementedError

    def compare(self, item: Item, got, expected, case) -> CheckResult:
        """The student's output ``got`` against ``expected``, both on ``case``."""
        raise NotImplementedError

    def describe_case(self, item: Item, case) -> str:
        return case.describe()

    # ---- a size typed in as a number (``judge.verdict``, when ``shapes_follow_sizes``)
    def notebook_sizes(self, item: Item) -> dict[str, int]:
        """The sizes of the notebook the item is in (``cases.NOTEBOOK_SIZES``: n, n_hidden, n_embd, block_size)."""
        return dict(NOTEBOOK_SIZES)

    def case_sizes(self, item: Item, case) -> dict[str, int]:
        """The sizes of a hidden case, as ``notebook_sizes`` names them."""
        return case.sizes()

    def hardcoded_size(self, item: Item, notebook: Mapping[str, int], hidden: Mapping[str, int],
                       sources: list[str]) -> Diagnosis | None:
        """The diagnosis of an answer right on the notebook's sizes and wrong on ``hidden``, or None."""
        return hardcoded_size(notebook, hidden, sources)

    # ---- the notebook: scoreboard rows
    def label(self, item: Item) -> str:
        """What a row of the scoreboard names: "dcounts", "x1.grad", "manual_backward", ..."""
        raise NotImplementedError

    def shape(self, item: Item, namespace: Mapping) -> tuple[int, ...] | None:
        """The shape of the one tensor the item checks, if it checks one."""
        return None

    def tensor(self, item: Item) -> str:
        """For a gradient item, the tensor it is the gradient of (a node of the forward graph); else ""."""
        return ""

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> Report:
        """The visible check on a notebook's variables; raises NotImplementedError when not attempted.

        Any other exception means the notebook is not in a state to check the
        item, except ``StudentError``: the student's function raised.
        """
        raise NotImplementedError

    def visible_checks(self) -> dict[str, Callable]:
        """name -> bound method, for every method marked ``@visible_check``."""
        found = {}
        for klass in reversed(type(self).__mro__):
            for name, value in vars(klass).items():
                if getattr(value, "is_visible_check", False):
                    found[name] = getattr(self, name)
        return found

    # ---- the sample submissions
    def cheating_answer(self, item: Item, answer_id: str, solution: str) -> str:
        """Code for answer cell ``answer_id`` that copies autograd's answer instead of deriving it."""
        raise NotImplementedError


class FunctionsKind(Kind):
    """A kind whose answer cells each define a function (``Item.spec["functions"]``, one per answer cell)."""

    def functions(self, item: Item) -> tuple[str, ...]:
        return tuple(item.spec["functions"])

    def load_functions(self, item: Item, sources: Mapping[str, str], runner: AnswerRunner) -> list[Callable]:
        """UNTRUSTED: the functions the item's answer cells define, in the order of ``item.answers``."""
        return [runner.load_function(sources[a], a, name) for a, name in zip(item.answers, self.functions(item))]

    def notebook_functions(self, item: Item, namespace: Mapping) -> list[Callable]:
        """The notebook's functions of the item's answer cells; NotImplementedError when one is not defined."""
        return [student_function(namespace, name) for name in self.functions(item)]

    def label(self, item: Item) -> str:
        return " + ".join(self.functions(item))


class StudentError(Exception):
    """The student's function raised: that is a verdict, not a failure of the check."""


def call_directly(function: Callable, *args, **kwargs):
    """Call a student's function without grad mode (a visible check: its exceptions show as they are)."""
    with torch.no_grad():
        return function(*args, **kwargs)


def call_student(function: Callable, *args, **kwargs):
    """Call a student's function without grad mode; its exceptions become ``StudentError``.

    NotImplementedError passes through: the function is not written yet.
    """
    try:
        with torch.no_grad():
            return function(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as err:
        raise StudentError(f"{getattr(function, '__name__', 'the function')} raised {type(err).__name__}: {err}") from err


def student_function(namespace: Mapping, name: str) -> Callable:
    """The notebook's function ``name``; NotImplementedError when it is not defined yet."""
    function = namespace.get(name)
    if not callable(function):
        raise NotImplementedError
    return function


def require(namespace: Mapping, *names: str) -> list:
    """The notebook's variables ``names``; LookupError naming those not defined."""
    absent = [name for name in names if name not in namespace]
    if absent:
        raise LookupError(f"{', '.join(absent)} not defined")
    return [namespace[name] for name in names]
