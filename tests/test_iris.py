"""autograder.workbook.iris: the data, the network, Adam and training of notebook 05 (PyTorch as the oracle)."""

from __future__ import annotations

import shutil
import textwrap

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.checking import checks
from autograder.diagnosis.comparison import parameter_drift
from autograder.exercises import ITEMS_BY_ID
from autograder.judge.scan import scan_answers
from autograder.judge.untrusted import ForbiddenInAnswer
from autograder.judge.verdict import output_in_process as student_output
from autograder.kinds import iris_cases
from autograder.kinds.cases import HIDDEN_CASES
from autograder.workbook import iris, model

pytestmark = pytest.mark.ex5


# ------------------------------------------------------------------ the tests' own implementation

def mlp_backward(parameters, fw, X, Y, mistake=None):
    """A correct backward pass, written for the tests; ``mistake`` makes it wrong on purpose."""
    W1, b1, W2, b2, W3, b3 = parameters
    N = X.shape[0]
    dlogits = (F.softmax(fw["logits"], 1) - F.one_hot(Y, W3.shape[1]).to(X.dtype)) / (1 if mistake == "no 1/N" else N)
    dh2 = dlogits @ W3.T
    dh2pre = dh2 * (fw["h2pre"] > 0)
    dh1 = dh2pre @ W2.T
    dh1pre = dh1 if mistake == "no relu mask" else dh1 * (fw["h1pre"] > 0)
    return [X.T @ dh1pre, dh1pre.sum(0), fw["h1"].T @ dh2pre, dh2pre.sum(0), fw["h2"].T @ dlogits, dlogits.sum(0)]


def adam_step(parameters, grads, m, v, t, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, mistake=None):
    """A correct in-place Adam step, written for the tests; ``mistake`` makes it wrong on purpose."""
    for p, g, m_i, v_i in zip(parameters, grads, m, v):
        m_i.copy_(beta1 * m_i + (1 - beta1) * g)
        v_i.copy_(beta2 * v_i + (1 - beta2) * g**2)
        m_hat = m_i if mistake == "no bias correction" else m_i / (1 - beta1**t)
        v_hat = v_i / (1 - beta2**t)
        if mistake == "eps under the root":
            p.sub_(lr * m_hat / (v_hat + eps).sqrt())
        elif mistake == "betas swapped":
            p.sub_(lr * (m_i / (1 - beta2**t)) / ((v_i / (1 - beta1**t)).sqrt() + eps))
        else:
            p.sub_(lr * m_hat / (v_hat.sqrt() + eps))


def with_mistake(function, mistake):
    return lambda *args, **kwargs: function(*args, **kwargs, mistake=mistake)


@pytest.fixture(scope="module")
def split():
    X, Y = iris.load_iris()
    return iris.split_iris(X, Y)


def init(seed: int, sizes=iris.SIZES, dtype=torch.float64) -> list[torch.Tensor]:
    return [p.detach().to(dtype) for p in iris.init_mlp(torch.Generator().manual_seed(seed), sizes)]


# ------------------------------------------------------------------ data

def test_the_bundled_file_holds_fishers_150_flowers():
    X, Y = iris.load_iris()
    assert X.shape == (150, 4) and X.dtype == torch.float32 and Y.dtype == torch.long
    assert Y.bincount().tolist() == [50, 50, 50]
    assert (X > 0).all() and (X < 10).all()
    # rows 35 and 38 as in Fisher's paper (the UCI copy differs there)
    assert X[34].tolist() == pytest.approx([4.9, 3.1, 1.5, 0.2]) and X[37].tolist() == pytest.approx([4.9, 3.6, 1.4, 0.1])


def test_an_altered_bundled_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "iris.csv"
    shutil.copy(iris.BUNDLED_IRIS, copy)
    copy.write_text(copy.read_text().replace("5.1,3.5", "5.2,3.5", 1))
    monkeypatch.setattr(iris, "BUNDLED_IRIS", copy)
    with pytest.raises(iris.IrisFileError, match="sha256"):
        iris.load_iris()


