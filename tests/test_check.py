"""autograder.checking.checks: ``cmp``/``compare`` against autograd, the oracle.

Every case runs the chunked forward pass through autograd on its own seed
and sizes (batch 8..64, n_hidden 16..200) and checks hand-written gradients
against ``.grad``: the masters' answers and other valid float32 formulations
must pass, and wrong answers, including the nearly invisible bnvar bug, must
fail.
"""

from __future__ import annotations

import functools
import random

import pytest
import torch

from autograder.checking import checks
from autograder.checking.checks import cmp
from autograder.diagnosis import comparison
from autograder.diagnosis.comparison import ZERO_LEVEL, compare
from autograder.exercises import EX1_LINES, ITEMS, exercise_number
from autograder.workbook import model

EX1_GRADS = [grad for line in EX1_LINES for grad in line.grads]
EX1_GRADS = list(dict.fromkeys(EX1_GRADS))  # 26 gradients, each once


def exercise_mark(notebook: str):
    """The task marker (ex0..ex5) of a notebook id, for ``make test EX=n``."""
    return getattr(pytest.mark, f"ex{exercise_number(notebook)}")


def _cases():
    rng = random.Random(20240607)
    fixed = [(2147483647, 32, 64), (1, 8, 16), (2, 64, 200), (3, 8, 200), (4, 64, 16), (5, 20, 48)]
    drawn = [(rng.randrange(2**31), rng.randint(8, 64), rng.randint(16, 200)) for _ in range(10)]
    return fixed + drawn


CASES = _cases()
CASE_IDS = [f"seed{s}-n{n}-h{h}" for s, n, h in CASES]


@pytest.fixture(scope="module", params=CASES, ids=CASE_IDS)
def case(request, chunked_case):
    return chunked_case(*request.param)


def test_there_are_26_ex1_gradients():
    assert len(EX1_GRADS) == 26


# ------------------------------------------------------------- correct answers pass

@pytest.mark.ex1
def test_master_answers_pass_on_every_case(case, run_master_ex1, capsys):
    ns = run_master_ex1(case)
    verdicts = {g: cmp(g[1:], ns[g], case.tensors[g[1:]]) for g in EX1_GRADS}  # as the notebook calls it
    report = capsys.readouterr().out
    assert all(verdicts.values()), f"{case.describe()}:\n{report}"
    assert report.count("approximate: True") == 26


@pytest.mark.parametrize("item", [pytest.param(i, id=i.grade_id, marks=exercise_mark(i.notebook))
                                  for i in ITEMS if i.kind == "gradient" and not i.grade_id.startswith("ex1_")])
def test_master_fused_answers_pass_on_every_case(item, case, master_answers):
    missing = [a for a in item.answers if a not in master_answers]
    if missing:
        pytest.skip(f"no master has {missing} yet")
    ns = case.namespace()
    for answer, provided in zip(item.answers, item.spec["provided"]):
        ns.update({name: case.ref[name].clone() for name in provided})
        exec(compile(master_answers[answer], f"<master {answer}>", "exec"), ns)
    result = compare(item.spec["variable"][1:], ns[item.spec["variable"]], case.ref[item.spec["variable"]])
    assert result.ok, f"{case.describe()}: {result.line()}"


