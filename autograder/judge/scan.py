"""The source scanner: static checks of answer code, before (and instead of) running it.

Trusted side: this module only parses text (``ast``) and never executes an
answer. It lists why a set of answer cells is not a derivation of the
student's own: reading ``.grad`` (autograd's answer), calling ``backward``,
``torch.autograd`` or ``torch.optim``, reaching outside the notebook (files,
processes, the interpreter), or typing in numbers. An item whose answers are
flagged is not run at all (see ``autograder.judge.verdict``). The lock-out of
``autograder.judge.untrusted`` stops what this scan cannot see.
"""

from __future__ import annotations

import ast
import re

from ..cells import answer_id_of
from ..exercises import notebook, notebook_of_answer

# Names an answer cell has no use for: they copy autograd's result, switch it
# back on, or reach outside the notebook (files, processes, the interpreter).
_AUTOGRAD_ATTRIBUTES = {
    "grad": "reads a .grad tensor (autograd's answer)",
    "backward": "calls backward() (autograd)",
    "autograd": "uses torch.autograd",
    "func": "uses torch.func",
    "requires_grad": "turns on gradient tracking (requires_grad)",
    "requires_grad_": "turns on gradient tracking (requires_grad_)",
    "retain_grad": "calls retain_grad()",
    "register_hook": "registers an autograd hook",
    "grad_fn": "reads the autograd graph (grad_fn)",
    "enable_grad": "turns gradient tracking back on",
    "set_grad_enabled": "turns gradient tracking back on",
}
_AUTOGRAD_NAMES = {
    "autograd": "uses torch.autograd",
    "functorch": "uses functorch",
    "enable_grad": "turns gradient tracking back on",
    "set_grad_enabled": "turns gradient tracking back on",
}
_ESCAPE_NAMES = {
    "exec", "eval", "compile", "open", "__import__", "getattr", "setattr", "delattr", "globals",
    "locals", "vars", "breakpoint", "os", "sys", "subprocess", "ctypes", "gc", "inspect",
    "importlib", "builtins", "pickle", "shutil", "pathlib", "socket", "signal", "threading",
    "multiprocessing", "sqlite3", "get_ipython",
}
_OPTIMIZER_NAMES = {"optim": "uses torch.optim: write the update by hand"}
# What an answer of one notebook may do that others may not: in notebook 00
# setting and reading .grad is the answer itself.
_ALLOWED_BY_NOTEBOOK = {notebook(0): {"grad"}}
_ALLOWED_IMPORTS = {"torch", "math", "numpy", "torch.nn.functional"}
_MAX_LITERAL_DIGITS = 4  # significant digits in a number typed into an answer
_MAX_LITERAL_LIST = 4  # numbers in a list/tuple display


def scan_answers(sources: list[str]) -> list[str]:
    """Reasons these answer cells are not a derivation, e.g. 'reads a .grad tensor'.

    The rules depend on the notebook of each cell, known from its
    ``#| answer:`` line (the grader finds the cell by that same line).
    """
    reasons: list[str] = []
    for source in sources:
        try:
            tree = ast.parse(_strip_magics(source))
        except SyntaxError:
            continue  # running it will report the syntax error
        allowed = _allowed_in(source)
        for node in ast.walk(tree):
            reason = _node_problem(node, allowed)
            if reason and reason not in reasons:
                reasons.append(reason)
    return reasons


def _allowed_in(source: str) -> set[str]:
    answer_id = answer_id_of(source)
    return _ALLOWED_BY_NOTEBOOK.get(notebook_of_answer(answer_id) if answer_id else None, set())


def _strip_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _node_problem(node: ast.AST, allowed: set[str] = frozenset()) -> str | None:
    # `case object(_C=c)` in a match statement reads an attribute by name too.
    attributes = [node.attr] if isinstance(node, ast.Attribute) else list(node.kwd_attrs) if isinstance(node, ast.MatchClass) else []
    for attribute in attributes:
        if attribute in allowed:
            continue
        if attribute in _AUTOGRAD_ATTRIBUTES:
            return _AUTOGRAD_ATTRIBUTES[attribute]
        if attribute in _OPTIMIZER_NAMES:
            return _OPTIMIZER_NAMES[attribute]
        if attribute.startswith("_"):
            return f"reaches into a private attribute ({attribute})"
        if attribute in _ESCAPE_NAMES:
            return f"uses {attribute}, which an answer has no need for"
    name = node.id if isinstance(node, ast.Name) else None
    if name in _AUTOGRAD_NAMES:
        return _AUTOGRAD_NAMES[name]
    if name in _OPTIMIZER_NAMES:
        return _OPTIMIZER_NAMES[name]
    if name in _ESCAPE_NAMES:
        return f"uses {name}, which an answer has no need for"
    if isinstance(node, ast.ImportFrom):  # `from torch import optim as o` hides the name behind an alias
        for alias in node.names:
            for table in (_AUTOGRAD_NAMES, _OPTIMIZER_NAMES, _AUTOGRAD_ATTRIBUTES):
                if alias.name in table:
                    return table[alias.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        outside = [m for m in modules if m not in _ALLOWED_IMPORTS]
        if outside:
            return f"imports {', '.join(outside)}"
    if isinstance(node, ast.Constant) and isinstance(node.value, float) and _significant_digits(node.value) > _MAX_LITERAL_DIGITS:
        return f"contains the hard-coded number {node.value!r}"
    if isinstance(node, (ast.List, ast.Tuple)):
        numbers = [e for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, (int, float))]
        if len(numbers) > _MAX_LITERAL_LIST:
            return f"contains a hard-coded list of {len(numbers)} numbers"
    return None


def _significant_digits(value: float) -> int:
    digits = f"{abs(value):.12e}".split("e")[0].replace(".", "").rstrip("0")
    return len(digits)


def flag_code(flag: str) -> str:
    """A short stable name for a flag of ``scan_answers`` ('reads a .grad tensor ...' -> 'grad')."""
    for table in (_AUTOGRAD_ATTRIBUTES, _AUTOGRAD_NAMES, _OPTIMIZER_NAMES):
        for name, reason in table.items():
            if flag == reason:
                return name
    patterns = ((r"^uses (\w+), which an answer has no need for", None), (r"^reaches into a private attribute", "private_attribute"),
                (r"^imports ", "import"), (r"hard-coded number", "hardcoded_number"),
                (r"hard-coded list", "hardcoded_list"))
    for pattern, code in patterns:
        match = re.search(pattern, flag)
        if match:
            return code or match.group(1)
    return "other"
