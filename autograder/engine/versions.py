"""What decides a grade besides the submission: this package's code and torch's version, on each machine.

The grader sends its ``versions()`` with every task; a worker whose own
differ refuses the task (``VersionMismatch``), and ``cluster.check_worker_versions``
refuses such a cluster before the batch starts.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path


class VersionMismatch(RuntimeError):
    """This worker runs other grading code or another torch than the grader that sent the task."""


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """What decides a grade besides the submission: this package's code and torch's version.

    The package is identified by a digest of its source files, so two
    installs grade alike exactly when they hold the same code.
    """
    import torch

    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    try:
        from importlib.metadata import version

        release = version("backprop-ninja")
    except Exception:  # a checkout on sys.path, not an installed distribution
        release = "checkout"
    return {"package": f"{release} (code {digest.hexdigest()[:12]})", "torch": torch.__version__}


def version_conflicts(mine: dict[str, str], theirs: dict[str, str], where: str) -> list[str]:
    """One sentence per component whose version differs, naming both."""
    return [f"{where} has {name} {theirs.get(name)}, the grader has {mine[name]}"
            for name in sorted(mine) if theirs.get(name) != mine[name]]
