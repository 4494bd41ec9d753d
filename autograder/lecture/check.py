"""``python -m autograder check-lecture NOTEBOOK``: check the answers of a lecture-format notebook.

The trusted half. It finds the answers (``parse``), has a sandboxed child
run them (``child``), computes autograd's gradients itself in the lecture's
setting (``setting``), compares with ``autograder.diagnosis.comparison.compare`` and
judges each gradient: right, wrong (with a diagnosis), missing, not run, or
scoring nothing because it came from autograd. The child is driven by
``runner``; the result and its text report are in ``report``.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import torch

# Everything this module takes from the rest of the package, in one place.
from ..diagnosis.comparison import Comparison, compare
from ..judge.transport import decode
from ..workbook.model import PARAM_NAMES
from . import LectureSettings, setting
from .parse import EXERCISES, EXPECTED, NotebookError, Plan, find_exercises, read_cells
from .report import GradientVerdict, LectureResult, format_report
from .runner import build_request, run_child
from .statements import Statement, is_cmp_or_print

FLAG_WORDS = {"grad": "reads a .grad tensor (autograd's answer)", "backward": "calls backward() (autograd)",
              "autograd": "uses torch.autograd", "grad_fn": "reads the autograd graph (grad_fn)",
              "retain_grad": "calls retain_grad()", "register_hook": "registers an autograd hook"}
# `torch.autograd.grad(...)` reads as both; name the more telling one.
FLAG_PRIORITY = ("autograd", "backward", "grad_fn", "retain_grad", "register_hook", "grad")


# ------------------------------------------------------------------ entry points

def check_file(path: Path, settings: LectureSettings = LectureSettings()) -> LectureResult:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return LectureResult(str(path), error=f"cannot read {path}: {err.strerror or err}")
    return check_bytes(data, Path(path).name, settings)


def check_bytes(data: bytes, filename: str, settings: LectureSettings = LectureSettings()) -> LectureResult:
    """Check one notebook given as bytes (its code sees only what the sandbox allows, never the notebook's folder)."""
    try:
        plan = find_exercises(read_cells(data, filename))
    except NotebookError as err:
        return LectureResult(filename, error=str(err))
    found = plan.found()
    if not found:
        return LectureResult(filename, error=(
            f"{filename}: no exercise of the lecture's notebook found: no code assigns "
            f"{', '.join(EXPECTED['ex1'][:3])}, ... (Exercise 1), dlogits (Exercise 2), dhprebn (Exercise 3), "
            "and no training loop with a '# manual backprop' region (Exercise 4)"))
    replies = run_child(build_request(plan, settings), settings)
    return judge(filename, plan, replies)


# ------------------------------------------------------------------ judging

def judge(filename: str, plan: Plan, replies: dict[str, dict]) -> LectureResult:
    result = LectureResult(filename)
    parameters, Xb, Yb, forward = setting.ex123_forward()
    reference = setting.reference_gradients(parameters, forward)
    context = setting.ex123_context(parameters, forward)
    for exercise in EXERCISES[:3]:
        statements = plan.statements.get(exercise, [])
        reply = replies.get(exercise, {})
        tainted = taint(statements)
        values = _decoded(reply.get("values", {}))
        for name in EXPECTED[exercise]:
            item = _judge_value(exercise, name, values, reference[name], context, reply, statements, tainted)
            _alias_note(item, reply.get("aliases", {}).get(name))
            result.items.append(item)
        _flag_items(result, exercise, tainted)
        result.notes[exercise] = _statement_notes(reply, EXPECTED[exercise])
    _judge_ex4(result, plan, replies.get("ex4", {}))
    return result


def _decoded(values: dict) -> dict:
    decoded = {}
    for name, message in values.items():
        try:
            decoded[name] = None if message is None else decode(message)
        except (ValueError, KeyError, TypeError):
            decoded[name] = None
    return decoded


def taint(statements: list[Statement]) -> dict[str, str]:
    """Names whose value comes from autograd (``.grad``, ``backward()``, ``torch.autograd``) -> the flag.

    A name is tainted by a statement that uses autograd or a tainted name; a
    later plain assignment that uses neither (a second attempt) clears it.
    """
    tainted: dict[str, str] = {}
    for statement in statements:
        if is_cmp_or_print(statement) or not statement.assigns:
            continue
        own = sorted(statement.autograd, key=FLAG_PRIORITY.index) if statement.autograd else []
        flag = (own[0] if own else None) or next((tainted[r] for r in statement.reads if r in tainted), None)
        for name in statement.assigns:
            if flag is not None:
                tainted[name] = flag
            elif name in tainted and _rebinds(statement, name):
                del tainted[name]
    return tainted


def _rebinds(statement: Statement, name: str) -> bool:
    """Whether the statement replaces ``name`` outright (``x = ...``), not in part (``x += ...``, ``x[i] = ...``)."""
    try:
        node = ast.parse(statement.source).body[0]
    except (SyntaxError, IndexError):
        return False
    if not isinstance(node, ast.Assign):
        return False
    bound = [t for target in node.targets for t in ast.walk(target)
             if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store)]
    return any(t.id == name for t in bound)


