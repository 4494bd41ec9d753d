"""Diagnosis: how an answer compares with its reference, and the likely mistake when it does not match.

* ``comparison``: one tensor (or a list of them) against the reference, as a
  ``Comparison`` per tensor and a ``CheckResult`` for a check;
* ``diagnose``: the likely mistake behind a failed comparison (a missing
  ``keepdim``, a flipped sign, a factor of ``1/n``, ...);
* ``codes``: the one table of diagnosis codes and their messages;
* ``hints``: which collapsed hint of a notebook addresses which code.

May import: ``workbook`` and the top-level ``resources``, ``exercises`` and ``cells``.
"""
