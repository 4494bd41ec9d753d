"""A code cell's top-level statements, each with the names it binds, reads and the autograd it uses.

Nothing here runs learner code; it only reads it, and nothing here raises on
what it reads. A cell is parsed with ``ast``; the body of a ``with
torch.no_grad():`` block counts as top-level; a part that does not parse
becomes one error entry while the statements around it are kept. A comment
that sits left of the code around it (``# manual backprop`` moved to column 0
inside a loop) is ignored by Python, and so here. The finding of exercises
among the statements is in ``parse``.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

# What autograd-reading code looks like, by the attribute or name it uses.
AUTOGRAD_ATTRIBUTES = ("grad", "backward", "autograd", "grad_fn", "retain_grad", "register_hook")
AUTOGRAD_NAMES = ("autograd", "functorch")


@dataclass(frozen=True)
class Cell:
    kind: str  # "code" or "markdown"
    source: str
    index: int  # position in the notebook, from 0


@dataclass
class Statement:
    """One top-level statement (or a syntax error in its place) of a code cell."""

    source: str
    cell: int
    line: int  # first line within the cell, from 1
    assigns: tuple[str, ...] = ()  # names it binds
    reads: tuple[str, ...] = ()  # names it loads
    autograd: tuple[str, ...] = ()  # autograd attributes/names it uses ("grad", "backward", ...)
    calls_backward: bool = False
    syntax_error: str = ""

    def where(self) -> str:
        return f"cell {self.cell + 1}, line {self.line}"


def strip_magics(source: str) -> str:
    """IPython magics and shell lines (``%time``, ``!pip``) blanked, line numbers kept."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def cell_statements(cell: Cell) -> list[Statement]:
    """The top-level statements of a code cell; a part that does not parse becomes one error entry.

    The body of a ``with torch.no_grad():`` block counts as top-level: the
    exercises run without gradient tracking anyway, and one failing line in
    it should not cost the lines after it.
    """
    source = strip_magics(cell.source).replace("\x00", "")
    try:
        tree = ast.parse(source)
    except SyntaxError:
        try:
            return _salvage(source, cell.index)
        except (RecursionError, MemoryError, ValueError):
            return [_broken(source, cell.index, 1, "the cell could not be read")]
    except (RecursionError, MemoryError, ValueError) as err:  # nested too deep for the parser, ...
        return [_broken(source, cell.index, 1, f"the cell could not be read ({type(err).__name__})")]
    try:
        return [node_statement(node, source, cell.index) for node in _open_no_grad(tree.body)]
    except (RecursionError, MemoryError, ValueError) as err:
        return [_broken(source, cell.index, 1, f"the cell could not be read ({type(err).__name__})")]


def _broken(source: str, cell: int, line: int, why: str) -> Statement:
    """A part of a cell that cannot be run, as an error entry with the gradients it seems to assign."""
    assigned = tuple(dict.fromkeys(re.findall(r"^\s*(d\w+)\s*(?:\[.*\])?\s*[-+*/]?=", source, re.MULTILINE)))
    return Statement(source, cell, line, assigned, syntax_error=f"{why} (cell {cell + 1}, line {line})")


def _open_no_grad(body: list[ast.stmt]) -> list[ast.stmt]:
    opened = []
    for node in body:
        if isinstance(node, ast.With) and all(_is_no_grad(item.context_expr) for item in node.items):
            opened += _open_no_grad(node.body)
        else:
            opened.append(node)
    return opened


def _is_no_grad(expression: ast.expr) -> bool:
    """``torch.no_grad()`` or ``torch.inference_mode()`` (however torch was imported)."""
    function = expression.func if isinstance(expression, ast.Call) else expression
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
    return name in ("no_grad", "inference_mode")


def _salvage(source: str, cell: int) -> list[Statement]:
    """A cell with a syntax error: the broken statement becomes an error entry, the others are kept."""
    return _salvage_lines(source.splitlines(), 1, cell)


def _salvage_lines(lines: list[str], first: int, cell: int) -> list[Statement]:
    """Statements of ``lines`` (the first is line ``first`` of the cell), cutting out what does not parse."""
    if not any(line.strip() for line in lines):
        return []
    text = "\n".join(lines)
    try:
        tree = ast.parse(text)
    except SyntaxError as err:
        bad = max(1, min(err.lineno or 1, len(lines)))
        begin = bad  # back to the top-level line where the broken statement starts
        while begin > 1 and (not lines[begin - 1].strip() or lines[begin - 1][:1] in (" ", "\t", ")", "]", "}")):
            begin -= 1
        end = bad  # on to the next top-level line
        while end < len(lines) and (not lines[end].strip() or lines[end][:1] in (" ", "\t")):
            end += 1
        broken = "\n".join(lines[begin - 1:end])
        assigned = tuple(dict.fromkeys(re.findall(r"^\s*(d\w+)\s*(?:\[.*\])?\s*[-+*/]?=", broken, re.MULTILINE)))
        entry = Statement(broken, cell, first + begin - 1, assigned,
                          syntax_error=f"SyntaxError: {err.msg} (cell {cell + 1}, line {first + bad - 1})")
        return (_salvage_lines(lines[:begin - 1], first, cell) + [entry]
                + _salvage_lines(lines[end:], first + end, cell))
    return [node_statement(node, text, cell, shift=first - 1) for node in tree.body]


