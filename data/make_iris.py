"""Regenerate ``data/iris.csv`` from the copy of Fisher's iris data that scikit-learn ships.

The file has a header line and then 150 rows, one flower each: four
measurements in centimetres (sepal length, sepal width, petal length, petal
width) and the species (setosa, versicolor or virginica), 50 of each, in
scikit-learn's order.

scikit-learn (BSD-3-Clause) bundles the data in the package itself, so no
download is involved. Its copy follows Fisher's 1936 paper, which differs from
the widely copied UCI file in two setosa rows (the 35th and the 38th); the
script checks that it got the paper's values. scikit-learn is not a runtime
requirement of the workbook, so ``make iris`` installs it into a throwaway
environment under ``build/``::

    make iris          # or: python data/make_iris.py  (with scikit-learn installed)

After regenerating, update ``IRIS_SHA256`` in ``autograder/workbook/iris.py`` only if
the change is intended; the loader refuses a bundled file whose hash differs.
"""

import hashlib
import sys
from pathlib import Path

OUT = Path(__file__).with_name("iris.csv")
HEADER = "sepal_length,sepal_width,petal_length,petal_width,species"
# Rows 35 and 38 (1-based) as printed in Fisher's paper; the UCI copy has typos there.
FISHER_ROWS = {35: (4.9, 3.1, 1.5, 0.2), 38: (4.9, 3.6, 1.4, 0.1)}


def iris_rows() -> list[str]:
    """One CSV line per flower: the four measurements with one decimal, then the species."""
    from sklearn.datasets import load_iris

    bunch = load_iris()
    rows = []
    for number, (measurements, target) in enumerate(zip(bunch.data, bunch.target), start=1):
        values = [float(x) for x in measurements]
        if any(float(f"{x:.1f}") != x for x in values):
            raise ValueError(f"row {number}: {values} has more than one decimal")
        if number in FISHER_ROWS and tuple(values) != FISHER_ROWS[number]:
            raise ValueError(f"row {number} is {values}, not Fisher's {FISHER_ROWS[number]}")
        rows.append(",".join(f"{x:.1f}" for x in values) + "," + str(bunch.target_names[target]))
    return rows


def main() -> None:
    rows = iris_rows()
    text = HEADER + "\n" + "".join(row + "\n" for row in rows)
    OUT.write_text(text, encoding="ascii")
    digest = hashlib.sha256(text.encode("ascii")).hexdigest()
    print(f"wrote {OUT} ({len(rows)} flowers), sha256 {digest}", file=sys.stderr)


if __name__ == "__main__":
    main()
