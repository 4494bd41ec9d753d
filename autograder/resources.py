"""Where the package's files are, whether it is installed from a wheel or used from a checkout.

* ``data_file("names.txt")``, ``data_file("iris.csv")``: ``data/`` in a checkout,
  ``autograder/_bundled/data/`` in a wheel;
* ``release_notebooks()``: the student notebooks, ``notebooks/`` or
  ``autograder/_bundled/notebooks/``;
* ``course_source()``: what nbgrader generates the assignment from, the masters in
  ``solutions/``, or in a wheel ``autograder/_bundled/course/``, the masters with
  the inside of their solution regions cut out (same release, same gradebook);
* ``work_dir()``: a writable folder for generated things, ``build/`` or
  ``$XDG_CACHE_HOME/backprop-ninja`` (``~/.cache/backprop-ninja``).

The wheel's copies are made by the build (``hatch_build.py``); git holds only
the checkout's. A package without the bundle is a checkout (an editable
install is one).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLE = PACKAGE_DIR / "_bundled"
DISTRIBUTION = "backprop-ninja"
NAMES_ENV = "NINJA_NAMES_FILE"  # another list of names than the bundled one (``workbook.data``, the lecture's children)
# What to do about a bundled data file whose sha256 is wrong (format with file= and make=).
RESTORE_HINT = ("Restore it with `git checkout {file}` or regenerate it with `{make}` in a checkout; "
                "otherwise reinstall the package as it was installed (`pip install --force-reinstall --no-deps <spec>`).")


def checkout_root() -> Path | None:
    """The repository this package is imported from, or None when it is installed.

    Only a wheel has the bundle (the build writes it into the wheel, never into
    the source tree). Asking for it, rather than for files of the checkout,
    keeps the answer right in the grading sandbox, which hides the checkout but
    lets student code read the package and ``data/``.
    """
    return None if BUNDLE.is_dir() else PACKAGE_DIR.parent


def data_file(name: str) -> Path:
    """``names.txt`` or ``iris.csv``: the checkout's ``data/`` copy, else the wheel's."""
    return _either("data", "data") / name


def release_notebooks() -> Path:
    """The folder of the student notebooks."""
    return _either("notebooks", "notebooks")


def course_source() -> Path:
    """The folder nbgrader generates the assignment from: the masters, or the wheel's template of them."""
    return _either("solutions", "course")


def work_dir() -> Path:
    """A writable folder for generated things (the release course, cached grading templates).

    A checkout's ``build/`` when this user may write there; otherwise (a wheel,
    or a checkout installed for everyone on a shared hub) the user's own cache.
    """
    root = checkout_root()
    if root is not None:
        build = root / "build"
        if os.access(build if build.exists() else root, os.W_OK | os.X_OK):
            return build
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / DISTRIBUTION


def _either(in_checkout: str, in_bundle: str) -> Path:
    root = checkout_root()
    return root / in_checkout if root is not None else BUNDLE / in_bundle