@pytest.mark.parametrize("text, message", [
    ("a,b,c\n", "header"),
    (iris.HEADER + "\n", "no flowers"),
    (iris.HEADER + "\n1.0,2.0,3.0,setosa\n", ":2: expected 4 numbers"),
    (iris.HEADER + "\n1.0,2.0,3.0,4.0,rose\n", ":2: expected 4 numbers"),
    (iris.HEADER + "\n1.0,2.0,x,4.0,setosa\n", ":2: expected 4 numbers"),
])
def test_a_malformed_file_is_refused_with_its_line(tmp_path, text, message):
    path = tmp_path / "flowers.csv"
    path.write_text(text)
    with pytest.raises(iris.IrisFileError, match=message):
        iris.load_iris(path)


def test_another_file_can_be_loaded(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text(iris.HEADER + "\n1.0,2.0,3.0,4.0,virginica\n5.0,6.0,7.0,8.0,setosa\n")
    X, Y = iris.load_iris(path)
    assert X.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]] and Y.tolist() == [2, 0]


def test_the_split_is_stratified_disjoint_complete_and_reproducible(split):
    X, Y = iris.load_iris()
    assert split.Ytr.bincount().tolist() == [40, 40, 40] and split.Yte.bincount().tolist() == [10, 10, 10]
    rows = {tuple(r) + (y,) for r, y in zip(X.tolist(), Y.tolist())}
    train = [tuple(r) + (y,) for r, y in zip(split.Xtr.tolist(), split.Ytr.tolist())]
    test = [tuple(r) + (y,) for r, y in zip(split.Xte.tolist(), split.Yte.tolist())]
    assert sorted(train + test) == sorted(tuple(r) + (y,) for r, y in zip(X.tolist(), Y.tolist()))
    assert set(train + test) == rows
    again = iris.split_iris(X, Y)
    assert torch.equal(again.Xte, split.Xte) and torch.equal(again.Ytr, split.Ytr)
    other = iris.split_iris(X, Y, seed=iris.SPLIT_SEED + 1)
    assert not torch.equal(other.Xte, split.Xte)
    assert split.Ytr[:10].unique().numel() > 1  # species are mixed, not in blocks


def test_loading_and_splitting_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    X, Y = iris.load_iris()
    iris.split_iris(X, Y)
    iris.init_mlp(torch.Generator().manual_seed(0))
    assert torch.equal(state, torch.get_rng_state())


# ------------------------------------------------------------------ the network

@given(seed=st.integers(0, 2**31 - 1), h1=st.integers(1, 12), h2=st.integers(1, 12))
@settings(max_examples=30, deadline=None)
def test_init_is_nn_linears_distribution_from_the_generator(seed, h1, h2):
    params = iris.init_mlp(torch.Generator().manual_seed(seed), (4, h1, h2, 3))
    shapes = [(4, h1), (h1,), (h1, h2), (h2,), (h2, 3), (3,)]
    assert [tuple(p.shape) for p in params] == shapes
    for p, fan_in in zip(params, (4, 4, h1, h1, h2, h2)):
        assert p.requires_grad and p.is_leaf and p.abs().max() <= fan_in**-0.5
    again = iris.init_mlp(torch.Generator().manual_seed(seed), (4, h1, h2, 3))
    assert all(torch.equal(p, q) for p, q in zip(params, again))


def as_module(params):
    """torch.nn's version of the network with the same numbers (nn.Linear stores W transposed)."""
    W1, b1, W2, b2, W3, b3 = [p.detach().clone() for p in params]
    layers = [torch.nn.Linear(*W.shape, dtype=W.dtype) for W in (W1, W2, W3)]
    with torch.no_grad():
        for layer, W, b in zip(layers, (W1, W2, W3), (b1, b2, b3)):
            layer.weight.copy_(W.T)
            layer.bias.copy_(b)
    return torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2])


