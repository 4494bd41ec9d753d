"""Hidden checks: re-run a student's answer cells on inputs they never saw.

A visible check in a notebook compares the student's tensor with autograd's
on the notebook's own batch. The hidden check for the same item takes the
*code* of the item's answer cells and runs it again on fresh parameters and
batches (other seeds, and in one case other sizes), on tensors that never
tracked gradients and with every autograd entry point disabled, and compares
the result with autograd's answer for those inputs. It also reads the code
for things an answer must not contain (``.grad``, ``backward``, hard-coded
numbers, ...). Answer cells are located by their ``#| answer: <id>`` line.

Two sides, kept apart so that grading can put a process boundary between
them (see ``autograder.grading.judge_cells``):

* untrusted: ``student_output`` executes student code;
* trusted: ``reference_output``, ``scan_answers`` and ``verdict`` decide.

In a notebook, ``hidden_check`` runs both sides in the kernel; that is what
``nbgrader validate`` and ``pytest --nbval`` exercise on the masters.
"""

from __future__ import annotations

import ast
import contextlib
import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import iris, model, scalar
from .check import TRAINED_RTOL, Comparison, compare, compare_gradients
from .data import BLOCK_SIZE, VOCAB_SIZE
from .exercises import ITEMS_BY_ID, Item, notebook, notebook_of_answer

ANSWER_DIRECTIVE = re.compile(r"^\s*#\|\s*answer:\s*([A-Za-z0-9_]+)\s*$", re.MULTILINE)
EX4_FUNCTION = "manual_backward"
EX4_TRAINING_STEPS = 20
EX4_TRAINING_LR = 0.1
# The function each function-defining answer cell must define.
ANSWER_FUNCTIONS = {"ex4_manual_backward": EX4_FUNCTION, "ex5_mlp_backward": "mlp_backward",
                    "ex5_adam_update": "adam_step"}
ADAM_STEPS = 3  # steps of the hidden check of the Adam update: t = 1 alone would hide stale moments


@dataclass(frozen=True)
class Case:
    """One set of hidden inputs: a seed and the sizes of the model and batch.

    ``seed`` also draws the scalar inputs of notebook 00 and the
    initialisation of notebook 05, whose network has hidden widths
    ``mlp_hidden`` and whose Adam check uses ``adam`` = (lr, beta1, beta2, eps).
    """

    seed: int
    n: int  # batch size (notebook 05: rows of the backward check)
    n_hidden: int
    n_embd: int
    mlp_hidden: tuple[int, int] = (8, 9)
    adam: tuple[float, float, float, float] = (iris.LR, iris.BETA1, iris.BETA2, iris.EPS)

    def describe(self) -> str:
        return f"batch {self.n}, n_hidden {self.n_hidden}, n_embd {self.n_embd}"


# Not the notebooks' seed (2147483647) or sizes (32, 64, 10); the second case
# also changes the widths of notebook 05's network and Adam's settings.
HIDDEN_CASES = (Case(seed=1234567, n=32, n_hidden=64, n_embd=10),
                Case(seed=7654321, n=20, n_hidden=48, n_embd=6, mlp_hidden=(6, 5), adam=(0.003, 0.8, 0.99, 1e-6)))
IRIS_KINDS = ("mlp_backward", "adam_step", "adam_training")


class HiddenTestFailed(AssertionError):
    """Raised by ``hidden_check`` with the reason in one readable message."""


class ForbiddenInAnswer(RuntimeError):
    """An answer called autograd while it was supposed to derive the gradient."""


@dataclass
class Verdict:
    """The judgement of one graded item."""

    grade_id: str
    passed: bool
    message: str  # one or more lines meant for the student
    flags: list[str] = field(default_factory=list)  # reasons the work is not the student's own
    diagnosis: str = ""  # the code of the likely mistake (``diagnose.CODES``); "" when none was made

    def report(self) -> str:
        head = f"{self.grade_id}: {'passed' if self.passed else 'FAILED'} the hidden check"
        return head + ("\n" + self.message if self.message else "")


# ----------------------------------------------------------------- inputs

