"""The checks of the notebooks' test cells: each prints a report and returns whether the answer passes.

They are built from the kinds (``autograder.kinds``): every kind method
marked ``@visible_check`` is published here under its own name, so the test
cell, the progress table and the hidden judge judge an answer the same way,
and a new kind's checks appear with it. The comparisons themselves are
``autograder.diagnosis.comparison``'s. Today:

* notebook 00: ``check_grad``, ``check_grads`` (a scalar ``Value``'s ``.grad``)
* notebooks 01-03: ``cmp`` (one gradient tensor against autograd's)
* notebook 04: ``check_backward``, ``check_training`` (the manual backward pass, alone and over SGD steps)
* notebook 05: ``check_mlp_backward``, ``check_adam_step``, ``check_adam_training``
* notebook 06: ``cmp``, ``check_block_backward``, ``check_training_run`` (the whole block's backward pass, and
  the training run beside autograd's)

``from autograder.checking.checks import cmp`` works for each of them.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
from collections.abc import Callable

from ..judge.untrusted import IN_PROCESS
from ..kinds import KINDS

_published: dict[tuple[int, str], Callable] = {}


def visible_checks() -> dict[str, Callable]:
    """name -> the public check function, for every visible check of every registered kind."""
    found = {}
    for kind in KINDS.values():
        for name, method in kind.visible_checks().items():
            key = (id(kind), name)
            if key not in _published:
                _published[key] = _publish(method)
            found[name] = _published[key]
    return found


def _publish(method: Callable) -> Callable:
    """The test cell's function: prints the report, keeps the reason for a failing assert, returns a bool."""
    parameters = inspect.signature(method).parameters

    @functools.wraps(method)
    def check(*args, **kwargs) -> bool:
        if "namespace" in parameters and "namespace" not in kwargs:  # the test cell's variables, for notes on aliases
            caller = inspect.currentframe().f_back
            kwargs["namespace"] = caller.f_globals if caller is not None else {}
        if "runner" in parameters and "runner" not in kwargs:  # to run an answer cell again (a cascade's cause)
            kwargs["runner"] = IN_PROCESS
        report = method(*args, **kwargs)
        print("\n".join(report.lines))
        _note_outcome(report.result.reason())
        return report.ok

    return check


def __getattr__(name: str):
    if name == "VISIBLE_CHECKS":
        return frozenset(visible_checks())
    checks = visible_checks()
    if name in checks:
        return checks[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(visible_checks()) + ["VISIBLE_CHECKS"])


# ------------------------------------------------------------ failing asserts
#
# A test cell says ``assert cmp(...)``. A bare assert fails with an empty
# AssertionError, so in IPython each such assert gets the check's reason as
# its message: an AST transformer turns ``assert check(...)`` into
# ``assert check(...), <the reason the check just recorded>``. The error is
# then raised in the test cell itself, so its traceback is that one frame,
# and the checks keep returning a plain bool (a cell may add their results up).

DEFAULT_REASON = "the check above failed (see its report)"
_last_reason = ""


def _note_outcome(reason: str) -> None:
    """Record why the visible check that just ran failed ("" when it passed), for ``failure_reason``."""
    global _last_reason
    _last_reason = reason


def failure_reason() -> str:
    """Why the last visible check failed: the message of a failed ``assert check(...)``."""
    return _last_reason or DEFAULT_REASON


class AssertReasons(ast.NodeTransformer):
    """IPython AST transformer: ``assert check(...)`` fails with the check's reason."""

    def visit_Assert(self, node: ast.Assert) -> ast.Assert:
        call = node.test
        called = getattr(call.func, "id", getattr(call.func, "attr", None)) if isinstance(call, ast.Call) else None
        if node.msg is None and called in visible_checks():
            reason = ast.parse("__import__('autograder.checking.checks').checking.checks.failure_reason()",
                               mode="eval").body
            node.msg = ast.copy_location(reason, node)
            ast.fix_missing_locations(node)
        return node


def install_assert_reasons() -> None:
    """Give ``assert check(...)`` its reason in the running IPython shell, if there is one (idempotent)."""
    ipython = sys.modules.get("IPython")  # not imported: not in IPython, nothing to do
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is not None and not any(isinstance(t, AssertReasons) for t in shell.ast_transformers):
        shell.ast_transformers.append(AssertReasons())


install_assert_reasons()
