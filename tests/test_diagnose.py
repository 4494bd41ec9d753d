"""Every diagnosis the checker can give, each triggered by a real mistake in a real answer.

Each test writes the mistaken line the way a student would, runs it on the
lecture's batch after ``loss.backward()``, and asserts both that ``cmp`` fails
and that its hint names the cause (torch's autograd is the oracle).
"""

import pytest
import torch
import torch.nn.functional as F

from autograder import model
from autograder.check import cmp
from autograder.comparison import ROUNDING_NOTE, TRACKED_NOTE, compare
from autograder.diagnose import NO_HINT, context_of, diagnose

pytestmark = pytest.mark.ex1


@pytest.fixture(scope="module")
def ns():
    """The notebook's namespace after the forward pass: tensors, parameters, n, Xb, Yb."""
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


def run(ns, code: str) -> dict:
    """Execute a student's lines in a copy of the namespace; upstream gradients come from autograd."""
    scope = dict(ns)
    scope.update({f"d{k}": v.grad.clone() for k, v in ns["fw"].items() if v.grad is not None})
    scope.update({f"d{k}": ns[k].grad.clone() for k in model.PARAM_NAMES})
    exec(code, scope)
    return scope


def hint(ns, name: str, code: str, variable: str | None = None) -> str:
    scope = run(ns, code)
    tensor = ns[name]
    result = compare(name, scope[variable or f"d{name}"], tensor.grad, context_of(ns["fw"], ns["fw"].inputs))
    assert not result.ok, f"the mistake in {code!r} passed"
    return result.hint or result.problem


# --------------------------------------------------------------- the mistakes

