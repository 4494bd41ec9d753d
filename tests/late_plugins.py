"""A late-submission plugin for the tests of late work (nbgrader imports it by name from the course's config)."""

from nbgrader.plugins import LateSubmissionPlugin


class HalfOffPerDay(LateSubmissionPlugin):
    """Half of the notebook's score per started day late."""

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float:
        days = -(-total_seconds_late // 86400)
        return score * min(1.0, 0.5 * days)
