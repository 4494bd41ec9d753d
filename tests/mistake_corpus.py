"""A corpus of realistic mistakes, each planted the way a student would write it, and the diagnosis it must get.

Three kinds of entries:

* ``Line``: Exercise 1 lines run on the lecture's batch after
  ``loss.backward()`` (upstream gradients from autograd unless the lines
  compute them), then ``compare`` with the forward pass as context, as ``cmp``,
  the scoreboard and the judge do;
* ``Answer``: an answer cell judged on the hidden cases (``verdict.judge_item``),
  for the mistakes that show only there or only for a whole function;
* ``Cascade``: all of Exercise 1's answer cells (the master's, one line
  changed) run in order in one namespace, as in the notebook, and a gradient
  after the changed line checked as ``cmp`` checks it there (with the answer
  cells, so that a cascade can be told from a mistake of its own).

Every entry names the diagnosis code it must get, words its message must
contain, and words it must not (the opposite advice, a wrong cause).
``python -m tests.mistake_corpus`` prints how many get their code.
"""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autograder.cells import find_answers
from autograder.diagnosis.codes import CODES
from autograder.diagnosis.comparison import compare
from autograder.diagnosis.diagnose import context_of
from autograder.exercises import ITEMS_BY_ID
from autograder.judge.verdict import judge_item
from autograder.workbook import model


@dataclass(frozen=True)
class Line:
    """Exercise 1 lines that leave ``d<tensor>`` wrong."""

    tensor: str
    code: str
    diagnosis: str
    words: tuple[str, ...] = ()
    never: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answer:
    """An answer cell (``answer_id`` -> body) that makes graded item ``grade_id`` fail on the hidden cases."""

    grade_id: str
    answer_id: str
    body: str
    diagnosis: str
    words: tuple[str, ...] = ()
    never: tuple[str, ...] = ()
    edit: tuple[str, str] = ()  # (old, new): the master's answer cell with this one change, instead of ``body``


# dbnvar with epsilon subtracted, and everything the notebook derives from it
EPS_BUG = "dbnvar = (-0.5 * (bnvar - 1e-5)**-1.5) * dbnvar_inv\n"
EPS_BNDIFF2 = EPS_BUG + "dbndiff2 = (1.0 / (n - 1)) * torch.ones_like(bndiff2) * dbnvar\n"
EPS_BNDIFF = EPS_BNDIFF2 + "dbndiff = bnvar_inv * dbnraw\ndbndiff += (2 * bndiff) * dbndiff2\n"
EPS_HPREBN = EPS_BNDIFF + ("dhprebn = dbndiff.clone()\ndbnmeani = (-dbndiff).sum(0, keepdim=True)\n"
                           "dhprebn += 1.0 / n * (torch.ones_like(hprebn) * dbnmeani)\n")
EPS_C = EPS_HPREBN + ("dembcat = dhprebn @ W1.T\ndW1 = embcat.T @ dhprebn\ndemb = dembcat.view(emb.shape)\n"
                      "dC = torch.zeros_like(C)\ndC.index_add_(0, Xb.view(-1), demb.view(-1, C.shape[1]))\n")
EPSILON_WORDS = ("epsilon", "variance is smallest", "bnvar + 1e-5")
NOT_A_FACTOR = ("factor",)

