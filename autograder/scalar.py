"""A scalar autograd value, small enough to read in one sitting (notebook 00).

A ``Value`` holds one number. Every operation on Values makes a new Value
that remembers its inputs (``children``), the operation (``op``) and the
local derivative of its result with respect to each input. Together they form
an expression graph; ``Value.backward`` walks it from the output down and
applies the chain rule, which is what notebook 00 first does by hand.

Also here: the graphs of notebook 00 (``neuron``, ``neuron_exp``, ``reuse``),
PyTorch's gradients of the same expressions (``torch_grads``, the oracle),
a drawing of a graph with the data and
gradient of every node (``draw``), made with matplotlib alone.
"""

from __future__ import annotations

import math
import numbers

import torch

# The lecture's neuron: b is chosen so that n = 0.8814 and o = tanh(n) = 1/sqrt(2).
NEURON_INPUTS = {"x1": 2.0, "x2": 0.0, "w1": -3.0, "w2": 1.0, "b": 6.8813735870195432}
REUSE_INPUTS = {"a": -2.0, "b": 3.0}


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
        return f"Value({name}data={self.data:.4f}, grad={_number(self.grad)})"

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


def _number(x) -> str:
    return f"{x:.4f}" if _is_number(x) else type(x).__name__


def _is_number(x) -> bool:
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


# ------------------------------------------------------------------ graphs

class Graph(dict):
    """Named nodes of one expression, inputs first and output last; ``g.o`` is ``g["o"]``.

    Each node takes its key as its ``name``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key, node in self.items():
            node.name = key

    def __getattr__(self, name: str) -> Value:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def output(self) -> Value:
        return list(self.values())[-1]


def _named(value: Value, label: str) -> Value:
    value.label = label
    return value


def _inputs(**values: float) -> dict[str, Value]:
    return {name: Value(data, label=name) for name, data in values.items()}


def neuron(x1: float, x2: float, w1: float, w2: float, b: float) -> Graph:
    """The neuron o = tanh(x1*w1 + x2*w2 + b), one node per operation.

    Nodes: x1, x2, w1, w2, b (inputs), x1w1, x2w2, x1w1x2w2 (the sum of the
    two products), n (the pre-activation) and o (the output).
    """
    v = _inputs(x1=x1, x2=x2, w1=w1, w2=w2, b=b)
    x1w1 = _named(v["x1"] * v["w1"], "x1*w1")
    x2w2 = _named(v["x2"] * v["w2"], "x2*w2")
    x1w1x2w2 = _named(x1w1 + x2w2, "x1*w1 + x2*w2")
    n = _named(x1w1x2w2 + v["b"], "n")
    o = _named(n.tanh(), "o")
    return Graph(v, x1w1=x1w1, x2w2=x2w2, x1w1x2w2=x1w1x2w2, n=n, o=o)


def neuron_exp(x1: float, x2: float, w1: float, w2: float, b: float) -> Graph:
    """The same neuron with tanh written out: o = (e - 1) / (e + 1), where e = exp(2n).

    Nodes: those of ``neuron`` up to n, then two_n = 2*n, e = exp(two_n),
    top = e - 1, bottom = e + 1, inv = bottom**-1 and o = top * inv. The
    node e feeds both top and bottom.
    """
    g = neuron(x1, x2, w1, w2, b)
    del g["o"]
    two_n = _named(2 * g.n, "2*n")
    e = _named(two_n.exp(), "e")
    top = _named(e - 1, "e - 1")
    bottom = _named(e + 1, "e + 1")
    inv = _named(bottom**-1, "1/(e + 1)")
    o = _named(top * inv, "o")
    return Graph(g, two_n=two_n, e=e, top=top, bottom=bottom, inv=inv, o=o)


def reuse(a: float, b: float) -> Graph:
    """f = (a*b) * (a+b): a and b are each used twice. Nodes: a, b, d = a*b, e = a+b, f = d*e."""
    v = _inputs(a=a, b=b)
    d = _named(v["a"] * v["b"], "d")
    e = _named(v["a"] + v["b"], "e")
    f = _named(d * e, "f")
    return Graph(v, d=d, e=e, f=f)


GRAPHS = {"neuron": neuron, "neuron_exp": neuron_exp, "reuse": reuse}


def graph_inputs(graph: str) -> tuple[str, ...]:
    """The names of a graph's inputs: ("x1", "x2", "w1", "w2", "b") or ("a", "b")."""
    return tuple(REUSE_INPUTS) if graph == "reuse" else tuple(NEURON_INPUTS)


