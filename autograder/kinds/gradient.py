"""Kind "gradient" (Exercises 1-3): answer cells that assign one gradient tensor, ``d<name>``.

Item fields (``Item.spec``): ``variable``, the gradient the answer cells
assign ("dcounts"), and ``provided``, per answer cell the upstream gradients
fed in with their correct values before it runs, so that a mistake upstream
costs only its own item.

Visible check: ``cmp``, the student's tensor against autograd's ``<name>.grad``
from the notebook's forward pass. Hidden check: the answer cells run again
on a hidden case's forward pass; the judge hands the child the correct
upstream gradients (``inputs``) and computes the reference itself.

Cascades (``cascade``): a gradient that is wrong only because a gradient its
line reads is wrong gets the diagnosis ``upstream``, decided by running the
line again with the right inputs. ``cmp`` does that in the notebook (the
inputs are compared with their ``.grad``), the lecture checker with the
learner's lines (``autograder.lecture``), which compares through
``compare_gradient`` as the hidden check does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch

from ..diagnosis.codes import upstream
from ..diagnosis.comparison import CheckResult, Comparison, alias_notes, compare
from ..diagnosis.diagnose import context_of
from ..diagnosis.hints import pointer_for_check
from ..exercises import ITEMS, Item
from ..workbook import model
from .base import AnswerRunner, Kind, Report, visible_check
from .cases import Case, gradient_namespace, reference_gradients

QUANTITIES = "mlp"  # the namespace of the gradients this kind hands in and checks (``Kind.given``)


@dataclass(frozen=True)
class GradientItem:
    variable: str  # "dcounts"
    provided: tuple[tuple[str, ...], ...]  # per answer cell, the upstream gradients fed in

    @property
    def tensor(self) -> str:
        """The tensor whose gradient this is: "counts" for "dcounts"."""
        return self.variable[1:]


def spec(item: Item) -> GradientItem:
    return GradientItem(item.spec["variable"], tuple(tuple(p) for p in item.spec["provided"]))


def forward_context(t: torch.Tensor) -> dict | None:
    """What the checker knows of the forward pass that made ``t``, for ``diagnose``'s hints, if any."""
    forward = model.forward_containing(t)
    return None if forward is None else context_of(forward, forward.inputs)


@functools.lru_cache(maxsize=8)
def hidden_context(case: Case) -> dict:
    """The hidden case's forward pass and correct gradients, for ``diagnose``'s hints (trusted side only).

    The same for every student judged on the case: made once per process, and only read.
    """
    context = {k: v for k, v in gradient_namespace(case).items() if isinstance(v, (torch.Tensor, int))}
    context.update(reference_gradients(case))
    return context


def names_read(source: str) -> set[str]:
    """Every identifier in ``source``: an upstream gradient the cell never names is not handed to it."""
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source))


def compare_gradient(tensor: str, got: object, expected: torch.Tensor, context: Mapping | None = None) -> Comparison:
    """A gradient of ``tensor`` against its reference: the one comparison of every gradient check (strict shapes)."""
    return compare(tensor, got, expected, context)


def cascade(as_written: Comparison, isolated: Comparison | None, wrong_inputs: list[str]) -> Comparison:
    """The verdict on a line as written, explained by the same line run with right inputs.

    ``as_written`` compares the gradient the learner's code made; when it
    failed and the line read gradients that are themselves wrong
    (``wrong_inputs``), ``isolated`` compares what the same line makes from the
    right ones: if that passes, the failure is a cascade (``upstream``: fix
    those first); if not, the line has a mistake of its own, diagnosed from
    ``isolated``, where the inputs no longer blur it. The verdict stays the
    one on ``as_written``: it is what the learner's own check shows.
    """
    if as_written.ok or not wrong_inputs or isolated is None:
        return as_written
    if isolated.ok:
        found = upstream(wrong_inputs)
        return replace(as_written, hint=found.message, code=found.code)
    if isolated.maxdiff is None and as_written.maxdiff is not None:
        return as_written  # the isolated run says less (no values to compare): keep what was seen
    return replace(as_written, hint=isolated.hint, code=isolated.code)


