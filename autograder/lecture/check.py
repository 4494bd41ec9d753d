"""``python -m autograder check-lecture NOTEBOOK``: check the answers of a lecture-format notebook.

The trusted half. It finds the answers (``parse``), has the setup child run
the learner's setup and hand back their tensors and ``.grad`` (``runner``,
``child``), follows their names to the lecture's quantities and decides the
references (``follow``), has the answers child run each exercise as written
and, where a gradient fails or a line read ``.grad``, line by line on its
own (``runs``), and judges each gradient through ``kinds.gradient``
(``compare_gradient``, ``cascade``): right, wrong (with a diagnosis),
missing, not run, or scoring nothing because it came from autograd. The
result and its text report are in ``report``. Nothing a notebook holds ends
in a traceback: what cannot be read or run becomes a note or an error line.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import threading
from pathlib import Path

import torch

# Everything this module takes from the rest of the package, in one place.
from ..diagnosis.comparison import Comparison
from ..kinds.gradient import cascade, compare_gradient
from ..workbook.model import PARAM_NAMES
from . import LectureSettings, setting
from .child import decoded
from .follow import Followed, Setup, follow
from .parse import EX1_NAMES, EXERCISES, EXPECTED, GRADS_LIST, NotebookError, Plan, find_exercises, read_cells
from .report import GradientVerdict, LectureResult, format_report
from .runner import Session, statement_json, with_definitions
from .runs import Run, encoded_namespace, gradient_variables, namespace_for, reads_of, run_lines
from .statements import Statement, first_node, is_cmp_or_print
from .warm import fork_server

FLAG_WORDS = {"grad": "reads a .grad tensor (autograd's answer)", "backward": "calls backward() (autograd)",
              "autograd": "uses torch.autograd", "grad_fn": "reads the autograd graph (grad_fn)",
              "retain_grad": "calls retain_grad()", "register_hook": "registers an autograd hook"}
# `torch.autograd.grad(...)` reads as both; name the more telling one.
FLAG_PRIORITY = ("autograd", "backward", "grad_fn", "retain_grad", "register_hook", "grad")
CRASH = "the checker failed on this notebook ({}); nothing of it was judged (a fault of the checker: please report it)"


# ------------------------------------------------------------------ entry points

def check_file(path: Path, settings: LectureSettings = LectureSettings()) -> LectureResult:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return LectureResult(str(path), error=f"cannot read {path}: {err.strerror or err}")
    return check_bytes(data, Path(path).name, settings)


def check_bytes(data: bytes, filename: str, settings: LectureSettings = LectureSettings()) -> LectureResult:
    """Check one notebook given as bytes (its code sees only what the sandbox allows, never the notebook's folder).

    Always a result: a file that is not a notebook of this lecture gets one
    with ``error`` set, and so, as a last resort, does a fault of the checker.
    """
    try:
        plan = find_exercises(read_cells(data, filename))
    except NotebookError as err:
        return LectureResult(filename, error=str(err))
    except Exception as err:  # reading must never end in a traceback
        return LectureResult(filename, error=CRASH.format(f"{type(err).__name__}: {err}"))
    if not plan.found():
        return LectureResult(filename, error=(
            f"{filename}: no exercise of the lecture's notebook found: no code assigns "
            f"{', '.join(EXPECTED['ex1'][:3])}, ... (Exercise 1), dlogits (Exercise 2), dhprebn (Exercise 3), "
            "and no training loop with a '# manual backprop' region (Exercise 4)"))
    session = Session(settings)
    try:
        return judge(filename, plan, session, settings)
    except Exception as err:
        return LectureResult(filename, error=CRASH.format(f"{type(err).__name__}: {err}"))
    finally:
        session.end()


# ------------------------------------------------------------------ judging

def judge(filename: str, plan: Plan, session: Session, settings: LectureSettings) -> LectureResult:
    result = LectureResult(filename)
    if plan.ex4 is not None:  # Exercise 4's data, read while the setup child runs
        threading.Thread(target=setting.splits, daemon=True).start()
    followed = follow(run_setup(session, plan, settings), plan.cmps)
    if followed.verified:
        result.notes["setup"] = list(followed.notes)
    else:  # the references are their own .grad: an instructor should know which verdicts rest on that
        result.flags += [{"exercise": "setup", "name": None, "flag": "own_forward", "penalised": False,
                          "message": note} for note in followed.notes]
    variables = {ex: gradient_variables(plan, followed, ex) for ex in EXERCISES[:3]}
    ex1_vars = {v: g for g, v in variables["ex1"].items()}
    later_reads = {name for ex in ("ex2", "ex3") for s in plan.run_order(ex) for name in s.reads}
    earlier: dict[str, object] = {}
    ex1_verdicts: dict[str, GradientVerdict] = {}  # by the learner's variable: the cascades of Exercises 2 and 3
    for exercise in EXERCISES[:3]:
        statements = plan.statements.get(exercise, [])
        gradients = set(variables[exercise].values()) | set(ex1_vars)
        tainted = taint(plan.run_order(exercise), gradients)  # what it borrows too, at its place
        values = namespace_for(plan, followed, exercise, variables[exercise], earlier)
        # As their kernel ran it: where a line read .grad, autograd's value is what the next lines saw.
        run = run_lines(session, plan, followed, exercise, variables[exercise], variables["ex1"], values, settings,
                        feed_only={v for v in tainted if v in gradients},
                        export_also=later_reads if exercise == "ex1" else set()) if statements else Run()
        if exercise == "ex1":
            earlier = {**run.values, **{v: followed.references[ex1_vars[v]] for v in tainted if v in ex1_vars}}
        first = {g: _judge_written(exercise, g, v, run, statements, tainted, followed)
                 for g, v in variables[exercise].items()}
        own = {**ex1_verdicts, **{variables[exercise][g]: item for g, item in first.items()}}
        alone = Run()
        if statements and not run.failed and not run.timed_out and any(
                item.status != "pass" for item in first.values()):
            alone = run_lines(session, plan, followed, exercise, variables[exercise], variables["ex1"], values,
                              settings)
        for gradient, variable in variables[exercise].items():
            item = _explained(first[gradient], exercise, gradient, variable, run, alone, statements, followed,
                              {v: own[v] for v in own if v != variable})
            _alias_note(item, run.aliases.get(variable), variable)
            result.items.append(item)
            if exercise == "ex1":
                ex1_verdicts[variable] = item
        _flag_items(result, exercise, tainted, variables[exercise])
        result.notes[exercise] = _statement_notes(run, variables[exercise].values())
    _judge_ex4(result, plan, run_ex4(session, plan, followed, settings))
    return result


def run_setup(session: Session, plan: Plan, settings: LectureSettings) -> Setup | None:
    """The learner's setup cells run in the setup child; what they made, decoded (None without a setup)."""
    if not plan.setup:
        return None
    request = {"task": "setup", "seconds": settings.exercise_seconds,
               "statements": [statement_json(s) for s in plan.setup if not is_cmp_or_print(s)]}
    reply = session.setup(request)
    if "failed" in reply:
        return Setup(failed=str(reply["failed"]))
    try:
        values = decoded(reply.get("values", {}))
        grads = {k: v for k, v in decoded(reply.get("grads", {})).items() if isinstance(v, torch.Tensor)}
    except (ValueError, KeyError, TypeError, AttributeError):
        return Setup(failed="its results could not be read")
    lists = {k: [str(m) for m in v] for k, v in reply.get("lists", {}).items() if isinstance(v, list)}
    return Setup(values, grads, set(reply.get("leaves", [])), lists, list(reply.get("errors", [])))


def taint(statements: list[Statement], gradients=frozenset(EX1_NAMES)) -> dict[str, str]:
    """Names whose value comes from autograd (``.grad``, ``backward()``, ``torch.autograd``) -> the flag.

    A name is tainted by a statement that uses autograd, or that reads a
    tainted helper (``tmp = logits.grad``; ``dlogits = tmp``) or its own
    tainted value (``dlogits += ...``). A line that reads another tainted
    gradient is the learner's own line: it is judged on its own, with the
    right gradient fed in, and not tainted (``gradients``: the gradient
    variables, learner's names). A later plain assignment that uses none of
    these (a second attempt) clears the taint.
    """
    tainted: dict[str, str] = {}
    for statement in statements:
        if is_cmp_or_print(statement) or not statement.assigns:
            continue
        own = sorted(statement.autograd, key=FLAG_PRIORITY.index) if statement.autograd else []
        inherited = next((tainted[r] for r in statement.reads if r in tainted
                          and (r not in gradients or r in statement.assigns)), None)
        flag = (own[0] if own else None) or inherited
        for name in statement.assigns:
            if flag is not None:
                tainted[name] = flag
            elif name in tainted and _rebinds(statement, name):
                del tainted[name]
    return tainted


def _rebinds(statement: Statement, name: str) -> bool:
    """Whether the statement replaces ``name`` outright (``x = ...``), not in part (``x += ...``, ``x[i] = ...``)."""
    node = first_node(statement)
    if not isinstance(node, ast.Assign):
        return False
    bound = [t for target in node.targets for t in ast.walk(target)
             if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store)]
    return any(t.id == name for t in bound)


