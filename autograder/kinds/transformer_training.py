"""Kind "transformer_training" (notebook 06, Part 3): ``manual_backward`` training the transformer with Adam.

Item fields (``Item.spec``): ``functions``, the function its answer cell defines.

Visible check: ``check_training_run``, on the notebook's own run
(``transformer_training.train``): at every logged step its loss against
autograd's run on the same minibatches, within ``TRAINED_LOSS_ATOL``.
Hidden check: HIDDEN_STEPS steps of Adam (``transformer_training.adam_losses``)
on every setting of a hidden case, from its parameters, on minibatches of a
random stream of its vocabulary, with the student's gradients and with
autograd's: the loss of every step within ``TRAINED_LOSS_ATOL`` of the other
run's. (Adam divides each gradient by its running size, so a gradient off by a
constant factor trains alike; that mistake is ``transformer_backward``'s to find.)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch

from ..diagnosis.comparison import CheckResult, Comparison
from ..exercises import Item
from ..workbook import transformer as tr
from ..workbook.transformer_training import TRAINED_LOSS_ATOL, TrainingRun, adam_losses
from .backward_function import AUTOGRAD_BACKWARD
from .base import AnswerRunner, FunctionsKind, Report, visible_check
from .cases import Case
from .transformer_backward import load_backward
from .transformer_cases import QUANTITIES, TransformerKind, case_inputs, setting_seed, settings

HIDDEN_STEPS = 30  # of the hidden check's run, per setting
STREAM_LENGTH = 4096  # characters of the random stream its minibatches come from


@functools.lru_cache(maxsize=8)
def _stream(case: Case, index: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(setting_seed(case, index) + 1)
    return torch.randint(0, settings(case)[index].vocab_size, (STREAM_LENGTH,), generator=g)


def hidden_run(case: Case, index: int, backward, guard=None) -> list[float]:
    """The losses of HIDDEN_STEPS Adam steps on setting ``index`` of ``case`` with ``backward``'s gradients."""
    setting = settings(case)[index]
    parameters, _, _ = case_inputs(case, index)
    generator = torch.Generator().manual_seed(setting_seed(case, index) + 2)
    return adam_losses(parameters, backward, setting.config, _stream(case, index), HIDDEN_STEPS, generator,
                       setting.batch_size, guard=guard)


def loss_gaps(losses, reference: list[float], tolerance: float, steps: list[int] | None = None,
              when: str = "") -> CheckResult:
    """Each step's loss against the reference run's (``steps``: which, by default all); fails past ``tolerance``."""
    if not isinstance(losses, list) or len(losses) != len(reference) \
            or not all(isinstance(x, float) for x in losses):
        return CheckResult(problem=f"expected {len(reference)} losses from the training run, got "
                                   f"{len(losses) if isinstance(losses, list) else type(losses).__name__}")
    steps = list(range(len(reference))) if steps is None else steps
    comparisons = []
    for i in steps:
        gap = abs(losses[i] - reference[i])
        ok = gap <= tolerance  # NaN fails
        problem = "" if ok else (f"{when}at step {i} the loss is {losses[i]:.6f} where autograd's run has "
                                 f"{reference[i]:.6f}: {gap:.1e} apart (tolerance {tolerance:.0e})")
        comparisons.append(Comparison(f"step {i}", ok, losses[i] == reference[i], gap, tolerance, None, problem,
                                      code="" if ok else "none"))
    return CheckResult(tuple(comparisons))


def gap_lines(result: CheckResult, losses: list[float], reference: list[float]) -> list[str]:
    """What ``check_training_run`` prints: a line per logged step, then the largest gap."""
    if result.problem:
        return [result.problem]
    lines = []
    for c in result.comparisons:
        i = int(c.name.split()[1])
        lines.append(f"step {i:6d}: loss {losses[i]:.6f}, autograd's {reference[i]:.6f}, gap {c.maxdiff:.1e}"
                     f"{'' if c.ok else '  <- too far'}")
    largest = max(c.maxdiff for c in result.comparisons)
    lines.append(f"largest gap {largest:.1e} (tolerance {result.comparisons[0].tolerance:.0e})")
    return lines


class TransformerTrainingKind(TransformerKind, FunctionsKind):
    """Notebook 06's ``manual_backward`` driving Adam, beside autograd."""

    name = "transformer_training"

    @visible_check
    def check_training_run(self, run: TrainingRun, tolerance: float = TRAINED_LOSS_ATOL) -> Report:
        """At every logged step of ``run`` (``transformer_training.train``), its loss against autograd's run.

        The two runs start from the same parameters and see the same
        minibatches; a line per logged step gives both losses and their gap,
        and the check passes when every gap is within ``tolerance``.
        """
        result = self.check(run, tolerance)
        lines = gap_lines(result, run.losses, run.reference_losses) if not result.problem else [result.problem]
        return Report(result, tuple(lines))

    def check(self, run: TrainingRun, tolerance: float = TRAINED_LOSS_ATOL) -> CheckResult:
        if not isinstance(run, TrainingRun):
            return CheckResult(problem=f"expected the TrainingRun that train(...) returns, got {type(run).__name__}")
        if not run.reference_losses:
            return CheckResult(problem="the run has no autograd run beside it: train(..., reference=True)")
        return loss_gaps(run.losses, run.reference_losses, tolerance, run.logged_steps())

    # ---- the hidden check
    def computes(self, item: Item) -> frozenset[str]:
        return frozenset({f"{QUANTITIES}:training"})

    def run(self, item: Item, sources: Mapping[str, str], case: Case, inputs: Mapping, runner: AnswerRunner) -> list:
        """Per setting of ``case``, the loss of every step of its run with the student's gradients."""
        backward = load_backward(item, sources, runner)
        return [hidden_run(case, index, backward, runner.forbidden) for index in range(len(settings(case)))]

    def reference(self, item: Item, case: Case) -> list[list[float]]:
        return [hidden_run(case, index, tr.autograd_backward) for index in range(len(settings(case)))]

    def compare(self, item: Item, got, expected, case: Case) -> CheckResult:
        outputs = got if isinstance(got, list) and len(got) == len(expected) else [got] + [None] * (len(expected) - 1)
        return self.labelled([loss_gaps(value, reference, TRAINED_LOSS_ATOL, when=f"after {HIDDEN_STEPS} Adam steps, ")
                              for value, reference in zip(outputs, expected)], case)

    def describe_case(self, item: Item, case: Case) -> str:
        return f"{HIDDEN_STEPS} Adam steps from {super().describe_case(item, case)}"

    # ---- the notebook
    def label(self, item: Item) -> str:
        return super().label(item) + ", the training run"

    def probe(self, item: Item, namespace: Mapping, answers: Mapping[str, str]) -> Report:
        self.notebook_functions(item, namespace)  # not attempted while manual_backward is not defined
        run = namespace.get("run")
        if not isinstance(run, TrainingRun):
            raise LookupError("run is missing: run the training cell")
        return self.check_training_run(run)

    def cheating_answer(self, item: Item, answer_id: str, solution: str) -> str:
        return AUTOGRAD_BACKWARD.format(names=", ".join(f"d{name}" for name in tr.PARAM_NAMES))
