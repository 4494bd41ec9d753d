"""What every kind of graded item can do, and helpers its implementations share.

A kind (``Kind``) is one way of grading an item: a gradient tensor, the
``.grad`` of scalar nodes, a backward function, a training run, ... The
registry (``autograder.kinds.KINDS``) maps the name an item carries
(``Item.kind``) to the object that implements it. Each object knows:

* ``run``: the student's output on a hidden case. UNTRUSTED: it executes
  answer code (through ``autograder.judge.untrusted``), so grading calls it only
  in the sandboxed child (``autograder.judge.child``);
* ``reference``: what a correct answer gives on that case (trusted:
  autograd or ``torch.optim`` as the oracle);
* ``compare``: a ``comparison.CheckResult`` of output against reference;
* ``describe_case``: the hidden inputs in words, for the verdict;
* ``check``: the visible check, what a notebook's test cell runs (through
  ``cmp``, ``checks.check_backward``, ...); its arguments differ by kind, and
  it returns a ``comparison.CheckResult``, which the test cell prints;
* ``probe``: the same ``check`` on a notebook's variables, for the
  scoreboard, which shows its CheckResult as a row;
* ``label``, ``shape``, ``tensor``: what the scoreboard shows in a row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from ..diagnosis.comparison import CheckResult
from ..exercises import Item


class Kind:
    """One kind of graded item; subclasses fill in every method."""

    name = ""
    oracle = "autograd"  # what the hidden check compares with, named in a passing verdict
    # Whether a failure on hidden sizes after a pass on the notebook's sizes means a size typed in as a
    # number (``diagnose.hardcoded_size``): true where the answer's shapes follow n, n_hidden and n_embd.
    shapes_follow_sizes = False

    def run(self, item: Item, sources: Mapping[str, str], case):
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

    def label(self, item: Item) -> str:
        """What a row of the scoreboard names: "dcounts", "x1.grad", "manual_backward", ..."""
        raise NotImplementedError

    def shape(self, item: Item, namespace: Mapping) -> tuple[int, ...] | None:
        """The shape of the one tensor the item checks, if it checks one."""
        return None

    def tensor(self, item: Item) -> str:
        """For a gradient item, the tensor it is the gradient of (a node of the forward graph); else ""."""
        return ""

    def check(self, *args, **kwargs) -> CheckResult:
        """The visible check of a test cell; its arguments differ by kind."""
        raise NotImplementedError

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> CheckResult:
        """``check`` on a notebook's variables; raises NotImplementedError when not attempted.

        Any other exception means the notebook is not in a state to check the
        item, except ``StudentError``: the student's function raised.
        """
        raise NotImplementedError


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