def _judge_written(exercise: str, gradient: str, variable: str, run: Run, statements: list[Statement],
                   tainted: dict[str, str], followed: Followed) -> GradientVerdict:
    """The verdict on a gradient as the learner's code makes it (what their own cmp shows)."""
    name = gradient if variable == gradient else f"{gradient} (your {variable})"
    if variable in run.values and run.values[variable] is None and variable not in tainted:
        return _placeholder(exercise, gradient, variable)
    if variable in tainted:
        return GradientVerdict(exercise, gradient, "fail", f"cheating.{tainted[variable]}",
                               f"scores nothing: {FLAG_WORDS.get(tainted[variable], 'uses autograd')}; derive it by hand")
    if run.failed:
        return GradientVerdict(exercise, gradient, "error", _error_code(run.failed), f"the exercise did not run: {run.failed}")
    if variable in run.values and _last_assignment_raised(variable, run.errors, statements) is None:
        comparison = compare_gradient(gradient[1:], run.values[variable], followed.references[gradient],
                                      followed.context)
        return _item_from(exercise, gradient, comparison, name, followed)
    return _absent(exercise, gradient, variable, run.errors, statements)


def _explained(item: GradientVerdict, exercise: str, gradient: str, variable: str, run: Run, alone: Run,
               statements: list[Statement], followed: Followed,
               others: dict[str, GradientVerdict]) -> GradientVerdict:
    """A failed gradient whose lines read gradients that failed too: a cascade, or its own mistake (``cascade``)."""
    if item.status not in ("fail", "error") or item.diagnosis.startswith("cheating.") or variable not in alone.values:
        return item
    wrong = sorted(u for u in reads_of(statements, variable) if _wrong(others.get(u)))
    if not wrong:
        return item
    reference, tensor = followed.references[gradient], gradient[1:]
    isolated = compare_gradient(tensor, alone.values[variable], reference, followed.context)
    if item.status == "error":
        if isolated.ok:
            item.message = _sentences(item.message, f"Your line itself is right: it uses {', '.join(wrong)}, which "
                                      f"{'is' if len(wrong) == 1 else 'are'} wrong or not computed: fix that first")
        return item
    name = gradient if variable == gradient else f"{gradient} (your {variable})"
    written = compare_gradient(tensor, run.values[variable], reference, followed.context)
    return _item_from(exercise, gradient, cascade(written, isolated, wrong), name, followed)


