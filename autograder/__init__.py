"""Backprop Ninja: the shared code of the workbook.

* ``data``: the names list, vocabulary and train/dev/test tensors
* ``model``: parameters, the chunked and fused forward passes, evaluation
* ``scalar``: the scalar ``Value`` of notebook 00, its graphs and their drawing
* ``iris``: the iris data, network, Adam reference and checks of notebook 05
* ``check``: ``cmp``, which compares a hand-derived gradient with autograd's
* ``exercises``: the registry of answer cells and graded items
* ``kinds``: how each kind of graded item is run, referenced, compared and shown
* ``cells``: the answer directive, stubs and hidden-test markers; recording cells
* ``untrusted``: running answer code with autograd locked out (the untrusted side)
* ``scan``: static checks of answer code
* ``verdict``: hidden checks on inputs the student never saw
* ``grading``: the release and autograding pipeline around nbgrader
  (``python -m autograder --help``)
"""

__all__ = ["cmp"]


def __getattr__(name: str):
    # Imported on first use, so that `python -m autograder.<tool>` does not pay
    # for importing torch when the tool does not need it.
    if name == "cmp":
        from .check import cmp

        return cmp
    raise AttributeError(f"module 'autograder' has no attribute {name!r}")