LINES: dict[str, Line] = {
    # shapes
    "db1 summed with keepdim=True": Line("b1", "db1 = dhprebn.sum(0, keepdim=True)", "shape.extra_dim",
                                         ("extra dimension", "(1, 64) should be (64,)", "without keepdim=True"),
                                         ("missing", "keepdim=True keeps", "with keepdim=True")),
    "db2 summed with keepdim=True": Line("b2", "db2 = dlogits.sum(0, keepdim=True)", "shape.extra_dim",
                                         ("extra dimension", "(1, 27) should be (27,)", "without keepdim=True"),
                                         ("missing", "with keepdim=True")),
    "dbnmeani without keepdim": Line("bnmeani", "dbnmeani = (-dbndiff).sum(0)", "shape.missing_dim",
                                     ("missing", "(64,) should be (1, 64)", "with keepdim=True"),
                                     ("extra", "without keepdim")),
    "dbnbias without keepdim": Line("bnbias", "dbnbias = dhpreact.sum(0)", "shape.missing_dim",
                                    ("missing", "with keepdim=True"), ("extra", "without keepdim")),
    "dcounts_sum without keepdim": Line("counts_sum", "dcounts_sum = (-counts_sum**-2 * dcounts_sum_inv).sum(1)",
                                        "shape.missing_dim", ("missing", "with keepdim=True"), ("extra",)),
    "dW2 transposed": Line("W2", "dW2 = dlogits.T @ h", "shape.transposed", ("transposed", "swap the operands")),
    "dbndiff2 not broadcast": Line("bndiff2", "dbndiff2 = (1.0 / (n - 1)) * dbnvar", "shape.broadcast_hidden",
                                   ("broadcasts", "(1, 64)", "(32, 64)")),
    "dbngain not summed": Line("bngain", "dbngain = bnraw * dhpreact", "shape.missing_sum",
                               ("(32, 64) where (1, 64) is expected", "sum over those dimensions", "values would be right"),
                               ("keepdim",)),
    "db1 not summed": Line("b1", "db1 = dhprebn.clone()", "shape.missing_sum", ("over dimension 0",)),
    "db2 summed over the batch's other dimension": Line("b2", "db2 = dlogits.sum(1)", "shape.wrong_dim",
                                                        ("wrong dimension",)),
    "dcounts_sum_inv summed over the batch": Line(
        "counts_sum_inv", "dcounts_sum_inv = (counts * dprobs).sum(0, keepdim=True)", "shape.wrong_dim",
        ("wrong dimension",)),
    "demb left flat": Line("emb", "demb = dembcat.clone()", "shape.view", ("values are right", "(32, 3, 10)")),
    # values
    "dnorm_logits sign": Line("norm_logits", "dnorm_logits = -counts * dcounts", "sign", ("sign flipped",)),
    "dlogprobs without 1/n": Line("logprobs", "dlogprobs = torch.zeros_like(logprobs); dlogprobs[range(n), Yb] = -1.0",
                                  "scale.1/n", ("factor of 32", "1/n (the mean's) is missing")),
    "dlogprobs with 1/n twice": Line(
        "logprobs", "dlogprobs = torch.zeros_like(logprobs); dlogprobs[range(n), Yb] = -1.0 / n**2", "scale.1/n",
        ("1/n is applied twice",)),
    "dbndiff2 with 1/n": Line("bndiff2", "dbndiff2 = (1.0 / n) * torch.ones_like(bndiff2) * dbnvar", "scale.bessel",
                              ("Bessel",)),
    "dh times 3": Line("h", "dh = 3 * dlogits @ W2.T", "scale.other", ("constant factor of 3",)),
    "dbnvar without the 0.5": Line("bnvar", "dbnvar = -(bnvar + 1e-5)**-1.5 * dbnvar_inv", "scale.other",
                                   ("factor of 2",)),
    "dbnvar epsilon sign": Line("bnvar", EPS_BUG, "epsilon", EPSILON_WORDS, NOT_A_FACTOR),
    "dbndiff2 after the epsilon sign": Line("bndiff2", EPS_BNDIFF2, "epsilon", EPSILON_WORDS, NOT_A_FACTOR),
    "dbndiff after the epsilon sign": Line("bndiff", EPS_BNDIFF, "epsilon", EPSILON_WORDS, NOT_A_FACTOR),
    "dhprebn after the epsilon sign": Line("hprebn", EPS_HPREBN, "epsilon", EPSILON_WORDS, NOT_A_FACTOR),
    "dW1 after the epsilon sign": Line("W1", EPS_C, "epsilon", EPSILON_WORDS, NOT_A_FACTOR),
    "dC after the epsilon sign": Line("C", EPS_C, "epsilon", EPSILON_WORDS, NOT_A_FACTOR),
    "dcounts overwritten": Line("counts", "dcounts = counts_sum_inv * dprobs\ndcounts = torch.ones_like(counts) * dcounts_sum",
                                "branch.missing", ("only one of the two uses", "+=")),
    "dbndiff first use only": Line("bndiff", "dbndiff = bnvar_inv * dbnraw", "branch.missing", ("+=",)),
    "dhprebn first use only": Line("hprebn", "dhprebn = dbndiff.clone()", "branch.missing", ("+=",)),
    "dprobs copied from dlogprobs": Line("probs", "dprobs = dlogprobs.clone()", "other_tensor",
                                         ("dlogprobs, the gradient of logprobs",)),
    "dh is h": Line("h", "dh = h.detach().clone()", "other_tensor", ("h itself",)),
    "dprobs local only": Line("probs", "dprobs = 1.0 / probs", "local_only", ("local derivative alone",)),
    "dhpreact local only": Line("hpreact", "dhpreact = 1.0 - h**2", "local_only", ("chain rule",)),
    "dC scatter": Line("C", "dC = torch.zeros_like(C); dC[Xb] += demb", "scatter.repeats", ("index_add_",)),
    "dbndiff aliased by dhprebn": Line("bndiff", "dhprebn = dbndiff\ndhprebn += 1.0 / n * (torch.ones_like(hprebn) * dbnmeani)",
                                       "alias", (".clone()", "dhprebn = dbndiff", "same tensor")),
    "dC from ones_like": Line("C", "dC = torch.ones_like(C)\ndC.index_add_(0, Xb.view(-1), demb.view(-1, C.shape[1]))",
                              "offset", ("same amount", "+1", "ones_like")),
    "dC left at zero": Line("C", "dC = torch.zeros_like(C)", "zeros", ("all zeros",)),
    "dbnvar with 1.0 for epsilon": Line("bnvar", "dbnvar = (-0.5 * (bnvar - 1.0)**-1.5) * dbnvar_inv", "nan",
                                        ("division by zero",)),
    "dlogits from one_hot alone": Line("logits", "dlogits = F.one_hot(logits.max(1).indices, logits.shape[1])",
                                       "int_dtype", ("float",)),
    "dhprebn off by something else": Line("hprebn", "dhprebn = dbndiff + 0.01 * torch.ones_like(hprebn)", "none",
                                          ("no specific diagnosis",)),
    "dprobs never assigned": Line("probs", "dprobs = None", "unknown", ()),
}