def case_inputs(case: Case) -> dict:
    """Parameters (no grad), batch and sizes of a hidden case."""
    g = torch.Generator().manual_seed(case.seed)
    params = [p.detach() for p in model.init_params(g, n_embd=case.n_embd, n_hidden=case.n_hidden)]
    Xb = torch.randint(0, VOCAB_SIZE, (case.n, BLOCK_SIZE), generator=g)
    Yb = torch.randint(0, VOCAB_SIZE, (case.n,), generator=g)
    return {"parameters": params, "Xb": Xb, "Yb": Yb}


def reference_gradients(case: Case) -> dict[str, torch.Tensor]:
    """Autograd's gradient of every chunked-forward tensor and parameter, as "d<name>"."""
    inputs = case_inputs(case)
    params = [p.clone().requires_grad_(True) for p in inputs["parameters"]]
    with torch.enable_grad():
        fw = model.chunked_forward(params, inputs["Xb"], inputs["Yb"])
        fw.loss.backward()
    grads = {f"d{name}": t.grad for name, t in fw.items() if name != "loss"}
    grads.update({f"d{name}": p.grad for name, p in zip(model.PARAM_NAMES, params)})
    return grads


def gradient_namespace(case: Case) -> dict:
    """What an Exercise 1-3 answer cell may use: the forward tensors, sizes, torch."""
    inputs = case_inputs(case)
    with torch.no_grad():
        fw = model.chunked_forward(inputs["parameters"], inputs["Xb"], inputs["Yb"])
    namespace = {"torch": torch, "F": F, "n": case.n, "batch_size": case.n, "n_hidden": case.n_hidden,
                 "n_embd": case.n_embd, "vocab_size": VOCAB_SIZE, "block_size": BLOCK_SIZE}
    namespace.update(inputs)
    namespace.update(dict(zip(model.PARAM_NAMES, inputs["parameters"])))
    namespace.update(fw)
    return namespace


def scalar_inputs(item: Item, case: Case) -> dict[str, float]:
    """Notebook 00: other numbers for the inputs of the item's graph (nonzero, all different)."""
    return scalar.random_inputs(item.graph, torch.Generator().manual_seed(case.seed))


def iris_inputs(case: Case, dtype: torch.dtype = torch.float32) -> dict:
    """Notebook 05: an initialisation of the case's widths, the training flowers and a subset of ``n`` rows."""
    g = torch.Generator().manual_seed(case.seed)
    params = [p.detach().to(dtype) for p in iris.init_mlp(g, (4, *case.mlp_hidden, 3))]
    X, Y = iris.load_iris()
    split = iris.split_iris(X, Y)
    rows = torch.randperm(len(split.Ytr), generator=g)[: case.n]
    return {"parameters": params, "Xtr": split.Xtr.to(dtype), "Ytr": split.Ytr,
            "Xb": split.Xtr[rows].to(dtype), "Yb": split.Ytr[rows]}


