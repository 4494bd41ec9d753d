"""The hidden checks' verdicts: re-run a student's answer cells on inputs they never saw, and decide.

A visible check in a notebook compares the student's tensor with autograd's
on the notebook's own batch. The hidden check for the same item takes the
*code* of the item's answer cells (found by their ``#| answer: <id>`` line,
``autograder.cells``) and runs it again on fresh parameters and batches
(``kinds.cases.HIDDEN_CASES``: other seeds, and in one case other sizes), with
every autograd entry point disabled, and compares the result with the
reference for those inputs. It also reads the code for things an answer must
not contain (``autograder.judge.scan``).

The trust boundary runs between the modules:

* untrusted: ``autograder.judge.untrusted`` and the kinds' ``run`` execute student
  code. When a class is graded they run in a sandboxed child process
  (``autograder.judge.child``), whose outputs come back as data;
* trusted: ``autograder.judge.scan`` (reads code, never runs it), the kinds'
  ``reference`` and ``compare``, and ``verdict`` here, which decides
  (``autograder.judge.runner`` drives both sides).

In a notebook, ``hidden_check`` runs both sides in the kernel (``judge_item``);
that is what ``nbgrader validate`` and ``pytest --nbval`` exercise on the
masters, whose code is trusted.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..cells import recorded_answers
from ..diagnosis.codes import Diagnosis, upstream
from ..diagnosis.hints import pointer
from ..exercises import ITEMS_BY_ID, Item
from ..kinds import KINDS
from ..kinds.cases import HIDDEN_CASES
from .records import Verdict
from .scan import scan_answers
from .untrusted import IN_PROCESS, describe_error


class HiddenTestFailed(AssertionError):
    """Raised by ``hidden_check`` with the reason in one readable message."""


def verdict(item: Item, outputs: list, errors: list[str | None], flags: list[str],
            sources: Mapping[str, str] | None = None) -> Verdict:
    """Judge an item from its answers' outputs on every hidden case.

    ``outputs[i]`` is what the student code produced on HIDDEN_CASES[i], or
    None with ``errors[i]`` saying why it produced nothing. ``sources`` (answer
    id -> code) lets a size typed into the answer be named.
    """
    if flags:
        return Verdict(item.grade_id, False, "Not graded, the answer " + "; ".join(flags) + ".", flags)
    kind = KINDS[item.kind]
    for index, (case, output, error) in enumerate(zip(HIDDEN_CASES, outputs, errors)):
        where = f"on unseen inputs ({kind.describe_case(item, case)})"
        if error is not None:
            message, code = f"{where}: {error}", ""
        else:
            result = kind.compare(item, output, reference(item, index), case)
            if result.ok:
                continue
            message, code = f"{where}:\n" + "\n".join(result.failures()), result.code
        sizes = _typed_in_size(item, index, sources or {})
        if sizes is not None:
            message, code = f"{sizes.message}\n{message}", sizes.code
        hint = pointer(item.grade_id, code) if code else None
        if hint:  # the collapsed hint in the notebook that addresses this mistake
            message += f"\n-> {hint} (above the answer cell in {item.notebook})"
        return Verdict(item.grade_id, False, message, diagnosis=code)
    return Verdict(item.grade_id, True, f"matches {kind.oracle} on {len(HIDDEN_CASES)} unseen sets of inputs")


_references: dict[tuple, object] = {}


def reference(item: Item, case_index: int):
    """What a correct answer of ``item`` gives on HIDDEN_CASES[case_index], computed once per process.

    Every student of a batch is judged on the same hidden cases, so a worker
    computes each reference (autograd, a training run with torch.optim) once.
    """
    key = (item.grade_id, item.kind, item.answers, repr(sorted(item.spec.items())), case_index)
    if key not in _references:
        _references[key] = KINDS[item.kind].reference(item, HIDDEN_CASES[case_index])
    return _references[key]


def note_cascades(verdicts: dict[str, Verdict], items: list[Item], sources: Mapping[str, str]) -> None:
    """A passed item whose answer uses a quantity that a failed item of its notebook computes: say so.

    The judge feeds every answer right inputs, so such an item passes here;
    in the student's notebook its own check fails, through the other item
    (the ``upstream`` diagnosis, which ``cmp`` shows there). The note says
    which to fix first.
    """
    for item in items:
        verdict = verdicts.get(item.grade_id)
        if verdict is None or not verdict.passed:
            continue
        reads = KINDS[item.kind].reads(item, sources)
        spoilt = [other for other in items if other.notebook == item.notebook and other is not item
                  and not verdicts.get(other.grade_id, verdict).passed and KINDS[other.kind].computes(other) & reads]
        names = sorted({q.split(":", 1)[-1] for other in spoilt for q in KINDS[other.kind].computes(other) & reads})
        if names:
            verdict.message += f"\nnote [upstream]: in your notebook its check fails: {upstream(names).message}"


def _typed_in_size(item: Item, failed: int, sources: Mapping[str, str]) -> Diagnosis | None:
    """The kind's ``hardcoded_size`` when the item passed on the notebook's sizes and failed on others, else None."""
    kind = KINDS[item.kind]
    notebook, sizes = kind.notebook_sizes(item), [kind.case_sizes(item, case) for case in HIDDEN_CASES]
    if not (kind.shapes_follow_sizes and notebook in sizes[:failed]) or sizes[failed] == notebook:
        return None
    return kind.hardcoded_size(item, notebook, sizes[failed], [sources.get(a, "") for a in item.answers])


def output_in_process(item: Item, answers: dict[str, str], case):
    """What the item's answer cells produce on ``case``, run in this process (trusted code only).

    The kind is handed its inputs as the judge hands them to a child; the
    reference is never computed here.
    """
    kind = KINDS[item.kind]
    sources = {a: answers[a] for a in item.answers}
    return kind.run(item, sources, case, kind.inputs(item, case, sources), IN_PROCESS)


def judge_item(item: Item, answers: dict[str, str]) -> Verdict:
    """Judge one item in this process (trusted code only, e.g. the masters, or ``backprop-ninja check``)."""
    missing = [a for a in item.answers if a not in answers]
    if missing:
        return Verdict(item.grade_id, False, f"answer cell not found: no code cell starts with '#| answer: {missing[0]}'")
    flags = scan_answers([answers[a] for a in item.answers])
    outputs, errors = [], []
    for case in HIDDEN_CASES:
        if flags:
            break
        try:
            outputs.append(output_in_process(item, answers, case))
            errors.append(None)
        except Exception as err:  # the student's code failed: that is the verdict
            outputs.append(None)
            errors.append(describe_error(err))
    return verdict(item, outputs, errors, flags, answers)


def hidden_check(grade_id: str) -> bool:
    """Judge ``grade_id`` on hidden inputs from the answer cells this kernel ran.

    Returns True, silently, when the item passes (what a test cell prints is
    the visible check's report); raises HiddenTestFailed with the reason when
    it does not. Needs ``cells.record_cells()`` to have run first.
    """
    result = judge_item(ITEMS_BY_ID[grade_id], recorded_answers())
    if not result.passed:
        raise HiddenTestFailed(result.report())
    return True