LINES.update({
    # a neighbouring tensor where the local derivative belongs
    "dbndiff2 from bndiff": Line("bndiff2", "dbndiff2 = (1.0 / (n - 1)) * bndiff * dbnvar", "local_other",
                                 ("bndiff times dbnvar", "local derivative of `bnvar")),
    "dprobs times probs": Line("probs", "dprobs = probs * dlogprobs", "local_other",
                               ("probs times dlogprobs", "`logprobs = probs.log()`"), ("sign", "factor")),
    "dhpreact from h": Line("hpreact", "dhpreact = h * dh", "local_other", ("h times dh", "torch.tanh(hpreact)")),
})


@dataclass(frozen=True)
class Cascade:
    """Exercise 1 with one line of the master's answer cell ``answer_id`` changed; ``d<tensor>``, checked after."""

    tensor: str
    answer_id: str
    old: str
    new: str
    diagnosis: str
    words: tuple[str, ...] = ()
    never: tuple[str, ...] = ()


TYPO = ("ex1_line_h", "dhpreact = (1.0 - h**2) * dh", "dhpreact = (1 - h**2) + dh")
OVERWRITTEN = ("ex1_line_logit_maxes", "dlogits += F.one_hot", "dlogits = F.one_hot")
CASCADES: dict[str, Cascade] = {
    "dhpreact's typo, at dhpreact": Cascade("hpreact", *TYPO, "none", ("no specific diagnosis",)),
    "dhpreact's typo, at dbngain": Cascade("bngain", *TYPO, "upstream", ("looks right", "`dhpreact`", "fix that first")),
    "dhpreact's typo, at dbnraw": Cascade("bnraw", *TYPO, "upstream", ("`dhpreact`",)),
    "dhpreact's typo, at dC": Cascade("C", *TYPO, "upstream", ("`demb`",)),
    "dlogits overwritten, at dlogits": Cascade("logits", *OVERWRITTEN, "branch.missing", ("+=",)),
    "dlogits overwritten, at dh": Cascade("h", *OVERWRITTEN, "upstream", ("`dlogits`", "fix that first")),
    "dlogits overwritten, at dW2": Cascade("W2", *OVERWRITTEN, "upstream", ("`dlogits`",)),
    "dlogits overwritten, at db2": Cascade("b2", *OVERWRITTEN, "upstream", ("`dlogits`",)),
    "dbnvar without 0.5, at dbndiff": Cascade("bndiff", "ex1_line_bnvar_inv", "-0.5 *", "-1.0 *", "upstream",
                                              ("`dbndiff2`",), ("factor",)),
}


