"""Kind "transformer_backward" (notebook 06, Part 2): ``manual_backward``, the whole block's backward pass.

Item fields (``Item.spec``): ``functions``, the function its answer cell defines.

Visible check: ``check_block_backward``, the 17 gradients against autograd's
on the notebook's check batch. Hidden check: the same on every setting of a
hidden case (``transformer_cases``). Both within notebook 06's tolerance
(``transformer.GRADIENT_RTOL``) and listed in the order of the backward pass
(the head first, the embeddings last), so that the first gradient that fails
is the one nearest the mistake, and its diagnosis is the one reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from ..diagnosis.comparison import CheckResult, compare_all
from ..diagnosis.diagnose import context_of
from ..exercises import Item
from ..workbook import transformer as tr
from .backward_function import AUTOGRAD_BACKWARD
from .base import AnswerRunner, FunctionsKind, Report, call_directly, call_student, require, visible_check
from .cases import Case
from .transformer_cases import QUANTITIES, TransformerKind, case_inputs, hidden_context, settings


def answer_scope() -> dict:
    """What the answer cell of a backward function sees when it is judged: torch, F, math, GELU's constants."""
    return {"torch": torch, "F": F, "math": math, "GELU_SCALE": tr.GELU_SCALE, "GELU_CUBIC": tr.GELU_CUBIC}


def load_backward(item: Item, sources: Mapping[str, str], runner: AnswerRunner) -> Callable:
    """UNTRUSTED: the function the item's answer cell defines, run in ``answer_scope()``."""
    (answer,), (name,) = item.answers, item.spec["functions"]
    namespace = answer_scope()
    runner.run_cell(sources[answer], answer, namespace)
    function = namespace.get(name)
    if not callable(function):
        raise NameError(f"the answer cell does not define a function {name}")
    return function


def block_context(parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor,
                  config: tr.TransformerConfig) -> dict:
    """The chunked forward pass on (Xb, Yb) with autograd's gradients, as the hints need it."""
    with torch.enable_grad():
        leaves = [p.detach().clone().requires_grad_(True) for p in parameters]
        forward = tr.chunked_forward(leaves, Xb, Yb, config)
        forward.loss.backward()
    context = context_of(forward, forward.inputs)
    context.update({f"d{name}": p.grad for name, p in zip(tr.PARAM_NAMES, leaves)})
    context["hs"] = config.head_size
    return context


def in_backward_order(result: CheckResult) -> CheckResult:
    """The comparisons of the 17 gradients from the head down to the embeddings (the order of the backward pass)."""
    if len(result.comparisons) != len(tr.PARAM_NAMES):
        return result
    return CheckResult(tuple(reversed(result.comparisons)), result.problem, result.problem_code, result.notes)


def compare_gradients(got, expected: list[torch.Tensor], context: Mapping) -> CheckResult:
    """The 17 gradients against autograd's, within notebook 06's tolerance, in the order of the backward pass."""
    return in_backward_order(compare_all(tr.PARAM_NAMES, got, expected, context=context, rtol=tr.GRADIENT_RTOL,
                                         zero_level=tr.GRADIENT_ZERO_LEVEL))


class TransformerBackwardKind(TransformerKind, FunctionsKind):
    """Notebook 06's ``manual_backward`` on one batch."""

    name = "transformer_backward"

    @visible_check
    def check_block_backward(self, backward, parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor,
                             config: tr.TransformerConfig) -> Report:
        """Compare ``backward``'s 17 gradients with autograd's on the batch (Xb, Yb).

        ``backward(parameters, fw, Xb, Yb, config)`` must return [dwte, dwpe,
        ..., dWlm] for ``fw = fused_forward(parameters, Xb, Yb, config)``; it
        gets copies. One line per parameter, from the head down to the
        embeddings; passes when all 17 are within notebook 06's tolerance.
        """
        result = self.check(backward, parameters, Xb, Yb, config)
        return Report(result, tuple(result.lines()))

    def check(self, backward, parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor,
              config: tr.TransformerConfig, call=call_directly) -> CheckResult:
        """``backward``'s gradients against autograd's; ``call(backward, *args)`` calls the student's function."""
        expected = tr.autograd_grads(parameters, Xb, Yb, config)
        copies = [p.detach().clone() for p in parameters]  # the student's function gets copies
        with torch.no_grad():
            fw = tr.fused_forward(copies, Xb, Yb, config)
        got = call(backward, copies, fw, Xb, Yb, config)
        return compare_gradients(got, expected, block_context(parameters, Xb, Yb, config))

    # ---- the hidden check
    def computes(self, item: Item) -> frozenset[str]:
        return frozenset(f"{QUANTITIES}:d{name}" for name in tr.PARAM_NAMES)

    def run(self, item: Item, sources: Mapping[str, str], case: Case, inputs: Mapping, runner: AnswerRunner) -> list:
        """The function's gradients on every setting of ``case``, a list per setting."""
        backward = load_backward(item, sources, runner)
        outputs = []
        for index, setting in enumerate(settings(case)):
            parameters, Xb, Yb = case_inputs(case, index)
            with torch.no_grad():
                fw = tr.fused_forward(parameters, Xb, Yb, setting.config)
            with runner.forbidden():
                got = backward(parameters, fw, Xb, Yb, setting.config)
            outputs.append(list(got) if isinstance(got, (list, tuple)) else got)
        return outputs

    def reference(self, item: Item, case: Case) -> list[list[torch.Tensor]]:
        return [tr.autograd_grads(*case_inputs(case, index), setting.config)
                for index, setting in enumerate(settings(case))]

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        outputs = got if isinstance(got, list) and len(got) == len(expected) else [got] + [None] * (len(expected) - 1)
        return self.labelled([compare_gradients(value, reference, hidden_context(case, index))
                              for index, (value, reference) in enumerate(zip(outputs, expected))], case)

    # ---- the notebook
    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> Report:
        (backward,) = self.notebook_functions(item, namespace)
        result = self.check(backward, *require(namespace, "parameters", "Xc", "Yc", "config"), call=call_student)
        return Report(result, tuple(result.lines()))

    def cheating_answer(self, item: Item, answer_id: str, solution: str) -> str:
        return AUTOGRAD_BACKWARD.format(names=", ".join(f"d{name}" for name in tr.PARAM_NAMES))
