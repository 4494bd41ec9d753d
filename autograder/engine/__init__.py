"""The grading engine: what the workbook's grader (``grading``) and the lecture's (``lecture``) both grade with.

``cluster``: the settings of a batch and the Dask cluster that grades it,
one task per student; ``versions``: the code and torch a worker grades with,
so that no worker grades differently; ``errors``: the error a batch stops
with.

May import: ``checking``, ``judge``, ``kinds``, ``diagnosis``, ``workbook`` and the top-level ``resources``,
``exercises`` and ``cells``.
"""
