"""Backprop Ninja: the shared code of the workbook.

* ``data``: the names list, vocabulary and train/dev/test tensors
* ``model``: parameters, the chunked and fused forward passes, evaluation
* ``scalar``: the scalar ``Value`` of notebook 00, its graphs and their drawing
* ``iris``: the iris data, network, Adam reference and checks of notebook 05
* ``check``: ``cmp``, which compares a hand-derived gradient with autograd's
* ``training``: the bookkeeping of notebook 04's training loop (curve, validation, replay)
* ``exercises``: the registry of answer cells and graded items
* ``kinds``: how each kind of graded item is run, referenced, compared and shown
* ``cells``: the answer directive, stubs and hidden-test markers; recording cells
* ``untrusted``: running answer code with autograd locked out (the untrusted side)
* ``scan``: static checks of answer code
* ``verdict``: hidden checks on inputs the student never saw
* ``selfcheck``: ``make check``, a student's check of the notebooks before handing in
* ``grading``: the release and autograding pipeline around nbgrader
  (``python -m autograder --help``)
"""

import sys

__all__ = ["cmp"]

# jsonschema (under nbformat and nbgrader) imports rfc3987_syntax only to check
# "iri" string formats, which notebooks never use, and that module builds a
# parser grammar at import: 3 s for every process that reads a notebook
# (grading, make check). Skip it.
sys.modules.setdefault("rfc3987_syntax", None)


def __getattr__(name: str):
    # Imported on first use, so that `python -m autograder.<tool>` does not pay
    # for importing torch when the tool does not need it.
    if name == "cmp":
        from .checking.checks import cmp

        return cmp
    raise AttributeError(f"module 'autograder' has no attribute {name!r}")