# Valid float32 formulations other than the masters'. Each runs with every
# correct gradient available (as autograd computed it) and assigns `out`.
ALTERNATIVES = {
    "dprobs as a division": ("dprobs", "out = dlogprobs / probs"),
    "dcounts_sum_inv via broadcasting": ("dcounts_sum_inv", "out = (dprobs * counts).sum(1, keepdim=True)"),
    "dcounts_sum as a division": ("dcounts_sum", "out = -dcounts_sum_inv / counts_sum**2"),
    "dnorm_logits via exp": ("dnorm_logits", "out = norm_logits.exp() * dcounts"),
    "dlogits fused (Exercise 2)": ("dlogits", "out = (F.softmax(logits, 1) - F.one_hot(Yb, logits.shape[1])) / n"),
    "dlogits fused in place": ("dlogits", "out = F.softmax(logits, 1)\nout[range(n), Yb] -= 1\nout /= n"),
    "dh via matmul of the transposed": ("dh", "out = (W2 @ dlogits.T).T"),
    "dW2 via einsum": ("dW2", "out = torch.einsum('ni,nj->ij', h, dlogits)"),
    "db2 via ones": ("db2", "out = torch.ones(n) @ dlogits"),
    "dhpreact via tanh": ("dhpreact", "out = (1 - torch.tanh(hpreact)**2) * dh"),
    "dbnvar via bnvar_inv**3": ("dbnvar", "out = -0.5 * bnvar_inv**3 * dbnvar_inv"),
    "dbndiff2 via expand": ("dbndiff2", "out = dbnvar.expand_as(bndiff2) / (n - 1)"),
    "dbnmeani via mean": ("dbnmeani", "out = -dbndiff.mean(0, keepdim=True) * n"),
    "dhprebn fused (Exercise 3)": (
        "dhprebn",
        "out = bngain * bnvar_inv / n * (n * dhpreact - dhpreact.sum(0) "
        "- n / (n - 1) * bnraw * (dhpreact * bnraw).sum(0))"),
    "dW1 via einsum": ("dW1", "out = torch.einsum('ni,nj->ij', embcat, dhprebn)"),
    "demb via reshape": ("demb", "out = dembcat.reshape(emb.shape)"),
    "dC via index_add_": ("dC", "out = torch.zeros_like(C).index_add_(0, Xb.view(-1), demb.view(-1, C.shape[1]))"),
    "dC via one_hot matmul": (
        "dC", "out = F.one_hot(Xb.view(-1), num_classes=C.shape[0]).float().T @ demb.view(-1, C.shape[1])"),
}


def run_formula(case, code: str) -> torch.Tensor:
    ns = case.namespace(provided=case.ref)
    exec(code, ns)
    return ns["out"]


@pytest.mark.ex1
@pytest.mark.parametrize("label", list(ALTERNATIVES))
def test_alternative_formulations_pass(label, case):
    target, code = ALTERNATIVES[label]
    result = compare(target[1:], run_formula(case, code), case.ref[target])
    assert result.ok, f"{label}, {case.describe()}: {result.line()}"


# ------------------------------------------------------------- wrong answers fail

@pytest.mark.ex1
def test_the_bnvar_sign_bug_fails_on_every_case(case):
    wrong = run_formula(case, "out = (-0.5 * (bnvar - 1e-5)**-1.5) * dbnvar_inv")
    result = compare("bnvar", wrong, case.ref["dbnvar"])
    assert not result.ok and "values differ" in result.problem, case.describe()


@pytest.mark.parametrize("change", ["sign", "x2", "x0.5", "x(1+1e-5)", "zero", "n instead of n-1"])
def test_a_gradient_off_by_a_sign_or_a_factor_fails(case, change):
    n = case.n
    factor = {"sign": -1.0, "x2": 2.0, "x0.5": 0.5, "x(1+1e-5)": 1 + 1e-5, "zero": 0.0,
              "n instead of n-1": (n - 1) / n}[change]
    for grad in EX1_GRADS:
        ref = case.ref[grad]
        if ref.abs().max() < ZERO_LEVEL:
            continue  # dlogit_maxes, db1: zero times any factor is still zero
        result = compare(grad[1:], ref * factor, ref)
        assert not result.ok, f"{grad} {change}: {result.line()}"
        assert result.maxdiff is not None and result.maxdiff > result.tolerance
        assert "values differ" in result.problem


def test_a_gradient_equal_to_the_reference_passes_exactly(case):
    for grad in EX1_GRADS:
        result = compare(grad[1:], case.ref[grad].clone(), case.ref[grad])
        assert result.ok and result.exact and result.maxdiff == 0.0 and result.problem == ""


def test_a_flattened_gradient_fails_and_the_message_says_the_values_are_right(case):
    ref = case.ref["dbnbias"]  # (1, H)
    result = compare("bnbias", ref.sum(0), ref)  # (H,), as dhpreact.sum(0) would be
    assert not result.ok and not result.exact
    assert f"shape ({case.n_hidden},), expected (1, {case.n_hidden})" in result.problem
    assert "the values are right" in result.hint and "keepdim=True" in result.hint
    assert result.maxdiff is None


