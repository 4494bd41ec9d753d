"""The untrusted half: run a learner's exercise code in the lecture's setting.

Started by ``runner`` (sandboxed when the machine allows) as
``python -m autograder.lecture.child``. It reads one JSON request from stdin
(the statements of each exercise, see ``runner.build_request``), writes
``{"ready": true}`` once torch is loaded, then one JSON line per exercise:
the values the learner's code left under the expected names (raw tensors,
see ``judge.transport``) and the statements that raised. It decides
nothing: the parent compares, with references it computes itself.

Each exercise runs in a fresh namespace, statement by statement; a statement
that raises is recorded and the next one runs. Each exercise has a time
budget: when it runs out, the running statement is interrupted and the rest
are not run. The learner's code runs with autograd unavailable, files cannot
be opened from it, and what it prints goes nowhere.
"""

from __future__ import annotations

import builtins
import signal
import time

import torch
import torch.nn.functional as F

# Everything this module takes from the rest of the package, in one place.
from ..diagnosis.comparison import sharing_memory
from ..judge.protocol import announce_ready, read_request, send_reply
from ..judge.sandbox import results_channel
from ..judge.transport import encode
from ..judge.untrusted import autograd_forbidden
from ..workbook import model
from . import setting
from .parse import EX1_NAMES, EXPECTED, GRADS_LIST

EX4_BATCH_NAMES = {"ix", "Xb", "Yb"}  # drawn by the setting, not by the learner's loop
MESSAGE_CHARS = 400


class ExerciseTimeout(BaseException):
    """The exercise's time budget ran out (a BaseException: `except Exception` cannot swallow it)."""


def _no_files(*args, **kwargs):
    raise PermissionError("exercise code may not open files here (the check runs it in the lecture's setting)")


def _no_input(*args, **kwargs):
    raise EOFError("exercise code cannot ask for input here")


def _quiet_cmp(*args, **kwargs):
    """The lecture's ``cmp``, silenced: the parent does the comparing."""
    return None


def safe_builtins() -> dict:
    table = dict(vars(builtins))
    table.update(open=_no_files, input=_no_input)
    return table


