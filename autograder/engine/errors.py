"""The error a grading batch stops with (bad folders, an incompatible gradebook, a bad cluster).

It lives in the engine, below ``grading`` and ``lecture``: ``cluster`` raises
it (an unreachable scheduler, workers of other versions), and so do
``grading.grade`` (bad folders) and ``grading.report`` (an incompatible
gradebook), which need not import each other for it.
"""


class GradingError(RuntimeError):
    """The batch cannot start or go on (bad folders, an incompatible gradebook, a bad cluster)."""