def test_forward_is_the_blogs_module(split):
    params = init(5, dtype=torch.float32)
    fw = iris.forward(params, split.Xtr, split.Ytr)
    module = as_module(params)
    logits = module(split.Xtr)
    assert torch.allclose(fw.logits, logits, atol=1e-6)
    assert fw.loss.item() == pytest.approx(F.cross_entropy(logits, split.Ytr).item(), abs=1e-6)
    assert list(fw) == ["h1pre", "h1", "h2pre", "h2", "logits", "loss"]
    assert (fw.h1 >= 0).all() and torch.equal(fw.h1, fw.h1pre.clamp_min(0))


def test_autograd_grads_are_the_modules_gradients_and_leave_the_callers_grad_alone(split):
    params = iris.init_mlp(torch.Generator().manual_seed(6))
    grads = iris.autograd_grads(params, split.Xtr, split.Ytr)
    assert all(p.grad is None for p in params)
    module = as_module(params)
    F.cross_entropy(module(split.Xtr), split.Ytr).backward()
    expected = []
    for layer in (module[0], module[2], module[4]):
        expected += [layer.weight.grad.T, layer.bias.grad]
    for got, want in zip(grads, expected):
        assert torch.allclose(got, want, atol=1e-6)


@given(seed=st.integers(0, 10_000), rows=st.integers(2, 120), h1=st.integers(2, 10), h2=st.integers(2, 10))
@settings(max_examples=25, deadline=None)
def test_the_tests_backward_matches_autograd(split, seed, rows, h1, h2):
    params = init(seed, (4, h1, h2, 3))
    X, Y = split.Xtr[:rows].double(), split.Ytr[:rows]
    got = mlp_backward(params, iris.forward(params, X, Y), X, Y)
    for g, e in zip(got, iris.autograd_grads(params, X, Y)):
        assert torch.allclose(g, e, atol=1e-12)


def test_accuracy_counts_the_largest_logit(split):
    params = init(1, dtype=torch.float32)
    logits = iris.forward(params, split.Xte, split.Yte).logits
    expected = sum(int(row.argmax() == y) for row, y in zip(logits, split.Yte)) / len(split.Yte)
    assert iris.accuracy(params, split.Xte, split.Yte) == pytest.approx(expected)


# ------------------------------------------------------------------ Adam

@given(seed=st.integers(0, 10_000), steps=st.integers(1, 5), lr=st.floats(1e-4, 0.1),
       beta1=st.floats(0.5, 0.99), beta2=st.floats(0.9, 0.9999), eps=st.sampled_from([1e-8, 1e-6, 1e-3]))
@settings(max_examples=40, deadline=None)
def test_torch_adam_is_the_textbook_update(seed, steps, lr, beta1, beta2, eps):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(3, 2, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)]
    grads = [[torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.01 for p in params] for _ in range(steps)]
    mine = [p.clone() for p in params]
    m, v = iris.zeros_like_all(mine), iris.zeros_like_all(mine)
    for t, step_grads in enumerate(grads, start=1):
        adam_step(mine, step_grads, m, v, t, lr, beta1, beta2, eps)
    expected, m_ref, v_ref = iris.torch_adam(params, grads, lr, beta1, beta2, eps)
    for got, want in zip(mine + m + v, expected + m_ref + v_ref):
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-15)
    assert all(torch.equal(p, q) for p, q in zip(params, [p.clone() for p in params]))  # arguments untouched