class Runner:
    """Runs statements against a deadline, recording what raised."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.timed_out = False
        self.stopped_at = ""  # where the time ran out
        signal.signal(signal.SIGALRM, self._alarm)

    @staticmethod
    def _alarm(signum, frame):
        raise ExerciseTimeout()

    def run(self, statements: list[dict], namespace: dict, errors: list[dict] | None) -> None:
        """Execute ``statements`` in order; append what raised to ``errors`` (None: do not record)."""
        for statement in statements:
            if statement.get("skip"):
                continue
            if statement.get("syntax_error"):
                self._record(errors, statement, statement["syntax_error"])
                continue
            remaining = self.deadline - time.monotonic()
            if self.timed_out or remaining <= 0:
                self.timed_out = True
                self._record(errors, statement, f"not run: the exercise's {self.seconds:g} s ran out{self.stopped_at}")
                continue
            # Pad with blank lines so a traceback's line numbers are the cell's.
            code = compile("\n" * (statement["line"] - 1) + statement["source"], f"<cell {statement['cell'] + 1}>", "exec")
            signal.setitimer(signal.ITIMER_REAL, remaining)
            try:
                with autograd_forbidden():
                    exec(code, namespace)
            except ExerciseTimeout:
                self.timed_out = True
                self.stopped_at = f" at the statement of cell {statement['cell'] + 1}, line {statement['line']}, which did not end"
                self._record(errors, statement, f"took longer than the exercise's {self.seconds:g} s (an endless loop?)")
            except BaseException as err:  # SystemExit and KeyboardInterrupt are the learner's too
                self._record(errors, statement, f"{type(err).__name__}: {err}"[:MESSAGE_CHARS])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                namespace["cmp"] = _quiet_cmp  # a learner's own cmp changes nothing

    @staticmethod
    def _record(errors, statement, message: str) -> None:
        if errors is not None:
            errors.append({"cell": statement["cell"], "line": statement["line"],
                           "assigns": statement["assigns"], "error": message})


def _base_namespace() -> dict:
    return {"__builtins__": safe_builtins(), "__name__": "__main__", "cmp": _quiet_cmp}


def run_ex123(exercise: str, statements: list[dict], seconds: float) -> dict:
    parameters, Xb, Yb, forward = setting.ex123_forward()
    namespace = _base_namespace()
    namespace.update(setting.ex123_namespace(parameters, Xb, Yb, forward))
    # Exercises 2 and 3 follow Exercise 1 in the lecture: the gradients before theirs are given.
    if exercise != "ex1":
        given = EX1_NAMES[: EX1_NAMES.index(EXPECTED[exercise][0])]
        reference = setting.reference_gradients(parameters, forward)
        namespace.update({name: reference[name].detach().clone() for name in given})
    errors: list[dict] = []
    runner = Runner(seconds)
    runner.run(statements, namespace, errors)
    return {"exercise": exercise, "values": _values(namespace, EXPECTED[exercise]),
            "aliases": _aliases(namespace, EXPECTED[exercise]), "errors": errors, "timed_out": runner.timed_out}


def run_ex4(plan: dict, steps: int, seconds: float) -> dict:
    names = EXPECTED["ex4"]
    runner = Runner(seconds)
    errors: list[dict] = []
    results = []
    for step, parameters, Xb, Yb, _ in setting.ex4_steps(steps):
        params = [p.clone() for p in parameters]
        lecture_g = model.make_generator(model.SEED)
        namespace = _base_namespace()
        namespace.update(torch=torch, F=F, n=setting.BATCH, batch_size=setting.BATCH, n_embd=setting.N_EMBD,
                         n_hidden=setting.EX4_N_HIDDEN, vocab_size=model.VOCAB_SIZE, block_size=model.BLOCK_SIZE,
                         **setting.data_names(), g=lecture_g, i=step, k=step,
                         lr=setting.EX4_LR, max_steps=200000, lossi=[], stepi=[], parameters=params,
                         **dict(zip(model.PARAM_NAMES, params)))
        record = errors if step == 0 else None
        runner.run(plan["prelude"], namespace, record)
        forward = [s for s in plan["forward"] if not s["calls_backward"] and not set(s["assigns"]) & EX4_BATCH_NAMES]
        namespace.update(Xb=Xb, Yb=Yb)
        runner.run(forward, namespace, record)
        # The lecture's forward tensors, whatever the learner's forward left behind.
        with torch.no_grad():
            namespace.update(model.fused_forward(params, Xb, Yb, retain=False))
        namespace.update(Xb=Xb, Yb=Yb, parameters=params, **dict(zip(model.PARAM_NAMES, params)))
        runner.run(plan["block"], namespace, record)
        results.append({"values": _values(namespace, names), "grads": _encode(namespace.get(GRADS_LIST))})
        if step == 0:
            aliases = _aliases(namespace, names)
        if runner.timed_out:
            break
    return {"exercise": "ex4", "steps": results, "aliases": aliases if results else {}, "errors": errors,
            "timed_out": runner.timed_out}


def _encode(value):
    return None if value is None else encode(value)


def _values(namespace: dict, names) -> dict:
    return {name: _encode(namespace[name]) for name in names if name in namespace}


def _aliases(namespace: dict, names) -> dict:
    """name -> the other gradient variables that are the very same tensor (``dX = dY`` without ``.clone()``).

    A view of another shape (``demb = dembcat.view(emb.shape)``) shares memory on purpose and is left out.
    """
    found = {}
    for name in names:
        value = namespace.get(name)
        same = [other for other in sharing_memory(name, value, namespace)
                if isinstance(namespace[other], torch.Tensor) and namespace[other].shape == value.shape
                and namespace[other].data_ptr() == value.data_ptr()]
        if same:
            found[name] = same
    return found


def main() -> None:
    request = read_request()
    results = results_channel()

    torch.set_num_threads(1)
    setting.splits()  # loading the names is the setting's time, not the learner's
    announce_ready(results)
    for exercise in request["exercises"]:
        try:
            if exercise == "ex4":
                reply = run_ex4(request["ex4"], request["steps"], request["seconds"])
            else:
                reply = run_ex123(exercise, request["statements"][exercise], request["seconds"])
        except BaseException as err:  # the setting itself failed (e.g. a learner's code broke torch)
            reply = {"exercise": exercise, "failed": f"{type(err).__name__}: {err}"[:MESSAGE_CHARS]}
        send_reply(results, reply)


if __name__ == "__main__":
    main()