def _sentences(first: str, then: str) -> str:
    """Two parts of a message as sentences: ``first``, a full stop unless it ends with one, then ``then``."""
    first = first.rstrip()
    if not first:
        return then
    return f"{first} {then}" if first.endswith((".", "!", "?", ":")) else f"{first}. {then}"


def _wrong(item: GradientVerdict | None) -> bool:
    """An upstream gradient that failed its own check (a ``.grad`` read had autograd's right value, so not that)."""
    return item is not None and item.status != "pass" and not item.diagnosis.startswith("cheating.")


def _last_assignment_raised(name: str, errors: list[dict], statements: list[Statement]) -> dict | None:
    """The error of the last statement that assigns ``name``, if that statement raised."""
    last = next((s for s in reversed(statements) if name in s.assigns), None)
    if last is None:
        return None
    return next((e for e in errors if (e.get("cell"), e.get("line")) == (last.cell, last.line)), None)


def _placeholder(exercise: str, gradient: str, variable: str) -> GradientVerdict:
    return GradientVerdict(exercise, gradient, "missing", "not_attempted",
                           f"{variable} is None (the template's placeholder, not answered yet)")


def _item_from(exercise: str, gradient: str, comparison: Comparison, name: str = "",
               followed: Followed | None = None) -> GradientVerdict:
    status = "pass" if comparison.ok else "fail"
    code = "" if comparison.ok else (comparison.code or "unknown")
    message = ": ".join(part for part in (comparison.problem, comparison.hint) if part)
    if name and name != gradient:
        message = f"(checked as {name}) {message}".strip()
    if followed is not None and not followed.verified:
        message = f"{message} (compared with the .grad of your own forward pass)".strip()
    return GradientVerdict(exercise, gradient, status, code, message, comparison.maxdiff)