def exercise_1_with(master_answers: dict[str, str], mistake: Cascade) -> dict[str, str]:
    source = master_answers[mistake.answer_id]
    assert mistake.old in source, f"{mistake.old!r} is not in {mistake.answer_id}"
    return {**master_answers, mistake.answer_id: source.replace(mistake.old, mistake.new, 1)}


def diagnose_cascade(mistake: Cascade, master_answers: dict[str, str]) -> tuple[bool, str, str]:
    """(passed, code, message) of the notebook's check of ``d<tensor>`` after all of Exercise 1 ran."""
    from autograder.exercises import EX1_LINES
    from autograder.judge.untrusted import IN_PROCESS
    from autograder.kinds import KINDS

    ns = notebook_batch()
    answers = exercise_1_with(master_answers, mistake)
    scope = dict(ns)
    for line in EX1_LINES:
        IN_PROCESS.run_cell(answers[line.answer_id], line.answer_id, scope)
    result = KINDS["gradient"].check(mistake.tensor, scope[f"d{mistake.tensor}"], ns[mistake.tensor], scope, answers,
                                     IN_PROCESS)
    return result.ok, result.code, result.reason()


EX4_RETURN = "    return [dC, dW1, db1, dW2, db2, dbngain, dbnbias]"
ORDER = ("[dC, dW1, db1, dW2, db2, dbngain, dbnbias]",)


def _ex4_returning(returned: str, master: str) -> str:
    return master.replace(EX4_RETURN, f"    return {returned}")


