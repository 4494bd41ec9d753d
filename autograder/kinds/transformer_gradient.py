"""Kind "transformer_gradient" (notebook 06, Parts 1 and 2): answer cells that assign a gradient tensor.

Item fields (``Item.spec``): ``variable`` and ``provided`` as for the kind
``gradient`` (the gradient the answer cells assign; per answer cell, the
upstream gradients fed in with their correct values), and ``task``:

* "line": Part 1, a line (or the lines) of the chunked forward pass, on the
  whole forward pass's variables (``transformer.answer_namespace``);
* "layer_norm": Part 2's LayerNorm in one expression, ``dx_ln`` from
  ``dout_ln``, ``gain_ln``, ``xhat_ln`` and ``rstd_ln`` (``transformer.layer_norm_task``);
* "head": Part 2's attention head, ``dq_h``, ``dk_h``, ``dv_h`` from ``dy_h``,
  ``att_h``, ``q_h``, ``k_h``, ``v_h`` (T, hs): the answer runs on every head of
  every example of the hidden case, one at a time as in the notebook, and the
  results are judged stacked, (B, nh, T, hs), against autograd's for all heads
  at once (one head alone has too few entries for its scale to be set by more
  than one row's rounding: bench/transformer_tolerance.md).

Visible check: the gradient kind's ``cmp``, on the notebook's own sizes with
the workbook's tolerance. Hidden check: on every setting of a hidden case
(``transformer_cases``), within notebook 06's tolerance
(``transformer.GRADIENT_RTOL``, ``GRADIENT_ZERO_LEVEL``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from ..diagnosis.comparison import CheckResult, compare
from ..exercises import Item
from ..workbook import transformer as tr
from .base import AnswerRunner
from .cases import Case
from .gradient import GradientKind, names_read, spec
from .transformer_cases import (
    QUANTITIES,
    TransformerKind,
    answer_namespace,
    hidden_context,
    partial_gradient,
    reference_gradients,
    settings,
)

# The quantities a task hands in and computes, by the name Part 1 gives the same values: the head's dy_h is
# dy_heads, its dq_h is dq; so a child that was handed Part 1's dq never runs the head.
SAME_AS = {"dy_h": "dy_heads", "dq_h": "dq", "dk_h": "dk", "dv_h": "dv", "dout_ln": "dln2_out"}
HEAD_INPUTS = ("q", "k", "v", "att")  # the head's q_h, k_h, v_h, att_h are these, one head at a time


def task(item: Item) -> str:
    return str(item.spec.get("task", "line"))


class TransformerGradientKind(TransformerKind, GradientKind):
    """Notebook 06's gradient tensors, on the transformer's hidden settings."""

    name = "transformer_gradient"

    def visible_checks(self) -> dict[str, Callable]:
        return {}  # its test cells use the gradient kind's cmp, which this kind inherits

    # ---- the hidden check
    def given(self, item: Item) -> frozenset[str]:
        return frozenset(f"{QUANTITIES}:{SAME_AS.get(name, name)}" for names in spec(item).provided for name in names)

    def computes(self, item: Item) -> frozenset[str]:
        return frozenset({f"{QUANTITIES}:{SAME_AS.get(spec(item).variable, spec(item).variable)}"})

    def inputs(self, item: Item, case: Case, sources: Mapping[str, str] | None = None) -> dict:
        """The correct upstream gradients, per setting (``"<setting>:<name>"``); only those the code names."""
        wanted = {name for names in spec(item).provided for name in names}
        if sources is not None:
            read = set().union(*(names_read(sources.get(a, "")) for a in item.answers))
            wanted = {name for name in wanted if name.split("<")[0] in read}
        return {f"{index}:{name}": partial_gradient(case, index, name) if "<" in name
                else reference_gradients(case, index)[name]
                for index in range(len(settings(case))) for name in sorted(wanted)}

    def run(self, item: Item, sources: Mapping[str, str], case: Case, inputs: Mapping, runner: AnswerRunner) -> list:
        """The answer on every setting of ``case``: one tensor (or whatever the cells left) per setting."""
        run_task = {"line": self._run_lines, "layer_norm": self._run_layer_norm, "head": self._run_head}[task(item)]
        outputs = []
        for index in range(len(settings(case))):
            given = {name.split(":", 1)[1]: value.clone() for name, value in inputs.items()
                     if name.startswith(f"{index}:")}
            outputs.append(run_task(item, sources, answer_namespace(case, index), given, runner))
        return outputs

    @staticmethod
    def _variable(item: Item, namespace: Mapping):
        variable = spec(item).variable
        if variable not in namespace:
            raise NameError(f"the answer cells never assign {variable}")
        return namespace[variable]

    def _run_lines(self, item: Item, sources: Mapping[str, str], namespace: dict, given: Mapping,
                   runner: AnswerRunner):
        for answer, provided in zip(item.answers, spec(item).provided):
            namespace.update({name.split("<")[0]: given[name].clone() for name in provided if name in given})
            runner.run_cell(sources[answer], answer, namespace)
        return self._variable(item, namespace)

    def _run_layer_norm(self, item: Item, sources: Mapping[str, str], namespace: dict, given: Mapping,
                        runner: AnswerRunner):
        """ln2 on its own, as ``transformer.layer_norm_task`` sets it up in the notebook."""
        namespace.update({"x_ln": namespace["x1"].clone(), "gain_ln": namespace["ln2_gain"].clone(),
                          "xhat_ln": namespace["ln2_xhat"].clone(), "rstd_ln": namespace["ln2_rstd"].clone()})
        namespace.update(given)
        (answer,) = item.answers
        runner.run_cell(sources[answer], answer, namespace)
        return self._variable(item, namespace)

    def _run_head(self, item: Item, sources: Mapping[str, str], namespace: dict, given: Mapping,
                  runner: AnswerRunner):
        """The head cell once per head of every example, each on its own; the results stacked (B, nh, ...)."""
        (answer,) = item.answers
        q = namespace["q"]
        B, nh = q.shape[:2]
        results = []
        for b in range(B):
            for h in range(nh):
                scope = dict(namespace)
                scope.update({f"{name}_h": namespace[name][b, h].clone() for name in HEAD_INPUTS})
                scope.update({name: value[b, h].clone() for name, value in given.items()})
                runner.run_cell(sources[answer], answer, scope)
                value = self._variable(item, scope)
                if not isinstance(value, torch.Tensor) or (results and value.shape != results[0].shape):
                    return value  # not one tensor per head of one shape: judged as it is
                results.append(value.detach())
        return torch.stack(results).reshape(B, nh, *results[0].shape)

    def reference(self, item: Item, case: Case) -> list[torch.Tensor]:
        return [reference_gradients(case, index)[spec(item).variable] for index in range(len(settings(case)))]

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        outputs = got if isinstance(got, list) and len(got) == len(expected) else [got] + [None] * (len(expected) - 1)
        results = [CheckResult((compare(spec(item).tensor, value, reference, hidden_context(case, index),
                                        tr.GRADIENT_RTOL, tr.GRADIENT_ZERO_LEVEL),))
                   for index, (value, reference) in enumerate(zip(outputs, expected))]
        return self.labelled(results, case)