def _absent(exercise: str, gradient: str, variable: str, errors: list[dict], statements: list[Statement]) -> GradientVerdict:
    """A gradient the learner's code left undefined: why (a statement raised), or missing."""
    raised = [e for e in errors if variable in e.get("assigns", [])]
    if raised:
        error = _last_assignment_raised(variable, errors, statements) or raised[-1]
        where = f"cell {error['cell'] + 1}, line {error['line']}"
        why = (f"the statement at {where} was {error['error']}" if error["error"].startswith("not run")
               else f"the statement at {where} raised {error['error']}")
        return GradientVerdict(exercise, gradient, "error", _error_code(error["error"]), f"not computed: {why}")
    others = sorted({n for s in statements for n in s.assigns
                     if n.startswith("d") and n not in EXPECTED[exercise] and len(n) > 1})
    message = f"no statement assigns {variable}"
    if others:
        message += f" (gradient-like names assigned here: {', '.join(others[:6])})"
    return GradientVerdict(exercise, gradient, "missing", "not_attempted", message)


def _error_code(message: str) -> str:
    if "ran out" in message or "took longer" in message:
        return "timeout"
    match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?::|$)", message)
    return f"error.{match.group(1)}" if match and match.group(1)[0].isupper() else "error.other"


def _alias_note(item: GradientVerdict, others: list[str] | None, variable: str) -> None:
    if not others:
        return
    note = (f"{variable} and {', '.join(others)} are the same tensor in memory (assigned without "
            ".clone()), so an in-place += on one changes the other too")
    if item.status == "fail":
        item.diagnosis = "alias"
    if item.status in ("pass", "fail"):
        item.message = _sentences(item.message, f"Note: {note}")


def _flag_items(result: LectureResult, exercise: str, tainted: dict[str, str], variables: dict[str, str]) -> None:
    for item in result.items:
        variable = variables.get(item.name, item.name)
        if item.exercise == exercise and variable in tainted and item.diagnosis.startswith("cheating."):
            result.flags.append({"exercise": exercise, "name": item.name, "flag": tainted[variable],
                                 "message": item.message, "penalised": True})


def _statement_notes(run: Run, expected) -> list[str]:
    """Helper statements that raised (their gradients' own lines say why they are missing).

    Statements that assign nothing (a plot, a shape shown) are left out: they make no answer.
    """
    return [f"cell {e['cell'] + 1}, line {e['line']}: {e['error']}" for e in run.errors
            if e.get("assigns") and not set(e["assigns"]) & set(expected)][:10]


# ------------------------------------------------------------------ Exercise 4

@dataclasses.dataclass
class Ex4Run:
    """Exercise 4's steps: per step what the block made, and the parameters, batch and reference of that step."""

    steps: list[dict] = dataclasses.field(default_factory=list)  # {"values", "grads", "parameters", "Xb", "Yb", "reference"}
    aliases: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    errors: list[dict] = dataclasses.field(default_factory=list)
    failed: str = ""


def _batch_statements(loop_forward: list[Statement]) -> tuple[set[int], dict[str, str]]:
    """The loop's own batch drawing (left out: the checker draws the batch) and its names for Xb and Yb."""
    skipped, names = set(), {}
    for index, statement in enumerate(loop_forward):
        if statement.calls_backward:
            skipped.add(index)
        if "ix" not in statement.assigns and "ix" not in statement.reads:
            continue
        skipped.add(index)
        node = first_node(statement)
        if not isinstance(node, ast.Assign):
            continue
        targets = node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) else [node.targets[0]]
        values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
        for target, value in zip(targets, values):
            base = value.value if isinstance(value, ast.Subscript) else None
            source = base.id if isinstance(base, ast.Name) else ""
            if isinstance(target, ast.Name) and source[:1].lower() in ("x", "y"):
                names[target.id] = "Xb" if source[:1].lower() == "x" else "Yb"
    return skipped, names