def node_statement(node: ast.stmt, source: str, cell: int, shift: int = 0) -> Statement:
    """``node`` of ``source`` as a Statement; ``shift`` is added to its line numbers (for nested code)."""
    text = dedent_code(ast.get_source_segment(source, node, padded=True) or "")
    assigns, reads, autograd, backward = _names(node)
    return Statement(text, cell, node.lineno + shift, assigns, reads, autograd, backward)


def dedent_code(text: str) -> str:
    """``text`` moved left by the indentation of its code lines; comment and blank lines do not count.

    Python ignores a comment's indentation, so a comment at column 0 inside
    an indented block is fine there; ``textwrap.dedent`` would then remove
    nothing and leave code that no longer parses. Such a comment is put at
    the new left margin.
    """
    lines = text.splitlines()
    code = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not code:
        return textwrap.dedent(text)
    margin = min(len(line) - len(line.lstrip()) for line in code)
    moved = []
    for line in lines:
        indent = len(line) - len(line.lstrip())
        moved.append(line[min(margin, indent):] if indent >= margin or not line.strip() else line.lstrip())
    return "\n".join(moved)


def _names(node: ast.AST) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], bool]:
    assigns, reads, autograd, backward = [], [], [], False
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            (assigns if isinstance(sub.ctx, ast.Store) else reads).append(sub.id)
            if sub.id in AUTOGRAD_NAMES and isinstance(sub.ctx, ast.Load):
                autograd.append("autograd")
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            assigns.append(sub.name)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            assigns += [(alias.asname or alias.name).split(".")[0] for alias in sub.names]
            module = getattr(sub, "module", None) or ""
            if "autograd" in module or any("autograd" in a.name for a in sub.names):
                autograd.append("autograd")
        elif isinstance(sub, ast.Attribute) and sub.attr in AUTOGRAD_ATTRIBUTES:
            # `p.grad = None` clears a gradient; only reading one uses autograd's answer
            if not (sub.attr == "grad" and isinstance(sub.ctx, ast.Store)):
                autograd.append(sub.attr)
            backward |= sub.attr == "backward"
    # An augmented or subscripted assignment (`dC[ix] += ...`) binds the name it changes, and so does an
    # in-place method (`dC.index_add_(...)`).
    for sub in ast.walk(node):
        if (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and isinstance(sub.func.value, ast.Name)
                and sub.func.attr.endswith("_") and not sub.func.attr.startswith("_")):
            assigns.append(sub.func.value.id)
        if isinstance(sub, (ast.AugAssign, ast.Assign, ast.AnnAssign)):
            targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
            for target in targets:
                base = target
                while isinstance(base, (ast.Subscript, ast.Attribute)):
                    base = base.value
                if isinstance(base, ast.Name):
                    assigns.append(base.id)
    return _unique(assigns), _unique(reads), _unique(autograd), backward


def _unique(items) -> tuple:
    return tuple(dict.fromkeys(items))


def parsed(statement: Statement) -> ast.Module | None:
    """The statement's syntax tree, or None when it does not parse (never raises)."""
    if statement.syntax_error:
        return None
    try:
        return ast.parse(statement.source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def first_node(statement: Statement) -> ast.stmt | None:
    tree = parsed(statement)
    return tree.body[0] if tree is not None and tree.body else None


def cmp_calls(statement: Statement) -> list[tuple[str, str, str]]:
    """(label, gradient variable, tensor variable) of every ``cmp('label', dX, X)`` in the statement."""
    tree = parsed(statement)
    if tree is None:
        return []
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and len(node.args) >= 3):
            continue
        function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        label, gradient, tensor = node.args[:3]
        if (function == "cmp" and isinstance(label, ast.Constant) and isinstance(label.value, str)
                and isinstance(gradient, ast.Name) and isinstance(tensor, ast.Name)):
            found.append((label.value, gradient.id, tensor.id))
    return found


def is_cmp_or_print(statement: Statement) -> bool:
    """A bare call of ``cmp(...)`` or ``print(...)``: reporting, not an answer."""
    node = first_node(statement)
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id in ("cmp", "print"))


def defines_cmp(statement: Statement) -> bool:
    return "cmp" in statement.assigns