def test_train_torch_is_the_blogs_loop(split):
    params = init(3, dtype=torch.float32)
    trained, losses = iris.train_torch(params, split.Xtr, split.Ytr, epochs=20)
    module = as_module(params)
    optimizer = torch.optim.Adam(module.parameters(), lr=iris.LR)
    blog_losses = []
    for _ in range(20):
        loss = F.cross_entropy(module(split.Xtr), split.Ytr)
        blog_losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses == pytest.approx(blog_losses, rel=1e-5)
    assert torch.allclose(trained[0], module[0].weight.T, atol=1e-5)
    assert all(not p.requires_grad for p in trained)


def test_the_notebooks_run_learns_and_generalises(split):
    params = iris.init_mlp(torch.Generator().manual_seed(model.SEED))
    trained, losses = iris.train_manual(params, split.Xtr, split.Ytr, mlp_backward, adam_step)
    assert len(losses) == iris.EPOCHS
    assert losses[-1] < losses[9] / 5  # the blog: ~1.13 at epoch 10, ~0.065 at epoch 100
    assert iris.accuracy(trained, split.Xte, split.Yte) >= 0.9
    assert all(torch.equal(p.detach(), q.detach()) for p, q in zip(params, iris.init_mlp(
        torch.Generator().manual_seed(model.SEED))))  # the arguments are left alone


# ------------------------------------------------------------------ the tolerance of the training check

@pytest.mark.slow  # 25 pairs of 100-epoch runs
@given(seed=st.integers(0, 2**31 - 1), h1=st.integers(3, 10), h2=st.integers(3, 10))
@settings(max_examples=25, deadline=None)
def test_correct_training_stays_far_inside_the_tolerance(split, seed, h1, h2):
    """Re-measures ADAM_TRAINED_RTOL's premise: correct runs agree to ~1e-13, a 10,000x margin."""
    params = init(seed, (4, h1, h2, 3))
    X = split.Xtr.double()
    mine, _ = iris.train_manual(params, X, split.Ytr, mlp_backward, adam_step)
    reference, _ = iris.train_torch(params, X, split.Ytr)
    assert max(parameter_drift(mine, reference)) < iris.ADAM_TRAINED_RTOL / 1000


@pytest.mark.parametrize("backward_mistake, step_mistake", [
    ("no 1/N", None), ("no relu mask", None),
    (None, "no bias correction"), (None, "eps under the root"), (None, "betas swapped"),
])
def test_every_mistake_is_far_outside_the_tolerance(split, backward_mistake, step_mistake):
    params = init(model.SEED)
    backward = with_mistake(mlp_backward, backward_mistake)
    step = with_mistake(adam_step, step_mistake)
    mine, _ = iris.train_manual(params, split.Xtr.double(), split.Ytr, backward, step)
    reference, _ = iris.train_torch(params, split.Xtr.double(), split.Ytr)
    assert max(parameter_drift(mine, reference)) > 1000 * iris.ADAM_TRAINED_RTOL


# ------------------------------------------------------------------ the visible checks

def test_the_checks_pass_a_correct_solution(split, capsys):
    params = iris.init_mlp(torch.Generator().manual_seed(model.SEED))
    assert checks.check_mlp_backward(mlp_backward, params, split.Xtr, split.Ytr)
    assert checks.check_adam_step(adam_step, params, split.Xtr, split.Ytr)
    assert checks.check_adam_training(mlp_backward, adam_step, params, split.Xtr, split.Ytr, epochs=30)
    out = capsys.readouterr().out
    assert "b3" in out and "tolerance 1e-09" in out


def test_the_checks_fail_wrong_solutions(split, capsys):
    params = iris.init_mlp(torch.Generator().manual_seed(model.SEED))
    assert not checks.check_mlp_backward(with_mistake(mlp_backward, "no relu mask"), params, split.Xtr, split.Ytr)
    assert not checks.check_adam_step(with_mistake(adam_step, "no bias correction"), params, split.Xtr, split.Ytr)
    assert not checks.check_adam_training(mlp_backward, with_mistake(adam_step, "betas swapped"), params,
                                   split.Xtr, split.Ytr, epochs=30)
    assert not checks.check_mlp_backward(lambda *args: [], params, split.Xtr, split.Ytr)
    assert "too far" in capsys.readouterr().out


