"""Notebook 06's hidden inputs, and what its three kinds (``transformer_gradient``, ``transformer_backward``,
``transformer_training``) share.

A hidden case (``kinds.cases.HIDDEN_CASES``) gives, through its seed, one or
more settings of the transformer's sizes (``TRANSFORMER_SETTINGS``): the
first case the notebook's sizes, the second two others, so that every size
changes (batch B, context length T, embedding size C, heads nh and their size
hs, MLP width M, vocabulary V) and one of them has a single head. Within a
setting B, T, C, hs, 3C, M and V are all different (but for hs = C with one
head), so a size typed in as a number, or one size used for another, shows.
Every size stays in the range the tolerance was measured for
(bench/transformer_tolerance.md: B, T >= 4, B*T <= 1024, C >= 16, hs >= 2).

Each setting draws its parameters and a batch of random characters from its
own seed. The trusted side computes autograd's answers once per process
(``reference_gradients``); the judge's child builds only the forward pass
(``answer_namespace``), which needs no autograd.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch

from ..diagnosis.codes import Diagnosis
from ..diagnosis.diagnose import hardcoded_sizes
from ..exercises import EX6_LINES, Item
from ..workbook import transformer as tr
from .base import Kind
from .cases import HIDDEN_CASES, Case

QUANTITIES = "transformer"  # the namespace of the gradients these kinds hand in and compute (``Kind.given``)


@dataclass(frozen=True)
class Setting:
    """The sizes of one hidden model and batch."""

    batch_size: int  # B
    block_size: int  # T
    n_embd: int  # C
    n_head: int  # nh
    n_mlp: int  # M
    vocab_size: int  # V

    @property
    def config(self) -> tr.TransformerConfig:
        return tr.TransformerConfig(self.block_size, self.n_embd, self.n_head, self.n_mlp, self.vocab_size)

    def sizes(self) -> dict[str, int]:
        """The sizes an answer might type in as numbers, and the products it might (``diagnose.hardcoded_sizes``)."""
        B, T, C, nh = self.batch_size, self.block_size, self.n_embd, self.n_head
        return {"B": B, "T": T, "C": C, "nh": nh, "hs": C // nh, "M": self.n_mlp, "V": self.vocab_size,
                "B * T": B * T, "3 * C": 3 * C}

    def describe(self) -> str:
        B, T, C, nh = self.batch_size, self.block_size, self.n_embd, self.n_head
        return f"B {B}, T {T}, C {C}, nh {nh} (hs {C // nh}), M {self.n_mlp}, V {self.vocab_size}"

    def label(self) -> str:
        """A short name that tells it from the other setting of its case."""
        return f"nh {self.n_head}"


NOTEBOOK_SETTING = Setting(batch_size=24, block_size=16, n_embd=32, n_head=4, n_mlp=128, vocab_size=27)
# The first case keeps the notebook's sizes (with another seed); the second changes every size, twice:
# once with five heads of 4 and an MLP that is not 4C wide, once with a single head.
TRANSFORMER_SETTINGS: dict[int, tuple[Setting, ...]] = {
    HIDDEN_CASES[0].seed: (NOTEBOOK_SETTING,),
    HIDDEN_CASES[1].seed: (Setting(batch_size=6, block_size=11, n_embd=20, n_head=5, n_mlp=52, vocab_size=23),
                           Setting(batch_size=9, block_size=5, n_embd=16, n_head=1, n_mlp=36, vocab_size=19)),
}


def settings(case: Case) -> tuple[Setting, ...]:
    return TRANSFORMER_SETTINGS[case.seed]


def setting_seed(case: Case, index: int) -> int:
    return case.seed + 1000 * index


@functools.lru_cache(maxsize=8)
def _inputs(case: Case, index: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
    setting = settings(case)[index]
    g = torch.Generator().manual_seed(setting_seed(case, index))
    parameters = tuple(p.detach() for p in tr.init_params(g, setting.config))
    Xb, Yb = tr.random_batch(g, setting.batch_size, setting.block_size, setting.vocab_size)
    return parameters, Xb, Yb


def case_inputs(case: Case, index: int) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Fresh copies of setting ``index``'s parameters (no grad) and batch: Xb, Yb (B, T)."""
    parameters, Xb, Yb = _inputs(case, index)
    return [p.clone() for p in parameters], Xb.clone(), Yb.clone()


@functools.lru_cache(maxsize=8)
def _forward(case: Case, index: int) -> tr.Tensors:
    parameters, Xb, Yb = case_inputs(case, index)
    with torch.no_grad():
        return tr.chunked_forward(parameters, Xb, Yb, settings(case)[index].config)


def answer_namespace(case: Case, index: int) -> dict:
    """What a Part 1 answer cell may use on setting ``index``: ``transformer.answer_namespace``, fresh copies.

    Built without autograd (the judge's child calls it); the forward pass is made once per process and
    copied for every trial, so an answer that changes a tensor in place changes only its own copy.
    """
    namespace = tr.answer_namespace(_forward(case, index), settings(case)[index].config)
    return {name: value.clone() if isinstance(value, torch.Tensor) else value for name, value in namespace.items()}


