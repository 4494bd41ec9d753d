"""Cells of the CSV files a teacher opens in a spreadsheet (grades, flags, mistakes, exports)."""

from __future__ import annotations


def csv_cell(value):
    """A CSV cell; text that a spreadsheet would run as a formula is quoted."""
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