def _judge_value(exercise, name, values, expected, context, reply, statements, tainted) -> GradientVerdict:
    if name in values and values[name] is None and name not in tainted:
        return _placeholder(exercise, name)
    if name in tainted:
        return GradientVerdict(exercise, name, "fail", f"cheating.{tainted[name]}",
                    f"scores nothing: {FLAG_WORDS.get(tainted[name], 'uses autograd')}; derive it by hand")
    if "failed" in reply:
        return GradientVerdict(exercise, name, "error", _error_code(reply["failed"]), f"the exercise did not run: {reply['failed']}")
    raised = _last_assignment_raised(name, reply.get("errors", []), statements)
    if name in values and raised is None:
        return _item_from(exercise, name, compare(name[1:], values[name], expected, context))
    return _absent(exercise, name, reply.get("errors", []), statements)


def _last_assignment_raised(name: str, errors: list[dict], statements: list[Statement]) -> dict | None:
    """The error of the last statement that assigns ``name``, if that statement raised."""
    last = next((s for s in reversed(statements) if name in s.assigns), None)
    if last is None:
        return None
    return next((e for e in errors if (e.get("cell"), e.get("line")) == (last.cell, last.line)), None)


def _placeholder(exercise: str, name: str) -> GradientVerdict:
    return GradientVerdict(exercise, name, "missing", "not_attempted", f"{name} is None (the template's placeholder, not answered yet)")


def _item_from(exercise: str, name: str, comparison: Comparison) -> GradientVerdict:
    status = "pass" if comparison.ok else "fail"
    code = "" if comparison.ok else (comparison.code or "unknown")
    message = " ".join(part for part in (comparison.problem, comparison.hint) if part)
    return GradientVerdict(exercise, name, status, code, message, comparison.maxdiff)


def _absent(exercise: str, name: str, errors: list[dict], statements: list[Statement]) -> GradientVerdict:
    """A gradient the learner's code left undefined: why (a statement raised), or missing."""
    raised = [e for e in errors if name in e.get("assigns", [])]
    if raised:
        error = _last_assignment_raised(name, errors, statements) or raised[-1]
        where = f"cell {error['cell'] + 1}, line {error['line']}"
        why = (f"the statement at {where} was {error['error']}" if error["error"].startswith("not run")
               else f"the statement at {where} raised {error['error']}")
        return GradientVerdict(exercise, name, "error", _error_code(error["error"]), f"not computed: {why}")
    others = sorted({n for s in statements for n in s.assigns
                     if n.startswith("d") and n not in EXPECTED[exercise] and len(n) > 1})
    message = f"no statement assigns {name}"
    if others:
        message += f" (gradient-like names assigned here: {', '.join(others[:6])})"
    return GradientVerdict(exercise, name, "missing", "not_attempted", message)


def _error_code(message: str) -> str:
    if "ran out" in message or "took longer" in message:
        return "timeout"
    match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?::|$)", message)
    return f"error.{match.group(1)}" if match and match.group(1)[0].isupper() else "error.other"


