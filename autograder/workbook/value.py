"""A scalar autograd value, small enough to read in one sitting (notebook 00).

A ``Value`` holds one number. Every operation on Values makes a new Value
that remembers its inputs (``children``), the operation (``op``) and the
local derivative of its result with respect to each input. Together they form
an expression graph; ``Value.backward`` walks it from the output down, in
``topological_order``, and applies the chain rule, which is what notebook 00
first does by hand.

The graphs of notebook 00 and PyTorch's gradients of them are in
``expression_graphs``; drawing a graph is ``drawing.draw``.
"""

from __future__ import annotations

import math
import numbers


class Value:
    """One number in an expression graph, with the gradient of the output with respect to it.

    ``grad`` starts at 0. ``grad_assigned`` records whether anything ever set
    it, so a check can tell a gradient that was computed from one that is
    merely still at its starting value.
    """

    def __init__(self, data: float, children: tuple = (), op: str = "", label: str = "", local: tuple = ()):
        self.data = float(data)
        self.children = tuple(children)  # the inputs, in order; a node used twice appears twice
        self.op = op  # "" for an input, else "+", "-", "*", "**k", "exp" or "tanh"
        self.label = label  # shown in drawings, e.g. "x1*w1"
        self.name = ""  # the variable name a Graph gives the node, e.g. "x1w1"; shown by checks
        self._local = tuple(local)  # d(self)/d(child), one number per child
        self._grad = 0.0
        self.grad_assigned = False

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        self._grad = value
        self.grad_assigned = True

    def __repr__(self) -> str:
        name = f"{self.label}: " if self.label else ""
        return f"Value({name}data={self.data:.4f}, grad={number_text(self.grad)})"

    # --------------------------------------------------------- operations
    def __add__(self, other) -> Value:
        other = _wrap(other)
        return Value(self.data + other.data, (self, other), "+", local=(1.0, 1.0))

    def __sub__(self, other) -> Value:
        other = _wrap(other)
        return Value(self.data - other.data, (self, other), "-", local=(1.0, -1.0))

    def __mul__(self, other) -> Value:
        other = _wrap(other)
        return Value(self.data * other.data, (self, other), "*", local=(other.data, self.data))

    def __pow__(self, exponent: float) -> Value:
        if not isinstance(exponent, numbers.Real):
            raise TypeError("a Value can only be raised to a plain number")
        local = exponent * self.data ** (exponent - 1)
        return Value(self.data**exponent, (self,), f"**{exponent:g}", local=(local,))

    def __truediv__(self, other) -> Value:
        return self * _wrap(other) ** -1  # a / b = a * b**-1: no new derivative to learn

    def __neg__(self) -> Value:
        return self * -1.0

    def __radd__(self, other) -> Value:
        return _wrap(other) + self

    def __rsub__(self, other) -> Value:
        return _wrap(other) - self

    def __rmul__(self, other) -> Value:
        return _wrap(other) * self

    def __rtruediv__(self, other) -> Value:
        return _wrap(other) / self

    def exp(self) -> Value:
        out = math.exp(self.data)
        return Value(out, (self,), "exp", local=(out,))  # d/dx e^x = e^x

    def tanh(self) -> Value:
        out = math.tanh(self.data)
        return Value(out, (self,), "tanh", local=(1.0 - out * out,))  # d/dx tanh x = 1 - tanh^2 x

    # ------------------------------------------------------------ backward
    def backward(self, accumulate: bool = True) -> None:
        """Set the ``grad`` of every node of this graph to d(self)/d(node).

        Every gradient starts again from 0 and ``self.grad`` from 1; then each
        node, from the output down, passes ``local * grad`` to its children.
        ``accumulate=False`` assigns instead of adding: the classic bug, which
        loses every contribution but the last one to a node used twice.
        """
        order = topological_order(self)
        for node in order:
            node.grad = 0.0
        self.grad = 1.0
        for node in reversed(order):
            for child, local in zip(node.children, node._local):
                contribution = local * node.grad
                child.grad = child.grad + contribution if accumulate else contribution


def _wrap(x) -> Value:
    """A plain number as a constant Value labelled with itself (e.g. the 2 in 2*n)."""
    return x if isinstance(x, Value) else Value(x, label=f"{float(x):g}")


def number_text(x) -> str:
    """A gradient or data as shown: 4 decimals for a number, else the name of its type."""
    return f"{x:.4f}" if is_number(x) else type(x).__name__


def is_number(x) -> bool:
    """A real number, and not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def topological_order(root: Value) -> list[Value]:
    """Every node of ``root``'s graph once, each after all of its children (so ``root`` is last)."""
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif node not in seen:
            seen.add(node)
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.children) if child not in seen)
    return order