# mistake -> (the tensor, the student's line, words the hint must contain)
MISTAKES = {
    "missing keepdim": ("bnmeani", "dbnmeani = (-dbndiff).sum(0)", ("keepdim=True",)),
    "summed over the wrong dimension": ("b2", "db2 = dlogits.sum(1)", ("wrong dimension",)),
    "summed over the wrong dimension, keepdim": (
        "counts_sum_inv", "dcounts_sum_inv = (counts * dprobs).sum(0, keepdim=True)", ("wrong dimension",)),
    "transposed": ("W2", "dW2 = dlogits.T @ h", ("transposed",)),
    "a broadcast left out": ("bndiff2", "dbndiff2 = (1.0 / (n - 1)) * dbnvar", ("broadcasts", "(1, 64)")),
    "sign flipped": ("norm_logits", "dnorm_logits = -counts * dcounts", ("sign flipped",)),
    "an unknown factor": ("h", "dh = 3 * dlogits @ W2.T", ("constant factor of 3",)),
    "another tensor's gradient": ("probs", "dprobs = dlogprobs.clone()", ("this equals dlogprobs",)),
    "the local derivative alone": ("probs", "dprobs = 1.0 / probs", ("local derivative alone",)),
    "the local derivative alone, tanh": ("hpreact", "dhpreact = 1.0 - h**2", ("local derivative alone",)),
    "all zeros": ("C", "dC = torch.zeros_like(C)", ("all zeros",)),
    "the tensor itself": ("h", "dh = h.detach().clone()", ("is h itself",)),
    # the batch repeats characters (asserted below), which the scatter drops
    "the embedding scatter": ("C", "dC = torch.zeros_like(C); dC[Xb] += demb", ("index_add_", "only one contribution")),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_each_mistake_gets_its_hint(ns, mistake):
    name, code, words = MISTAKES[mistake]
    text = hint(ns, name, code)
    assert [word for word in words if word not in text] == [], text


def test_the_batch_repeats_characters(ns):
    """The scatter mistake above is only visible when some row of C is looked up twice."""
    assert bool((ns["Xb"].view(-1).bincount() > 1).any())


@pytest.mark.parametrize("code, name, meaning", [
    ("dlogprobs = torch.zeros_like(logprobs); dlogprobs[range(n), Yb] = -1.0", "logprobs", "1/n (the mean's) is missing"),
    ("dlogprobs = torch.zeros_like(logprobs); dlogprobs[range(n), Yb] = -1.0 / n**2", "logprobs", "1/n is applied twice"),
    ("dbndiff2 = (1.0 / n) * torch.ones_like(bndiff2) * dbnvar", "bndiff2", "Bessel"),
    ("dbndiff = bnvar_inv * dbnraw + 4 * bndiff * dbndiff2", "bndiff", None),
    ("dbnvar = -(bnvar + 1e-5)**-1.5 * dbnvar_inv", "bnvar", "2"),
    ("dbnvar = -0.25 * (bnvar + 1e-5)**-1.5 * dbnvar_inv", "bnvar", "1/2"),
])
def test_off_by_a_known_factor(ns, code, name, meaning):
    text = hint(ns, name, code)
    if meaning is None:  # not a pure factor: must not be misnamed as one
        assert "factor" not in text
    else:
        assert "off by a factor" in text and meaning in text


@pytest.mark.parametrize("name, first_use_only", [
    ("counts", "dcounts = counts_sum_inv * dprobs"),
    ("logits", "dlogits = dnorm_logits.clone(); dlogits = F.one_hot(logits.max(1).indices, num_classes=logits.shape[1]) * dlogit_maxes"),
    ("bndiff", "dbndiff = bnvar_inv * dbnraw"),
    ("bndiff", "dbndiff = bnvar_inv * dbnraw; dbndiff = (2 * bndiff) * dbndiff2"),
    ("hprebn", "dhprebn = dbndiff.clone()"),
])
def test_one_branch_only(ns, name, first_use_only):
    # (for logits only the second use can be caught: the first alone is within rounding of the whole)
    text = hint(ns, name, first_use_only)
    assert "only one of the two uses" in text and "+=" in text


def test_no_hint_when_nothing_fits(ns):
    assert hint(ns, "hprebn", "dhprebn = dbndiff + 0.01 * torch.ones_like(hprebn)") == NO_HINT


# ----------------------------------------------------------- not a tensor

@pytest.mark.parametrize("value, words", [
    (None, "got None"), ([1.0, 2.0], "got a list"), (torch.zeros(32, 27, dtype=torch.long), "integer tensor"),
    (torch.full((32, 27), float("nan")), "NaN"), (torch.full((32, 27), float("inf")), "inf"),
])
def test_values_that_are_not_gradients(ns, value, words):
    result = compare("logprobs", value, ns["logprobs"].grad)
    assert not result.ok and words in result.problem


def test_a_right_gradient_that_requires_grad_passes_with_a_note(ns):
    tracked = compare("logprobs", ns["logprobs"].grad.clone().requires_grad_(), ns["logprobs"].grad)
    assert tracked.ok and tracked.hint == TRACKED_NOTE
    plain = compare("logprobs", ns["logprobs"].grad.clone(), ns["logprobs"].grad)
    assert plain.ok and plain.hint != TRACKED_NOTE


def test_a_parameter_returned_instead_of_its_gradient(ns):
    result = compare("W2", ns["W2"], ns["W2"].grad)
    assert not result.ok and "parameter" in result.hint


# ------------------------------------------------------------ cmp itself

def test_cmp_prints_the_hint_and_the_expected_shape_and_tolerance(ns, capsys):
    scope = run(ns, "dprobs = 1.0 / probs")
    assert cmp("probs", scope["dprobs"], ns["probs"]) is False
    out = capsys.readouterr().out
    assert "shape (32, 27)" in out and "tol " in out and "local derivative alone" in out


def test_cmp_notes_a_right_answer_that_is_not_bit_exact(ns, capsys):
    noisy = ns["h"].grad * (1 + 1e-7)
    assert cmp("h", noisy, ns["h"]) is True
    assert ROUNDING_NOTE in capsys.readouterr().out


def test_cmp_warns_about_aliased_gradients(ns, capsys):
    # the clone-less copy: dhprebn = dbndiff, then dhprebn += ... changes dbndiff as well
    scope = run(ns, "dhprebn = dbndiff\ndhprebn += 1.0 / n * (torch.ones_like(hprebn) * dbnmeani)")
    frame_globals = {"dbndiff": scope["dbndiff"], "dhprebn": scope["dhprebn"]}
    exec("result = cmp('bndiff', dbndiff, bndiff)", {"cmp": cmp, "bndiff": ns["bndiff"], **frame_globals})
    out = capsys.readouterr().out
    assert "approximate: False" in out and "dbndiff and dhprebn are the same tensor" in out


def test_diagnose_works_without_a_context():
    expected = torch.linspace(-1, 1, 12).view(3, 4)
    assert "sign flipped" in diagnose("x", -expected, expected)
    assert diagnose("x", expected + 1, expected) == NO_HINT
