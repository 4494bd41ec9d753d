"""Where the package's files are, whether it is installed from a wheel or used from a checkout.

================================  ===========================  ===================================
what                              in a checkout                in an installed wheel
================================  ===========================  ===================================
``data_file("names.txt")``        ``data/names.txt``           ``autograder/_bundled/data/``
``release_notebooks()``           ``notebooks/``               ``autograder/_bundled/notebooks/``
``course_source()``               ``solutions/`` (the masters)  ``autograder/_bundled/course/`` (the
                                                               masters without their solutions)
``work_dir()``                    ``build/``                   ``$XDG_CACHE_HOME/backprop-ninja``
================================  ===========================  ===================================

The wheel's copies are made by the build (``hatch_build.py``); git holds only
the checkout's. A checkout is recognised by its ``pyproject.toml`` and
``solutions/`` beside the package, and wins when both exist.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLE = PACKAGE_DIR / "_bundled"
DISTRIBUTION = "backprop-ninja"
# What to do about a bundled data file whose sha256 is wrong (format with file= and make=).
RESTORE_HINT = ("Restore it with `git checkout {file}` or regenerate it with `{make}` in a checkout; "
                f"reinstall the package (`pip install --force-reinstall --no-deps {DISTRIBUTION}`) otherwise.")


def checkout_root() -> Path | None:
    """The repository this package is imported from, or None when it is installed."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "solutions").is_dir():
        return root
    return None


def data_file(name: str) -> Path:
    """``names.txt`` or ``iris.csv``: the checkout's ``data/`` copy, else the wheel's."""
    return _either("data", "data") / name


def release_notebooks() -> Path:
    """The folder of the six student notebooks."""
    return _either("notebooks", "notebooks")


def course_source() -> Path:
    """The folder nbgrader generates the assignment from: the masters, or the wheel's template of them."""
    return _either("solutions", "course")


def work_dir() -> Path:
    """A writable folder for generated things (the release course, cached grading templates)."""
    root = checkout_root()
    if root is not None:
        return root / "build"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / DISTRIBUTION


def _either(in_checkout: str, in_bundle: str) -> Path:
    root = checkout_root()
    return root / in_checkout if root is not None else BUNDLE / in_bundle
