"""The untrusted half: run a learner's lecture-format code, never holding a reference answer.

Two kinds of process, both started by ``runner`` in the sandbox (warm from a
fork server, or cold), both working in lock-step (``judge.protocol``): one
request per line on stdin, one reply per line on the results channel, each
reply carrying the request's nonce. Whatever the learner's code prints goes
nowhere.

* The **setup child** (``setup_main``) runs the learner's setup cells
  (their data, parameters, batch and forward pass, and their own
  ``loss.backward()``) with autograd available, and hands back as data every
  small tensor of the namespace, its ``.grad``, the numbers and the lists of
  tensors. It runs no answer. ``open('names.txt')`` reads the bundled names
  (or ``$NINJA_NAMES_FILE``); no other file can be opened.
* The **answers child** (``answers_main``) gives autograd up for good
  (``judge.untrusted.lock_autograd``) before any learner code runs, then runs
  exercise statements on the values the parent hands it: the learner's own
  forward tensors, and, only when the parent judges a line on its own, the
  right upstream gradients of that line (never the answer of a line it will
  still run: ``runner`` sees to it). It hands back the values of the names it
  is asked for. Exercise 4's training steps run here too, on parameters and
  batches the parent draws.

``Worker`` does the work of both; ``runner`` calls it directly for trusted
test notebooks (``LectureSettings.in_process``).
"""

from __future__ import annotations

import builtins
import os
import signal
import sys
import time

import torch
import torch.nn.functional as F

# Everything this module takes from the rest of the package, in one place.
from ..diagnosis.comparison import sharing_memory
from ..judge.protocol import announce_ready, next_request, send_reply
from ..judge.sandbox import results_channel
from ..judge.transport import decode, encode
from ..judge.untrusted import autograd_forbidden, lock_autograd
from ..resources import NAMES_ENV, data_file
from ..workbook import model

MESSAGE_CHARS = 400
EXPORT_ELEMENTS = 100_000  # a setup tensor larger than this is not handed back
EXPORT_INTEGERS = 10_000  # nor an integer tensor larger than this (the data splits; a batch is far smaller)
EXPORT_BYTES = 8 * 2**20  # all the setup's tensors and gradients together: the reply stays under 16 MB
NAMES_FILE = "names.txt"


class ExerciseTimeout(BaseException):
    """The exercise's time budget ran out (a BaseException: `except Exception` cannot swallow it)."""


def _no_files(*args, **kwargs):
    raise PermissionError("exercise code may not open files here (the check runs it in the lecture's setting)")


def _names_only(path, mode="r", *args, **kwargs):
    """``open`` in the setup: the lecture's ``names.txt`` (whatever folder it is asked for in), read only."""
    if os.path.basename(str(path)) != NAMES_FILE or any(flag in str(mode) for flag in "wax+"):
        raise PermissionError(f"the setup may open {NAMES_FILE} only (asked for {str(path)[:80]!r})")
    return builtins.open(os.environ.get(NAMES_ENV) or data_file(NAMES_FILE), mode, *args, **kwargs)


def _no_input(*args, **kwargs):
    raise EOFError("exercise code cannot ask for input here")


def _quiet_cmp(*args, **kwargs):
    """The lecture's ``cmp``, silenced: the parent does the comparing."""
    return None


def safe_builtins(open_file=_no_files) -> dict:
    table = dict(vars(builtins))
    table.update(open=open_file, input=_no_input)
    return table


