"""autograder.workbook.model: the lecture's parameters, forward passes and evaluation helpers."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from autograder.workbook import model
from autograder.workbook.data import CHARS, VOCAB_SIZE
from autograder.workbook.model import CHUNKED_NAMES, PARAM_NAMES

SEED = 2147483647


def gen(seed: int = SEED) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(seed: int, n: int = 32, rows: int = 1000):
    """A batch sampled the notebook's way, from a random 'training set' of ``rows`` contexts."""
    g = gen(seed)
    X = torch.randint(0, VOCAB_SIZE, (rows, 3), generator=g)
    Y = torch.randint(0, VOCAB_SIZE, (rows,), generator=g)
    return model.sample_batch(X, Y, n, g)


@pytest.fixture
def setup():
    g = gen()
    params = model.init_params(g, n_hidden=64)
    Xb, Yb = batch(1)
    return params, Xb, Yb


# ------------------------------------------------------------- parameters

@pytest.mark.parametrize("n_hidden, count", [(64, 4_137), (200, 12_297)])
def test_parameter_count(n_hidden, count):
    params = model.init_params(gen(), n_hidden=n_hidden)
    assert sum(p.nelement() for p in params) == count
    assert [tuple(p.shape) for p in params] == [(27, 10), (30, n_hidden), (n_hidden,), (n_hidden, 27), (27,),
                                                (1, n_hidden), (1, n_hidden)]
    assert all(p.requires_grad and p.is_leaf and p.dtype == torch.float32 for p in params)


def test_init_draws_in_the_lecture_order_with_the_generator_for_every_tensor():
    g = gen()
    expected = [
        torch.randn((27, 10), generator=g),
        torch.randn((30, 64), generator=g) * (5 / 3) / 30**0.5,
        torch.randn(64, generator=g) * 0.1,
        torch.randn((64, 27), generator=g) * 0.1,
        torch.randn(27, generator=g) * 0.1,
        torch.randn((1, 64), generator=g) * 0.1 + 1.0,  # the lecture forgets g here; the workbook does not
        torch.randn((1, 64), generator=g) * 0.1,
    ]
    for name, p, e in zip(PARAM_NAMES, model.init_params(gen(), n_hidden=64), expected):
        assert torch.equal(p.detach(), e), name


def test_same_seed_same_parameters_other_seed_other_parameters():
    a = model.init_params(gen(5))
    b = model.init_params(gen(5))
    c = model.init_params(gen(6))
    for name, pa, pb, pc in zip(PARAM_NAMES, a, b, c):
        assert torch.equal(pa, pb), name
        assert not torch.equal(pa, pc), name  # includes bngain and bnbias


def test_biases_are_small_and_not_zero():
    C, W1, b1, W2, b2, bngain, bnbias = model.init_params(gen())
    for t in (b1, b2, bnbias):
        assert (t != 0).all() and t.abs().max() < 1.0
    assert (bngain != 1).all() and (bngain - 1).abs().max() < 1.0


def test_same_seed_same_batch_other_seed_other_batch():
    Xa, Ya = batch(3)
    Xb, Yb = batch(3)
    Xc, Yc = batch(4)
    assert torch.equal(Xa, Xb) and torch.equal(Ya, Yb)
    assert not torch.equal(Xa, Xc)
    assert Xa.shape == (32, 3) and Ya.shape == (32,)


def test_sample_batch_is_the_lecture_indexing():
    X = torch.arange(300).view(100, 3)
    Y = torch.arange(100)
    Xb, Yb = model.sample_batch(X, Y, 32, gen(9))
    ix = torch.randint(0, 100, (32,), generator=gen(9))
    assert torch.equal(Xb, X[ix]) and torch.equal(Yb, Y[ix])


def test_the_global_torch_rng_is_not_consumed():
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    params = model.init_params(gen(), n_hidden=64)
    X = torch.zeros((50, 3), dtype=torch.long)
    model.sample_batch(X, torch.zeros(50, dtype=torch.long), 32, gen())
    bnmean, bnvar = model.batchnorm_statistics(params, X[:10] + torch.arange(10).view(10, 1))
    model.sample_names(params, bnmean, bnvar, gen(), count=3)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_make_generator_is_the_lecture_seed():
    a, b = model.make_generator(), gen(SEED)
    assert torch.equal(torch.randn(5, generator=a), torch.randn(5, generator=b))


