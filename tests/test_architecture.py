"""The shape of the package: imports that flow one way, no cycles, no reaching into privates, a torch-free CLI.

The import graph is read from the source with ``ast`` (every ``import``, at
the top of a module or inside a function, since a cycle through a lazy import
is still a cycle a reader has to untangle), so nothing here imports the
package.

The folders of ``autograder/`` are its trades, bottom to top; ``ALLOWED``
says which of them each may import, so that every arrow points down.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "autograder"


def module_name(path: Path, root: Path = REPO) -> str:
    """``autograder/grading/grade.py`` -> ``autograder.grading.grade`` (a package is its ``__init__``)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(package: Path = PACKAGE) -> dict[str, Path]:
    """{dotted name: file} of every module in ``package``."""
    return {module_name(path, package.parent): path for path in sorted(package.rglob("*.py"))}


def imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
                   known: set[str]) -> list[tuple[str, str | None]]:
    """What one import statement imports: (module, name taken from it or None), names resolved to modules.

    ``from . import report`` in ``autograder.grading.grade`` gives
    ``("autograder.grading.report", None)``; ``from ..judge.sandbox import wrap``
    gives ``("autograder.judge.sandbox", "wrap")``.
    """
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names]
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = package[: len(package) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    found = []
    for alias in node.names:
        submodule = f"{source}.{alias.name}"
        found.append((submodule, None) if submodule in known else (source, alias.name))
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """{module: the package's modules it imports anywhere in its source}."""
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for source, _ in imported_names(node, name, path.name == "__init__.py", set(modules)):
                    if source in modules and source != name:
                        edges.add(source)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk meets, each as [a, b, ..., a]."""
    cycles, on_path, done, path = [], set(), set(), []

    def visit(node: str) -> None:
        on_path.add(node)
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if target in on_path:
                cycles.append(path[path.index(target):] + [target])
            elif target not in done:
                visit(target)
        path.pop()
        on_path.discard(node)
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            visit(node)
    return cycles


def private_uses(modules: dict[str, Path]) -> list[str]:
    """'<module>:<line>: <other>.<_name>' wherever a module uses another module's private name."""
    found = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_aliases: dict[str, str] = {}  # local name -> the package module it stands for
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for (source, taken), alias in zip(imported_names(node, name, path.name == "__init__.py", set(modules)),
                                                  node.names):
                    if source not in modules or source == name:
                        continue
                    if taken is None:
                        module_aliases[alias.asname or alias.name.split(".")[-1]] = source
                    elif _private(taken):
                        found.append(f"{name}:{node.lineno}: {source}.{taken}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in module_aliases and _private(node.attr)):
                found.append(f"{name}:{node.lineno}: {module_aliases[node.value.id]}.{node.attr}")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


# ------------------------------------------------------------------ the allowed directions

# The three top-level modules at the bottom: everything may import them, they import nothing of the package.
BOTTOM = {"resources", "exercises", "cells"}
# What each part of the package (a folder, or a module at the top level) may import besides itself, bottom to top.
ALLOWED: dict[str, set[str]] = {
    "resources": set(),
    "exercises": set(),
    "cells": set(),
    "workbook": BOTTOM,  # what a student's kernel imports
    "diagnosis": BOTTOM | {"workbook"},  # comparison, diagnose, codes, hints
    "kinds": BOTTOM | {"workbook", "diagnosis"},  # one module per kind of graded item (runs answers it is handed a runner for)
    "judge": BOTTOM | {"workbook", "diagnosis", "kinds"},  # the hidden checks, their processes and sandbox
    "checking": BOTTOM | {"workbook", "diagnosis", "kinds", "judge"},  # the test cells' checks, scoreboard, self-check
    "engine": BOTTOM | {"workbook", "diagnosis", "kinds", "judge", "checking"},  # the Dask cluster both graders use
    # The two graders, side by side: neither imports the other.
    "grading": BOTTOM | {"workbook", "diagnosis", "kinds", "judge", "checking", "engine"},
    "lecture": BOTTOM | {"workbook", "diagnosis", "kinds", "judge", "checking", "engine"},
    # The entry points, at the top: they import a package when a command (or ``cmp``) needs it (see LAZY).
    "cli": BOTTOM | {"workbook", "diagnosis", "kinds", "judge", "checking", "engine", "grading", "lecture"},
    "__main__": {"cli"},
    "__init__": {"checking"},  # the lazy ``autograder.cmp``
}
# Arrows allowed to point up: none. (A kind runs answer code through the ``AnswerRunner`` the judge hands it.)
UPWARD: dict[str, set[str]] = {}
# Modules that import the package only inside functions, so that ``--help`` (and ``import autograder``) stay light.
LAZY = {"autograder", "autograder.cli"}
MAX_TOP_LEVEL_MODULES = 6


def part_of(module: str) -> str:
    """``autograder.judge.runner`` -> ``judge``; ``autograder.cli`` -> ``cli``; ``autograder`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def direction_violations(graph: dict[str, set[str]], allowed: dict[str, set[str]],
                         upward: dict[str, set[str]]) -> list[str]:
    """'<module> -> <imported module>' for every import that ``allowed`` (and ``upward``) does not permit."""
    found = []
    for module, imports in sorted(graph.items()):
        part = part_of(module)
        if part not in allowed:
            found.append(f"{module}: {part} is not in the table of allowed directions (add it)")
            continue
        for target in sorted(imports):
            other = part_of(target)
            if other != part and other not in allowed[part] and target not in upward.get(part, set()):
                permitted = ", ".join(sorted(allowed[part])) or "nothing of the package"
                found.append(f"{module} -> {target} ({part} may import {permitted})")
    return found


def eager_imports(path: Path, module: str, modules: dict[str, Path]) -> list[str]:
    """The package's modules that ``path`` imports at its top level (not inside a function)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for source, _ in imported_names(node, module, path.name == "__init__.py", set(modules)):
                if source in modules and source != module:
                    found.append(source)
    return found


# ------------------------------------------------------------------ the tests


def test_no_import_cycles_in_the_package():
    graph = import_graph(package_modules())
    assert "autograder.grading.grade" in graph and graph["autograder.grading.grade"], "the graph missed imports"
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in autograder/:\n  " + "\n  ".join(" -> ".join(c) for c in cycles)


def test_imports_flow_down_the_table_of_allowed_directions():
    violations = direction_violations(import_graph(package_modules()), ALLOWED, UPWARD)
    assert not violations, "imports against the allowed directions (see ALLOWED):\n  " + "\n  ".join(violations)


def test_the_command_line_imports_the_packages_lazily():
    modules = package_modules()
    for module in LAZY:
        assert not eager_imports(modules[module], module, modules), f"{module} imports the package at its top level"


def test_at_most_six_modules_sit_at_the_top_level():
    top = sorted(path.stem for path in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} modules at the top of autograder/: {', '.join(top)}"
    assert set(top) <= set(ALLOWED), f"top-level modules missing from ALLOWED: {sorted(set(top) - set(ALLOWED))}"


def test_the_direction_detector_sees_an_upward_import(tmp_path):
    package = tmp_path / "pkg"
    for folder in ("low", "high"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "low" / "a.py").write_text("def f():\n    from ..high import b\n    return b\n")
    (package / "high" / "b.py").write_text("from ..low import a\n")
    graph = import_graph(package_modules(package))
    allowed = {"low": set(), "high": {"low"}, "__init__": set()}
    assert direction_violations(graph, allowed, {}) == ["pkg.low.a -> pkg.high.b (low may import nothing of the package)"]
    assert direction_violations(graph, allowed, {"low": {"pkg.high.b"}}) == []
    assert direction_violations(graph, {"high": {"low"}, "__init__": set()}, {})[0].startswith("pkg.low:")


def test_no_module_uses_another_modules_private_names():
    uses = private_uses(package_modules())
    assert not uses, "private names used across modules (make them public or move them):\n  " + "\n  ".join(uses)


def test_the_cycle_and_private_detectors_see_what_they_look_for(tmp_path):
    # A package with a cycle through a lazy import and a reach into a private function.
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub import b\n\ndef f():\n    return b._hidden()\n")
    (package / "sub" / "b.py").write_text("def _hidden():\n    from ..a import f\n    return f\n")
    (package / "c.py").write_text("from .sub.b import _hidden\nimport os\n")
    modules = package_modules(package)
    assert set(modules) == {"pkg", "pkg.sub", "pkg.a", "pkg.sub.b", "pkg.c"}
    graph = import_graph(modules)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.a"}
    assert find_cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.a"]]
    assert sorted(private_uses(modules)) == ["pkg.a:4: pkg.sub.b._hidden", "pkg.c:1: pkg.sub.b._hidden"]


def imported_modules(importtime_stderr: str) -> set[str]:
    """The modules named by ``python -X importtime`` ("import time: self | cumulative | name")."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":  # the header line
                names.add(name)
    return names


def test_the_grading_cli_starts_without_torch():
    """``python -m autograder --help`` answers without importing torch (seconds of start-up)."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "autograder", "--help"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "release" in run.stdout and "grade" in run.stdout  # the help text itself
    modules = imported_modules(run.stderr)
    assert "autograder.cli" in modules, "-X importtime reported nothing: the test would pass vacuously"
    torch_modules = sorted(m for m in modules if m.split(".")[0] == "torch")
    assert not torch_modules, f"`python -m autograder --help` imports torch: {torch_modules[:5]}"


@pytest.mark.parametrize("line, name", [
    ("import time:       288 |     144807 |           nbformat.validator", "nbformat.validator"),
    ("import time:     18980 |    1012816 |     torch", "torch"),
])
def test_importtime_lines_are_read(line, name):
    header = "import time: self [us] | cumulative | imported package"
    assert imported_modules(f"{header}\n{line}\nsomething else\n") == {name}