def test_a_broadcastable_gradient_of_the_wrong_shape_fails(case):
    ref = case.ref["dbndiff2"]  # (n, H)
    small = case.ref["dbnvar"] / (case.n - 1)  # (1, H): the values of every row, but not the shape
    result = compare("bndiff2", small, ref)
    assert not result.ok
    assert f"shape (1, {case.n_hidden}), expected ({case.n}, {case.n_hidden})" in result.problem
    assert "broadcasts" in result.hint and "values are right" not in result.hint


def test_a_transposed_gradient_fails(case):
    ref = case.ref["dW2"]  # (H, V)
    result = compare("W2", ref.T.contiguous(), ref)
    assert not result.ok
    if case.n_hidden != ref.shape[1]:
        assert "transposed" in result.hint
    if case.n_hidden != ref.shape[1]:  # a square dW2 (H = 27) fails on its values instead
        assert f"shape ({ref.shape[1]}, {case.n_hidden})" in result.problem


@pytest.mark.parametrize("bad, words", [
    (None, "None"),
    ("list", "list"),
    ("int tensor", "integer tensor"),
    ("nan", "NaN"),
    ("inf", "inf"),
    ("number", "float"),
])
def test_things_that_are_not_a_gradient_fail(case, bad, words):
    ref = case.ref["dprobs"]
    got = {
        None: None,
        "list": ref.tolist(),
        "int tensor": ref.round().long(),
        "nan": ref.clone().index_fill_(1, torch.tensor([3]), float("nan")),
        "inf": ref.clone().index_fill_(1, torch.tensor([3]), float("inf")),
        "number": 0.5,
    }[bad]
    result = compare("probs", got, ref)
    assert not result.ok and not result.exact
    assert words in result.problem
    assert result.expected_shape == tuple(ref.shape)


# ------------------------------------------------------------- zero gradients

@pytest.mark.ex1
@pytest.mark.parametrize("grad", ["dlogit_maxes", "db1"])
def test_mathematically_zero_gradients(case, grad, run_master_ex1):
    ref = case.ref[grad]
    assert ref.abs().max() < ZERO_LEVEL  # autograd's noise
    g = torch.Generator().manual_seed(case.seed)
    noise = torch.randn(ref.shape, generator=g) * 1e-8
    for label, got in [("exactly zero", torch.zeros_like(ref)), ("noise", noise),
                       ("master", run_master_ex1(case)[grad])]:
        assert compare(grad[1:], got, ref).ok, label
    # but a real number is not zero, and the shape still counts
    assert not compare(grad[1:], torch.full_like(ref, 1e-3), ref).ok
    assert not compare(grad[1:], torch.zeros((1, *ref.shape)), ref).ok


def test_allclose_defaults_reject_a_valid_answer_that_compare_accepts(run_master_ex1, chunked_case):
    """Why ``compare`` does not use ``torch.allclose(got, expected)``.

    Finding: with its defaults (rtol=1e-5, atol=1e-8) ``torch.allclose``
    rejects the exactly-right answer ``dlogit_maxes = 0`` whenever autograd's
    rounding noise in ``logit_maxes.grad`` exceeds 1e-8, which happens on
    several of these seeds (noise up to ~3e-8); on some it also rejects the
    master's own formula. Element-wise relative tolerance has no notion of a
    tensor's scale, so noise around a true zero is judged as a 100% error.
    ``compare`` accepts both, because a reference below ZERO_LEVEL is noise.
    """
    rejected = []
    for seed, n, n_hidden in CASES:
        case = chunked_case(seed, n, n_hidden)
        ns = run_master_ex1(case)
        for grad in EX1_GRADS:
            ref = case.ref[grad]
            for label, got in [("master", ns[grad]), ("zero", torch.zeros_like(ref))]:
                if label == "zero" and ref.abs().max() >= ZERO_LEVEL:
                    continue
                if compare(grad[1:], got, ref).ok and not torch.allclose(got, ref):
                    rejected.append((case.describe(), grad, label))
    assert rejected, "torch.allclose accepted every valid answer"
    assert any(grad == "dlogit_maxes" and label == "zero" for _, grad, label in rejected)


# ------------------------------------------------------------- cmp itself

