"""The workbook: what a student's kernel imports.

The names and the iris data, the model and its forward passes, the scalar
``Value`` of notebook 00 and its expression graphs, figures and drawings, the
bookkeeping of a training run, timing, and ``show``. Nothing here checks,
judges or grades an answer.

May import: the top-level ``resources``, ``exercises`` and ``cells``, nothing else of the package.
"""