# ------------------------------------------------------------- chunked forward

SPEC_SHAPES = {  # LECTURE_SPEC.md, batch 32 and n_hidden 64
    "emb": (32, 3, 10), "embcat": (32, 30), "hprebn": (32, 64), "bnmeani": (1, 64), "bndiff": (32, 64),
    "bndiff2": (32, 64), "bnvar": (1, 64), "bnvar_inv": (1, 64), "bnraw": (32, 64), "hpreact": (32, 64),
    "h": (32, 64), "logits": (32, 27), "logit_maxes": (32, 1), "norm_logits": (32, 27), "counts": (32, 27),
    "counts_sum": (32, 1), "counts_sum_inv": (32, 1), "probs": (32, 27), "logprobs": (32, 27), "loss": (),
}


def test_chunked_forward_names_and_shapes(setup):
    fw = model.chunked_forward(*setup)
    assert tuple(fw) == CHUNKED_NAMES
    assert {name: tuple(t.shape) for name, t in fw.items()} == SPEC_SHAPES
    assert fw.logits is fw["logits"]
    with pytest.raises(AttributeError):
        _ = fw.not_a_tensor


def test_chunked_loss_is_cross_entropy(setup):
    params, Xb, Yb = setup
    fw = model.chunked_forward(params, Xb, Yb)
    torch.testing.assert_close(fw.loss, F.cross_entropy(fw.logits, Yb))
    torch.testing.assert_close(fw.probs, F.softmax(fw.logits, 1))
    # BatchNorm with Bessel's correction, as in the lecture
    torch.testing.assert_close(fw.bnvar, fw.hprebn.var(0, keepdim=True, unbiased=True))


def test_chunked_forward_retains_every_grad(setup):
    fw = model.chunked_forward(*setup)
    fw.loss.backward()
    for name, t in fw.items():
        assert t.grad is not None, name
        assert t.grad.shape == t.shape, name


def test_chunked_forward_without_grad_tracks_nothing(setup):
    params, Xb, Yb = setup
    fw = model.chunked_forward([p.detach() for p in params], Xb, Yb)
    assert not any(t.requires_grad for t in fw.values())


def test_fused_forward_matches_chunked(setup):
    params, Xb, Yb = setup
    chunked = model.chunked_forward(params, Xb, Yb)
    fused = model.fused_forward(params, Xb, Yb)
    torch.testing.assert_close(fused.loss, chunked.loss)
    torch.testing.assert_close(fused.hpreact, chunked.hpreact)
    torch.testing.assert_close(fused.logits, chunked.logits)
    assert tuple(fused) == ("emb", "embcat", "hprebn", "bnmean", "bnvar", "bnvar_inv", "bnraw", "hpreact", "h",
                            "logits", "loss")


def test_fused_forward_retains_every_grad(setup):
    fw = model.fused_forward(*setup)
    fw.loss.backward()
    for name, t in fw.items():
        assert t.grad is not None, name


# ------------------------------------------------------------- autograd reference

def test_autograd_grads_leaves_the_callers_grad_alone(setup):
    params, Xb, Yb = setup
    grads = model.autograd_grads(params, Xb, Yb)
    assert all(p.grad is None for p in params)
    sentinels = [torch.full_like(p, 7.0) for p in params]
    for p, s in zip(params, sentinels):
        p.grad = s.clone()
    again = model.autograd_grads(params, Xb, Yb)
    for p, s in zip(params, sentinels):
        assert torch.equal(p.grad, s)
    for a, b in zip(grads, again):
        assert torch.equal(a, b)


def test_autograd_grads_are_the_fused_losss_gradients(setup):
    params, Xb, Yb = setup
    leaves = [p.detach().clone().requires_grad_(True) for p in params]
    model.fused_forward(leaves, Xb, Yb).loss.backward()
    with torch.no_grad():  # works under no_grad too
        grads = model.autograd_grads(params, Xb, Yb)
    assert [tuple(g.shape) for g in grads] == [tuple(p.shape) for p in params]
    for leaf, grad in zip(leaves, grads):
        assert torch.equal(leaf.grad, grad)


