"""Backprop Ninja: the shared code of the workbook.

* ``data``: the names list, vocabulary and train/dev/test tensors
* ``model``: parameters, the chunked and fused forward passes, evaluation
* ``check``: ``cmp``, which compares a hand-derived gradient with autograd's
* ``exercises``: the registry of answer cells and graded items
* ``judge``: hidden checks on inputs the student never saw
* ``grading``: the release and autograding pipeline around nbgrader
  (``python -m autograder --help``)
"""

from .check import cmp

__all__ = ["cmp"]