def test_cmp_prints_one_line_and_returns_a_bool(capsys, chunked_case):
    case = chunked_case(2147483647, 32, 64)
    logprobs = case.fw.logprobs
    good = case.ref["dlogprobs"].clone()
    assert cmp("logprobs", good, logprobs) is True
    line = capsys.readouterr().out
    assert line.count("\n") == 1
    assert line.startswith("logprobs ")
    for part in ("exact: True", "approximate: True", "maxdiff: 0.0e+00", "shape (32, 27)", "tol "):
        assert part in line, part

    assert cmp("logprobs", -good, logprobs) is False
    out = capsys.readouterr().out
    assert "exact: False" in out and "approximate: False" in out and "values differ" in out

    assert cmp("logprobs", None, logprobs) is False
    out = capsys.readouterr().out
    assert "maxdiff: n/a" in out and "None" in out


def test_cmp_tolerance_is_scale_aware():
    ref = torch.tensor([[1000.0, -3.0]])
    assert comparison.tolerance_for(ref) == pytest.approx(comparison.RTOL * 1000.0)
    assert comparison.tolerance_for(torch.tensor([1e-9])) == ZERO_LEVEL
    assert comparison.tolerance_for(torch.zeros(0)) == ZERO_LEVEL
    assert compare("x", ref + comparison.RTOL * 900.0, ref).ok
    assert not compare("x", ref + comparison.RTOL * 1100.0, ref).ok


def test_cmp_refuses_a_reference_without_grad():
    t = torch.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"t: the reference has no \.grad.*backward"):
        cmp("t", torch.ones(3), t)
    with pytest.raises(ValueError, match="no .grad"):
        cmp("t", torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="no .grad"):
        cmp("t", torch.ones(3), [1.0, 2.0, 3.0])


def test_cmp_is_exported_by_the_package():
    import autograder

    assert autograder.cmp is cmp


# ------------------------------------------------------------- Exercise 4 visible checks

@pytest.mark.ex4
def test_check_backward_accepts_a_correct_backward(manual_backward, capsys):
    params = model.init_params(torch.Generator().manual_seed(42), n_hidden=200)
    g = torch.Generator().manual_seed(43)
    Xb = torch.randint(0, 27, (32, 3), generator=g)
    Yb = torch.randint(0, 27, (32,), generator=g)
    assert checks.check_backward(manual_backward, params, Xb, Yb) is True
    out = capsys.readouterr().out
    assert out.count("approximate: True") == 7
    assert all(p.grad is None for p in params)


@pytest.mark.ex4
@pytest.mark.parametrize("mistake, bad_name", [("dC one-liner", "C"), ("dbngain sign", "bngain")])
def test_check_backward_rejects_a_wrong_backward(mistake, bad_name, reference_backward, capsys):
    wrong = functools.partial(reference_backward, mistake=mistake)
    params = model.init_params(torch.Generator().manual_seed(42), n_hidden=64)
    g = torch.Generator().manual_seed(44)
    Xb = torch.randint(0, 27, (32, 3), generator=g)
    Yb = torch.randint(0, 27, (32,), generator=g)
    assert checks.check_backward(wrong, params, Xb, Yb) is False
    lines = capsys.readouterr().out.splitlines()
    failing = [line.split()[0] for line in lines if "approximate: False" in line]
    assert failing == [bad_name]


@pytest.mark.ex4
def test_check_backward_wants_seven_gradients(reference_backward, capsys):
    params = model.init_params(torch.Generator().manual_seed(42), n_hidden=16)
    Xb, Yb = torch.zeros((8, 3), dtype=torch.long), torch.arange(8)
    assert checks.check_backward(lambda *a: reference_backward(*a)[:6], params, Xb, Yb) is False
    assert "expected 7 gradients" in capsys.readouterr().out


@pytest.mark.ex4
def test_check_training_accepts_a_correct_backward(manual_backward, capsys):
    params = model.init_params(torch.Generator().manual_seed(42), n_hidden=200)
    before = [p.detach().clone() for p in params]
    assert checks.check_training(manual_backward, params, steps=20, seed=7) is True
    out = capsys.readouterr().out
    assert out.count("after 20 steps") == 7
    assert all(torch.equal(p.detach(), b) for p, b in zip(params, before))


@pytest.mark.ex4
@pytest.mark.parametrize("mistake", ["dC one-liner", "dbngain sign"])
def test_check_training_rejects_a_wrong_backward(mistake, reference_backward):
    wrong = functools.partial(reference_backward, mistake=mistake)
    params = model.init_params(torch.Generator().manual_seed(42), n_hidden=64)
    assert checks.check_training(wrong, params, steps=20, seed=7) is False
