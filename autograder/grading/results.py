"""The values that cross the grader's boundaries: a batch's settings, a worker's settings, a student's result.

Each setting keeps one name from the command line to the sandbox
(``--student-timeout`` is ``student_timeout`` everywhere). A result travels
from a Dask worker to the grader as this dataclass (Dask pickles it), is
written to ``OUT`` as ``report.json`` (``public``), and is read back by
the class report, the exports and the late-work pass (``from_public``), all
of which use its attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..engine.cluster import ClusterSettings
from ..exercises import ASSIGNMENT, ITEMS
from ..judge.records import Verdict
from ..judge.sandbox import Limits


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker needs to grade one student: the time budgets and the memory of its sandboxes."""

    item_timeout: float = 10.0  # --item-timeout: seconds per item and hidden case, in the judge
    student_timeout: float = 120.0  # --student-timeout: one student's whole grading; what is not judged by then scores 0
    memory_limit: float = 4.0  # --memory-limit: GB for each sandboxed process of a student, its /tmp included
    assignment: str = ASSIGNMENT  # --assignment: the nbgrader assignment's name (its folder in feedback/<student>/)

    def limits(self) -> Limits:
        return Limits.for_memory_gb(self.memory_limit)


@dataclass(frozen=True)
class GradingSettings:
    """Everything ``grade`` is told: where to run, how to judge, whether to grade again."""

    cluster: ClusterSettings = ClusterSettings()
    worker: WorkerSettings = WorkerSettings()
    regrade: bool = False  # --regrade: grade every student again, even those with a result in OUT

    def but(self, **changes) -> GradingSettings:
        """A copy with some settings changed, by their names (``jobs=1``, ``student_timeout=30``, ``regrade=True``)."""
        cluster = {k: changes.pop(k) for k in list(changes) if k in ClusterSettings.__dataclass_fields__}
        worker = {k: changes.pop(k) for k in list(changes) if k in WorkerSettings.__dataclass_fields__}
        return replace(self, cluster=replace(self.cluster, **cluster), worker=replace(self.worker, **worker), **changes)


@dataclass
class StudentResult:
    """One student's grading: scores, verdicts, notes, the files for ``OUT``, and how long each phase took."""

    student: str
    scores: dict[str, float] = field(default_factory=dict)  # grade id -> points earned
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # on the submission as a whole
    notebook_notes: dict[str, list[str]] = field(default_factory=dict)
    autograded: dict[str, bytes] = field(default_factory=dict)  # file name -> the graded notebook
    feedback: dict[str, bytes] = field(default_factory=dict)  # file name -> a feedback page
    exchange: dict[str, bytes] = field(default_factory=dict)  # timestamp.txt, submission_secret.txt as handed in
    sandboxed: bool = True
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # sanitize, judge, record, feedback: seconds each
    worker: str = ""
    failed: bool = False  # the grading itself failed: every item scores 0, and the notes say why

    def score(self, grade_id: str) -> float:
        return float(self.scores.get(grade_id, 0.0))

    def total(self) -> float:
        return sum(self.score(item.grade_id) for item in ITEMS)

    def flags(self) -> list[tuple[str, str]]:
        """(grade id, why) for every item scored 0 because the answer was not the student's own derivation."""
        return [(gid, "; ".join(v.flags)) for gid, v in self.verdicts.items() if v.flags]

    def public(self) -> dict:
        """What the student may see of the result (no files, no paths of the grader's machine): report.json."""
        return {"student": self.student,
                "scores": {item.grade_id: [self.score(item.grade_id), float(item.points)] for item in ITEMS},
                "verdicts": {gid: {"grade_id": v.grade_id, "passed": v.passed, "message": v.message,
                                   "flags": list(v.flags), "diagnosis": v.diagnosis} for gid, v in self.verdicts.items()},
                "notes": list(self.notes), "notebook_notes": {k: list(v) for k, v in self.notebook_notes.items()},
                "failed": self.failed}

    @classmethod
    def from_public(cls, data: dict) -> StudentResult:
        """A result as ``public`` wrote it (``report.json``), for the readers of ``OUT``."""
        verdicts = {gid: Verdict(v.get("grade_id", gid), bool(v.get("passed")), str(v.get("message", "")),
                                 list(v.get("flags", [])), str(v.get("diagnosis", "")))
                    for gid, v in (data.get("verdicts") or {}).items()}
        scores = {gid: float(value[0] if isinstance(value, list) else value)
                  for gid, value in (data.get("scores") or {}).items()}
        return cls(str(data.get("student", "")), scores, verdicts, list(data.get("notes", [])),
                   {k: list(v) for k, v in (data.get("notebook_notes") or {}).items()}, failed=bool(data.get("failed")))

    @classmethod
    def failure(cls, student: str, reason: str, seconds: float) -> StudentResult:
        """The result of a student whose grading itself failed: 0 everywhere, and why."""
        message = f"not graded: {reason}"
        return cls(student, {}, {item.grade_id: Verdict(item.grade_id, False, message) for item in ITEMS},
                   [message], seconds=round(seconds, 2), failed=True)
