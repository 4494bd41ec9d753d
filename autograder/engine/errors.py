"""The error a grading batch stops with (bad folders, an incompatible gradebook, a bad cluster).

It has a module of its own so that ``grade`` (which raises it) and ``report``
(which raises it about a gradebook) need not import each other.
"""


class GradingError(RuntimeError):
    """The batch cannot start or go on (bad folders, an incompatible gradebook, a bad cluster)."""
