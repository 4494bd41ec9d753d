"""Kind "scalar" (notebook 00): answer cells that set the ``.grad`` of nodes of a scalar graph.

Visible check: ``checks.check_grad(s)`` (``ScalarKind.check``), each node's
``.grad`` against PyTorch's on the notebook's graph. Hidden check: the answer
cells run again on the same graph built from other input numbers, with the
nodes finished by earlier steps given their correct gradient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from ..diagnosis.comparison import CheckResult, Comparison, compare
from ..exercises import Item
from ..judge.untrusted import run_answer
from ..workbook import expression_graphs
from .base import Kind
from .cases import Case

# Notebook 00 keeps each of its expression graphs in a variable of its own
# (the node names, x1, o, ..., are reused by later graphs).
GRAPH_VARIABLES = {"neuron": "g", "neuron_exp": "gx", "reuse": "gr"}


def grad_issue(name: str, value, assigned: bool = True) -> str | None:
    """Why ``value`` cannot be the gradient of node ``name``, or None (a number, or a tensor made of one)."""
    if not assigned:
        return f"{name}.grad was never set: run your answer cell"
    return None if isinstance(value, torch.Tensor) else expression_graphs.grad_problem(name, value)


def grad_comparison(name: str, value, reference, assigned: bool = True) -> Comparison:
    """The ``.grad`` of node ``name`` against PyTorch's ``reference`` (a number or 0-dim tensor)."""
    issue = grad_issue(name, value, assigned)
    if issue:
        return Comparison(f"{name}.grad", False, False, None, None, (), issue, code="unknown")
    return compare(f"{name}.grad", expression_graphs.grad_tensor(value),
                   torch.as_tensor(reference, dtype=torch.float64))


def scalar_inputs(item: Item, case: Case) -> dict[str, float]:
    """Other numbers for the inputs of the item's graph (nonzero, all different)."""
    return expression_graphs.random_inputs(item.graph, torch.Generator().manual_seed(case.seed))


class ScalarKind(Kind):
    name = "scalar"

    def check(self, name: str, value, reference, assigned: bool = True) -> CheckResult:
        """The visible check (``checks.check_grad``): node ``name``'s ``.grad`` against PyTorch's ``reference``."""
        return CheckResult((grad_comparison(name, value, reference, assigned),))

    def run(self, item: Item, sources: Mapping[str, str], case: Case) -> list:
        """The .grad of each of ``item.nodes`` after the cells ran on a graph with other inputs.

        The cells see the graph's nodes by name (and ``math``); nodes finished
        by earlier steps carry their correct gradient. A gradient that is a
        number comes back as a 0-dim float64 tensor, anything else as it is.
        """
        graph = expression_graphs.GRAPHS[item.graph](**scalar_inputs(item, case))
        correct = expression_graphs.torch_grads(graph.output)
        namespace = {"math": math, **graph}
        for answer, provided in zip(item.answers, item.provided):
            for name in provided:
                graph[name].grad = correct[graph[name]]
            run_answer(sources[answer], answer, namespace)
        return [expression_graphs.grad_tensor(graph[name].grad) for name in item.nodes]

    def reference(self, item: Item, case: Case) -> list[torch.Tensor]:
        graph = expression_graphs.GRAPHS[item.graph](**scalar_inputs(item, case))
        correct = expression_graphs.torch_grads(graph.output)
        return [torch.tensor(correct[graph[name]], dtype=torch.float64) for name in item.nodes]

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        if not isinstance(got, (list, tuple)) or len(got) != len(item.nodes):
            size = f"a {type(got).__name__} of length {len(got)}" if isinstance(got, (list, tuple)) else \
                f"a {type(got).__name__}"
            return CheckResult(problem=f"expected the gradients of {', '.join(item.nodes)}, got {size}")
        return CheckResult(tuple(grad_comparison(name, value, reference)
                                 for name, value, reference in zip(item.nodes, got, expected)))

    def describe_case(self, item: Item, case: Case) -> str:
        return ", ".join(f"{name} = {value:.3f}" for name, value in scalar_inputs(item, case).items())

    def label(self, item: Item) -> str:
        nodes = item.nodes
        return f"{nodes[0]}.grad" if len(nodes) == 1 else f"{len(nodes)} grads: {', '.join(nodes)}"

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> CheckResult:
        graph = namespace.get(GRAPH_VARIABLES[item.graph])
        if not isinstance(graph, expression_graphs.Graph):
            raise LookupError(f"the graph {GRAPH_VARIABLES[item.graph]} is not built")
        nodes = [graph[name] for name in item.nodes]
        if not any(node.grad_assigned for node in nodes):
            raise NotImplementedError
        reference = expression_graphs.torch_grads(graph.output)
        return CheckResult(tuple(grad_comparison(name, node.grad, reference[node], node.grad_assigned)
                                 for name, node in zip(item.nodes, nodes)))