def random_inputs(graph: str, generator: torch.Generator) -> dict[str, float]:
    """Inputs for ``graph`` drawn with ``generator``: other numbers than the notebook's.

    Every input is nonzero and the inputs differ from one another, so a
    gradient that takes the wrong factor, or one that is right only because
    x2 = 0, gives a wrong number. For the neurons, b is chosen so that n lies
    in [-1, 1], where tanh is far from flat and no gradient is close to 0.
    """
    names = graph_inputs(graph)
    magnitudes = 0.5 + 1.5 * torch.rand(len(names), generator=generator, dtype=torch.float64)
    signs = torch.where(torch.rand(len(names), generator=generator) < 0.5, -1.0, 1.0).double()
    values = dict(zip(names, (magnitudes * signs).tolist()))
    if graph != "reuse":
        target_n = 2 * torch.rand((), generator=generator, dtype=torch.float64).item() - 1
        values["b"] = target_n - values["x1"] * values["w1"] - values["x2"] * values["w2"]
    return values


# ------------------------------------------------------------------ PyTorch as the oracle

def torch_grads(root: Value) -> dict[Value, float]:
    """d(root)/d(node) for every node of the graph, by PyTorch autograd in float64.

    The graph is rebuilt operation by operation with torch tensors (``+`` as
    torch's addition, ``tanh`` as ``torch.tanh``, ...), so the answer depends
    on PyTorch's derivatives and never on the local derivatives stored in the
    Values.
    """
    tensors: dict[Value, torch.Tensor] = {}
    with torch.enable_grad():
        for node in topological_order(root):
            if node.children:
                t = _torch_op(node.op, [tensors[c] for c in node.children])
                t.retain_grad()
            else:
                t = torch.tensor(node.data, dtype=torch.float64, requires_grad=True)
            tensors[node] = t
        tensors[root].backward()
    return {node: (t.grad.item() if t.grad is not None else 0.0) for node, t in tensors.items()}


def _torch_op(op: str, args: list[torch.Tensor]) -> torch.Tensor:
    if op == "+":
        return args[0] + args[1]
    if op == "-":
        return args[0] - args[1]
    if op == "*":
        return args[0] * args[1]
    if op == "exp":
        return torch.exp(args[0])
    if op == "tanh":
        return torch.tanh(args[0])
    if op.startswith("**"):
        return args[0] ** float(op[2:])
    raise ValueError(f"no PyTorch operation for {op!r}")


# ------------------------------------------------------------------ checks

def grad_tensor(value) -> torch.Tensor | object:
    """A gradient as a 0-dim float64 tensor, for ``comparison.compare``; anything but a number as it is."""
    return torch.tensor(float(value), dtype=torch.float64) if _is_number(value) else value


def grad_problem(name: str, value) -> str | None:
    """Why ``value`` cannot be the gradient of node ``name`` at all, or None."""
    if isinstance(value, Value) or type(value).__name__ == "Value":  # the judge's copy has only the name
        return f"{name}.grad is a Value, not a number: use a node's .data (and .grad) in the formula"
    if not _is_number(value):
        return f"{name}.grad is a {type(value).__name__}, not a number"
    return None


# ------------------------------------------------------------------ drawing

COLUMN_INCHES, ROW_INCHES = 1.8, 0.95  # room for one node box and the operation before it
NEW_GRAD_COLOR = "crimson"


