"""The untrusted side of the grader: running a student's answer code, with autograd locked out.

Everything that executes code a student wrote goes through an ``AnswerRunner``
of this module (the kinds' ``run`` is handed one):

* ``IN_PROCESS`` runs an answer inside ``autograd_forbidden``, which makes
  every way of asking autograd for a gradient raise ``ForbiddenInAnswer``
  and puts it all back afterwards: for trusted code and a student's own
  checks (``nbgrader validate`` on the masters, ``backprop-ninja check``);
* ``LOCKED`` is for the judge's sandboxed child, which called
  ``lock_autograd`` before any student code ran: autograd is gone from that
  process for good, and nothing in it keeps what was there before (no saved
  originals for a student to find through the garbage collector).

The trust boundary: what comes out of this module is data produced by
student code. When grading a class it runs in a sandboxed child process
(``judge.child``) that holds no reference answer; its results cross a pipe
as plain values (``judge.transport``), and the trusted side (``judge.runner``,
``judge.verdict``, the kinds' ``reference`` and ``compare``) decides.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from ..workbook.value import Value


class ForbiddenInAnswer(RuntimeError):
    """An answer called autograd while it was supposed to derive the gradient."""


MESSAGE_CHARS = 2000  # of an error's text: a student's exception may carry anything


def describe_error(err: BaseException) -> str:
    """What went wrong when an answer ran, in words for the student."""
    if isinstance(err, NotImplementedError):
        return "not answered yet: the answer cell still raises NotImplementedError"
    try:
        text = str(err)[:MESSAGE_CHARS]
    except Exception:  # a student's exception whose __str__ raises
        text = "(its message could not be read)"
    if isinstance(err, NameError):
        return (f"{text}. An answer must work from the notebook's variables alone "
                "(a helper defined in another cell is not part of the answer).")
    return f"{type(err).__name__}: {text}"


class _Runner:
    """Executes answer cells; ``forbidden()`` is the context every piece of student code runs in."""

    def forbidden(self) -> contextlib.AbstractContextManager:
        raise NotImplementedError

    def run_cell(self, source: str, answer_id: str, namespace: dict) -> None:
        """Execute one answer cell in ``namespace`` (which it updates)."""
        code = compile(source, f"<answer {answer_id}>", "exec")
        with self.forbidden():
            exec(code, namespace)

    def load_function(self, source: str, answer_id: str, name: str):
        """Execute an answer cell that defines function ``name``, and return the function.

        The cell sees only ``torch``, ``F`` and ``math``: an answer must not lean
        on helpers defined in other cells.
        """
        namespace = {"torch": torch, "F": F, "math": math}
        self.run_cell(source, answer_id, namespace)
        function = namespace.get(name)
        if not callable(function):
            raise NameError(f"the answer cell does not define a function {name}")
        return function


class InProcessRunner(_Runner):
    def forbidden(self) -> contextlib.AbstractContextManager:
        return autograd_forbidden()


class LockedRunner(_Runner):
    """For a process where ``lock_autograd`` has run: nothing left to switch off."""

    def forbidden(self) -> contextlib.AbstractContextManager:
        if not _locked:
            raise RuntimeError("LockedRunner needs lock_autograd() first")
        return contextlib.nullcontext()


IN_PROCESS = InProcessRunner()
LOCKED = LockedRunner()


def run_answer(source: str, answer_id: str, namespace: dict) -> None:
    """Execute one answer cell in ``namespace``, autograd forbidden (in this process, restored after)."""
    IN_PROCESS.run_cell(source, answer_id, namespace)


# Everything that computes a gradient for you, or turns gradient tracking
# back on: reverse mode, forward mode (dual numbers), functorch's transforms,
# the engine behind all of them; notebook 00's Value.backward and every
# torch.optim optimizer (notebook 05: the update is the exercise).
_FORBIDDEN = [
    (torch.Tensor, "backward"), (torch.Tensor, "requires_grad_"), (torch.Tensor, "retain_grad"),
    (torch.Tensor, "register_hook"), (torch.Tensor, "register_post_accumulate_grad_hook"),
    (torch.autograd, "backward"), (torch.autograd, "grad"),
    (torch, "enable_grad"), (torch.autograd, "enable_grad"), (torch.autograd.functional, "vjp"),
    (torch.autograd.functional, "jvp"), (torch.autograd.functional, "jacobian"),
    (torch.autograd.functional, "vhp"), (torch.autograd.functional, "hvp"), (torch.autograd.functional, "hessian"),
]
_FORBIDDEN_FUNC = ("grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "linearize")
_FORBIDDEN_FORWARD_AD = ("make_dual", "unpack_dual", "enter_dual_level", "exit_dual_level", "dual_level")


def _targets() -> list[tuple[object, str]]:
    import torch.autograd.forward_ad
    import torch.autograd.graph
    import torch.autograd.variable
    import torch.func

    targets = list(_FORBIDDEN)
    targets += [(torch.func, name) for name in _FORBIDDEN_FUNC if hasattr(torch.func, name)]
    targets += [(torch.autograd.forward_ad, name) for name in _FORBIDDEN_FORWARD_AD
                if hasattr(torch.autograd.forward_ad, name)]
    targets += [(Value, "backward"), (torch.optim.Optimizer, "__init__")]
    targets += [(torch.autograd.graph, "_engine_run_backward"), (torch.autograd.variable.Variable, "_execution_engine")]
    # The C functions underneath: forward mode's dual levels and tensors, functorch's nesting levels.
    targets += [(torch._C, name) for name in ("_enter_dual_level", "_exit_dual_level", "_make_dual", "_unpack_dual")
                if hasattr(torch._C, name)]
    targets += [(torch, name) for name in ("_make_dual", "_unpack_dual") if hasattr(torch, name)]
    functorch = getattr(torch._C, "_functorch", None)
    if functorch is not None:
        targets += [(functorch, name) for name in ("_grad_increment_nesting", "_jvp_increment_nesting")
                    if hasattr(functorch, name)]
    return targets


_SWITCHES = [(torch, "set_grad_enabled"), (torch.autograd, "set_grad_enabled"), (torch._C, "_set_grad_enabled")]
_locked = False


@contextlib.contextmanager
def autograd_forbidden():
    """No autograd while student code runs: gradients must be derived by hand (restored on exit).

    Every entry point raises ForbiddenInAnswer, and so does the engine behind
    all of them, in case an answer found a way around the names; grad mode is
    off and cannot be switched on (``torch.no_grad()`` still works).
    """
    if _locked:  # this process gave autograd up for good: nothing to switch off or back on
        yield
        return
    targets = _targets()
    saved = [(owner, name, owner.__dict__.get(name, _MISSING)) for owner, name in targets]
    saved += [(owner, name, owner.__dict__[name]) for owner, name in _SWITCHES]
    was_enabled = torch.is_grad_enabled()
    _switch_off(targets)
    try:
        yield
    finally:
        for owner, name, original in saved:
            if original is _MISSING:
                delattr(owner, name)  # it was inherited (e.g. from torch._C.TensorBase)
            else:
                setattr(owner, name, original)
        torch.set_grad_enabled(was_enabled)


def lock_autograd() -> None:
    """Give up autograd in this process for good (the judge's child, before any student code).

    Unlike ``autograd_forbidden`` nothing is kept to put back: grad mode is
    switched off once, and the switches are replaced by ones that can only
    say "off" without calling the originals, so an answer that walks the
    garbage collector or a closure finds no way to turn it back on.
    """
    global _locked
    if not _locked:
        torch.set_grad_enabled(False)
        for owner, name in _targets():
            setattr(owner, name, _Refusal(name))
        for owner, name in _SWITCHES:
            setattr(owner, name, _LockedSwitch)
        _locked = True


def _switch_off(targets: list[tuple[object, str]]) -> None:
    torch.set_grad_enabled(False)
    for owner, name in targets:
        setattr(owner, name, _Refusal(name))
    for owner, name in _SWITCHES:  # torch.no_grad() inside an answer still works
        setattr(owner, name, _off_only(getattr(owner, name)))


class _LockedSwitch:
    """``set_grad_enabled`` in a locked process: False is what it already is; True is refused."""

    def __init__(self, mode: bool):
        if mode:
            raise ForbiddenInAnswer("turning gradient tracking on is not allowed here: derive the gradient by hand")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __call__(self, function):  # used as a decorator
        return function


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