@functools.lru_cache(maxsize=8)
def _reference(case: Case, index: int) -> tuple[dict[str, torch.Tensor], dict]:
    parameters, Xb, Yb = case_inputs(case, index)
    config = settings(case)[index].config
    leaves = [p.requires_grad_(True) for p in parameters]
    with torch.enable_grad():
        forward = tr.chunked_forward(leaves, Xb, Yb, config)
        forward.loss.backward()
    gradients = {f"d{name}": t.grad for name, t in forward.items() if t.grad is not None}
    gradients.update({f"d{name}": p.grad for name, p in zip(tr.PARAM_NAMES, leaves)})
    layer_norm = tr.layer_norm_task(forward)
    heads = tr.attention_head(forward, example=None, head=None)  # every head of every example at once
    gradients.update({"dx_ln": layer_norm.x_ln.grad, "dout_ln": layer_norm.dout_ln, "dy_h": heads.dy_h,
                      **{f"d{name}_h": heads[f"{name}_h"].grad for name in "qkv"}})
    context = {name: value for name, value in tr.answer_namespace(forward, config).items()
               if isinstance(value, (torch.Tensor, int))}
    context.update({name: layer_norm[name] for name in ("x_ln", "gain_ln", "xhat_ln", "rstd_ln", "dout_ln")})
    context.update({name: heads[name] for name in ("q_h", "k_h", "v_h", "att_h", "dy_h")})
    context.update(gradients)
    context["n"] = Xb.numel()  # the loss is a mean over the B*T predictions
    return gradients, context


def partial_gradient(case: Case, index: int, name: str) -> torch.Tensor:
    """``"dx1<ln2_diff"``: the gradient dx1 as the cells before line ln2_diff leave it (autograd's).

    The sum of its contributions through the forward lines (``exercises.EX6_LINES``) whose cells come
    earlier: each line run again on its inputs with the tensor as a leaf, and sent back the gradient of
    its output (``grad_outputs``), so only that use of the tensor counts.
    """
    variable, before = name.split("<")
    tensor = variable[1:]
    namespace = answer_namespace(case, index)
    gradients = reference_gradients(case, index)
    total = torch.zeros_like(namespace[tensor])
    for line in EX6_LINES[: next(i for i, line in enumerate(EX6_LINES) if line.output == before)]:
        if variable in line.grads:
            leaf = namespace[tensor].clone().requires_grad_(True)
            scope = {**namespace, tensor: leaf}
            with torch.enable_grad():
                exec(line.code, scope)  # a forward line of the workbook's model: trusted code
                (contribution,) = torch.autograd.grad(scope[line.output], leaf, grad_outputs=gradients[f"d{line.output}"])
            total += contribution
    return total


def reference_gradients(case: Case, index: int) -> dict[str, torch.Tensor]:
    """Autograd's answers on setting ``index`` of ``case``, as "d<name>": every chunked-forward tensor and
    parameter, Part 2's ``dx_ln`` (and its ``dout_ln``) and the attention head's ``dq_h``, ``dk_h``, ``dv_h``
    (and ``dy_h``) for every head at once, (B, nh, T, hs). Computed once per process; do not change them."""
    return _reference(case, index)[0]


def hidden_context(case: Case, index: int) -> dict:
    """The forward pass, sizes and autograd's answers of setting ``index``, for ``diagnose``'s hints."""
    return _reference(case, index)[1]


class TransformerKind(Kind):
    """What notebook 06's kinds share: the hidden settings, described and sized."""

    shapes_follow_sizes = True

    def describe_case(self, item: Item, case: Case) -> str:
        return "; and ".join(setting.describe() for setting in settings(case))

    def notebook_sizes(self, item: Item) -> dict[str, int]:
        return NOTEBOOK_SETTING.sizes()

    def case_sizes(self, item: Item, case: Case) -> dict[str, int]:
        return settings(case)[0].sizes()

    def hardcoded_size(self, item: Item, notebook: Mapping[str, int], hidden: Mapping[str, int],
                       sources: list[str]) -> Diagnosis | None:
        """A size typed in, but only when one that differs on the hidden case is written in the code: a
        failure with a single head (``.squeeze()`` of the head dimension, ...) is not one."""
        return hardcoded_sizes(notebook, hidden, sources)

    @staticmethod
    def labelled(results: list, case: Case):
        """The first failing setting's result (the first one when all pass), its comparisons named with the
        setting when the case has more than one."""
        chosen = next((index for index, result in enumerate(results) if not result.ok), 0)
        result = results[chosen]
        if len(results) == 1:
            return result
        label = settings(case)[chosen].label()
        return replace(result, comparisons=tuple(replace(c, name=f"{c.name} ({label})") for c in result.comparisons))