ANSWERS: dict[str, Answer] = {
    "ex4 bngain and bnbias swapped": Answer("ex4_backward", "ex4_manual_backward",
                                            "[dC, dW1, db1, dW2, db2, dbnbias, dbngain]", "order",
                                            ORDER + ("dbnbias is where dbngain belongs",), ("wrong dimension", "broadcasts")),
    "ex4 in the order of the backward pass": Answer("ex4_backward", "ex4_manual_backward",
                                                    "[dW2, db2, dbngain, dbnbias, dW1, db1, dC]", "order", ORDER,
                                                    ("wrong dimension", "broadcasts")),
    "ex4 one gradient twice": Answer("ex4_backward", "ex4_manual_backward",
                                     "[dC, dW1, db1, dW2, db2, dbnbias, dbnbias]", "order",
                                     ORDER + ("dbnbias is where dbngain belongs",)),
    "dlogprobs of shape (32, 27)": Answer("ex1_dlogprobs", "ex1_line_loss", """
        dlogprobs = torch.zeros((32, 27))
        dlogprobs[range(n), Yb] = -1.0 / n
        """, "hardcoded_size", ("works on the notebook's sizes", "32 appears in your code; the hidden case has n = 20")),
    "dlogprobs divided by 32": Answer("ex1_dlogprobs", "ex1_line_loss", """
        dlogprobs = torch.zeros_like(logprobs)
        dlogprobs[range(n), Yb] = -1.0 / 32
        """, "hardcoded_size", ("32 appears in your code; the hidden case has n = 20",)),
    "dC through reshape(96, 10)": Answer("ex1_dC", "ex1_line_emb", """
        dC = torch.zeros_like(C)
        dC.index_add_(0, Xb.view(-1), demb.reshape(96, 10))
        """, "hardcoded_size", ("96 appears in your code; the hidden case has n * block_size = 60",
                                "10 appears in your code; the hidden case has n_embd = 6")),
    "dbnbias viewed as (1, 64)": Answer("ex1_dbnbias", "ex1_line_hpreact", """
        dbngain = (bnraw * dhpreact).sum(0, keepdim=True)
        dbnbias = dhpreact.sum(0).view(1, 64)
        dbnraw = bngain * dhpreact
        """, "hardcoded_size", ("64 appears in your code; the hidden case has n_hidden = 48",)),
    "ex4 with n = 32": Answer("ex4_backward", "ex4_manual_backward", "n = 32", "hardcoded_size",
                              ("32 appears in your code; the hidden case has n = 20",)),
    "dbnvar epsilon sign, hidden": Answer("ex1_dbnvar", "ex1_line_bnvar_inv", EPS_BUG, "epsilon", EPSILON_WORDS,
                                          NOT_A_FACTOR),
    # notebook 06: each planted in the master's answer cell, judged on the hidden settings
    **{label: Answer(grade_id, answer_id, "", code, words, never, (old, new)) for label, (grade_id, answer_id, old, new,
                                                                                     code, words, never) in {
        "ex6 LayerNorm variance with Bessel's correction": (
            "ex6_dlnf_diff", "ex6_line_lnf_var", "2 / C", "2 / (C - 1)", "layernorm.bessel",
            ("C - 1", "divides by C"), NOT_A_FACTOR),
        "ex6 fused LayerNorm with C/(C-1)": (
            "ex6_dx_ln", "ex6_ln_fused", "- xhat_ln *", "- C / (C - 1) * xhat_ln *", "layernorm.bessel",
            ("C / (C - 1) on the x-hat term", "no n/(n-1) here"), NOT_A_FACTOR),
        "ex6 LayerNorm epsilon subtracted": (
            "ex6_dlnf_var", "ex6_line_lnf_rstd", "lnf_var + 1e-5", "lnf_var - 1e-5", "epsilon",
            ("epsilon", "variance is smallest", "var + 1e-5"), NOT_A_FACTOR),
        "ex6 LayerNorm epsilon left out": (
            "ex6_dln1_var", "ex6_line_ln1_rstd", "ln1_var + 1e-5", "ln1_var", "epsilon", ("epsilon",), NOT_A_FACTOR),
        "ex6 attention scale missing": (
            "ex6_dscores", "ex6_line_scaled", "hs**-0.5 * dscaled", "dscaled", "attention.scale",
            ("sqrt(hs) = sqrt(8)", "is missing"), ("twice",)),
        "ex6 attention scale twice, one head": (
            "ex6_dk_h", "ex6_attention_head", " * hs**-0.5", " * hs**-1.0", "attention.scale",
            ("1/sqrt(hs)", "applied twice"), ("missing",)),
        "ex6 softmax without its row sum, one head": (
            "ex6_dq_h", "ex6_attention_head", "att_h * (datt_h - (att_h * datt_h).sum(-1, keepdim=True))",
            "att_h * datt_h", "softmax.row_sum", ("row-sum",), ()),
        "ex6 softmax without the att_sum branch": (
            "ex6_datt_exp", "ex6_line_att_sum", "datt_exp += datt_sum", "pass", "branch.missing",
            ("only one of the two uses of att_exp", "through att)", "it also feeds att_sum"), ()),
        "ex6 K not transposed": (
            "ex6_dk", "ex6_line_scores", "dk = dscores.transpose(-2, -1) @ q", "dk = dscores @ q",
            "attention.k_transpose", ("the keys' gradient from dS",), ()),
        "ex6 Q from the transposed scores, one head": (
            "ex6_dq_h", "ex6_attention_head", "dq_h = dscores_h @ k_h", "dq_h = dscores_h.T @ k_h",
            "attention.k_transpose", ("the queries' gradient",), ()),
        "ex6 a gradient in the masked future": (
            "ex6_dmasked", "ex6_line_att_exp", "dmasked = att_exp * datt_exp",
            "dmasked = (scaled - att_max).exp() * datt_exp", "attention.future_leak", ("above the diagonal",), ()),
        "ex6 one head through the unmasked softmax": (
            "ex6_dq_h", "ex6_attention_head", "dv_h = att_h.T @ dy_h",
            "att_h = torch.softmax(q_h @ k_h.T * hs**-0.5, -1)\ndv_h = att_h.T @ dy_h", "attention.future_leak",
            ("without its causal mask",), ()),
        "ex6 block with the scale missing": (
            "ex6_backward", "ex6_manual_backward", " * hs**-0.5  # softmax and scale", "  # softmax and scale",
            "attention.scale", ("bqkv", "is missing"), ()),
        "ex6 block without the row sum": (
            "ex6_backward", "ex6_manual_backward", "dscores = att * (datt - (att * datt).sum(-1, keepdim=True))",
            "dscores = att * datt", "softmax.row_sum", ("row-sum",), ()),
        "ex6 dx1 overwritten by the LayerNorm's part": (
            "ex6_dx1", "ex6_line_ln2_diff", "dx1 += dln2_diff", "dx1 = dln2_diff", "branch.missing",
            ("only one of the two uses of x1", "through ln2", "residual sum x2"), ()),
        "ex6 dh_pre overwritten by GELU's inner part": (
            "ex6_dh_pre", "ex6_line_gelu_in", "dh_pre +=", "dh_pre =", "branch.missing",
            ("only one of the two uses of h_pre",), ()),
        "ex6 dWo transposed": (
            "ex6_dWo", "ex6_line_attn_out", "y.reshape(B * T, C).T @ dattn_out.reshape(B * T, C)",
            "dattn_out.reshape(B * T, C).T @ y.reshape(B * T, C)", "shape.transposed", ("the transpose",), ()),
        "ex6 dwte scattered with +=": (
            "ex6_dwte", "ex6_line_tok_emb", "dwte.index_add_(0, Xb.view(-1), dtok_emb.reshape(-1, C))",
            "dwte[Xb] += dtok_emb", "scatter.repeats", ("index_add_",), ()),
        "ex6 dlogits divided by 384": (
            "ex6_dlogits", "ex6_line_loss", "/ (B * T)", "/ 384", "hardcoded_size",
            ("384 appears in your code; the hidden case has B * T = 66",), ()),
        "ex6 block with B and T typed in": (
            "ex6_backward", "ex6_manual_backward", "B, T = Xb.shape", "B, T = 24, 16", "hardcoded_size",
            ("24 appears in your code; the hidden case has B = 6", "16 appears in your code; the hidden case has T = 11"),
            ()),
        "ex6 training with nh typed in": (
            "ex6_training", "ex6_manual_backward", "nh = config.n_head", "nh = 4", "hardcoded_size",
            ("4 appears in your code; the hidden case has nh = 5",), ()),
    }.items()},
}


