"""Checking: what a student sees of their answers, and what a class got wrong.

* ``checks``: the checks of the notebooks' test cells (``cmp``,
  ``check_backward``, ...), each printing a report, and the reason a failed
  ``assert`` carries;
* ``scoreboard``: the progress table at the end of each notebook;
* ``selfcheck``: ``backprop-ninja check``, a copy of each notebook run with
  its hidden checks, before handing in;
* ``class_mistakes``: one diagnosis code per failed item and student, counted
  over a class (``mistakes.csv``), for the workbook and the lecture's format;
* ``csv_cells``: CSV cells that a spreadsheet will not run as formulas.

May import: ``judge``, ``kinds``, ``diagnosis``, ``workbook`` and the top-level ``resources``, ``exercises`` and
``cells``.
"""