def layout(root: Value) -> dict[Value, tuple[float, float]]:
    """(column, row) of every node: inputs on the left, ``root`` on the right.

    An operation's column is one more than its latest input's; an input sits
    just left of the first operation that uses it. Rows come from a
    depth-first walk from the root, each node centred on its inputs, then
    pushed apart so that no two nodes of a column are less than a row apart.
    """
    order = topological_order(root)
    column = _columns(order)
    row: dict[Value, float] = {}
    next_row = [0.0]

    def place(node: Value) -> float:
        if node not in row:
            if node.children:
                child_rows = [place(c) for c in node.children]
                row[node] = sum(child_rows) / len(child_rows)
            else:
                row[node], next_row[0] = next_row[0], next_row[0] + 1
        return row[node]

    for node in reversed(order):  # the root first; every node is reached from it
        place(node)
    for c in set(column.values()):
        previous = None
        for node in sorted((n for n in order if column[n] == c), key=lambda n: row[n]):
            if previous is not None and row[node] < previous + 1:
                row[node] = previous + 1
            previous = row[node]
    return {node: (column[node], row[node]) for node in order}


def _columns(order: list[Value]) -> dict[Value, int]:
    column: dict[Value, int] = {}
    users: dict[Value, list[Value]] = {}
    for node in order:
        column[node] = 1 + max((column[c] for c in node.children), default=-1)
        for child in node.children:
            users.setdefault(child, []).append(node)
    for node in order:
        if not node.children and node in users:
            column[node] = min(column[u] for u in users[node]) - 1
    shift = min(column.values())
    return {node: c - shift for node, c in column.items()}


def draw(root: Value, highlight=(), title: str = "", ax=None):
    """Draw ``root``'s graph: a box per node (label, data, grad), a circle per operation.

    Nodes in ``highlight`` (those whose gradient was just set) are drawn in
    red. Returns the matplotlib Figure; needs no graphviz, only matplotlib.
    """
    import matplotlib.pyplot as plt

    places = layout(root)
    columns = max(c for c, _ in places.values()) + 1
    rows = max(r for _, r in places.values()) + 1
    if ax is None:
        _, ax = plt.subplots(figsize=(COLUMN_INCHES * columns, ROW_INCHES * rows + 0.4))
    ax.set_xlim(-0.5, columns - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)  # the first row at the top
    ax.axis("off")
    highlight = set(highlight)
    boxes = {node: _box(ax, node, x, y, node in highlight) for node, (x, y) in places.items()}
    for node, (x, y) in places.items():
        if node.children:
            operation = ax.text(x - 0.5, y, node.op, ha="center", va="center", fontsize=9, zorder=3,
                                bbox={"boxstyle": "circle,pad=0.3", "facecolor": "#e3f2fd", "edgecolor": "#1565c0"})
            _arrow(ax, operation, boxes[node])
            for child in dict.fromkeys(node.children):  # one arrow even when an input is used twice
                _arrow(ax, boxes[child], operation)
    if title:
        ax.set_title(title, loc="left")
    return ax.figure


def _box(ax, node: Value, x: float, y: float, new: bool):
    text = f"{node.label}\ndata {node.data:.4f}\ngrad {_number(node.grad)}"
    return ax.text(x, y, text, ha="center", va="center", fontsize=8.5, zorder=3, linespacing=1.3,
                   color=NEW_GRAD_COLOR if new else "black", fontweight="bold" if new else "normal",
                   bbox={"boxstyle": "round,pad=0.4", "facecolor": "#fff3e0" if new else "white",
                         "edgecolor": NEW_GRAD_COLOR if new else "black", "linewidth": 2.0 if new else 1.0})


def _arrow(ax, source, target) -> None:
    """An arrow from the right edge of ``source`` to the left edge of ``target`` (two text artists)."""
    ax.annotate("", xy=(0, 0.5), xycoords=target, xytext=(1, 0.5), textcoords=source, zorder=1,
                arrowprops={"arrowstyle": "->", "color": "#607d8b", "shrinkA": 0, "shrinkB": 0, "lw": 1.0})
