"""The result of checking a lecture-format notebook, and its text report.

A ``LectureResult`` holds one ``GradientVerdict`` per gradient, the flags and the notes;
``to_json`` gives::

    {"items": [{"exercise": "ex1", "name": "dlogprobs", "status": "pass"|"fail"|"missing"|"error",
                "diagnosis": "<code>", "message": "...", "maxdiff": float|null}, ...],
     "flags": [{"exercise": ..., "name": ..., "flag": ..., "message": ..., "penalised": bool}, ...]}

``format_report`` writes it as text: one line per gradient and a summary per exercise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .parse import EXERCISES, EXPECTED, GRADS_LIST, TITLES

SYMBOLS = {"pass": "✅", "fail": "❌", "error": "❌", "missing": "--"}


@dataclass
class GradientVerdict:
    """The verdict on one gradient of one exercise."""

    exercise: str
    name: str
    status: str  # pass, fail, missing or error
    diagnosis: str = ""
    message: str = ""
    maxdiff: float | None = None


@dataclass
class LectureResult:
    """A checked notebook: its items and flags, or the reason it could not be checked."""

    source: str
    items: list[GradientVerdict] = field(default_factory=list)
    flags: list[dict] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)  # per exercise: statements that raised, ...
    error: str = ""  # why nothing could be checked

    def to_json(self) -> dict:
        data = {"items": [asdict(item) for item in self.items], "flags": self.flags}
        if self.error:
            data["error"] = self.error
        return data

    def passed(self) -> int:
        return sum(item.status == "pass" for item in self.items)


def format_report(result: LectureResult) -> str:
    lines = [f"Checked {result.source} (the lecture's notebook format)"]
    if result.error:
        return "\n".join(lines + [f"error: {result.error}"])
    lines += [f"note: {_one_line(note, 600)}" for note in result.notes.get("setup", [])]
    for exercise in EXERCISES:
        items = [item for item in result.items if item.exercise == exercise]
        counts = {status: sum(item.status == status for item in items) for status in ("pass", "fail", "error", "missing")}
        summary = f"{counts['pass']}/{len(items)} right"
        summary += "".join(f", {counts[s]} {word}" for s, word in (("fail", "wrong"), ("error", "did not run"),
                                                                   ("missing", "missing")) if counts[s])
        lines += ["", f"{TITLES[exercise]}: {summary}"]
        for item in items:
            maxdiff = "" if item.maxdiff is None else f"maxdiff {item.maxdiff:.1e}"
            head = f"  {SYMBOLS[item.status]} {item.name:16s}"
            if item.status == "pass":
                lines.append(f"{head} {maxdiff}".rstrip())
            else:
                word = {"fail": "wrong", "error": "error", "missing": "missing"}[item.status]
                lines.append(f"{head} {word} [{item.diagnosis}] {maxdiff}".rstrip())
                lines.append(f"      {_one_line(item.message)}")
        for note in result.notes.get(exercise, []):
            lines.append(f"  note: {note}")
        lines.append(f"  looked for: {', '.join(EXPECTED[exercise])}"
                     + (f" and the list {GRADS_LIST}" if exercise == "ex4" else ""))
    for flag in result.flags:
        if flag["name"] is None:  # the flags of single gradients are on their lines above
            lines.append(f"{'flag' if flag['penalised'] else 'note'} ({flag['exercise']}): {flag['message']}")
    lines += ["", f"total: {result.passed()}/{len(result.items)} gradients right"]
    return "\n".join(lines)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