class GradientKind(Kind):
    name = "gradient"
    shapes_follow_sizes = True

    @visible_check
    def cmp(self, name: str, dt: object, t: torch.Tensor, *, namespace: Mapping | None = None,
            runner: AnswerRunner | None = None) -> Report:
        """Compare ``dt``, your gradient of the tensor ``t`` (named ``name``), with autograd's ``t.grad``.

        ``cmp("logprobs", dlogprobs, logprobs)``: ``t`` must have taken part in
        a ``loss.backward()`` with ``retain_grad()`` (the forward helpers do
        that). The line names the largest difference, the expected shape and
        the tolerance; a failure names the likely mistake and the hint for it,
        or, when your line is right but a gradient it uses is not, that one.
        """
        if not isinstance(t, torch.Tensor) or t.grad is None:
            raise ValueError(f"{name}: the reference has no .grad; run the forward pass and loss.backward() first")
        result = self.check(name, dt, t, namespace or {}, runner=runner)
        return Report(result, tuple(result.lines()))

    def check(self, name: str, got: object, tensor: torch.Tensor, namespace: Mapping,
              answers: Mapping[str, str] | None = None, runner: AnswerRunner | None = None) -> CheckResult:
        """``got``, the student's d<name>, against ``tensor.grad``.

        Notes point to the collapsed hint for the diagnosed mistake, and name
        the other gradient variables of ``namespace`` that share ``got``'s
        memory (unless the diagnosis already says so). With a ``runner`` and
        the answer cells (``answers``, by default those this kernel ran), a
        failure is checked for a cascade (``notebook_cascade``).
        """
        result = compare_gradient(name, got, tensor.grad, forward_context(tensor))
        if not result.ok and runner is not None:
            result = self.notebook_cascade(name, result, tensor, namespace, answers, runner)
        pointer = pointer_for_check(self.items_checking(name), result.code) if not result.ok else None
        aliases = [] if result.code == "alias" else alias_notes(f"d{name}", got, namespace)  # said once is enough
        notes = ([pointer] if pointer else []) + aliases
        return CheckResult((result,), notes=tuple(notes))

    def notebook_cascade(self, name: str, result: Comparison, tensor: torch.Tensor, namespace: Mapping,
                         answers: Mapping[str, str] | None, runner: AnswerRunner) -> Comparison:
        """``result`` explained by ``cascade``: the item's answer cells run again on a copy of the notebook's
        variables, each upstream gradient they read set to its ``.grad``; unchanged when nothing upstream is wrong.

        Never raises: the explanation is a courtesy, the verdict is ``result``.
        """
        try:
            if answers is None:
                from ..cells import recorded_answers

                answers = recorded_answers()
            for grade_id in self.items_checking(name):
                item = next(i for i in ITEMS if i.grade_id == grade_id)
                if all(a in answers for a in item.answers):
                    return self._cascade_of(item, result, tensor, namespace, answers, runner)
        except Exception:
            pass
        return result

    def _cascade_of(self, item: Item, result: Comparison, tensor: torch.Tensor, namespace: Mapping,
                    answers: Mapping[str, str], runner: AnswerRunner) -> Comparison:
        details = spec(item)
        read = [{u for u in provided if u in names_read(answers[a])} for a, provided in zip(item.answers, details.provided)]
        wrong = []
        for name in dict.fromkeys(u for names in read for u in sorted(names)):
            value, forward = namespace.get(name), namespace.get(name[1:])
            if (isinstance(forward, torch.Tensor) and forward.grad is not None
                    and not compare_gradient(name[1:], value, forward.grad).ok):
                wrong.append(name)
        if not wrong:
            return result
        scope = {key: value.detach().clone() if isinstance(value, torch.Tensor) else value
                 for key, value in namespace.items()}  # the notebook's own tensors stay as they are
        with torch.no_grad():
            for answer, names in zip(item.answers, read):
                scope.update({u: namespace[u[1:]].grad.detach().clone() for u in names})
                runner.run_cell(answers[answer], answer, scope)
        isolated = compare_gradient(details.tensor, scope.get(details.variable), tensor.grad, forward_context(tensor))
        return cascade(result, isolated, wrong)

    @staticmethod
    def items_checking(tensor: str) -> list[str]:
        """The graded items whose gradient is that of ``tensor`` (``dlogits``: Exercises 1 and 2, notebook 06).

        Every item with a ``variable`` (this kind's, and notebook 06's ``transformer_gradient``) is checked by cmp.
        """
        return [item.grade_id for item in ITEMS if "variable" in item.spec and spec(item).tensor == tensor]

    # ---- the hidden check
    def given(self, item: Item) -> frozenset[str]:
        return frozenset(f"{QUANTITIES}:{name}" for names in spec(item).provided for name in names)

    def computes(self, item: Item) -> frozenset[str]:
        return frozenset({f"{QUANTITIES}:{spec(item).variable}"})

    def reads(self, item: Item, sources: Mapping[str, str]) -> frozenset[str]:
        provided = {name for names in spec(item).provided for name in names}
        read = set().union(*(names_read(sources.get(a, "")) for a in item.answers))
        return frozenset(f"{QUANTITIES}:{name}" for name in provided & read)

    def inputs(self, item: Item, case: Case, sources: Mapping[str, str] | None = None) -> dict:
        """The correct upstream gradients the answer cells are fed; only those their code names, when known."""
        wanted = {name for names in spec(item).provided for name in names}
        if sources is not None:
            read = set().union(*(names_read(sources.get(a, "")) for a in item.answers))
            wanted &= read
        correct = reference_gradients(case)
        return {name: correct[name] for name in sorted(wanted)}

    def run(self, item: Item, sources: Mapping[str, str], case: Case, inputs: Mapping, runner: AnswerRunner):
        details = spec(item)
        namespace = gradient_namespace(case)
        for answer, provided in zip(item.answers, details.provided):
            namespace.update({name: inputs[name].clone() for name in provided if name in inputs})
            runner.run_cell(sources[answer], answer, namespace)
        if details.variable not in namespace:
            raise NameError(f"the answer cells never assign {details.variable}")
        return namespace[details.variable]

    def reference(self, item: Item, case: Case) -> torch.Tensor:
        return reference_gradients(case)[spec(item).variable]

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        return CheckResult((compare_gradient(spec(item).tensor, got, expected, hidden_context(case)),))

    # ---- the notebook
    def label(self, item: Item) -> str:
        return spec(item).variable

    def shape(self, item: Item, namespace: Mapping) -> tuple[int, ...] | None:
        tensor = namespace.get(spec(item).tensor)
        return tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else None

    def tensor(self, item: Item) -> str:
        return spec(item).tensor

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str],
              runner: AnswerRunner | None = None) -> Report:
        details = spec(item)
        if details.variable not in namespace:
            if all(a in answers for a in item.answers):  # the cells ran, yet the variable never came to be
                result = CheckResult(problem=f"{details.variable} is not defined: its answer cell stopped with an "
                                             "error before assigning it (an earlier answer missing?)")
                return Report(result, tuple(result.lines()))
            raise NotImplementedError
        reference = namespace.get(details.tensor)
        if not isinstance(reference, torch.Tensor) or reference.grad is None:
            raise LookupError(f"{details.tensor}.grad is missing")
        result = self.check(details.tensor, namespace[details.variable], reference, namespace, answers, runner)
        return Report(result, tuple(result.lines()))

    def cheating_answer(self, item: Item, answer_id: str, solution: str) -> str:
        names = re.findall(r"^(d[A-Za-z0-9_]+)\s*\+?=", solution, re.M)
        return "".join(f"{name} = {name[1:]}.grad.clone()\n" for name in dict.fromkeys(names)) or solution
