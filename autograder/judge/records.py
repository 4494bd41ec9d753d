"""What the judge hands back for each graded item: a ``Verdict``, plain data.

Torch-free, so that the command line, the grader's driver and the readers
of ``OUT`` can use it without loading the judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Verdict:
    """The judgement of one graded item."""

    grade_id: str
    passed: bool
    message: str  # one or more lines meant for the student
    flags: list[str] = field(default_factory=list)  # reasons the work is not the student's own
    diagnosis: str = ""  # the code of the likely mistake (``diagnosis.codes.CODES``); "" when none was made

    def report(self) -> str:
        head = f"{self.grade_id}: {'passed' if self.passed else 'FAILED'} the hidden check"
        return head + ("\n" + self.message if self.message else "")
