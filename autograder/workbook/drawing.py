"""Drawings of graphs, made with matplotlib alone (no graphviz).

* ``draw``: a scalar expression graph of notebook 00, a box per node with
  its data and gradient, a circle per operation (``layout`` places them);
* ``draw_forward_graph``: the tensors of Exercise 1's forward pass, coloured
  by the status of their gradients (``forward_graph`` reads them from the
  registry's forward lines, ``forward_graph_layout`` places them).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import torch

from .value import Value, number_text, topological_order

# ------------------------------------------------------------------ notebook 00: a scalar expression graph

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
    text = f"{node.label}\ndata {node.data:.4f}\ngrad {number_text(node.grad)}"
    return ax.text(x, y, text, ha="center", va="center", fontsize=8.5, zorder=3, linespacing=1.3,
                   color=NEW_GRAD_COLOR if new else "black", fontweight="bold" if new else "normal",
                   bbox={"boxstyle": "round,pad=0.4", "facecolor": "#fff3e0" if new else "white",
                         "edgecolor": NEW_GRAD_COLOR if new else "black", "linewidth": 2.0 if new else 1.0})


def _arrow(ax, source, target) -> None:
    """An arrow from the right edge of ``source`` to the left edge of ``target`` (two text artists)."""
    ax.annotate("", xy=(0, 0.5), xycoords=target, xytext=(1, 0.5), textcoords=source, zorder=1,
                arrowprops={"arrowstyle": "->", "color": "#607d8b", "shrinkA": 0, "shrinkB": 0, "lw": 1.0})


# ------------------------------------------------------------------ Exercise 1: the forward graph

# Colours of a tensor's node by the status of its gradient (autograder.checking.scoreboard's statuses).
STATUS_COLOURS = {
    "passed": ("#c8e6c9", "#2e7d32"),  # (fill, edge)
    "failed": ("#ffcdd2", "#c62828"),
    "not attempted": ("#eeeeee", "#9e9e9e"),
}
NO_GRADIENT_COLOURS = ("white", "#455a64")  # the loss and the data: no gradient to check
_OPERATOR_SYMBOLS = {ast.Add: "+", ast.Sub: "−", ast.Mult: "×", ast.Div: "/", ast.MatMult: "@", ast.Pow: "**"}


@dataclass(frozen=True)
class Operation:
    """One line of the chunked forward pass as a graph edge: ``inputs`` -> ``output`` by ``label``."""

    inputs: tuple[str, ...]
    output: str
    label: str  # the operations of the line, innermost first: "@ +" for "embcat @ W1 + b1"


def forward_graph() -> tuple[tuple[str, ...], tuple[Operation, ...]]:
    """The tensors and operations of Exercise 1's chunked forward pass, in forward order.

    Read from the forward lines in ``exercises.EX1_LINES``: the tensors are
    the data (``Xb``, ``Yb``), the parameters and every line's output.
    """
    from ..exercises import EX1_LINES
    from .model import PARAM_NAMES

    lines = tuple(reversed(EX1_LINES))  # the registry lists them in backward order
    known = {"Xb", "Yb", *PARAM_NAMES, *(line.output for line in lines)}
    operations = []
    for line in lines:
        value = ast.parse(line.code).body[0].value
        names = sorted((n for n in ast.walk(value) if isinstance(n, ast.Name) and n.id in known),
                       key=lambda n: n.col_offset)  # in the order they are written
        inputs = tuple(dict.fromkeys(n.id for n in names))
        operations.append(Operation(inputs, line.output, " ".join(_operators(value, known))))
    leaves = [name for name in ("Xb", "Yb", *PARAM_NAMES) if any(name in op.inputs for op in operations)]
    return tuple(leaves) + tuple(op.output for op in operations), tuple(operations)


def _operators(node: ast.AST, known: set[str]) -> list[str]:
    """The tensor operations of an expression, innermost first ("index", "sum", "×", ...)."""
    if not _is_tensor(node, known):
        return []
    if isinstance(node, ast.BinOp):
        inner = _operators(node.left, known) + _operators(node.right, known)
        symbol = _OPERATOR_SYMBOLS.get(type(node.op), "?")
        if isinstance(node.op, ast.Pow) and isinstance(node.right, (ast.Constant, ast.UnaryOp)):
            symbol += ast.unparse(node.right)
        return inner + [symbol]
    if isinstance(node, ast.UnaryOp):
        return _operators(node.operand, known) + ["−"]
    if isinstance(node, ast.Subscript):
        return _operators(node.value, known) + ["index"]
    if isinstance(node, ast.Attribute):  # .values of max(): no operation of its own
        return _operators(node.value, known)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        receiver = node.func.value
        if _is_tensor(receiver, known):  # a method: logits.max(...), emb.view(...)
            return _operators(receiver, known) + [node.func.attr]
        args = [op for arg in node.args for op in _operators(arg, known)]
        return args + [node.func.attr]  # a function: torch.tanh(hpreact)
    return []


def _is_tensor(node: ast.AST, known: set[str]) -> bool:
    """Whether an expression of the forward line is a tensor computed from the graph's tensors."""
    if isinstance(node, ast.Name):
        return node.id in known
    if isinstance(node, ast.Attribute):
        return node.attr != "shape" and _is_tensor(node.value, known)
    if isinstance(node, ast.Subscript):
        return _is_tensor(node.value, known)
    if isinstance(node, ast.BinOp):
        return _is_tensor(node.left, known) or _is_tensor(node.right, known)
    if isinstance(node, ast.UnaryOp):
        return _is_tensor(node.operand, known)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return _is_tensor(node.func.value, known) or any(_is_tensor(a, known) for a in node.args)
    return False


