"""Kind "gradient" (Exercises 1-3): answer cells that assign one gradient tensor, ``d<name>``.

Visible check: ``cmp`` (``GradientKind.check``), the student's tensor against
autograd's ``<name>.grad`` from the notebook's forward pass. Hidden check:
the answer cells run again on a hidden case's forward pass, with the correct
upstream gradients fed in, so a mistake upstream costs only its own item.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..diagnosis.comparison import CheckResult, alias_notes, compare
from ..diagnosis.diagnose import context_of
from ..diagnosis.hints import pointer_for_check
from ..exercises import Item
from ..judge.untrusted import run_answer
from ..workbook import model
from .base import Kind
from .cases import Case, gradient_namespace, reference_gradients


def forward_context(t: torch.Tensor) -> dict | None:
    """What the checker knows of the forward pass that made ``t``, for ``diagnose``'s hints, if any."""
    forward = model.forward_containing(t)
    return None if forward is None else context_of(forward, forward.inputs)


def hidden_context(case: Case) -> dict:
    """The hidden case's forward pass and correct gradients, for ``diagnose``'s hints."""
    context = {k: v for k, v in gradient_namespace(case).items() if isinstance(v, (torch.Tensor, int))}
    context.update(reference_gradients(case))
    return context


class GradientKind(Kind):
    name = "gradient"
    shapes_follow_sizes = True

    def check(self, name: str, got: object, tensor: torch.Tensor, namespace: Mapping) -> CheckResult:
        """The visible check (``cmp``): ``got``, the student's d<name>, against ``tensor.grad``.

        Notes point to the collapsed hint for the diagnosed mistake, and name
        the other gradient variables of ``namespace`` that share ``got``'s
        memory (unless the diagnosis already says so).
        """
        result = compare(name, got, tensor.grad, forward_context(tensor))
        pointer = pointer_for_check(name, result.code) if not result.ok else None
        aliases = [] if result.code == "alias" else alias_notes(f"d{name}", got, namespace)  # said once is enough
        notes = ([pointer] if pointer else []) + aliases
        return CheckResult((result,), notes=tuple(notes))

    def run(self, item: Item, sources: Mapping[str, str], case: Case):
        namespace = gradient_namespace(case)
        correct = reference_gradients(case)  # the upstream gradients fed in
        for answer, provided in zip(item.answers, item.provided):
            namespace.update({name: correct[name].clone() for name in provided})
            run_answer(sources[answer], answer, namespace)
        if item.variable not in namespace:
            raise NameError(f"the answer cells never assign {item.variable}")
        return namespace[item.variable]

    def reference(self, item: Item, case: Case) -> torch.Tensor:
        return reference_gradients(case)[item.variable]

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        return CheckResult((compare(item.tensor, got, expected, hidden_context(case)),))

    def label(self, item: Item) -> str:
        return item.variable

    def shape(self, item: Item, namespace: Mapping) -> tuple[int, ...] | None:
        tensor = namespace.get(item.tensor)
        return tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else None

    def tensor(self, item: Item) -> str:
        return item.tensor

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> CheckResult:
        if item.variable not in namespace:
            if all(a in answers for a in item.answers):  # the cells ran, yet the variable never came to be
                return CheckResult(problem=f"{item.variable} is not defined: its answer cell stopped with an "
                                           "error before assigning it (an earlier answer missing?)")
            raise NotImplementedError
        reference = namespace.get(item.tensor)
        if not isinstance(reference, torch.Tensor) or reference.grad is None:
            raise LookupError(f"{item.tensor}.grad is missing")
        return self.check(item.tensor, namespace[item.variable], reference, namespace)