class Runner:
    """Runs statements against a deadline, recording what raised."""

    def __init__(self, seconds: float, forbid_autograd: bool = True):
        """``forbid_autograd``: each statement inside ``autograd_forbidden`` (nothing to do once it is locked)."""
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.forbid_autograd = forbid_autograd
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
            signal.setitimer(signal.ITIMER_REAL, remaining)
            try:
                # Pad with blank lines so a traceback's line numbers are the cell's.
                code = compile("\n" * (statement["line"] - 1) + statement["source"], f"<cell {statement['cell'] + 1}>",
                               "exec")
                if self.forbid_autograd:
                    with autograd_forbidden():
                        exec(code, namespace)
                else:
                    exec(code, namespace)
            except ExerciseTimeout:
                self.timed_out = True
                self.stopped_at = (f" at the statement of cell {statement['cell'] + 1}, line {statement['line']}, "
                                   "which did not end")
                self._record(errors, statement, f"took longer than the exercise's {self.seconds:g} s (an endless loop?)")
            except BaseException as err:  # SystemExit and KeyboardInterrupt are the learner's too
                self._record(errors, statement, _described(err))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                namespace["cmp"] = _quiet_cmp  # a learner's own cmp changes nothing

    @staticmethod
    def _record(errors, statement, message: str) -> None:
        if errors is not None:
            errors.append({"cell": statement["cell"], "line": statement["line"],
                           "assigns": statement["assigns"], "error": message})


def _described(err: BaseException) -> str:
    try:
        return f"{type(err).__name__}: {err}"[:MESSAGE_CHARS]
    except Exception:  # a learner's exception whose __str__ raises
        return type(err).__name__


def base_namespace(open_file=_no_files) -> dict:
    return {"__builtins__": safe_builtins(open_file), "__name__": "__main__", "cmp": _quiet_cmp, "torch": torch,
            "F": F}


def decoded(values: dict) -> dict:
    """Values handed over as data, rebuilt; a list of names (``{"names": [...]}``) is rebuilt from the others."""
    found, lists = {}, {}
    for name, message in values.items():
        if isinstance(message, dict) and message.get("kind") == "names":
            lists[name] = message["names"]
        else:
            found[name] = None if message is None else decode(message)
    for name, members in lists.items():
        found[name] = [found.get(member) for member in members]
    return found


class Worker:
    """What a child does with each request (see the module's docstring); ``locked``: autograd is gone for good."""

    SETUP, ANSWERS = "setup", "answers"

    def __init__(self, role: str):
        self.role = role
        self.units: dict[str, dict] = {}  # unit -> its namespace, kept between the requests of one unit
        self.ex4_plan: dict = {}
        self.ex4_errors: list[dict] = []

    def handle(self, request: dict) -> dict:
        task = request.get("task")
        if self.role == self.SETUP and task == "setup":
            return self.setup(request)
        if self.role == self.ANSWERS and task == "run":
            return self.run(request)
        if self.role == self.ANSWERS and task == "ex4":
            return self.ex4_step(request)
        return {"failed": f"a {self.role} process does not take the request {str(task)[:40]!r}"}

    # ------------------------------------------------------------------ the setup child

    def setup(self, request: dict) -> dict:
        namespace = base_namespace(_names_only)
        errors: list[dict] = []
        runner = Runner(request["seconds"], forbid_autograd=False)
        with torch.enable_grad():
            runner.run(request["statements"], namespace, errors)
        return {**export(namespace), "errors": errors, "timed_out": runner.timed_out}

    # ------------------------------------------------------------------ the answers child

    def run(self, request: dict) -> dict:
        """One request of a unit: statements on the unit's namespace; ``feed`` sets names first, before each."""
        unit = request["unit"]
        if "namespace" in request:
            namespace = base_namespace()
            namespace.update(decoded(request["namespace"]))
            self.units = {unit: namespace}  # one unit at a time: the last one's values are gone
        namespace = self.units.get(unit)
        if namespace is None:
            return {"failed": "the unit's namespace is gone"}
        feeds = decoded(request.get("feed", {}))
        errors: list[dict] = []
        runner = Runner(request["seconds"])
        for statement in request["statements"]:
            for name in statement.get("feed", ()):  # the right upstream gradient, fresh before every line that reads it
                if isinstance(feeds.get(name), torch.Tensor):
                    namespace[name] = feeds[name].clone()
            runner.run([statement], namespace, errors)
        export_names = request.get("export", [])
        return {"values": {name: _encode(namespace[name]) for name in export_names if name in namespace},
                "aliases": aliases(namespace, request.get("aliases_of", [])), "errors": errors,
                "timed_out": runner.timed_out}

    def ex4_step(self, request: dict) -> dict:
        """One training step of Exercise 4 on the parameters and batch the parent drew."""
        if request.get("first") is not None:
            first = request["first"]
            namespace = base_namespace()
            namespace.update(decoded(first["namespace"]))
            self.units = {"ex4": namespace}
            self.ex4_plan, self.ex4_errors = first, []
            Runner(first["seconds"]).run(first["prelude"], namespace, self.ex4_errors)
        namespace, plan = self.units.get("ex4"), self.ex4_plan
        if namespace is None:
            return {"failed": "the training loop's namespace is gone"}
        record = self.ex4_errors if request.get("first") is not None else None
        runner = Runner(request["seconds"])
        given = decoded(request["given"])
        namespace.update(given)
        for name, role in plan["batch_names"].items():
            namespace[name] = given[role]
        params = [given[name] for name in plan["parameter_names"]]
        namespace["parameters"] = params
        runner.run(plan["forward"], namespace, record)
        with torch.no_grad():  # the lecture's forward tensors, whatever the loop left
            namespace.update(model.fused_forward(params, given["Xb"], given["Yb"], retain=False))
        namespace.update(given)
        namespace["parameters"] = [given[name] for name in plan["parameter_names"]]
        runner.run(plan["block"], namespace, record)
        names = plan["export"]
        return {"values": {name: _encode(namespace[name]) for name in names if name in namespace},
                "grads": _encode(namespace.get(plan["grads_list"])),
                "aliases": aliases(namespace, names) if record is not None else {},
                "errors": self.ex4_errors if record is not None else [], "timed_out": runner.timed_out}


