"""Backprop Ninja: the workbook's own code, its checks and its graders.

Its folders are its trades, bottom to top; each imports only those below it
(the table is ``ALLOWED`` in ``tests/test_architecture.py``):

* ``resources``, ``exercises``, ``cells``: where the package's files are, the
  registry of answer cells and graded items, the markup of the cells;
* ``workbook/``: what a student's kernel imports: the data, the model, the
  scalar ``Value`` of notebook 00, plots and drawings, training, timing;
* ``diagnosis/``: an answer compared with its reference, the likely mistake,
  its code and the hint that addresses it;
* ``kinds/``: one module per kind of graded item: how it is run on hidden
  inputs, referenced, compared and shown;
* ``judge/``: answer cells run again on hidden inputs, in a sandboxed child
  process, and the verdicts;
* ``checking/``: the test cells' checks (``cmp``, ...), the scoreboard, the
  self-check (``backprop-ninja check``), the class's mistakes;
* ``engine/``: the Dask cluster that grades, for both graders above it;
* ``grading/``: the release and the autograding of a class with nbgrader;
  ``lecture/``: notebooks in the lecture's own format, checked and graded;
* ``cli``: the command line (``python -m autograder --help``), which imports
  a package only when a command needs it.
"""

import sys

__all__ = ["cmp"]

# jsonschema (under nbformat and nbgrader) imports rfc3987_syntax only to check
# "iri" string formats, which notebooks never use, and that module builds a
# parser grammar at import: 3 s for every process that reads a notebook
# (grading, backprop-ninja check). Skip it.
sys.modules.setdefault("rfc3987_syntax", None)


def __getattr__(name: str):
    # Imported on first use, so that `python -m autograder.<tool>` does not pay
    # for importing torch when the tool does not need it.
    if name == "cmp":
        from .checking.checks import cmp

        return cmp
    raise AttributeError(f"module 'autograder' has no attribute {name!r}")
