"""Exercises 1-3 run twice: as written, and line by line on their own, with the right inputs fed in.

Trusted side: this module builds the requests the answers child runs
(``runner.Session.ask``) and decodes its replies; it never runs learner code.

* **As written** (``as_written``): an exercise's statements in order, in one
  namespace made of the learner's own values (their forward tensors under
  their names; for Exercises 2 and 3 also the values their Exercise 1 left,
  as in their kernel), with the statements of a later exercise that come
  before them in the notebook and make what they read (``Plan.borrowed``,
  run at their place). What each gradient variable holds at the end is what
  their own ``cmp`` would see: the verdict.
* **On their own** (``isolated``): the same statements, but before each one
  that reads a gradient already finished (one no later statement assigns),
  that gradient is set to its right value. What a line makes then says
  whether it is right by itself: a line that read ``.grad`` in the middle of
  Exercise 1 fails alone, and the lines after it are judged on their own; a
  line that is wrong only because a gradient it reads is wrong is a cascade
  (``kinds.gradient.cascade``). The statements go to the child in segments,
  one per line that is fed, and a segment's reply carries every gradient
  finished in it, so a gradient's own line has always run, and answered,
  before its right value is handed to the child.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..judge.transport import encode
from . import LectureSettings
from .child import decoded
from .follow import Followed
from .parse import EXPECTED, Plan
from .runner import Session, statement_json, with_definitions
from .statements import Statement, is_cmp_or_print

QUANTITY = "lecture"  # the namespace of the gradients handed and computed (``Session.ask``)


@dataclass
class Run:
    """One exercise's statements as run: values (decoded), the statements that raised, aliases, or why it failed."""

    values: dict[str, object] = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)
    aliases: dict[str, list[str]] = field(default_factory=dict)
    failed: str = ""
    timed_out: bool = False


def gradient_variables(plan: Plan, followed: Followed, exercise: str) -> dict[str, str]:
    """Lecture gradient -> the learner's variable for it in ``exercise``.

    The gradient their own ``cmp`` compares with that quantity's tensor, else
    ``d`` + their name of the tensor (``da`` for their ``a``), else the
    lecture's name; the first of these that the exercise assigns.
    """
    assigned = {name for statement in plan.statements.get(exercise, []) for name in statement.assigns}
    found = {}
    for gradient in EXPECTED[exercise]:
        quantity = gradient[1:]
        own = followed.learner(quantity)
        compared = [g for label, g, t in plan.cmps if t == own or (label == quantity and t not in followed.names.values())]
        candidates = [*compared, f"d{own}", gradient]
        found[gradient] = next((c for c in candidates if c in assigned), f"d{own}" if f"d{own}" in assigned else gradient)
    return found


def encoded_namespace(values: dict, lists: dict[str, list[str]]) -> dict:
    """Tensors and numbers as data for a child; a list of tensors as the names of its members."""
    message = {}
    for name, value in values.items():
        if isinstance(value, torch.Tensor) or isinstance(value, (int, float)) and not isinstance(value, bool):
            message[name] = encode(value)
    for name, members in lists.items():
        if all(member in message for member in members):
            message[name] = {"kind": "names", "names": list(members)}
    return message


def _run_from(reply: dict) -> Run:
    if "failed" in reply:
        return Run(failed=str(reply["failed"]))
    try:
        values = decoded(reply.get("values", {}))
    except (ValueError, KeyError, TypeError, AttributeError):
        return Run(failed="the checker's process sent values it could not read")
    return Run(values, list(reply.get("errors", [])), dict(reply.get("aliases", {})), "", bool(reply.get("timed_out")))


def namespace_for(plan: Plan, followed: Followed, exercise: str, variables: dict[str, str],
                  earlier: dict[str, object]) -> dict:
    """The learner's values for ``exercise``: their setup's, and what their Exercise 1 left that it reads."""
    read = {name for statement in plan.run_order(exercise) if not is_cmp_or_print(statement)
            for name in statement.reads}
    read -= set(variables.values())  # the exercise's own answer never comes from an earlier one
    return {**followed.namespace, **{name: value for name, value in earlier.items() if name in read}}


def run_lines(session: Session, plan: Plan, followed: Followed, exercise: str, variables: dict[str, str],
              ex1_variables: dict[str, str], values: dict[str, object], settings: LectureSettings,
              feed_only: set[str] | None = None, export_also: set[str] = frozenset()) -> Run:
    """The exercise's statements on ``values``; before each line, the finished gradients it reads set right.

    ``feed_only`` limits which gradients are set (None: all of them, the
    line-by-line run; the empty set: none, the run as written, in one
    request). A gradient is finished at a line when no later line assigns it.
    """
    statements = plan.run_order(exercise)
    feedable = {var: gradient for gradient, var in {**ex1_variables, **variables}.items()
                if (feed_only is None or var in feed_only) and gradient in followed.references}
    last: dict[str, int] = {}
    for index, statement in enumerate(statements):
        for name in statement.assigns:
            last[name] = index
    feeds = [sorted(v for v in s.reads if v in feedable and v not in s.assigns and last.get(v, -1) < i)
             for i, s in enumerate(statements)]
    segments: list[list[int]] = []
    for index, feed in enumerate(feeds):
        if feed or not segments:
            segments.append([])
        segments[-1].append(index)
    mine = {var: gradient for gradient, var in variables.items()}
    unit = f"{exercise}:{'as-written' if feed_only is not None else 'line-by-line'}"
    wanted = set(variables.values()) | set(export_also)
    segments = segments or [[]]
    result = Run()
    everything = with_definitions(plan, statements)
    definitions = [statement_json(s) for s in everything[:len(everything) - len(statements)]]
    for number, segment in enumerate(segments):
        fed = sorted({v for i in segment for v in feeds[i]})
        exported = _exports(wanted, last, segment, number == len(segments) - 1)
        request = {"task": "run", "unit": unit, "seconds": settings.exercise_seconds,
                   "statements": (definitions if number == 0 else []) + [statement_json(statements[i], feeds[i])
                                                                          for i in segment],
                   "feed": {v: encode(followed.references[feedable[v]]) for v in fed},
                   "export": exported, "aliases_of": sorted(set(variables.values())) if number == len(segments) - 1
                   else []}
        computes = frozenset(f"{QUANTITY}:{mine[v]}" for v in exported if v in mine)
        if number == 0:
            request["namespace"] = encoded_namespace(values, followed.lists)
            computes = frozenset(f"{QUANTITY}:{g}" for g in variables)  # checked once, for the whole unit
        reply = _run_from(session.ask(request, computes=computes,
                                      given=frozenset(f"{QUANTITY}:{feedable[v]}" for v in fed)))
        if reply.failed:
            result.failed = reply.failed
            break
        result.values.update(reply.values)
        result.errors += reply.errors
        result.aliases.update(reply.aliases)
        if reply.timed_out:
            result.timed_out = True
            break
    return result


def _exports(wanted: set[str], last: dict[str, int], segment: list[int], final: bool) -> list[str]:
    """The names to hand back after a segment: those it finishes; after the last, every one still unsent."""
    if final:
        return sorted(v for v in wanted if last.get(v, -1) >= (segment[0] if segment else 0) or v not in last)
    return sorted(v for v in wanted if last.get(v, -2) in segment)


def reads_of(statements: list[Statement], variable: str) -> set[str]:
    """The names the statements that assign ``variable`` read (its lines' inputs), but itself."""
    return {name for s in statements if variable in s.assigns for name in s.reads} - {variable}