# ------------------------------------------------------------------ running

def notebook_batch() -> dict:
    """The notebook's namespace after the forward pass and ``loss.backward()``: tensors, parameters, n, Xb, Yb."""
    g = model.make_generator()
    parameters = model.init_params(g)
    Xb = torch.randint(0, 27, (32, 3), generator=g)
    Yb = torch.randint(0, 27, (32,), generator=g)
    fw = model.chunked_forward(parameters, Xb, Yb)
    fw.loss.backward()
    namespace = {"torch": torch, "F": F, "n": 32, "Xb": Xb, "Yb": Yb, "fw": fw}
    namespace.update(fw)
    namespace.update(zip(model.PARAM_NAMES, parameters))
    return namespace


def run_lines(ns: dict, code: str) -> dict:
    """Execute a student's lines in a copy of the namespace; upstream gradients come from autograd."""
    scope = dict(ns)
    scope.update({f"d{k}": v.grad.clone() for k, v in ns["fw"].items() if v.grad is not None})
    scope.update({f"d{k}": ns[k].grad.clone() for k in model.PARAM_NAMES})
    exec(code, scope)
    return scope


def diagnose_line(ns: dict, mistake: Line) -> tuple[bool, str, str]:
    """(passed, code, message) of ``compare`` on the mistaken gradient."""
    scope = run_lines(ns, mistake.code)
    result = compare(mistake.tensor, scope[f"d{mistake.tensor}"], ns[mistake.tensor].grad,
                     context_of(ns["fw"], ns["fw"].inputs))
    return result.ok, result.code, f"{result.problem}; {result.hint}"