def test_sgd_steps_leaves_its_arguments_unchanged(setup):
    params = setup[0]
    before = [p.detach().clone() for p in params]
    calls = []

    @contextlib.contextmanager
    def guard():
        calls.append(torch.is_grad_enabled())
        yield

    def backward(ps, fw, Xb, Yb):
        return model.autograd_grads(ps, Xb, Yb)

    trained = model.sgd_steps(params, backward, 5, 16, 0.1, gen(3), guard)
    assert len(calls) == 5
    for p, b, t in zip(params, before, trained):
        assert torch.equal(p.detach(), b)
        assert p.requires_grad and p.grad is None
        assert t.shape == b.shape
    assert any(not torch.equal(t, b) for t, b in zip(trained, before))
    again = model.sgd_steps(params, backward, 5, 16, 0.1, gen(3))
    assert all(torch.equal(a, t) for a, t in zip(again, trained))


def test_sgd_steps_is_plain_sgd():
    params = model.init_params(gen(), n_hidden=16)
    g = gen(11)
    trained = model.sgd_steps(params, lambda ps, fw, Xb, Yb: model.autograd_grads(ps, Xb, Yb), 1, 8, 0.5, g)
    g = gen(11)
    Xb = torch.randint(0, VOCAB_SIZE, (8, 3), generator=g)
    Yb = torch.randint(0, VOCAB_SIZE, (8,), generator=g)
    grads = model.autograd_grads(params, Xb, Yb)
    for p, grad, t in zip(params, grads, trained):
        torch.testing.assert_close(t, p.detach() - 0.5 * grad)


# ------------------------------------------------------------- evaluation

def test_batchnorm_statistics_over_the_whole_set():
    params = model.init_params(gen(), n_hidden=64)
    X = torch.randint(0, VOCAB_SIZE, (500, 3), generator=gen(2))
    bnmean, bnvar = model.batchnorm_statistics(params, X)
    C, W1, b1 = params[:3]
    hprebn = (C[X].view(500, -1) @ W1 + b1).detach()
    assert bnmean.shape == bnvar.shape == (1, 64)
    assert not bnmean.requires_grad and not bnvar.requires_grad
    torch.testing.assert_close(bnmean, hprebn.mean(0, keepdim=True))
    torch.testing.assert_close(bnvar, hprebn.var(0, keepdim=True, unbiased=True))


def test_split_loss_with_the_splits_own_statistics_is_the_training_loss():
    params = model.init_params(gen(), n_hidden=64)
    g = gen(4)
    X = torch.randint(0, VOCAB_SIZE, (200, 3), generator=g)
    Y = torch.randint(0, VOCAB_SIZE, (200,), generator=g)
    bnmean, bnvar = model.batchnorm_statistics(params, X)
    loss = model.split_loss(params, X, Y, bnmean, bnvar)
    assert isinstance(loss, float)
    assert loss == pytest.approx(model.fused_forward(params, X, Y).loss.item(), rel=1e-5)
    # other statistics give another loss
    assert model.split_loss(params, X, Y, bnmean + 1.0, bnvar) != pytest.approx(loss, rel=1e-3)


def test_sample_names():
    params = model.init_params(gen(), n_hidden=64)
    X = torch.randint(0, VOCAB_SIZE, (300, 3), generator=gen(5))
    bnmean, bnvar = model.batchnorm_statistics(params, X)
    names = model.sample_names(params, bnmean, bnvar, gen(SEED + 10))
    assert len(names) == 20
    assert all(isinstance(name, str) and set(name) <= set(CHARS[1:]) for name in names)
    assert model.sample_names(params, bnmean, bnvar, gen(SEED + 10)) == names
    assert model.sample_names(params, bnmean, bnvar, gen(SEED + 11)) != names
    assert len(model.sample_names(params, bnmean, bnvar, gen(1), count=3)) == 3
