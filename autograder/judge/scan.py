"""The source scanner: static checks of answer code, before (and instead of) running it.

Trusted side: this module parses text (``ast``) and never executes an answer.
It lists why a set of answer cells is not a derivation of the student's own:

* asking autograd, in any of its forms, for the answer: reading ``.grad``,
  ``backward()``, ``torch.autograd``, forward-mode (``make_dual``),
  ``torch.func``/functorch, ``torch.ops``, PyTorch's own backward kernels
  (``*_backward*`` attributes), turning gradient tracking on;
  ``torch.optim`` where the update is the exercise;
* looking behind the code: frames and code objects (``f_back``, ``gi_frame``,
  ``tb_frame``, ``__globals__``, ``__subclasses__``, ``mro``, ...), private
  and dunder attributes, dynamic attribute access and evaluation
  (``getattr``, ``eval``, ``__import__``, ``vars``, ...);
* reaching outside the notebook: any import but the few an answer needs,
  including a module reached through another module's namespace
  (``from torch import sys``, ``numpy.os``), files, processes;
* typing in numbers (``diagnose`` names a typed-in size separately).

An item whose answers are flagged is not run at all (``judge.verdict``). The
permanent lock-out in the judge's child (``judge.untrusted``) and the sandbox
stop what a scan cannot see; the answer itself is never in the child's reach.
"""

from __future__ import annotations

import ast
import re
import sys
import types

from ..cells import answer_id_of
from ..exercises import notebook, notebook_of_answer

# Every way of having autograd compute a derivative, and of turning it back on.
_AUTOGRAD_ATTRIBUTES = {
    "grad": "reads a .grad tensor (autograd's answer)",
    "backward": "calls backward() (autograd)",
    "autograd": "uses torch.autograd",
    "func": "uses torch.func",
    "functorch": "uses functorch",
    "requires_grad": "turns on gradient tracking (requires_grad)",
    "requires_grad_": "turns on gradient tracking (requires_grad_)",
    "Parameter": "turns on gradient tracking (nn.Parameter)",
    "retain_grad": "calls retain_grad()",
    "register_hook": "registers an autograd hook",
    "register_post_accumulate_grad_hook": "registers an autograd hook",
    "grad_fn": "reads the autograd graph (grad_fn)",
    "enable_grad": "turns gradient tracking back on",
    "set_grad_enabled": "turns gradient tracking back on",
    "forward_ad": "uses forward-mode autograd",
    "make_dual": "uses forward-mode autograd",
    "unpack_dual": "uses forward-mode autograd",
    "dual_level": "uses forward-mode autograd",
    "jvp": "uses a Jacobian product (jvp)",
    "vjp": "uses a Jacobian product (vjp)",
    "jacrev": "uses autograd's Jacobian (jacrev)",
    "jacfwd": "uses autograd's Jacobian (jacfwd)",
    "jacobian": "uses autograd's Jacobian",
    "hessian": "uses autograd's Hessian",
    "hvp": "uses a Hessian product",
    "vhp": "uses a Hessian product",
    "linearize": "uses torch.func.linearize",
    "grad_and_value": "uses torch.func",
    "ops": "uses torch.ops (the operator registry, autograd's internals included)",
    "compile": "uses torch.compile (which can derive a backward pass)",
    "jit": "uses torch.jit",
    "library": "uses torch.library",
    "fx": "uses torch.fx",
    "export": "uses torch.export",
}
# PyTorch's own backward kernels, reached as attributes (``torch.batch_norm_backward_elemt``,
# ``torch.ops.aten.native_layer_norm_backward``, ``gelu_backward``, ``_softmax_backward_data``): a
# derivative computed for you, like autograd's. (A function of one's own may be called ``..._backward``.)
_BACKWARD_KERNEL = re.compile(r"backward", re.IGNORECASE)
_BACKWARD_KERNEL_REASON = "calls one of PyTorch's own backward kernels"
# In notebook 00 setting and reading a node's .grad is the answer itself.
_ALLOWED_BY_NOTEBOOK = {notebook(0): {"grad"}}
_OPTIMIZER_NAMES = {"optim": "uses torch.optim: write the update by hand"}
_INTROSPECTION = {
    "f_back", "f_locals", "f_globals", "f_builtins", "f_code", "f_trace", "f_lasti", "gi_frame", "gi_code",
    "gi_yieldfrom", "gi_suspended", "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code", "ag_await",
    "tb_frame", "tb_next", "co_consts", "co_code", "co_names", "co_varnames", "mro", "func_globals",
}
# Built-in functions that evaluate code, reach attributes by computed names, or leave the notebook.
_BUILTIN_ESCAPES = {"exec", "eval", "compile", "open", "getattr", "setattr", "delattr", "globals", "locals", "vars",
                    "breakpoint", "input", "help", "get_ipython"}