def _alias_note(item: GradientVerdict, others: list[str] | None) -> None:
    if not others:
        return
    note = (f"d{item.name[1:]} and {', '.join(others)} are the same tensor in memory (assigned without "
            ".clone()), so an in-place += on one changes the other too")
    if item.status == "fail":
        item.diagnosis = "alias"
    if item.status in ("pass", "fail"):
        item.message = f"{item.message} Note: {note}".strip()


def _flag_items(result: LectureResult, exercise: str, tainted: dict[str, str]) -> None:
    for item in result.items:
        if item.exercise == exercise and item.name in tainted and item.diagnosis.startswith("cheating."):
            result.flags.append({"exercise": exercise, "name": item.name, "flag": tainted[item.name],
                                 "message": item.message, "penalised": True})


def _statement_notes(reply: dict, expected) -> list[str]:
    """Helper statements that raised (their gradients' own lines say why they are missing).

    Statements that assign nothing (a plot, a shape shown) are left out: they make no answer.
    """
    return [f"cell {e['cell'] + 1}, line {e['line']}: {e['error']}" for e in reply.get("errors", [])
            if e.get("assigns") and not set(e["assigns"]) & set(expected)][:10]


# ------------------------------------------------------------------ Exercise 4

def _judge_ex4(result: LectureResult, plan: Plan, reply: dict) -> None:
    names = EXPECTED["ex4"]
    loop = plan.ex4
    if loop is None:
        for name in names:
            result.items.append(GradientVerdict("ex4", name, "missing", "not_attempted",
                                     "no training loop with a '# manual backprop' region or assignments of "
                                     f"{', '.join(names)} was found"))
        return
    tainted = taint(loop.block)
    # The update applies autograd's p.grad only if something in the loop computes it.
    backward_in_loop = any(s.calls_backward for s in loop.forward + loop.block + loop.update)
    update_reads_grad = backward_in_loop and any("grad" in s.autograd for s in loop.update)
    if any("grad" in s.autograd for s in loop.update) and not backward_in_loop:
        result.flags.append({"exercise": "ex4", "name": None, "flag": "update_reads_grad", "penalised": False,
                             "message": "the update still applies p.grad, which nothing sets without loss.backward(): "
                                        "apply your grads instead (p.data += -lr * grad)"})
    if update_reads_grad:
        for name in names:
            tainted.setdefault(name, "grad")
    _backward_notes(result, loop, tainted, update_reads_grad)
    steps = reply.get("steps", [])
    comparisons = _ex4_comparisons(steps) if steps else {}
    grads_lists = [_decoded({"g": s.get("grads")}).get("g") for s in steps]
    placeholders = {name for step in steps[:1] for name, value in _decoded(step.get("values", {})).items()
                    if value is None}
    for index, name in enumerate(names):
        if name in placeholders and name not in taint(loop.block):
            item = _placeholder("ex4", name)  # the template's None, whatever its update does
        elif name in tainted:
            message = ("scores nothing: the update applies autograd's p.grad, not your gradients"
                       if update_reads_grad and tainted[name] == "grad" and name not in taint(loop.block)
                       else f"scores nothing: {FLAG_WORDS.get(tainted[name], 'uses autograd')}; derive it by hand")
            item = GradientVerdict("ex4", name, "fail", f"cheating.{tainted[name]}", message)
        elif "failed" in reply:
            item = GradientVerdict("ex4", name, "error", _error_code(reply["failed"]), f"the training loop did not run: {reply['failed']}")
        elif name in comparisons and _last_assignment_raised(name, reply.get("errors", []), loop.block) is None:
            item = comparisons[name]
            if item.status == "pass":
                _check_order(item, index, steps, grads_lists)
        else:
            item = _absent("ex4", name, reply.get("errors", []), loop.block)
        _alias_note(item, reply.get("aliases", {}).get(name))
        result.items.append(item)
    _flag_items(result, "ex4", tainted)
    result.notes["ex4"] = _statement_notes(reply, names)


