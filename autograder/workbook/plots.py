"""Figures for the notebooks, drawn with matplotlib.

Each function draws on axes the caller gives it (``draw_forward_graph`` makes
its own when given none), so a notebook cell decides the layout and ends with
``plt.show()``. Tensors may still track gradients:
they are detached before drawing.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import torch
from matplotlib.patches import Rectangle

from .data import CHARS


def _numpy(t: torch.Tensor):
    return t.detach().cpu().numpy()


def signed_heatmap(ax, values: torch.Tensor, title: str = "", limit: float | None = None):
    """Draw ``values`` (rows, cols) with 0 white, positive red, negative blue.

    The colour scale is symmetric, ``[-limit, limit]``, by default the largest
    magnitude in ``values``. Returns the image, for a colour bar.
    """
    array = _numpy(values)
    if limit is None:
        limit = float(abs(array).max()) or 1.0
    image = ax.imshow(array, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    ax.set_title(title)
    return image


def outline_targets(ax, Yb: torch.Tensor, color: str = "black") -> None:
    """Outline cell (i, Yb[i]) in every row i: the correct class of each example."""
    for row, target in enumerate(Yb.tolist()):
        ax.add_patch(Rectangle((target - 0.5, row - 0.5), 1, 1, fill=False, edgecolor=color, linewidth=1.2))


def vocabulary_axis(ax) -> None:
    """Label the x axis with the 27 characters ('.' then a-z)."""
    ax.set_xticks(range(len(CHARS)), list(CHARS))


def probabilities_and_gradient(ax, probs_row: torch.Tensor, grad_row: torch.Tensor, target: int) -> None:
    """Bars of one example's probabilities (V,) beside its gradient (V,), correct class in bold.

    Pass ``n * dlogits[i]`` as ``grad_row`` to see it without the 1/n of the mean.
    """
    positions = torch.arange(len(CHARS)).numpy()
    ax.bar(positions - 0.2, _numpy(probs_row), width=0.4, label="probability $p$")
    ax.bar(positions + 0.2, _numpy(grad_row), width=0.4, label="gradient $\\times\\, n$")
    ax.axhline(0, color="black", linewidth=0.8)
    vocabulary_axis(ax)
    label = ax.get_xticklabels()[target]
    label.set_fontweight("bold")
    label.set_color("crimson")
    ax.legend(loc="lower right")


def averaged_curve(values: list[float], window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of consecutive windows of ``values``: (x at each window's centre, mean).

    A trailing partial window is dropped.
    """
    usable = len(values) // window * window
    means = torch.tensor(values[:usable]).view(-1, window).mean(1)
    centres = torch.arange(len(means)) * window + window / 2
    return centres, means


# ------------------------------------------------------------------ Exercise 4: the training run


def loss_curve(ax, lossi: list[float], val_points: list[tuple[int, float]]) -> None:
    """A run's log10 loss: the mean of each window of steps (1,000 of 200,000) and the validation points.

    ``lossi``: log10 of every step's minibatch loss; ``val_points``: (step, log10 validation loss).
    """
    window = max(1, min(1000, len(lossi) // 100))
    steps, curve = averaged_curve(lossi, window)
    ax.plot(steps, curve, label=f"train (mean of {window} steps)")
    ax.plot(*zip(*val_points), "o", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("log10 loss")


def replay_curves(ax, lossi: list[float], replayed: list[float]) -> None:
    """The first ``len(replayed)`` steps of ``lossi`` (manual gradients) over the replay's (autograd's), step by step."""
    steps = len(replayed)
    ax.plot(lossi[:steps], label="manual_backward", linewidth=3, alpha=0.5)
    ax.plot(replayed, label="autograd", linewidth=1)
    ax.set_xlabel("step")
    ax.set_title(f"the first {steps} steps, one point per step")
    ax.legend()


# ------------------------------------------------------------------ Exercise 1: the forward graph

# Colours of a tensor's node by the status of its gradient (autograder.scoreboard's statuses).
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
