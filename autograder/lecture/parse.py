"""Find a learner's answers in a notebook (or a ``.py`` export) of the lecture's format.

Nothing here runs learner code; it only reads it. The answers are found by
content, never by cell position:

* the exercise headers (``# Exercise 1: ...`` in a code cell, in a markdown
  cell, or in a string statement of a Colab ``.py`` export) split the code
  into regions. A header is recognised when its word is within two edits of
  "exercise" and starts with "ex" (``Excercise 2``, ``Excercie 3``,
  ``Exercize 1``, ``exercise2``), or is "Ex." itself; "Part 2" or "Example 2"
  are not headers. A cell before any header is placed by the gradients it
  assigns and reads: one that reads a gradient only Exercise 1 makes is
  Exercise 1's, whatever it assigns;
* in the regions of Exercises 1-3, every top-level statement is kept, in
  order (a second attempt below the first overrides it when run, a
  commented-out attempt is a comment);
* in Exercise 4, the training loop is the loop around the ``# manual
  backprop`` comment (or, without it, around assignments of the parameter
  gradients); its body splits into the forward part, the learner's backward
  block and the update;
* a statement of Exercise 2 or 3 above an Exercise 1 line that reads what it
  makes (a fused ``dlogits`` before an unheaded ``dh = dlogits @ W2.T``) is
  borrowed by Exercise 1 and runs there at its place (``Plan.borrowed``); in
  an unheaded notebook, Exercise 1's ``dlogits`` (``dhprebn``) made in one go
  answers Exercise 2 (3) as well when that exercise has none of its own;
* the setup is every statement before the first answer that no header
  placed (data, parameters, batch, the forward pass, ``loss.backward()``);
  the learner's own names come from it (``follow``).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field

from ..exercises import EX1_LINES
from ..workbook.model import PARAM_NAMES
from .statements import Cell, Statement, cell_statements, cmp_calls, first_node, is_cmp_or_print, node_statement, parsed

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
# The gradients only Exercise 1 makes: Exercise 2 makes dlogits, Exercise 3 dhprebn from dhpreact.
EX1_ONLY = frozenset(EX1_NAMES) - {"dlogits", "dhprebn", "dhpreact"}

# A header's word and number: "# Excercise 2: ...", "## **Exercise #3**", "exercise4".
_HEADER_COMMENT = re.compile(r"^[ \t]*#+[ \t]*\**[ \t]*([A-Za-z]+\.?)[ \t#:\-]*([1-4])(?![0-9])", re.MULTILINE)
_HEADER_TEXT = re.compile(r"^[ \t]*(?:#+|\*\*|>|__)?[ \t]*\**[ \t]*([A-Za-z]+\.?)[ \t#:\-]*([1-4])(?![0-9])",
                          re.MULTILINE)
HEADER_WORD = "exercise"
HEADER_EDITS = 2  # misspellings learners make: Excercise (1), Excercie (2), Exersice (1), Excersise (2)
_MARKER = re.compile(r"#[ \t]*manual[ \t]*backprop", re.IGNORECASE)
_CELL_MARKER = re.compile(r"^# (?:In\[[ 0-9]*\]:|%%).*$", re.MULTILINE)
MAX_SOURCE_BYTES = 20_000_000


def edits(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours that turn ``a`` into ``b``."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        row = [i]
        for j, y in enumerate(b, start=1):
            cost = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, previous2[j - 2] + 1)
            row.append(cost)
        previous2, previous = previous, row
    return previous[-1]


def is_header_word(word: str) -> bool:
    """"Exercise" as learners spell it: within HEADER_EDITS edits, starting with "ex"; or "Ex." / "Ex" itself."""
    word = word.lower().rstrip(".")
    return word == "ex" or (word.startswith("ex") and edits(word, HEADER_WORD) <= HEADER_EDITS)


def header_numbers(pattern: re.Pattern, text: str) -> list[tuple[int, str]]:
    """(line from 1, "exN") of every header ``pattern`` finds in ``text``."""
    return [(text[:m.start()].count("\n") + 1, f"ex{m.group(2)}") for m in pattern.finditer(text)
            if is_header_word(m.group(1))]


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
    setup: list[Statement] = field(default_factory=list)  # before the first answer: data, parameters, forward pass
    cmps: list[tuple[str, str, str]] = field(default_factory=list)  # every cmp('label', dX, X) of the notebook
    # Every import and function definition of the notebook (setup included), but `cmp`.
    definitions: list[Statement] = field(default_factory=list)
    ex4: Exercise4 | None = None
    headers: list[str] = field(default_factory=list)  # exercises whose header was seen
    notes: list[str] = field(default_factory=list)
    # Statements of an exercise checked later that come earlier in the notebook and make what this one reads
    # before assigning it (``dh = dlogits @ W2.T`` below a fused dlogits placed in Exercise 2): run with it.
    borrowed: dict[str, list[Statement]] = field(default_factory=dict)

    def run_order(self, exercise: str) -> list[Statement]:
        """What runs for ``exercise``: its statements and those it borrows, in notebook order."""
        return sorted(self.statements.get(exercise, []) + self.borrowed.get(exercise, []), key=notebook_order)

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
    except RecursionError:
        raise NotebookError(f"{filename}: not a notebook: its JSON is nested too deeply to read") from None
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
    """Split the notebook's code into the four exercises (and the setup before them)."""
    plan = Plan()
    region: str | None = None
    regioned: list[tuple[str | None, Statement, Cell]] = []
    for cell in cells:
        if cell.kind == "markdown":
            headers = header_numbers(_HEADER_TEXT, cell.source)
            if headers:
                region = headers[-1][1]
                for _, name in headers:
                    _seen(plan, name)
            continue
        headers = header_numbers(_HEADER_COMMENT, cell.source)
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
            plan.cmps += cmp_calls(statement)
        if headers:
            region = headers[-1][1]
        if unheaded:
            _place_unheaded(regioned, cell)
    _reclaim_headerless(regioned, plan.headers)
    plan.ex4 = _find_training_loop(regioned)
    loop_statements = {id(s) for _, s, _ in regioned if plan.ex4 is not None and _holds(s, plan.ex4)}
    first_answer = next((i for i, (r, _, _) in enumerate(regioned) if r in ("ex1", "ex2", "ex3")), len(regioned))
    for index, (region_name, statement, _cell) in enumerate(regioned):
        if region_name in ("ex1", "ex2", "ex3") and id(statement) not in loop_statements:
            plan.statements.setdefault(region_name, []).append(statement)
        elif region_name is None and index < first_answer and id(statement) not in loop_statements:
            plan.setup.append(statement)
        if _is_definition(statement):
            plan.definitions.append(statement)
    _share_one_go(plan)
    _borrow(plan)
    return plan