def adam_gradients(case: Case, parameters: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """ADAM_STEPS lists of made-up gradients, each tensor of its own size between 1e-4 and 1.

    Small gradients make eps matter, so an eps in the wrong place shows.
    """
    g = torch.Generator().manual_seed(case.seed + 2)
    steps = []
    for _ in range(ADAM_STEPS):
        scales = 10 ** (-4 * torch.rand(len(parameters), generator=g, dtype=torch.float64))
        steps.append([torch.randn(p.shape, generator=g, dtype=p.dtype) * s for p, s in zip(parameters, scales)])
    return steps


def describe_case(item: Item, case: Case) -> str:
    """The hidden inputs of ``case`` in words, as they matter to ``item``."""
    if item.kind == "scalar":
        return ", ".join(f"{name} = {value:.3f}" for name, value in scalar_inputs(item, case).items())
    widths = "-".join(map(str, (4, *case.mlp_hidden, 3)))
    if item.kind == "mlp_backward":
        return f"another initialisation, layers {widths}, {case.n} flowers"
    if item.kind == "adam_step":
        lr, beta1, beta2, eps = case.adam
        return f"{ADAM_STEPS} steps, lr {lr:g}, beta1 {beta1:g}, beta2 {beta2:g}, eps {eps:g}"
    if item.kind == "adam_training":
        return f"another initialisation, layers {widths}, {iris.EPOCHS} epochs in float64"
    return case.describe()


# ----------------------------------------------------------- untrusted side

def student_output(item: Item, sources: dict[str, str], case: Case):
    """Run the item's answer cells on ``case`` and return what they produce.

    "gradient" items return the tensor the cells assign to ``item.variable``;
    ``ex4_backward`` the list of 7 gradients; ``ex4_training`` the parameters
    after a short SGD run that uses the student's backward pass; "scalar"
    items the ``.grad`` of each of ``item.nodes``; the items of notebook 05
    what ``_run_iris`` says. Only the student's own code runs with autograd
    forbidden.
    """
    if item.kind == "gradient":
        return _run_gradient_cells(item, sources, case)
    if item.kind == "scalar":
        return _run_scalar_cells(item, sources, case)
    if item.kind in IRIS_KINDS:
        return _run_iris(item, sources, case)
    backward = _load_function(sources[item.answers[0]], item.answers[0])
    if item.grade_id == "ex4_backward":
        inputs = case_inputs(case)
        with torch.no_grad():
            fw = model.fused_forward(inputs["parameters"], inputs["Xb"], inputs["Yb"])
        with autograd_forbidden():
            return list(backward(inputs["parameters"], fw, inputs["Xb"], inputs["Yb"]))
    return sgd_run(case, backward, forbid_autograd=True)


def _run_gradient_cells(item: Item, sources: dict[str, str], case: Case):
    namespace = gradient_namespace(case)
    correct = reference_gradients(case)  # the upstream gradients fed in
    for answer, provided in zip(item.answers, item.provided):
        namespace.update({name: correct[name].clone() for name in provided})
        code = compile(sources[answer], f"<answer {answer}>", "exec")
        with autograd_forbidden():
            exec(code, namespace)
    if item.variable not in namespace:
        raise NameError(f"the answer cells never assign {item.variable}")
    return namespace[item.variable]


def _run_scalar_cells(item: Item, sources: dict[str, str], case: Case) -> list:
    """Run notebook 00's cells on a graph with other inputs; the .grad of each of ``item.nodes``.

    The cells see the graph's nodes by name (and ``math``); nodes finished by
    earlier steps carry their correct gradient. A gradient that is a number
    comes back as a 0-dim float64 tensor, anything else as it is.
    """
    graph = scalar.GRAPHS[item.graph](**scalar_inputs(item, case))
    correct = scalar.torch_grads(graph.output)
    namespace = {"math": math, **graph}
    for answer, provided in zip(item.answers, item.provided):
        for name in provided:
            graph[name].grad = correct[graph[name]]
        code = compile(sources[answer], f"<answer {answer}>", "exec")
        with autograd_forbidden():
            exec(code, namespace)
    return [scalar.grad_tensor(graph[name].grad) for name in item.nodes]


def _run_iris(item: Item, sources: dict[str, str], case: Case) -> list:
    """Notebook 05: "mlp_backward" gives the 6 gradients on a subset of flowers; "adam_step" the
    parameters, then m, then v after ADAM_STEPS updates with made-up gradients (float64);
    "adam_training" the parameters after a whole training run (float64)."""
    functions = {answer: _load_function(sources[answer], answer) for answer in item.answers}
    if item.kind == "mlp_backward":
        inputs = iris_inputs(case)
        params, X, Y = inputs["parameters"], inputs["Xb"], inputs["Yb"]
        with torch.no_grad():
            fw = iris.forward(params, X, Y)
        with autograd_forbidden():
            return list(functions["ex5_mlp_backward"](params, fw, X, Y))
    inputs = iris_inputs(case, iris.CHECK_DTYPE)
    if item.kind == "adam_step":
        params = [p.clone() for p in inputs["parameters"]]
        m, v = iris.zeros_like_all(params), iris.zeros_like_all(params)
        lr, beta1, beta2, eps = case.adam
        for t, grads in enumerate(adam_gradients(case, params), start=1):
            with autograd_forbidden():
                functions["ex5_adam_update"](params, grads, m, v, t, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
        return params + m + v
    trained, _ = iris.train_manual(inputs["parameters"], inputs["Xtr"], inputs["Ytr"], functions["ex5_mlp_backward"],
                                   functions["ex5_adam_update"], guard=autograd_forbidden)
    return trained


def _load_function(source: str, answer: str = "ex4_manual_backward"):
    name = ANSWER_FUNCTIONS[answer]
    namespace = {"torch": torch, "F": F, "math": math}
    with autograd_forbidden():
        exec(compile(source, f"<answer {answer}>", "exec"), namespace)
    function = namespace.get(name)
    if not callable(function):
        raise NameError(f"the answer cell does not define a function {name}")
    return function


def sgd_run(case: Case, backward, forbid_autograd: bool = False) -> list[torch.Tensor]:
    """EX4_TRAINING_STEPS of SGD from the case's init with ``backward``'s gradients."""
    g = torch.Generator().manual_seed(case.seed + 1)
    guard = autograd_forbidden if forbid_autograd else None
    return model.sgd_steps(case_inputs(case)["parameters"], backward, EX4_TRAINING_STEPS, case.n,
                           EX4_TRAINING_LR, g, guard)


def reference_backward(params, fw, Xb, Yb) -> list[torch.Tensor]:
    return model.autograd_grads(params, Xb, Yb)


# Everything that computes a gradient for you, or turns gradient tracking
# back on, raises inside ``autograd_forbidden``.
_FORBIDDEN = [
    (torch.Tensor, "backward"), (torch.Tensor, "requires_grad_"), (torch.Tensor, "retain_grad"),
    (torch.Tensor, "register_hook"), (torch.autograd, "backward"), (torch.autograd, "grad"),
    (torch, "enable_grad"), (torch.autograd, "enable_grad"), (torch.autograd.functional, "vjp"),
    (torch.autograd.functional, "jacobian"), (torch.autograd.functional, "vhp"),
    (torch.autograd.functional, "hessian"),
]
_FORBIDDEN_FUNC = ("grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "linearize")


@contextlib.contextmanager
def autograd_forbidden():
    """No autograd while student code runs: gradients must be derived by hand.

    Every public entry point raises ForbiddenInAnswer, and so does the engine
    behind all of them, in case an answer found a way around the names; grad
    mode is off and cannot be switched on (``torch.no_grad()`` still works).
    So do ``Value.backward`` (notebook 00) and every ``torch.optim`` optimizer
    (notebook 05: the update is the exercise).
    """
    import torch.autograd.graph
    import torch.autograd.variable
    import torch.func

    targets = _FORBIDDEN + [(torch.func, name) for name in _FORBIDDEN_FUNC if hasattr(torch.func, name)]
    targets += [(scalar.Value, "backward"), (torch.optim.Optimizer, "__init__")]  # notebooks 00 and 05
    targets += [(torch.autograd.graph, "_engine_run_backward"), (torch.autograd.variable.Variable, "_execution_engine")]
    saved = [(owner, name, owner.__dict__.get(name, _MISSING)) for owner, name in targets]
    switches = [(torch, "set_grad_enabled"), (torch.autograd, "set_grad_enabled"), (torch._C, "_set_grad_enabled")]
    saved += [(owner, name, owner.__dict__[name]) for owner, name in switches]
    was_enabled = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    for owner, name, _ in saved[: len(targets)]:
        setattr(owner, name, _forbidden(name))
    for owner, name in switches:  # torch.no_grad() inside an answer still works
        setattr(owner, name, _off_only(getattr(owner, name)))
    try:
        yield
    finally:
        for owner, name, original in saved:
            if original is _MISSING:
                delattr(owner, name)  # it was inherited (e.g. from torch._C.TensorBase)
            else:
                setattr(owner, name, original)
        torch.set_grad_enabled(was_enabled)


_MISSING = object()


class _Refusal:
    """Raises on any call or attribute: stands in for autograd while an answer runs."""

    def __init__(self, name: str):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise ForbiddenInAnswer(f"{self._name} is not allowed here: {_REFUSALS.get(self._name, _DERIVE)}")

    def __getattr__(self, attribute: str):
        raise ForbiddenInAnswer(f"{self._name} is not allowed here: {_REFUSALS.get(self._name, _DERIVE)}")


_DERIVE = "derive the gradient by hand"
_REFUSALS = {"__init__": "write the optimizer's update by hand (torch.optim is the reference, not the answer)"}


def _forbidden(name: str) -> _Refusal:
    return _Refusal(name)


def _off_only(set_grad_enabled):
    def switch(mode: bool):
        if mode:
            raise ForbiddenInAnswer("turning gradient tracking on is not allowed here: derive the gradient by hand")
        return set_grad_enabled(mode)
    return switch


# ------------------------------------------------------------- trusted side

def reference_output(item: Item, case: Case):
    """What a correct answer produces on ``case`` (autograd as the oracle)."""
    if item.kind == "gradient":
        return reference_gradients(case)[item.variable]
    if item.kind == "scalar":
        graph = scalar.GRAPHS[item.graph](**scalar_inputs(item, case))
        correct = scalar.torch_grads(graph.output)
        return [torch.tensor(correct[graph[name]], dtype=torch.float64) for name in item.nodes]
    if item.kind in IRIS_KINDS:
        return _iris_reference(item, case)
    if item.grade_id == "ex4_backward":
        inputs = case_inputs(case)
        return model.autograd_grads(inputs["parameters"], inputs["Xb"], inputs["Yb"])
    return sgd_run(case, reference_backward)


def _iris_reference(item: Item, case: Case) -> list[torch.Tensor]:
    """Autograd's gradients, or torch.optim.Adam's parameters (and moments), for notebook 05."""
    if item.kind == "mlp_backward":
        inputs = iris_inputs(case)
        return iris.autograd_grads(inputs["parameters"], inputs["Xb"], inputs["Yb"])
    inputs = iris_inputs(case, iris.CHECK_DTYPE)
    if item.kind == "adam_step":
        lr, beta1, beta2, eps = case.adam
        params, m, v = iris.torch_adam(inputs["parameters"], adam_gradients(case, inputs["parameters"]),
                                       lr, beta1, beta2, eps)
        return params + m + v
    return iris.train_torch(inputs["parameters"], inputs["Xtr"], inputs["Ytr"])[0]


def verdict(item: Item, outputs: list, errors: list[str | None], flags: list[str],
            sources: dict[str, str] | None = None) -> Verdict:
    """Judge an item from its answers' outputs on every hidden case.

    ``outputs[i]`` is what the student code produced on HIDDEN_CASES[i], or
    None with ``errors[i]`` saying why it produced nothing. ``sources`` (answer
    id -> code) lets a size typed into the answer be named.
    """
    if flags:
        return Verdict(item.grade_id, False, "Not graded, the answer " + "; ".join(flags) + ".", flags)
    for index, (case, output, error) in enumerate(zip(HIDDEN_CASES, outputs, errors)):
        where = f"on unseen inputs ({describe_case(item, case)})"
        if error is not None:
            message, code = f"{where}: {error}", ""
        else:
            problems, code = _compare_output(item, output, reference_output(item, case), case)
            if not problems:
                continue
            message = f"{where}:\n" + "\n".join(problems)
        sizes = _hardcoded_size(item, index, sources or {})
        if sizes is not None:
            message, code = f"{sizes.message}\n{message}", sizes.code
        return Verdict(item.grade_id, False, message, diagnosis=code)
    oracle = "torch.optim.Adam" if item.kind in ("adam_step", "adam_training") else "autograd"
    return Verdict(item.grade_id, True, f"matches {oracle} on {len(HIDDEN_CASES)} unseen sets of inputs")


def _compare_output(item: Item, got, expected, case: Case | None = None) -> tuple[list[str], str]:
    """Lines describing what is wrong (empty when the output is right) and the first diagnosis code."""
    if item.kind == "gradient":
        result = compare(item.tensor, got, expected, _hint_context(case))
        return ([], "") if result.ok else ([result.line()], result.code)
    if item.kind == "scalar":
        return _compare_scalar(item, got, expected)
    if item.kind in IRIS_KINDS:
        return _compare_iris(item, got, expected)
    names = model.PARAM_NAMES
    if not isinstance(got, (list, tuple)) or len(got) != len(names):
        return [f"expected a list of {len(names)} tensors ({', '.join('d' + n for n in names)}), "
                f"got {_describe(got)}"], "unknown"
    if item.grade_id == "ex4_training":
        results = [_compare_trained(name, g, e) for name, g, e in zip(names, got, expected)]
    else:
        results = compare_gradients(names, list(got), expected, _hint_context(case))
    return _failures(results)


def _failures(results: list[Comparison]) -> tuple[list[str], str]:
    """The report lines of the failing comparisons and the first one's code."""
    failing = [r for r in results if not r.ok]
    return [r.line() for r in failing], (failing[0].code if failing else "")


# The sizes of the notebooks' model and batch (HIDDEN_CASES[0] has them too).
NOTEBOOK_SIZES = {"n": 32, "n_hidden": 64, "n_embd": 10}


def _hardcoded_size(item: Item, failed: int, sources: dict[str, str]):
    """``diagnose.hardcoded_size`` when the item passed on the notebook's sizes and failed on others, else None."""
    from .diagnose import hardcoded_size

    def sizes(case: Case) -> dict[str, int]:
        return {"n": case.n, "n_hidden": case.n_hidden, "n_embd": case.n_embd, "block_size": BLOCK_SIZE}

    passed = [case for case in HIDDEN_CASES[:failed] if sizes(case).items() >= NOTEBOOK_SIZES.items()]
    if item.kind not in ("gradient", "function") or not passed or sizes(HIDDEN_CASES[failed]) == sizes(passed[0]):
        return None
    return hardcoded_size(sizes(passed[0]), sizes(HIDDEN_CASES[failed]), [sources.get(a, "") for a in item.answers])


def _hint_context(case: Case | None) -> dict | None:
    """The hidden case's forward pass and correct gradients, for ``diagnose``'s hints."""
    if case is None:
        return None
    context = {k: v for k, v in gradient_namespace(case).items() if isinstance(v, (torch.Tensor, int))}
    context.update(reference_gradients(case))
    return context


def _compare_scalar(item: Item, got, expected: list[torch.Tensor]) -> tuple[list[str], str]:
    if not isinstance(got, (list, tuple)) or len(got) != len(item.nodes):
        return [f"expected the gradients of {', '.join(item.nodes)}, got {_describe(got)}"], "unknown"
    problems, codes = [], []
    for name, value, reference in zip(item.nodes, got, expected):
        problem = None if isinstance(value, torch.Tensor) else scalar.grad_problem(name, value)
        result = None if problem else compare(f"{name}.grad", value, reference)
        if problem or not result.ok:
            problems.append(problem or result.line())
            codes.append("unknown" if problem else result.code)
    return problems, (codes[0] if codes else "")


def _compare_iris(item: Item, got, expected: list[torch.Tensor]) -> tuple[list[str], str]:
    names = list(iris.PARAM_NAMES)
    if item.kind == "mlp_backward":
        wanted = ", ".join("d" + n for n in names)
    else:
        names += [f"m[{n}]" for n in iris.PARAM_NAMES] + [f"v[{n}]" for n in iris.PARAM_NAMES]
        names = names[: len(expected)]
        wanted = f"{len(expected)} tensors"
    if not isinstance(got, (list, tuple)) or len(got) != len(expected):
        return [f"expected {wanted}, got {_describe(got)}"], "unknown"
    if item.kind == "adam_training":
        lines = [line for name, g, e in zip(names, got, expected) if (line := _trained_iris_problem(name, g, e))]
        return lines, ("none" if lines else "")
    if item.kind == "mlp_backward":
        return _failures(compare_gradients(names, list(got), expected))
    return _failures([compare(name, g, e) for name, g, e in zip(names, got, expected)])


def _trained_iris_problem(name: str, got, expected: torch.Tensor) -> str:
    """Why a parameter after training is wrong (TRAINED_RTOL of its scale), or ""."""
    result = compare(name, got, expected)
    if result.maxdiff is None:
        return result.line()
    drift = iris.parameter_drift([got], [expected])[0]
    if drift <= iris.TRAINED_RTOL:
        return ""
    return (f"{name}: after {iris.EPOCHS} epochs it is off by {drift:.1e} of its scale, "
            f"torch.optim.Adam's run allows {iris.TRAINED_RTOL:.0e}")


def _compare_trained(name: str, got, expected: torch.Tensor) -> Comparison:
    """Parameters after training: right within TRAINED_RTOL of their scale."""
    result = compare(name, got, expected)
    if result.ok or result.maxdiff is None:
        return result
    tolerance = TRAINED_RTOL * expected.abs().max().item()
    ok = result.maxdiff <= tolerance
    problem = "" if ok else f"after {EX4_TRAINING_STEPS} SGD steps the parameter is off by {result.maxdiff:.2e}"
    return Comparison(name, ok, False, result.maxdiff, tolerance, result.expected_shape, problem,
                      code="" if ok else "none")


def _describe(value) -> str:
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__}"


# ---------------------------------------------------------- reading the code

def find_answers(cell_sources: list[str]) -> dict[str, str]:
    """Map answer id -> source, from code cells in notebook (or execution) order.

    A later cell with the same directive replaces an earlier one, as it would
    in a kernel that ran them in that order.
    """
    found = {}
    for source in cell_sources:
        match = ANSWER_DIRECTIVE.search(source or "")
        if match:
            found[match.group(1)] = source
    return found


# Names an answer cell has no use for: they copy autograd's result, switch it
# back on, or reach outside the notebook (files, processes, the interpreter).
_AUTOGRAD_ATTRIBUTES = {
    "grad": "reads a .grad tensor (autograd's answer)",
    "backward": "calls backward() (autograd)",
    "autograd": "uses torch.autograd",
    "func": "uses torch.func",
    "requires_grad": "turns on gradient tracking (requires_grad)",
    "requires_grad_": "turns on gradient tracking (requires_grad_)",
    "retain_grad": "calls retain_grad()",
    "register_hook": "registers an autograd hook",
    "grad_fn": "reads the autograd graph (grad_fn)",
    "enable_grad": "turns gradient tracking back on",
    "set_grad_enabled": "turns gradient tracking back on",
}
_AUTOGRAD_NAMES = {
    "autograd": "uses torch.autograd",
    "functorch": "uses functorch",
    "enable_grad": "turns gradient tracking back on",
    "set_grad_enabled": "turns gradient tracking back on",
}
_ESCAPE_NAMES = {
    "exec", "eval", "compile", "open", "__import__", "getattr", "setattr", "delattr", "globals",
    "locals", "vars", "breakpoint", "os", "sys", "subprocess", "ctypes", "gc", "inspect",
    "importlib", "builtins", "pickle", "shutil", "pathlib", "socket", "signal", "threading",
    "multiprocessing", "sqlite3", "get_ipython",
}
_OPTIMIZER_NAMES = {"optim": "uses torch.optim: write the update by hand"}
# What an answer of one notebook may do that others may not: in notebook 00
# setting and reading .grad is the answer itself.
_ALLOWED_BY_NOTEBOOK = {notebook(0): {"grad"}}
_ALLOWED_IMPORTS = {"torch", "math", "numpy", "torch.nn.functional"}
_MAX_LITERAL_DIGITS = 4  # significant digits in a number typed into an answer
_MAX_LITERAL_LIST = 4  # numbers in a list/tuple display


def scan_answers(sources: list[str]) -> list[str]:
    """Reasons these answer cells are not a derivation, e.g. 'reads a .grad tensor'.

    The rules depend on the notebook of each cell, known from its
    ``#| answer:`` line (the grader finds the cell by that same line).
    """
    reasons: list[str] = []
    for source in sources:
        try:
            tree = ast.parse(_strip_magics(source))
        except SyntaxError:
            continue  # running it will report the syntax error
        allowed = _allowed_in(source)
        for node in ast.walk(tree):
            reason = _node_problem(node, allowed)
            if reason and reason not in reasons:
                reasons.append(reason)
    return reasons


def _allowed_in(source: str) -> set[str]:
    match = ANSWER_DIRECTIVE.search(source)
    return _ALLOWED_BY_NOTEBOOK.get(notebook_of_answer(match.group(1)) if match else None, set())


def _strip_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _node_problem(node: ast.AST, allowed: set[str] = frozenset()) -> str | None:
    # `case object(_C=c)` in a match statement reads an attribute by name too.
    attributes = [node.attr] if isinstance(node, ast.Attribute) else list(node.kwd_attrs) if isinstance(node, ast.MatchClass) else []
    for attribute in attributes:
        if attribute in allowed:
            continue
        if attribute in _AUTOGRAD_ATTRIBUTES:
            return _AUTOGRAD_ATTRIBUTES[attribute]
        if attribute in _OPTIMIZER_NAMES:
            return _OPTIMIZER_NAMES[attribute]
        if attribute.startswith("_"):
            return f"reaches into a private attribute ({attribute})"
        if attribute in _ESCAPE_NAMES:
            return f"uses {attribute}, which an answer has no need for"
    name = node.id if isinstance(node, ast.Name) else None
    if name in _AUTOGRAD_NAMES:
        return _AUTOGRAD_NAMES[name]
    if name in _OPTIMIZER_NAMES:
        return _OPTIMIZER_NAMES[name]
    if name in _ESCAPE_NAMES:
        return f"uses {name}, which an answer has no need for"
    if isinstance(node, ast.ImportFrom):  # `from torch import optim as o` hides the name behind an alias
        for alias in node.names:
            for table in (_AUTOGRAD_NAMES, _OPTIMIZER_NAMES, _AUTOGRAD_ATTRIBUTES):
                if alias.name in table:
                    return table[alias.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        outside = [m for m in modules if m not in _ALLOWED_IMPORTS]
        if outside:
            return f"imports {', '.join(outside)}"
    if isinstance(node, ast.Constant) and isinstance(node.value, float) and _significant_digits(node.value) > _MAX_LITERAL_DIGITS:
        return f"contains the hard-coded number {node.value!r}"
    if isinstance(node, (ast.List, ast.Tuple)):
        numbers = [e for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, (int, float))]
        if len(numbers) > _MAX_LITERAL_LIST:
            return f"contains a hard-coded list of {len(numbers)} numbers"
    return None


def _significant_digits(value: float) -> int:
    digits = f"{abs(value):.12e}".split("e")[0].replace(".", "").rstrip("0")
    return len(digits)


# ------------------------------------------------------------ in the kernel

def judge_item(item: Item, answers: dict[str, str]) -> Verdict:
    """Judge one item in this process (trusted code, e.g. the masters)."""
    missing = [a for a in item.answers if a not in answers]
    if missing:
        return Verdict(item.grade_id, False, f"answer cell not found: no code cell starts with '#| answer: {missing[0]}'")
    flags = scan_answers([answers[a] for a in item.answers])
    outputs, errors = [], []
    for case in HIDDEN_CASES:
        if flags:
            break
        try:
            outputs.append(student_output(item, answers, case))
            errors.append(None)
        except Exception as err:  # the student's code failed: that is the verdict
            outputs.append(None)
            errors.append(describe_error(err))
    return verdict(item, outputs, errors, flags, answers)


def describe_error(err: BaseException) -> str:
    if isinstance(err, NotImplementedError):
        return "not answered yet: the answer cell still raises NotImplementedError"
    if isinstance(err, NameError):
        return (f"{err}. An answer must work from the notebook's variables alone "
                "(a helper defined in another cell is not part of the answer).")
    return f"{type(err).__name__}: {err}"


_recorded_cells: list[str] = []


def record_cells() -> None:
    """Keep the source of every cell this IPython kernel runs, for ``hidden_check``.

    An IPython ``pre_run_cell`` hook sees each cell as it is run, however the
    notebook is executed (JupyterLab, nbclient, nbval).
    """
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None and _record not in shell.events.callbacks["pre_run_cell"]:
        shell.events.register("pre_run_cell", _record)


def _record(info) -> None:
    _recorded_cells.append(info.raw_cell)


def recorded_answer(answer_id: str) -> str:
    """The source of answer cell ``answer_id`` as this kernel last ran it."""
    source = find_answers(_recorded_cells).get(answer_id)
    if source is None:
        raise LookupError(f"the answer cell '{answer_id}' has not been run in this kernel yet; run it first")
    return source


def hidden_check(grade_id: str) -> bool:
    """Judge ``grade_id`` on hidden inputs from the answer cells this kernel ran.

    Returns True, silently, when the item passes (what a test cell prints is
    the visible check's report); raises HiddenTestFailed with the reason when
    it does not. Needs ``record_cells()`` to have run first.
    """
    result = judge_item(ITEMS_BY_ID[grade_id], find_answers(_recorded_cells))
    if not result.passed:
        raise HiddenTestFailed(result.report())
    return True
