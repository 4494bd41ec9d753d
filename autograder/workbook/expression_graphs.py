"""The expression graphs of notebook 00, and PyTorch's gradients of them (the oracle).

The graphs (``neuron``, ``neuron_exp``, ``reuse``, by name in ``GRAPHS``) are
made of ``value.Value`` nodes; ``random_inputs`` draws other numbers for
their inputs, for the hidden checks; ``torch_grads`` rebuilds a graph with
torch tensors and asks autograd for every node's gradient; ``grad_tensor``
and ``grad_problem`` prepare a student's ``.grad`` for the comparison.
"""

from __future__ import annotations

import torch

from .value import Value, is_number, topological_order

# The lecture's neuron: b is chosen so that n = 0.8814 and o = tanh(n) = 1/sqrt(2).
NEURON_INPUTS = {"x1": 2.0, "x2": 0.0, "w1": -3.0, "w2": 1.0, "b": 6.8813735870195432}
REUSE_INPUTS = {"a": -2.0, "b": 3.0}


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
    return torch.tensor(float(value), dtype=torch.float64) if is_number(value) else value


def grad_problem(name: str, value) -> str | None:
    """Why ``value`` cannot be the gradient of node ``name`` at all, or None."""
    if isinstance(value, Value) or type(value).__name__ == "Value":  # the judge's copy has only the name
        return f"{name}.grad is a Value, not a number: use a node's .data (and .grad) in the formula"
    if not is_number(value):
        return f"{name}.grad is a {type(value).__name__}, not a number"
    return None