# Attributes that lead to a module or a file, whatever object they are read from.
_ATTRIBUTE_ESCAPES = _BUILTIN_ESCAPES | {
    "os", "sys", "subprocess", "ctypes", "gc", "inspect", "importlib", "builtins", "pickle", "marshal", "shutil",
    "pathlib", "socket", "signal", "threading", "multiprocessing", "concurrent", "asyncio", "sqlite3", "mmap",
    "resource", "tempfile", "glob", "weakref", "atexit", "faulthandler",
    "load", "save", "fromfile", "tofile", "memmap", "from_file",
}
# Plain names of autograd's entry points (they can only be bound by an import, which is flagged too).
_AUTOGRAD_NAMES = ("autograd", "functorch", "enable_grad", "set_grad_enabled", "forward_ad", "make_dual",
                   "unpack_dual", "dual_level", "jacrev", "jacfwd", "vjp", "jvp", "hessian", "jacobian")
_ALLOWED_DUNDER_NAMES = {"__name__"}
# The modules an answer may import or reach: torch's tensor maths, math, numpy.
ALLOWED_MODULES = frozenset({"torch", "torch.nn", "torch.nn.functional", "torch.linalg", "torch.special",
                             "torch.fft", "math", "numpy", "numpy.linalg"})
# What the names an answer finds in its namespace stand for (the judge gives it these).
NAMESPACE_MODULES = {"torch": "torch", "F": "torch.nn.functional", "math": "math", "np": "numpy",
                     "numpy": "numpy", "nn": "torch.nn"}
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
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue  # running it will report the syntax error
        scanner = _Scanner(_allowed_in(source))
        try:
            scanner.visit(tree)
        except RecursionError:
            scanner.add("is nested too deeply to read")
        for reason in scanner.reasons:
            if reason not in reasons:
                reasons.append(reason)
    return reasons


def _allowed_in(source: str) -> set[str]:
    answer_id = answer_id_of(source)
    return _ALLOWED_BY_NOTEBOOK.get(notebook_of_answer(answer_id) if answer_id else None, set())


def _strip_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


