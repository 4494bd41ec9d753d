"""The error a grading batch stops with before it starts (bad folders, an incompatible gradebook).

It has a module of its own so that ``grade`` (which raises it) and ``report``
(which raises it about a gradebook) need not import each other.
"""


class GradingError(RuntimeError):
    """The batch cannot start (bad folders, an incompatible gradebook)."""