def forward_graph_layout(nodes, operations) -> dict[str, tuple[float, float]]:
    """(column, row) of every tensor: the forward pass from top to bottom, one row per line.

    A line's output goes one row below its latest input. Column 1 holds the
    main path; a detour (``bnmeani`` between ``hprebn`` and ``bndiff``, the
    softmax's sum and inverse beside ``counts``) goes to column 2, so that the
    edge that skips it runs free; the data and the parameters sit in column
    0, beside the first line that uses them.
    """
    made = {op.output: op for op in operations}
    row: dict[str, float] = {}
    for op in operations:
        row[op.output] = 1 + max((row[i] for i in op.inputs if i in made), default=0)
    detours = set()
    for op in operations:
        for source in (i for i in op.inputs if i in made):
            detours |= {name for name in made if row[source] < row[name] < row[op.output]}
    places = {name: (2.0 if name in detours else 1.0, row[name]) for name in made}
    leaves = [name for name in nodes if name not in made]
    taken: list[float] = []
    for op in operations:
        mine = [leaf for leaf in leaves if leaf in op.inputs and leaf not in places]
        for k, leaf in enumerate(mine):
            y = row[op.output] - (len(mine) - 1) / 2 + k
            while any(abs(y - other) < 1 for other in taken):
                y += 1
            taken.append(y)
            places[leaf] = (0.0, y)
    return places


def draw_forward_graph(tensors=None, statuses=None, ax=None, title: str = ""):
    """Draw Exercise 1's forward pass: a box per tensor (name, shape), its operations on the edges.

    ``tensors`` maps names to tensors (a notebook passes ``globals()``) and
    gives the shapes; ``statuses`` maps a tensor name to the status of its
    gradient ("passed", "failed", "not attempted", as in
    ``Scoreboard.tensor_statuses()``) and colours its box: green, red, grey.
    A tensor with a gradient but no status is grey; the loss and the data
    (no gradient to derive) are white. Needs matplotlib only, and works
    without a display. Returns the Figure; every node's artist has the gid
    ``node:<name>``, every arrow ``edge:<from>-><to>`` (an operation's label
    is ``op:<output>``).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    tensors, statuses = tensors or {}, statuses or {}
    nodes, operations = forward_graph()
    places = forward_graph_layout(nodes, operations)
    rows = max(y for _, y in places.values())
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.55 * (rows + 1)))
    ax.set_xlim(-0.55, 2.55)
    ax.set_ylim(rows + 0.7, -0.3)  # the first line at the top
    ax.axis("off")
    gradient_free = {"Xb", "Yb", operations[-1].output}  # the data, and the loss the backward pass starts from
    boxes = {}
    for name in nodes:
        x, y = places[name]
        tensor = tensors.get(name)
        shape = f" {tuple(tensor.shape)}" if isinstance(tensor, torch.Tensor) else ""
        fill, edge = NO_GRADIENT_COLOURS if name in gradient_free else \
            STATUS_COLOURS.get(statuses.get(name, "not attempted"), STATUS_COLOURS["not attempted"])
        boxes[name] = ax.text(x, y, name + shape, ha="center", va="center", fontsize=8, zorder=3, linespacing=1.2,
                              fontfamily="monospace", gid=f"node:{name}",
                              bbox={"boxstyle": "round,pad=0.3", "facecolor": fill, "edgecolor": edge,
                                    "linewidth": 1.4, "linestyle": "--" if name in ("Xb", "Yb") else "-"})
    for op in operations:
        x, y = places[op.output]
        label = ax.text(x, y - 0.5, op.label, ha="center", va="center", fontsize=7, fontstyle="italic", zorder=3,
                        color="#37474f", gid=f"op:{op.output}",
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"})
        for source in op.inputs:
            _graph_arrow(ax, boxes[source], label, places[source], (x, y - 0.5), f"edge:{source}->{op.output}")
        _graph_arrow(ax, label, boxes[op.output], (x, y - 0.5), (x, y), None)
    legend = [Patch(facecolor=fill, edgecolor=edge, label=status) for status, (fill, edge) in STATUS_COLOURS.items()]
    ax.legend(handles=legend, loc="upper right", fontsize=8, title="gradient", title_fontsize=8, frameon=False)
    if title:
        ax.set_title(title, loc="left")
    return ax.figure


def _graph_arrow(ax, source, target, start, end, gid) -> None:
    """An arrow between two text artists: sideways between columns, up or down within one."""
    (x0, y0), (x1, y1) = start, end
    if abs(x1 - x0) > 0.1:  # from the facing side edges
        out, into = ((1, 0.5), (0, 0.5)) if x1 > x0 else ((0, 0.5), (1, 0.5))
    else:  # rows grow downwards: from the bottom edge to the top edge, or the other way up
        out, into = ((0.5, 0), (0.5, 1)) if y1 > y0 else ((0.5, 1), (0.5, 0))
    arrow = ax.annotate("", xy=into, xycoords=target, xytext=out, textcoords=source, zorder=1,
                        arrowprops={"arrowstyle": "->", "color": "#78909c", "shrinkA": 0, "shrinkB": 0, "lw": 0.9})
    if gid:
        arrow.set_gid(gid)
