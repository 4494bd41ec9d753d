"""The untrusted side of the grader: running a student's answer code, with autograd locked out.

Everything that executes code a student wrote goes through this module:
``run_answer`` executes an answer cell in a namespace, ``load_function``
executes a cell that defines a function and returns that function, and both
(and every call of a loaded function, see the kinds' ``run``) happen inside
``autograd_forbidden``, which makes every way of asking autograd for a
gradient raise ``ForbiddenInAnswer``.

The trust boundary: what comes out of this module is data produced by
student code. When grading a class, it runs in a sandboxed child process
(``autograder.judge.child``) and its results cross a pipe as plain
values (``autograder.judge.transport``); the trusted side
(``autograder.judge.verdict``, the kinds' ``reference`` and ``compare``) makes
the reference and decides. Nothing here decides whether an answer is right.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from ..workbook.value import Value


class ForbiddenInAnswer(RuntimeError):
    """An answer called autograd while it was supposed to derive the gradient."""


def run_answer(source: str, answer_id: str, namespace: dict) -> None:
    """Execute one answer cell in ``namespace`` (which it updates), autograd forbidden."""
    code = compile(source, f"<answer {answer_id}>", "exec")
    with autograd_forbidden():
        exec(code, namespace)


def load_function(source: str, answer_id: str, name: str):
    """Execute an answer cell that defines function ``name``, and return the function.

    The cell sees only ``torch``, ``F`` and ``math``: an answer must not lean
    on helpers defined in other cells.
    """
    namespace = {"torch": torch, "F": F, "math": math}
    run_answer(source, answer_id, namespace)
    function = namespace.get(name)
    if not callable(function):
        raise NameError(f"the answer cell does not define a function {name}")
    return function


def describe_error(err: BaseException) -> str:
    """What went wrong when an answer ran, in words for the student."""
    if isinstance(err, NotImplementedError):
        return "not answered yet: the answer cell still raises NotImplementedError"
    if isinstance(err, NameError):
        return (f"{err}. An answer must work from the notebook's variables alone "
                "(a helper defined in another cell is not part of the answer).")
    return f"{type(err).__name__}: {err}"


# Everything that computes a gradient for you, or turns gradient tracking
# back on, raises inside ``autograd_forbidden``.
_FORBIDDEN = [
    (torch.Tensor, "backward"), (torch.Tensor, "requires_grad_"), (torch.Tensor, "retain_grad"),
    (torch.Tensor, "register_hook"), (torch.autograd, "backward"), (torch.autograd, "grad"),
    (torch, "enable_grad"), (torch.autograd, "enable_grad"), (torch.autograd.functional, "vjp"),
    (torch.autograd.functional, "jacobian"), (torch.autograd.functional, "vhp"),
    (torch.autograd.functional, "hessian"),
]
_FORBIDDEN_FUNC = ("grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "linearize")


@contextlib.contextmanager
def autograd_forbidden():
    """No autograd while student code runs: gradients must be derived by hand.

    Every public entry point raises ForbiddenInAnswer, and so does the engine
    behind all of them, in case an answer found a way around the names; grad
    mode is off and cannot be switched on (``torch.no_grad()`` still works).
    So do ``Value.backward`` (notebook 00) and every ``torch.optim`` optimizer
    (notebook 05: the update is the exercise).
    """
    import torch.autograd.graph
    import torch.autograd.variable
    import torch.func

    targets = _FORBIDDEN + [(torch.func, name) for name in _FORBIDDEN_FUNC if hasattr(torch.func, name)]
    targets += [(Value, "backward"), (torch.optim.Optimizer, "__init__")]  # notebooks 00 and 05
    targets += [(torch.autograd.graph, "_engine_run_backward"), (torch.autograd.variable.Variable, "_execution_engine")]
    saved = [(owner, name, owner.__dict__.get(name, _MISSING)) for owner, name in targets]
    switches = [(torch, "set_grad_enabled"), (torch.autograd, "set_grad_enabled"), (torch._C, "_set_grad_enabled")]
    saved += [(owner, name, owner.__dict__[name]) for owner, name in switches]
    was_enabled = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    for owner, name, _ in saved[: len(targets)]:
        setattr(owner, name, _Refusal(name))
    for owner, name in switches:  # torch.no_grad() inside an answer still works
        setattr(owner, name, _off_only(getattr(owner, name)))
    try:
        yield
    finally:
        for owner, name, original in saved:
            if original is _MISSING:
                delattr(owner, name)  # it was inherited (e.g. from torch._C.TensorBase)
            else:
                setattr(owner, name, original)
        torch.set_grad_enabled(was_enabled)


_MISSING = object()


class _Refusal:
    """Raises on any call or attribute: stands in for autograd while an answer runs."""

    def __init__(self, name: str):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise ForbiddenInAnswer(f"{self._name} is not allowed here: {_REFUSALS.get(self._name, _DERIVE)}")

    def __getattr__(self, attribute: str):
        raise ForbiddenInAnswer(f"{self._name} is not allowed here: {_REFUSALS.get(self._name, _DERIVE)}")


_DERIVE = "derive the gradient by hand"
_REFUSALS = {"__init__": "write the optimizer's update by hand (torch.optim is the reference, not the answer)"}


def _off_only(set_grad_enabled):
    def switch(mode: bool):
        if mode:
            raise ForbiddenInAnswer("turning gradient tracking on is not allowed here: derive the gradient by hand")
        return set_grad_enabled(mode)
    return switch