def _encode(value):
    return None if value is None else encode(value)


def export(namespace: dict) -> dict:
    """The setup's results as data: small tensors, their ``.grad``, numbers, lists of tensors (by name)."""
    values, grads, leaves, lists = {}, {}, [], {}
    total = 0
    names_of = {}
    for name, value in namespace.items():
        if name.startswith("_") or not isinstance(value, torch.Tensor):
            continue
        names_of.setdefault(id(value), name)
        grad = value.grad if value.is_leaf or value.retains_grad else None  # (asking a non-leaf warns)
        size = value.numel() * value.element_size() + (grad.numel() * 4 if grad is not None else 0)
        large = value.numel() > (EXPORT_ELEMENTS if value.is_floating_point() else EXPORT_INTEGERS)
        if large or total + size > EXPORT_BYTES:
            continue
        total += size
        values[name] = encode(value)
        if grad is not None:
            grads[name] = encode(grad)
        if value.is_leaf and value.requires_grad:
            leaves.append(name)
    for name, value in namespace.items():
        if name.startswith("_"):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values[name] = encode(value)
        elif isinstance(value, (list, tuple)) and 0 < len(value) <= 64 and all(isinstance(v, torch.Tensor)
                                                                               for v in value):
            members = [names_of.get(id(v)) for v in value]
            if all(member in values for member in members):
                lists[name] = members
    return {"values": values, "grads": grads, "leaves": leaves, "lists": lists}


def aliases(namespace: dict, names) -> dict:
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


def _serve(worker: Worker) -> None:
    requests = sys.stdin.buffer
    results = results_channel()
    torch.set_num_threads(1)
    if worker.role == Worker.ANSWERS:
        lock_autograd()
    announce_ready(results)
    while (request := next_request(requests)) is not None:
        try:
            reply = worker.handle(request)
        except BaseException as err:  # the setting itself failed (e.g. a learner's code broke torch)
            reply = {"failed": _described(err)}
        send_reply(results, {"nonce": request.get("nonce"), **reply})


def setup_main() -> None:
    """The setup child: the learner's setup cells, with autograd (their own ``loss.backward()``)."""
    _serve(Worker(Worker.SETUP))


def answers_main() -> None:
    """The answers child: exercise statements, autograd locked before any of them runs."""
    _serve(Worker(Worker.ANSWERS))
