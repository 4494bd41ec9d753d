"""Find a learner's answers in a notebook (or a ``.py`` export) of the lecture's format.

Nothing here runs learner code; it only reads it. The answers are found by
content, never by cell position:

* the exercise headers (``# Exercise 1: ...`` in a code cell, in a markdown
  cell, or in a string statement of a Colab ``.py`` export) split the code
  into regions; a cell before any header is placed by what it assigns;
* in the regions of Exercises 1-3, every top-level statement is kept, in
  order (a second attempt below the first overrides it when run, a
  commented-out attempt is a comment);
* in Exercise 4, the training loop is the loop around the ``# manual
  backprop`` comment (or, without it, around assignments of the parameter
  gradients); its body splits into the forward part, the learner's backward
  block and the update.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field

from ..exercises import EX1_LINES
from ..workbook.model import PARAM_NAMES
from .statements import Cell, Statement, cell_statements, node_statement

# The gradients each exercise assigns, in the order of the backward pass.
EX1_NAMES = tuple(dict.fromkeys(grad for line in EX1_LINES for grad in line.grads))
EXPECTED = {
    "ex1": EX1_NAMES,
    "ex2": ("dlogits",),
    "ex3": ("dhprebn",),
    "ex4": tuple(f"d{name}" for name in PARAM_NAMES),
}
EXERCISES = tuple(EXPECTED)
TITLES = {"ex1": "Exercise 1: backprop through the whole thing manually",
          "ex2": "Exercise 2: cross-entropy backward in one go",
          "ex3": "Exercise 3: BatchNorm backward in one go",
          "ex4": "Exercise 4: the manual backward pass in the training loop"}
GRADS_LIST = "grads"  # Exercise 4's list of gradients, in the order of `parameters`
ALL_GRADIENTS = frozenset(EX1_NAMES) | frozenset(EXPECTED["ex4"])

_HEADER_COMMENT = re.compile(r"^[ \t]*#+[ \t]*\**[ \t]*exercise[ \t]*([1-4])\b", re.IGNORECASE | re.MULTILINE)
_HEADER_TEXT = re.compile(r"^[ \t]*(?:#+|\*\*|>)?[ \t]*\**[ \t]*exercise[ \t]*([1-4])\b", re.IGNORECASE | re.MULTILINE)
_MARKER = re.compile(r"#[ \t]*manual[ \t]*backprop", re.IGNORECASE)
_CELL_MARKER = re.compile(r"^# (?:In\[[ 0-9]*\]:|%%).*$", re.MULTILINE)
MAX_SOURCE_BYTES = 20_000_000


class NotebookError(ValueError):
    """The file cannot be read as a notebook (or script) of the lecture's format."""


@dataclass
class Exercise4:
    """The training loop of Exercise 4, split around the learner's backward block."""

    prelude: list[Statement] = field(default_factory=list)  # defs and imports of the region, run first
    forward: list[Statement] = field(default_factory=list)  # loop body before the block
    block: list[Statement] = field(default_factory=list)  # the learner's backward block
    update: list[Statement] = field(default_factory=list)  # the rest of the body: update, logging, break
    marker: bool = False  # the `# manual backprop` comment was found
    loop_where: str = ""


@dataclass
class Plan:
    """What to run for each exercise that was found."""

    statements: dict[str, list[Statement]] = field(default_factory=dict)  # "ex1".."ex3"
    # Every import and function definition of the notebook (setup included), but `cmp`.
    definitions: list[Statement] = field(default_factory=list)
    ex4: Exercise4 | None = None
    headers: list[str] = field(default_factory=list)  # exercises whose header was seen
    notes: list[str] = field(default_factory=list)

    def found(self) -> list[str]:
        found = [ex for ex in EXERCISES[:3] if any(set(s.assigns) & set(EXPECTED[ex]) or s.syntax_error
                                                   for s in self.statements.get(ex, []))]
        if self.ex4 is not None:
            found.append("ex4")
        return found


# ------------------------------------------------------------------ reading files