def test_check_adam_step_says_when_nothing_was_updated_in_place(split, capsys):
    def rebinding_step(parameters, grads, m, v, t, lr, beta1, beta2, eps):
        parameters = [p - lr * g for p, g in zip(parameters, grads)]  # a new list: the caller sees nothing

    params = iris.init_mlp(torch.Generator().manual_seed(model.SEED))
    assert not checks.check_adam_step(rebinding_step, params, split.Xtr, split.Ytr)
    assert "in place" in capsys.readouterr().out


# ------------------------------------------------------------------ the hidden checks of notebook 05

def answer(answer_id: str, body: str) -> str:
    return f"#| answer: {answer_id}\n" + textwrap.dedent(body).strip() + "\n"


def test_the_second_hidden_case_changes_widths_and_adam_settings():
    first, second = (iris_cases.setting(case) for case in HIDDEN_CASES[:2])
    assert first.mlp_hidden != second.mlp_hidden and first.adam != second.adam
    assert all(case.seed != model.SEED for case in HIDDEN_CASES)


def test_hard_coded_adam_settings_fail_on_the_second_case(master_answers, judge_with):
    source = master_answers["ex5_adam_update"]
    hard = source.replace("(1 - beta1)", "0.1").replace("(1 - beta2)", "0.001")
    assert hard != source
    verdict = judge_with("ex5_adam_step", ex5_adam_update=hard)
    assert not verdict.passed and "beta1 0.8" in verdict.message


def test_a_hard_coded_row_count_fails_the_backward_item(master_answers, judge_with):
    source = master_answers["ex5_mlp_backward"]
    hard = source.replace("N = X.shape[0]", "N = 120")
    assert hard != source
    assert not judge_with("ex5_backward", ex5_mlp_backward=hard).passed


def test_moments_that_are_not_kept_fail_the_adam_item(master_answers, judge_with):
    stale = answer("ex5_adam_update", """
        def adam_step(parameters, grads, m, v, t, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8):
            for p, grad in zip(parameters, grads):
                m_hat = (1 - beta1) * grad / (1 - beta1**t)  # as if m started at 0 every step
                v_hat = (1 - beta2) * grad * grad / (1 - beta2**t)
                p -= lr * m_hat / (v_hat.sqrt() + eps)
        """)
    assert not judge_with("ex5_adam_step", ex5_adam_update=stale).passed
    assert not judge_with("ex5_training", ex5_adam_update=stale).passed
    assert judge_with("ex5_backward", ex5_adam_update=stale).passed


@pytest.mark.parametrize("code, reason", [
    ("torch.optim.Adam(parameters, lr=lr).step()", "torch.optim"),
    ("from torch import optim as o\no.SGD(parameters, lr=lr).step()", "torch.optim"),
    ("from torch.optim import Adam", "imports torch.optim"),
])
def test_torch_optim_is_flagged(code, reason):
    source = answer("ex5_adam_update", "def adam_step(parameters, grads, m, v, t, lr, beta1, beta2, eps):\n"
                    + textwrap.indent(code, "    "))
    assert any(reason in r for r in scan_answers([source]))


def test_torch_optim_is_refused_at_run_time_even_past_the_scan():
    sneaky = answer("ex5_adam_update", """
        def adam_step(parameters, grads, m, v, t, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8):
            optimizers = [x for x in vars(torch).values() if type(x).__name__ == "module" and "Adam" in dir(x)]
            optimizers[0].Adam(parameters, lr=lr)
        """)
    with pytest.raises(ForbiddenInAnswer, match="write the optimizer's update by hand"):
        student_output(ITEMS_BY_ID["ex5_adam_step"], {"ex5_adam_update": sneaky}, HIDDEN_CASES[0])
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # restored afterwards