def _backward_notes(result: LectureResult, loop, tainted: dict, update_reads_grad: bool) -> None:
    """A leftover ``loss.backward()``: penalised only when its ``.grad`` is used."""
    calls = [s for s in loop.forward + loop.block + loop.update if s.calls_backward]
    if not calls:
        return
    used = update_reads_grad or any(flag == "grad" for flag in taint(loop.block).values())
    where = calls[0].where()
    message = (f"loss.backward() is still in the training loop ({where}) and its .grad is used, so the "
               "gradients it feeds score nothing" if used else
               f"loss.backward() is still in the training loop ({where}); nothing of yours uses its .grad, so it "
               "costs nothing here, but delete it: the point is training without it")
    result.flags.append({"exercise": "ex4", "name": None, "flag": "leftover_backward", "message": message,
                         "penalised": used})


def _ex4_comparisons(steps: list[dict]) -> dict[str, GradientVerdict]:
    """name -> its item over all steps: the first failing step, or a pass with the largest maxdiff."""
    items: dict[str, GradientVerdict] = {}
    for (step, parameters, Xb, Yb, reference), reply in zip(setting.ex4_steps(len(steps)), steps):
        values = _decoded(reply.get("values", {}))
        context = None
        for name, expected in zip(EXPECTED["ex4"], reference):
            if name not in values or (name in items and items[name].status != "pass"):
                continue
            comparison = compare(name[1:], values[name], expected)
            if not comparison.ok:
                context = context or setting.ex4_context(parameters, Xb, Yb)
                comparison = compare(name[1:], values[name], expected, context)
                item = _item_from("ex4", name, comparison)
                item.message = f"at training step {step + 1}: {item.message}"
                _order_diagnosis(item, values[name], reference)
                items[name] = item
            elif name not in items or (comparison.maxdiff or 0) > (items[name].maxdiff or 0):
                items[name] = _item_from("ex4", name, comparison)
    for item in items.values():
        if item.status == "pass":
            item.message = f"matches autograd at each of {len(steps)} training steps"
    return items


def _order_diagnosis(item: GradientVerdict, got, reference: list[torch.Tensor]) -> None:
    """A wrong gradient that is another parameter's gradient: the names were swapped."""
    for other, expected in zip(PARAM_NAMES, reference):
        if f"d{other}" != item.name and isinstance(got, torch.Tensor) and compare(other, got, expected).ok:
            item.diagnosis = "order"
            item.message += f" It is the gradient of {other}: the gradients are assigned in the wrong order."
            return


def _check_order(item: GradientVerdict, index: int, steps: list[dict], grads_lists: list) -> None:
    """The named gradient is right; is it also where the update will apply it (``grads[index]``)?"""
    reference = next(iter(setting.ex4_steps(1)))[4]
    grads = grads_lists[0] if grads_lists else None
    if not isinstance(grads, list):
        return
    if len(grads) != len(PARAM_NAMES):
        item.status, item.diagnosis = "fail", "order"
        item.message = (f"{item.name} is right, but grads has {len(grads)} entries: it must list "
                        f"{', '.join('d' + n for n in PARAM_NAMES)} in the order of parameters")
        return
    if compare(item.name[1:], grads[index], reference[index]).ok:
        return
    position = next((j for j, got in enumerate(grads) if isinstance(got, torch.Tensor)
                     and got.shape == reference[index].shape and compare(item.name[1:], got, reference[index]).ok), None)
    item.status, item.diagnosis = "fail", "order"
    item.message = (f"{item.name} is right, but grads[{index}], which the update applies to {PARAM_NAMES[index]}, is not"
                    + (f" ({item.name} sits at grads[{position}])" if position is not None else "")
                    + f": list the gradients in the order of parameters ({', '.join(PARAM_NAMES)})")


def main(notebook: Path, json_out: Path | None, settings: LectureSettings) -> int:
    """The ``check-lecture`` command; exit status 0 when every gradient is right, 1 otherwise, 2 on bad input."""
    result = check_file(notebook, settings)
    print(format_report(result))
    if json_out is not None:
        try:
            json_out.write_text(json.dumps(result.to_json(), indent=1, ensure_ascii=False))
        except OSError as err:
            print(f"error: cannot write {json_out}: {err.strerror or err}")
            return 2
    if result.error:
        return 2
    return 0 if result.items and result.passed() == len(result.items) else 1
