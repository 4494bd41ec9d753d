"""Cells of the CSV files a teacher opens in a spreadsheet (grades, flags, mistakes, exports, ids).

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and,
in some, a tab or a carriage return) as a formula, and a formula can fetch
URLs or run commands. Student ids, file names and messages come from
students, so every text cell is neutralised as OWASP recommends for CSV
injection: a leading ``'`` makes it plain text. Numbers stay numbers.
Every CSV the package writes goes through ``safe_writer``.
"""

from __future__ import annotations

import csv

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A CSV cell: a number as it is, text that a spreadsheet would run as a formula quoted."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class safe_writer:  # noqa: N801 - used like csv.writer, which it wraps
    """``csv.writer`` whose every cell goes through ``csv_cell``."""

    def __init__(self, file, **options):
        self._writer = csv.writer(file, **options)

    def writerow(self, row) -> None:
        self._writer.writerow([csv_cell(cell) for cell in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)