class _Scanner(ast.NodeVisitor):
    """Walks one cell, collecting reasons; knows which local names stand for modules."""

    def __init__(self, allowed: set[str]):
        self.allowed = allowed
        self.reasons: list[str] = []
        self.modules = dict(NAMESPACE_MODULES)  # local name -> dotted module name

    def add(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)

    # ---- attributes, names, imports
    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._attribute(node.attr)
        chain = _chain(node)
        if chain:
            self._resolve(chain)
        self.generic_visit(node)

    def visit_MatchClass(self, node: ast.MatchClass) -> None:  # `case Tensor(grad=g)` reads .grad by name
        for attribute in node.kwd_attrs:
            self._attribute(attribute)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if name in _AUTOGRAD_NAMES:
            self.add(_AUTOGRAD_ATTRIBUTES[name])
        elif name in _OPTIMIZER_NAMES:
            self.add(_OPTIMIZER_NAMES[name])
        elif name in _BUILTIN_ESCAPES:
            self.add(f"uses {name}, which an answer has no need for")
        elif name.startswith("__") and name.endswith("__") and name not in _ALLOWED_DUNDER_NAMES:
            self.add(f"reaches into the interpreter ({name})")
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name not in ALLOWED_MODULES:
                self.add(f"imports {alias.name}")
            elif alias.asname:
                self.modules[alias.asname] = alias.name
            else:
                self.modules[alias.name.split(".")[0]] = alias.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or module not in ALLOWED_MODULES:
            self.add(f"imports {'.' * node.level}{module}")
            return
        for alias in node.names:
            name = alias.name
            if name == "*":
                self.add(f"imports everything from {module} (name what you use)")
                continue
            self._attribute(name)
            target = _module_attribute(module, name)
            if isinstance(target, types.ModuleType):
                if target.__name__ not in ALLOWED_MODULES:
                    self.add(f"imports {target.__name__} (through {module})")
                else:
                    self.modules[alias.asname or name] = target.__name__

    def _attribute(self, attribute: str) -> None:
        if attribute in self.allowed:
            return
        if attribute in _AUTOGRAD_ATTRIBUTES:
            self.add(_AUTOGRAD_ATTRIBUTES[attribute])
        elif _BACKWARD_KERNEL.search(attribute):
            self.add(f"{_BACKWARD_KERNEL_REASON} ({attribute})")
        elif attribute in _OPTIMIZER_NAMES:
            self.add(_OPTIMIZER_NAMES[attribute])
        elif attribute in _INTROSPECTION:
            self.add(f"looks at frames or code objects ({attribute})")
        elif attribute.startswith("__") and attribute.endswith("__"):
            self.add(f"reaches into the interpreter ({attribute})")
        elif attribute.startswith("_"):
            self.add(f"reaches into a private attribute ({attribute})")
        elif attribute in _ATTRIBUTE_ESCAPES:
            self.add(f"uses {attribute}, which an answer has no need for")

    def _resolve(self, chain: list[str]) -> None:
        """``torch.sys.modules``: flag a module the chain reaches that an answer may not use."""
        dotted = self.modules.get(chain[0])
        if dotted is None:
            return
        for attribute in chain[1:]:
            target = _module_attribute(dotted, attribute)
            if not isinstance(target, types.ModuleType):
                return
            if target.__name__ not in ALLOWED_MODULES:
                self.add(f"reaches the module {target.__name__} through {'.'.join(chain[:chain.index(attribute)])}")
                return
            dotted = target.__name__

    def visit_keyword(self, node: ast.keyword) -> None:  # torch.ones(3, requires_grad=True) names it as a keyword
        if node.arg is not None:
            self._attribute(node.arg)
        self.generic_visit(node)

    # ---- numbers typed in, names hidden in strings
    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, float) and _significant_digits(node.value) > _MAX_LITERAL_DIGITS:
            self.add(f"contains the hard-coded number {node.value!r}")
        elif isinstance(node.value, str) and node.value in _AUTOGRAD_ATTRIBUTES and node.value not in self.allowed:
            self.add(_AUTOGRAD_ATTRIBUTES[node.value])  # {"requires_grad": True}, spelled as a string

    def visit_List(self, node) -> None:
        self._literal_list(node)
        self.generic_visit(node)

    visit_Tuple = visit_Set = visit_List

    def _literal_list(self, node) -> None:
        numbers = [e for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, (int, float))
                   and not isinstance(e.value, bool)]
        if len(numbers) > _MAX_LITERAL_LIST:
            self.add(f"contains a hard-coded list of {len(numbers)} numbers")


def _chain(node: ast.Attribute) -> list[str] | None:
    """``a.b.c`` -> ['a', 'b', 'c'] for a chain that starts at a plain name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _module_attribute(dotted: str, attribute: str):
    """What module ``dotted`` (if loaded in this trusted process) holds under ``attribute``, without running any code."""
    module = sys.modules.get(dotted)
    if module is None:
        return None
    value = vars(module).get(attribute)
    if value is None:  # a submodule not bound yet (``import torch`` binds ``torch.nn`` lazily in some versions)
        value = sys.modules.get(f"{dotted}.{attribute}")
    return value


def _significant_digits(value: float) -> int:
    digits = f"{abs(value):.12e}".split("e")[0].replace(".", "").rstrip("0")
    return len(digits)


def flag_code(flag: str) -> str:
    """A short stable name for a flag of ``scan_answers`` ('reads a .grad tensor ...' -> 'grad')."""
    for table in (_AUTOGRAD_ATTRIBUTES, _OPTIMIZER_NAMES):
        for name, reason in table.items():
            if flag == reason:
                return name
    patterns = ((r"^uses (\w+), which an answer has no need for", None),
                (f"^{_BACKWARD_KERNEL_REASON}", "backward_kernel"),
                (r"^reaches into a private attribute", "private_attribute"),
                (r"^reaches into the interpreter", "interpreter"), (r"^looks at frames", "introspection"),
                (r"^reaches the module", "module_through_namespace"), (r"^imports ", "import"),
                (r"hard-coded number", "hardcoded_number"), (r"hard-coded list", "hardcoded_list"),
                (r"nested too deeply", "unreadable"))
    for pattern, code in patterns:
        match = re.search(pattern, flag)
        if match:
            return code or match.group(1)
    return "other"