def answer_source(mistake: Answer, master_answers: dict[str, str]) -> str:
    """The mistaken answer cell: a body of its own, or a master's with one change."""
    if mistake.edit:
        old, new = mistake.edit
        assert old in master_answers[mistake.answer_id], f"{mistake.answer_id}: {old!r} not in the master"
        return master_answers[mistake.answer_id].replace(old, new)
    if mistake.answer_id == "ex4_manual_backward":
        master = master_answers[mistake.answer_id]
        if mistake.body.startswith("["):
            return _ex4_returning(mistake.body, master)
        return master.replace("    n = Xb.shape[0]", f"    {mistake.body}")
    return f"#| answer: {mistake.answer_id}\n" + textwrap.dedent(mistake.body).strip() + "\n"


def diagnose_answer(mistake: Answer, master_answers: dict[str, str]) -> tuple[bool, str, str]:
    """(passed, diagnosis code, message) of the hidden check with the mistaken cell."""
    answers = {**master_answers, mistake.answer_id: answer_source(mistake, master_answers)}
    verdict = judge_item(ITEMS_BY_ID[mistake.grade_id], answers)
    return verdict.passed, verdict.diagnosis, verdict.message


def problems_with(mistake, passed: bool, code: str, message: str) -> list[str]:
    """What is wrong with the diagnosis of ``mistake`` (empty when it is right)."""
    problems = []
    if passed:
        problems.append("the mistake passed")
    if code != mistake.diagnosis:
        problems.append(f"code {code!r}, expected {mistake.diagnosis!r}")
    problems += [f"missing {word!r}" for word in mistake.words if word not in message]
    problems += [f"says {word!r}" for word in mistake.never if word in message]
    for factor in re.findall(r"factor of (-?[\d.e+-]+)", message):
        if abs(float(factor.rstrip(".")) - 1) < 1e-3:
            problems.append(f"names a factor of {factor}")
    return problems


def covered_codes() -> set[str]:
    return ({m.diagnosis for m in LINES.values()} | {m.diagnosis for m in ANSWERS.values()}
            | {m.diagnosis for m in CASCADES.values()})


def main() -> None:
    import nbformat

    from autograder.grading.course import SOLUTIONS
    from tests.conftest import code_sources  # the masters' answer cells, as the tests read them

    master_answers = {}
    for path in sorted(SOLUTIONS.glob("*.ipynb")):
        master_answers.update(find_answers(code_sources(nbformat.read(path, as_version=4))))
    ns = notebook_batch()
    right = 0
    rows = [(label, m, diagnose_line(ns, m)) for label, m in LINES.items()]
    rows += [(label, m, diagnose_answer(m, master_answers)) for label, m in ANSWERS.items()]
    rows += [(label, m, diagnose_cascade(m, master_answers)) for label, m in CASCADES.items()]
    for label, mistake, outcome in rows:
        problems = problems_with(mistake, *outcome)
        right += not problems
        print(f"{'ok ' if not problems else 'BAD'} {mistake.diagnosis:22s} {label}" +
              (f"  <- {'; '.join(problems)}" if problems else ""))
    missing = sorted({c.code for c in CODES} - covered_codes())
    print(f"\n{right} of {len(rows)} planted mistakes get their specific code and words; "
          f"{len(covered_codes())} of {len(CODES)} codes covered" + (f" (not: {', '.join(missing)})" if missing else ""))
    sys.exit(0 if right == len(rows) else 1)


if __name__ == "__main__":
    main()