def read_cells(data: bytes, filename: str = "notebook.ipynb") -> list[Cell]:
    """The cells of a notebook (nbformat 4 JSON) or of a ``.py`` export; raises NotebookError."""
    if len(data) > MAX_SOURCE_BYTES:
        raise NotebookError(f"{filename}: {len(data)} bytes is too large for a notebook of this lecture")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotebookError(f"{filename}: not a text file (not UTF-8)") from None
    if filename.endswith(".py"):
        return _script_cells(text)
    try:
        notebook = json.loads(text)
    except ValueError as err:
        if not text.lstrip().startswith("{") and _looks_like_python(text):
            return _script_cells(text)  # a .py export saved under another name
        raise NotebookError(f"{filename}: not a notebook: the file is not valid JSON ({err})") from None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if cells is None and isinstance(notebook, dict) and isinstance(notebook.get("worksheets"), list):
        cells = [dict(c, source=c.get("input", c.get("source", ""))) for sheet in notebook["worksheets"]
                 if isinstance(sheet, dict) for c in sheet.get("cells", []) if isinstance(c, dict)]  # nbformat 3
    if not isinstance(cells, list):
        raise NotebookError(f"{filename}: not a notebook: the JSON has no list of cells")
    result = []
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", "")
        source = "".join(s for s in source if isinstance(s, str)) if isinstance(source, list) else str(source)
        kind = "code" if cell.get("cell_type") == "code" else "markdown"
        result.append(Cell(kind, source, index))
    return result


def _looks_like_python(text: str) -> bool:
    return bool(re.search(r"^(import |from \w+ import |# -\*- coding)", text, re.MULTILINE))


def _script_cells(text: str) -> list[Cell]:
    """A ``.py`` export: cells split at ``# In[ ]:`` / ``# %%`` markers, else one cell."""
    parts = [part for part in _CELL_MARKER.split(text) if part.strip()] or [text]
    return [Cell("code", part, index) for index, part in enumerate(parts)]


# ------------------------------------------------------------------ the plan

def find_exercises(cells: list[Cell]) -> Plan:
    """Split the notebook's code into the four exercises."""
    plan = Plan()
    region: str | None = None
    regioned: list[tuple[str | None, Statement, Cell]] = []
    for cell in cells:
        if cell.kind == "markdown":
            header = _HEADER_TEXT.search(cell.source)
            if header:
                region = f"ex{header.group(1)}"
                _seen(plan, region)
            continue
        headers = [(cell.source[:m.start()].count("\n") + 1, f"ex{m.group(1)}")
                   for m in _HEADER_COMMENT.finditer(cell.source)]
        for _, name in headers:
            _seen(plan, name)
        unheaded = region is None and not headers
        for statement in cell_statements(cell):
            docstring_header = _string_header(statement)
            if docstring_header:
                region = docstring_header
                _seen(plan, region)
                continue
            region = next((name for line, name in reversed(headers) if line <= statement.line), region)
            regioned.append((region, statement, cell))
        if headers:
            region = headers[-1][1]
        if unheaded:
            _place_unheaded(regioned, cell)
    _reclaim_headerless(regioned, plan.headers)
    for region_name, statement, _cell in regioned:
        if region_name in ("ex1", "ex2", "ex3"):
            plan.statements.setdefault(region_name, []).append(statement)
        if _is_definition(statement):
            plan.definitions.append(statement)
    plan.ex4 = _find_training_loop(regioned)
    return plan


def _reclaim_headerless(regioned: list, headers: list[str]) -> None:
    """Exercise 2 or 3 whose header was deleted: its cell lands in Exercise 1's region.

    After the cell where Exercise 1 is answered, a cell of that region that
    assigns only ``dlogits`` (or only ``dhprebn``) is taken to be Exercise 2 (3).
    """
    alone = {"ex2": {"dlogits"}, "ex3": {"dhprebn"}}
    missing = [ex for ex in alone if ex not in headers]
    if not missing:
        return
    by_cell: dict[int, list[int]] = {}
    for index, (region, _statement, cell) in enumerate(regioned):
        if region == "ex1":
            by_cell.setdefault(cell.index, []).append(index)
    answered = False
    for indices in by_cell.values():
        names = {n for i in indices for n in regioned[i][1].assigns} & ALL_GRADIENTS
        target = next((ex for ex in missing if names and names <= alone[ex]), None)
        if answered and target:
            for i in indices:
                regioned[i] = (target, *regioned[i][1:])
        answered |= len(names) >= 3


def _seen(plan: Plan, region: str) -> None:
    if region not in plan.headers:
        plan.headers.append(region)


def _string_header(statement: Statement) -> str | None:
    """A Colab ``.py`` export writes a markdown cell as a string statement."""
    text = statement.source.lstrip()
    if not text.startswith(('"""', "'''", '"', "'")) or statement.assigns:
        return None
    match = _HEADER_TEXT.search(text.strip("\"'"))
    return f"ex{match.group(1)}" if match else None


def _place_unheaded(regioned: list, cell: Cell) -> None:
    """A cell before any header: place it by the gradients it assigns (None when it assigns none)."""
    entries = [i for i, (region, _, c) in enumerate(regioned) if c is cell]
    assigned = {name for i in entries for name in regioned[i][1].assigns} & ALL_GRADIENTS
    if not assigned or any(_training_loops(regioned[i][1]) for i in entries):
        return  # setup code, or a training loop (found separately)
    if assigned <= {"dlogits"}:
        guess = "ex2"
    elif assigned <= {"dhprebn"}:
        guess = "ex3"
    else:
        guess = "ex1"
    for i in entries:
        regioned[i] = (guess, regioned[i][1], regioned[i][2])