def notebook_order(statement: Statement) -> tuple[int, int]:
    return statement.cell, statement.line


def _share_one_go(plan: Plan) -> None:
    """An unheaded notebook's Exercise 1 that makes ``dlogits`` (``dhprebn``) in one go answers Exercise 2 (3) too.

    Without the exercise's header and any statement of its own for the
    gradient, the last statements in Exercise 1 that make it afresh from no
    gradient only Exercise 1 makes (the fused ``dhprebn`` line beside
    ``dbngain``) are judged for both: in the learner's kernel it is the last
    assignment of the gradient in notebook order.
    """
    ex1 = plan.statements.get("ex1", [])
    for exercise in ("ex2", "ex3"):
        gradient = EXPECTED[exercise][0]
        if exercise in plan.headers or any(gradient in s.assigns for s in plan.statements.get(exercise, [])):
            continue
        fresh = [i for i, s in enumerate(ex1) if _binds_afresh(s, gradient)]
        if not fresh:
            continue
        chain = [s for s in ex1[fresh[-1]:] if gradient in s.assigns]
        if any(set(s.reads) & EX1_ONLY or set(s.assigns) - {gradient} for s in chain):
            continue
        plan.statements[exercise] = sorted(plan.statements.get(exercise, []) + chain, key=notebook_order)


def _binds_afresh(statement: Statement, name: str) -> bool:
    """``name = ...`` from values other than ``name`` itself."""
    node = first_node(statement)
    return (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
            and name not in statement.reads)


def _borrow(plan: Plan) -> None:
    """What each exercise reads before it assigns it, made by statements of an exercise checked after it.

    Exercises run in their order (1, 2, 3), 2 and 3 on what 1 left; a
    learner runs the notebook top to bottom. When a statement of Exercise 2
    or 3 comes earlier in the notebook than the Exercise 1 line that reads
    what it makes, it runs with Exercise 1 at its place, as in their kernel,
    with the statements it needs in turn. In the lecture's order nothing is borrowed.
    """
    for number, exercise in enumerate(EXERCISES[:3]):
        own = plan.statements.get(exercise, [])
        mine = {id(s) for s in own}
        others = sorted({id(s): s for ex in EXERCISES[number + 1:3] for s in plan.statements.get(ex, [])
                         if id(s) not in mine}.values(), key=notebook_order)
        wanted: list[tuple[str, tuple[int, int]]] = []
        assigned: set[str] = set()
        for statement in own:
            if not is_cmp_or_print(statement):
                wanted += [(name, notebook_order(statement)) for name in statement.reads if name not in assigned]
            assigned |= set(statement.assigns)
        taken: dict[int, Statement] = {}
        while wanted:
            name, before = wanted.pop()
            for statement in others:
                if notebook_order(statement) < before and name in statement.assigns and id(statement) not in taken:
                    taken[id(statement)] = statement
                    wanted += [(read, notebook_order(statement)) for read in statement.reads]
        if taken:
            plan.borrowed[exercise] = sorted(taken.values(), key=notebook_order)


