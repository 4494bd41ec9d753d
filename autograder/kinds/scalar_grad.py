"""Kind "scalar" (notebook 00): answer cells that set the ``.grad`` of nodes of a scalar graph.

Item fields (``Item.spec``): ``graph``, ``nodes`` (whose ``.grad`` is checked)
and ``provided`` (per answer cell, the nodes whose ``.grad`` is set first).

Visible checks: ``check_grad`` and ``check_grads``, each node's ``.grad``
against PyTorch's on the notebook's graph. Hidden check: the answer cells
run again on the same graph built from other input numbers, with the nodes
finished by earlier steps given their correct gradient (``inputs``, computed
by the judge, never in the process that runs the answer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..diagnosis.comparison import CheckResult, Comparison, compare
from ..exercises import Item
from ..workbook import expression_graphs
from ..workbook.value import Value
from .base import AnswerRunner, Kind, Report, visible_check
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


@dataclass(frozen=True)
class ScalarItem:
    graph: str  # the builder in ``workbook.expression_graphs.GRAPHS``
    nodes: tuple[str, ...]  # the nodes whose .grad is checked
    provided: tuple[tuple[str, ...], ...]  # per answer cell, the nodes whose .grad is set correctly first


def spec(item: Item) -> ScalarItem:
    return ScalarItem(item.spec["graph"], tuple(item.spec["nodes"]), tuple(tuple(p) for p in item.spec["provided"]))


def scalar_inputs(item: Item, case: Case) -> dict[str, float]:
    """Other numbers for the inputs of the item's graph (nonzero, all different)."""
    return expression_graphs.random_inputs(spec(item).graph, torch.Generator().manual_seed(case.seed))


def _reference_grads(item: Item, case: Case) -> dict[str, float]:
    graph = expression_graphs.GRAPHS[spec(item).graph](**scalar_inputs(item, case))
    correct = expression_graphs.torch_grads(graph.output)
    return {name: correct[node] for name, node in graph.items()}


class ScalarKind(Kind):
    name = "scalar"

    def check(self, name: str, value, reference, assigned: bool = True) -> CheckResult:
        """Node ``name``'s ``.grad`` against PyTorch's ``reference``."""
        return CheckResult((grad_comparison(name, value, reference, assigned),))

    @visible_check
    def check_grad(self, node: Value, reference: dict[Value, float]) -> Report:
        """Compare ``node.grad`` with PyTorch's ``reference[node]``.

        The tolerance is ``comparison.compare``'s: RTOL of the gradient's size, or
        ZERO_LEVEL when the gradient is 0. A gradient that was never assigned
        fails even when its starting 0 happens to be right.
        """
        name = node.name or node.label or "node"
        result = self.check(name, node.grad, reference[node], node.grad_assigned)
        issue = grad_issue(name, node.grad, node.grad_assigned)
        return Report(result, (f"{name + '.grad':15s} | FAILED: {issue}",) if issue else tuple(result.lines()))

    @visible_check
    def check_grads(self, nodes: list[Value], reference: dict[Value, float]) -> Report:
        """``check_grad`` for each node (all are printed); passes when every one does.

        A failing assert names the first node that failed.
        """
        reports = [self.check_grad(node, reference) for node in nodes]
        comparisons = tuple(c for report in reports for c in report.result.comparisons)
        return Report(CheckResult(comparisons), tuple(line for report in reports for line in report.lines))

    # ---- the hidden check
    def given(self, item: Item) -> frozenset[str]:
        details = spec(item)
        return frozenset(f"{details.graph}:{node}" for nodes in details.provided for node in nodes)

    def computes(self, item: Item) -> frozenset[str]:
        details = spec(item)
        return frozenset(f"{details.graph}:{node}" for node in details.nodes)

    def inputs(self, item: Item, case: Case, sources: Mapping[str, str] | None = None) -> dict:
        """The correct .grad of the nodes finished by earlier steps."""
        correct = _reference_grads(item, case)
        return {node: correct[node] for nodes in spec(item).provided for node in nodes}

    def run(self, item: Item, sources: Mapping[str, str], case: Case, inputs: Mapping, runner: AnswerRunner) -> list:
        """The .grad of each of the item's nodes after the cells ran on a graph with other inputs.

        The cells see the graph's nodes by name (and ``math``); nodes finished
        by earlier steps carry their correct gradient. A gradient that is a
        number comes back as a 0-dim float64 tensor, anything else as it is.
        """
        details = spec(item)
        graph = expression_graphs.GRAPHS[details.graph](**scalar_inputs(item, case))
        namespace = {"math": math, **graph}
        for answer, provided in zip(item.answers, details.provided):
            for name in provided:
                graph[name].grad = float(inputs[name])
            runner.run_cell(sources[answer], answer, namespace)
        return [expression_graphs.grad_tensor(graph[name].grad) for name in details.nodes]

    def reference(self, item: Item, case: Case) -> list[torch.Tensor]:
        correct = _reference_grads(item, case)
        return [torch.tensor(correct[name], dtype=torch.float64) for name in spec(item).nodes]

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        nodes = spec(item).nodes
        if not isinstance(got, (list, tuple)) or len(got) != len(nodes):
            size = f"a {type(got).__name__} of length {len(got)}" if isinstance(got, (list, tuple)) else \
                f"a {type(got).__name__}"
            return CheckResult(problem=f"expected the gradients of {', '.join(nodes)}, got {size}")
        return CheckResult(tuple(grad_comparison(name, value, reference)
                                 for name, value, reference in zip(nodes, got, expected)))

    def describe_case(self, item: Item, case: Case) -> str:
        return ", ".join(f"{name} = {value:.3f}" for name, value in scalar_inputs(item, case).items())

    # ---- the notebook
    def label(self, item: Item) -> str:
        nodes = spec(item).nodes
        return f"{nodes[0]}.grad" if len(nodes) == 1 else f"{len(nodes)} grads: {', '.join(nodes)}"

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> Report:
        details = spec(item)
        graph = namespace.get(GRAPH_VARIABLES[details.graph])
        if not isinstance(graph, expression_graphs.Graph):
            raise LookupError(f"the graph {GRAPH_VARIABLES[details.graph]} is not built")
        nodes = [graph[name] for name in details.nodes]
        if not any(node.grad_assigned for node in nodes):
            raise NotImplementedError
        reference = expression_graphs.torch_grads(graph.output)
        result = CheckResult(tuple(grad_comparison(name, node.grad, reference[node], node.grad_assigned)
                                   for name, node in zip(details.nodes, nodes)))
        return Report(result, tuple(result.lines()))

    def cheating_answer(self, item: Item, answer_id: str, solution: str) -> str:
        """Autograd on the Value graph: the graph's output's own backward()."""
        output = {"reuse": "f"}.get(spec(item).graph, "o")
        return f"{output}.backward()\n"