def run_ex4(session: Session, plan: Plan, followed: Followed, settings: LectureSettings) -> Ex4Run:
    """Exercise 4's block at ``settings.ex4_steps`` training steps, one request per step.

    The parameters and batches are drawn here; each step's reference is
    computed after the child has answered for that step, and the parameters
    move by it before the next.
    """
    loop = plan.ex4
    if loop is None or settings.ex4_steps <= 0:
        return Ex4Run()
    skipped, batch_names = _batch_statements(loop.forward)
    own_params = [followed.learner(p) for p in PARAM_NAMES]
    block_assigns = {name for s in loop.block for name in s.assigns}
    variables = [next((v for v in (f"d{own}", f"d{p}") if v in block_assigns), f"d{p}")
                 for own, p in zip(own_params, PARAM_NAMES)]
    forward = [s for i, s in enumerate(loop.forward) if i not in skipped]
    reads = {name for s in loop.prelude + forward + loop.block for name in s.reads}
    numbers = {k: v for k, v in followed.namespace.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    namespace = {**numbers, "n": setting.BATCH, "batch_size": setting.BATCH, "n_embd": setting.N_EMBD,
                 "n_hidden": setting.EX4_N_HIDDEN, "lr": setting.EX4_LR, "max_steps": 200000, "lossi": [],
                 "stepi": []}
    if reads & set(setting.data_names()):
        namespace.update({k: v for k, v in setting.data_names().items() if k in reads})
    parameters, g = setting.ex4_initial_parameters()
    result = Ex4Run()
    prelude = with_definitions(plan, loop.prelude + forward + loop.block)
    prelude = [s for s in prelude if s not in loop.forward and s not in loop.block]
    for step in range(settings.ex4_steps):
        ix, Xb, Yb = setting.ex4_batch(g)
        given = {own: p for own, p in zip(own_params, parameters)} | {"Xb": Xb, "Yb": Yb, "ix": ix,
                                                                       "i": step, "k": step}
        request = {"task": "ex4", "seconds": settings.exercise_seconds,
                   "given": encoded_namespace(given, {})}
        if step == 0:
            request["first"] = {"namespace": encoded_namespace(namespace, {}), "seconds": settings.exercise_seconds,
                                "prelude": [statement_json(s) for s in prelude],
                                "forward": [statement_json(s) for s in forward],
                                "block": [statement_json(s) for s in loop.block], "batch_names": batch_names,
                                "parameter_names": own_params, "export": variables, "grads_list": GRADS_LIST}
        reply = session.ask(request, computes=frozenset({f"ex4:{step}"}))
        if "failed" in reply:
            result.failed = str(reply["failed"])
            break
        reference = setting.ex4_reference(parameters, Xb, Yb)
        try:
            values = decoded(reply.get("values", {}))
            grads = decoded({"g": reply["grads"]})["g"] if reply.get("grads") else None
        except (ValueError, KeyError, TypeError, AttributeError):
            result.failed = "the checker's process sent values it could not read"
            break
        values = {p: values[v] for p, v in zip(EXPECTED["ex4"], variables) if v in values}
        result.steps.append({"values": values, "grads": grads, "parameters": parameters, "Xb": Xb, "Yb": Yb,
                             "reference": reference})
        if step == 0:
            result.aliases = {p: reply.get("aliases", {}).get(v) for p, v in zip(EXPECTED["ex4"], variables)
                              if reply.get("aliases", {}).get(v)}
            result.errors = list(reply.get("errors", []))
        if reply.get("timed_out"):
            break
        parameters = setting.ex4_step(parameters, reference)
    return result


def _judge_ex4(result: LectureResult, plan: Plan, run: Ex4Run) -> None:
    names = EXPECTED["ex4"]
    loop = plan.ex4
    if loop is None:
        for name in names:
            result.items.append(GradientVerdict("ex4", name, "missing", "not_attempted",
                                                "no training loop with a '# manual backprop' region or assignments "
                                                f"of {', '.join(names)} was found"))
        return
    own_taint = taint(loop.block, frozenset())  # no line-by-line run in the loop: a .grad read taints what follows
    tainted = dict(own_taint)
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
    _backward_notes(result, loop, own_taint, update_reads_grad)
    comparisons = _ex4_comparisons(run.steps) if run.steps else {}
    placeholders = {name for step in run.steps[:1] for name, value in step["values"].items() if value is None}
    for index, name in enumerate(names):
        if name in placeholders and name not in own_taint:
            item = _placeholder("ex4", name, name)  # the template's None, whatever its update does
        elif name in tainted:
            message = ("scores nothing: the update applies autograd's p.grad, not your gradients"
                       if update_reads_grad and tainted[name] == "grad" and name not in own_taint
                       else f"scores nothing: {FLAG_WORDS.get(tainted[name], 'uses autograd')}; derive it by hand")
            item = GradientVerdict("ex4", name, "fail", f"cheating.{tainted[name]}", message)
        elif run.failed and not run.steps:
            item = GradientVerdict("ex4", name, "error", _error_code(run.failed),
                                   f"the training loop did not run: {run.failed}")
        elif name in comparisons and _last_assignment_raised(name, run.errors, loop.block) is None:
            item = comparisons[name]
            if item.status == "pass":
                _check_order(item, index, run.steps)
        else:
            item = _absent("ex4", name, name, run.errors, loop.block)
        _alias_note(item, run.aliases.get(name), name)
        result.items.append(item)
    _flag_items(result, "ex4", tainted, {})
    result.notes["ex4"] = _statement_notes(Run(errors=run.errors), names)


def _backward_notes(result: LectureResult, loop, own_taint: dict, update_reads_grad: bool) -> None:
    """A leftover ``loss.backward()``: penalised only when its ``.grad`` is used."""
    calls = [s for s in loop.forward + loop.block + loop.update if s.calls_backward]
    if not calls:
        return
    used = update_reads_grad or any(flag == "grad" for flag in own_taint.values())
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
    for number, step in enumerate(steps):
        values, reference, context = step["values"], step["reference"], None
        for name, expected in zip(EXPECTED["ex4"], reference):
            if name not in values or (name in items and items[name].status != "pass"):
                continue
            comparison = compare_gradient(name[1:], values[name], expected)
            if not comparison.ok:
                context = context or setting.ex4_context(step["parameters"], step["Xb"], step["Yb"])
                comparison = compare_gradient(name[1:], values[name], expected, context)
                item = _item_from("ex4", name, comparison)
                item.message = f"at training step {number + 1}: {item.message}"
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
        if f"d{other}" != item.name and isinstance(got, torch.Tensor) and compare_gradient(other, got, expected).ok:
            item.diagnosis = "order"
            item.message = _sentences(item.message, f"It is the gradient of {other}: the gradients are assigned in "
                                                    "the wrong order.")
            return


def _check_order(item: GradientVerdict, index: int, steps: list[dict]) -> None:
    """The named gradient is right; is it also where the update will apply it (``grads[index]``)?"""
    reference = steps[0]["reference"]
    grads = steps[0]["grads"]
    if not isinstance(grads, list):
        return
    if len(grads) != len(PARAM_NAMES):
        item.status, item.diagnosis = "fail", "order"
        item.message = (f"{item.name} is right, but grads has {len(grads)} entries: it must list "
                        f"{', '.join('d' + n for n in PARAM_NAMES)} in the order of parameters")
        return
    if compare_gradient(item.name[1:], grads[index], reference[index]).ok:
        return
    position = next((j for j, got in enumerate(grads) if isinstance(got, torch.Tensor)
                     and got.shape == reference[index].shape
                     and compare_gradient(item.name[1:], got, reference[index]).ok), None)
    item.status, item.diagnosis = "fail", "order"
    item.message = (f"{item.name} is right, but grads[{index}], which the update applies to {PARAM_NAMES[index]}, is not"
                    + (f" ({item.name} sits at grads[{position}])" if position is not None else "")
                    + f": list the gradients in the order of parameters ({', '.join(PARAM_NAMES)})")


def main(notebook: Path, json_out: Path | None, settings: LectureSettings) -> int:
    """The ``check-lecture`` command; exit status 0 when every gradient is right, 1 otherwise, 2 on bad input."""
    torch.set_num_threads(1)  # tensors of a few thousand numbers: more threads only wait for each other
    with fork_server(settings) as warm:
        result = check_file(notebook, warm)
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