def _holds(statement: Statement, loop: Exercise4) -> bool:
    """Whether ``statement`` is (or contains) the training loop ``loop`` was cut from."""
    return any(part.cell == statement.cell and statement.line <= part.line
               and part.line < statement.line + statement.source.count("\n") + 1 for part in loop.block)


def _reclaim_headerless(regioned: list, headers: list[str]) -> None:
    """Exercise 2 or 3 whose header was deleted: its cell lands in the region before it.

    A cell of another exercise's region that assigns only ``dlogits`` (only
    ``dhprebn``) and reads no gradient only Exercise 1 makes is taken to be
    Exercise 2 (3); in Exercise 1's region only after the cell where
    Exercise 1 is answered, so that its own pieces stay its own.
    """
    alone = {"ex2": {"dlogits"}, "ex3": {"dhprebn"}}
    missing = [ex for ex in alone if ex not in headers]
    if not missing:
        return
    by_cell: dict[int, list[int]] = {}
    for index, (region, _statement, cell) in enumerate(regioned):
        if region in ("ex1", "ex2", "ex3"):
            by_cell.setdefault(cell.index, []).append(index)
    answered = False
    for indices in by_cell.values():
        region = regioned[indices[0]][0]
        names = {n for i in indices for n in regioned[i][1].assigns} & ALL_GRADIENTS
        read = {n for i in indices for n in regioned[i][1].reads} & EX1_ONLY
        target = next((ex for ex in missing if names and names <= alone[ex] and not read - names and ex != region), None)
        if target and (answered or region != "ex1"):
            for i in indices:
                regioned[i] = (target, *regioned[i][1:])
        answered |= region == "ex1" and len(names) >= 3


def _seen(plan: Plan, region: str) -> None:
    if region not in plan.headers:
        plan.headers.append(region)


def _string_header(statement: Statement) -> str | None:
    """A Colab ``.py`` export writes a markdown cell as a string statement."""
    text = statement.source.lstrip()
    if not text.startswith(('"""', "'''", '"', "'")) or statement.assigns:
        return None
    found = header_numbers(_HEADER_TEXT, text.strip("\"'"))
    return found[0][1] if found else None


def _place_unheaded(regioned: list, cell: Cell) -> None:
    """A cell before any header: place it by the gradients it assigns and reads (None when it assigns none).

    A cell that reads a gradient only Exercise 1 makes (``dnorm_logits``,
    ``dbndiff``, ...) is Exercise 1's even when it assigns only ``dlogits``.
    Statements before the cell's first gradient stay where they are (the
    forward pass in the same cell as the first answers).
    """
    entries = [i for i, (region, _, c) in enumerate(regioned) if c is cell]
    assigned = {name for i in entries for name in regioned[i][1].assigns} & ALL_GRADIENTS
    if not assigned or any(_training_loops(regioned[i][1]) for i in entries):
        return  # setup code, or a training loop (found separately)
    read = {name for i in entries for name in regioned[i][1].reads} & EX1_ONLY
    first = next(i for i in entries if set(regioned[i][1].assigns) & ALL_GRADIENTS)
    entries = [i for i in entries if i >= first]
    if read - assigned or assigned & EX1_ONLY:
        guess = "ex1"
    elif assigned <= {"dlogits"}:
        guess = "ex2"
    elif assigned <= {"dhprebn"}:
        guess = "ex3"
    else:
        guess = "ex1"
    for i in entries:
        regioned[i] = (guess, regioned[i][1], regioned[i][2])


def _training_loops(statement: Statement) -> list[ast.AST]:
    tree = parsed(statement)
    if tree is None:
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
    node = first_node(statement)
    return (isinstance(node, (ast.FunctionDef, ast.Import, ast.ImportFrom))
            and not (isinstance(node, ast.FunctionDef) and node.name == "cmp"))


def _loops(statement: Statement, cell: Cell) -> list[tuple[tuple, Exercise4]]:
    """(score, split) of every candidate training loop in ``statement``."""
    tree = parsed(statement)
    if tree is None:
        return []
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