def _training_loops(statement: Statement) -> list[ast.AST]:
    try:
        tree = ast.parse(statement.source)
    except SyntaxError:
        return []
    return [node for node in ast.walk(tree) if isinstance(node, (ast.For, ast.While))
            and _assigns_gradients(node)]


def _assigns_gradients(loop: ast.AST) -> bool:
    names = {t.id for sub in ast.walk(loop) if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store)
             for t in [sub]}
    return bool(names & set(EXPECTED["ex4"])) or GRADS_LIST in names


def _find_training_loop(regioned: list) -> Exercise4 | None:
    """The loop that holds the manual backward pass.

    Of all loops that contain the ``# manual backprop`` comment or assign a
    parameter gradient, the best has the comment, then a forward pass (it
    assigns ``loss``), then the most parameter gradients, then lies in the
    Exercise 4 region; a short loop that only fills ``dC`` is not mistaken for it.
    """
    best, best_score = None, None
    for order, (region, statement, cell) in enumerate(regioned):
        for score, found in _loops(statement, cell):
            score = (*score, region == "ex4", -order)
            if best_score is None or score > best_score:
                best, best_score = found, score
    if best is not None:
        best.prelude = [s for r, s, c in regioned if r == "ex4" and _is_definition(s)]
    return best


def definitions_for(plan: Plan, statements: list[Statement]) -> list[Statement]:
    """The notebook's imports and functions that ``statements`` use, and those these use in turn.

    So an exercise can call a helper or use ``np`` defined in another cell, as it could in the notebook.
    """
    needed: list[Statement] = []
    used = {name for statement in statements for name in statement.reads}
    while True:
        more = [s for s in plan.definitions if s not in needed and s not in statements and set(s.assigns) & used]
        if not more:
            return [s for s in plan.definitions if s in needed]  # in notebook order
        needed += more
        used |= {name for statement in more for name in statement.reads}


def _is_definition(statement: Statement) -> bool:
    try:
        node = ast.parse(statement.source).body[0]
    except (SyntaxError, IndexError):
        return False
    return (isinstance(node, (ast.FunctionDef, ast.Import, ast.ImportFrom))
            and not (isinstance(node, ast.FunctionDef) and node.name == "cmp"))


def _loops(statement: Statement, cell: Cell) -> list[tuple[tuple, Exercise4]]:
    """(score, split) of every candidate training loop in ``statement``."""
    if statement.syntax_error:
        return []
    tree = ast.parse(statement.source)
    lines = statement.source.splitlines()
    markers = [number for number, line in enumerate(lines, start=1) if _MARKER.search(line)]
    found = []
    for loop in ast.walk(tree):
        if not isinstance(loop, (ast.For, ast.While)):
            continue
        inside = [m for m in markers if loop.lineno <= m <= loop.end_lineno]
        if not inside and not _assigns_gradients(loop):
            continue
        body = _flatten(loop.body)
        shift = statement.line - 1
        parts = [node_statement(node, statement.source, cell.index, shift) for node in body]
        split = _cut(parts, body, inside[0] if inside else None, f"cell {cell.index + 1}, line {loop.lineno + shift}")
        names = {name for part in parts for name in part.assigns}
        score = (bool(inside), "loss" in names, len(names & (set(EXPECTED["ex4"]) | {GRADS_LIST})))
        found.append((score, split))
    return found


def _flatten(body: list[ast.stmt]) -> list[ast.stmt]:
    """A loop body with ``with`` blocks (``torch.no_grad()``) opened up."""
    flat = []
    for node in body:
        flat += _flatten(node.body) if isinstance(node, ast.With) else [node]
    return flat


def _cut(parts: list[Statement], body: list[ast.stmt], marker: int | None, where: str) -> Exercise4:
    """Split the loop body at the marker (or the first gradient assignment) and after the last one."""
    gradient_names = ALL_GRADIENTS | {GRADS_LIST}
    assigning = [i for i, p in enumerate(parts) if set(p.assigns) & gradient_names]
    if marker is not None:
        start = next((i for i, node in enumerate(body) if node.lineno > marker), len(parts))
    else:
        start = assigning[0] if assigning else len(parts)
    after = [i for i in assigning if i >= start]
    end = after[-1] + 1 if after else start
    return Exercise4(forward=parts[:start], block=parts[start:end], update=parts[end:],
                     marker=marker is not None, loop_where=where)
