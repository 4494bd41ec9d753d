"""The lecture's model: a 2-layer MLP with BatchNorm over 3 characters of context.

Everything random takes an explicit ``torch.Generator``: the same seed gives
the same parameters, batches and samples on every run. Shapes in docstrings
use n = batch size, B = block size (3), E = embedding size, H = hidden size,
V = vocabulary size (27).

Nothing here computes a gradient by hand: the manual backward passes are the
exercises, and they live in the notebooks.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F

from .data import BLOCK_SIZE, ITOS, VOCAB_SIZE

SEED = 2147483647  # the lecture's generator seed (2**31 - 1): the workbook's, notebook 05's and the lecture checker's
PARAM_NAMES = ("C", "W1", "b1", "W2", "b2", "bngain", "bnbias")
BN_EPS = 1e-5

# The intermediates of the chunked forward pass, in the order it makes them.
CHUNKED_NAMES = (
    "emb", "embcat", "hprebn", "bnmeani", "bndiff", "bndiff2", "bnvar", "bnvar_inv", "bnraw",
    "hpreact", "h", "logits", "logit_maxes", "norm_logits", "counts", "counts_sum",
    "counts_sum_inv", "probs", "logprobs", "loss",
)


class Tensors(dict):
    """Named tensors in the order they were made; ``t.logits`` is ``t["logits"]``.

    ``inputs`` holds what the forward pass was given (parameters by name, Xb,
    Yb), so that a checker can reason about the whole pass.
    """

    inputs: dict = {}

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


_recent_forwards: list[weakref.ref] = []  # the last few forward passes, for forward_containing


def remember_forward(forward: Tensors) -> Tensors:
    """Keep a weak reference to ``forward`` for ``forward_containing`` (the last few only); returns it."""
    _recent_forwards.append(weakref.ref(forward))
    del _recent_forwards[:-8]
    return forward


def forward_containing(t: torch.Tensor) -> Tensors | None:
    """The recent forward pass that made ``t`` (by identity), or None."""
    for ref in reversed(_recent_forwards):
        forward = ref()
        if forward is not None and any(value is t for value in forward.values()):
            return forward
        if forward is not None and any(value is t for value in forward.inputs.values()):
            return forward
    return None


def make_generator(seed: int = SEED) -> torch.Generator:
    """The lecture's generator (seeded with SEED)."""
    return torch.Generator().manual_seed(seed)


def init_params(generator: torch.Generator, n_embd: int = 10, n_hidden: int = 64,
                vocab_size: int = VOCAB_SIZE, block_size: int = BLOCK_SIZE) -> list[torch.Tensor]:
    """[C, W1, b1, W2, b2, bngain, bnbias], all leaf tensors that require grad.

    Shapes: C (V, E), W1 (B*E, H), b1 (H,), W2 (H, V), b2 (V,), bngain (1, H),
    bnbias (1, H). The biases and the BatchNorm gain/bias are small random
    numbers rather than 0/1 on purpose: an all-zero tensor can hide a wrong
    gradient (a term multiplied by zero vanishes). b1 is useless in front of
    BatchNorm but kept so that its gradient (which is ~0) can be checked.
    """
    g = generator
    fan_in = n_embd * block_size
    C = torch.randn((vocab_size, n_embd), generator=g)
    W1 = torch.randn((fan_in, n_hidden), generator=g) * (5 / 3) / fan_in**0.5  # Kaiming init for tanh
    b1 = torch.randn(n_hidden, generator=g) * 0.1
    W2 = torch.randn((n_hidden, vocab_size), generator=g) * 0.1
    b2 = torch.randn(vocab_size, generator=g) * 0.1
    # The lecture draws these two without its generator; here they take it too.
    bngain = torch.randn((1, n_hidden), generator=g) * 0.1 + 1.0
    bnbias = torch.randn((1, n_hidden), generator=g) * 0.1
    parameters = [C, W1, b1, W2, b2, bngain, bnbias]
    for p in parameters:
        p.requires_grad = True
    return parameters


def sample_batch(X: torch.Tensor, Y: torch.Tensor, batch_size: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random minibatch: Xb (n, B), Yb (n,), drawn with replacement."""
    ix = torch.randint(0, X.shape[0], (batch_size,), generator=generator)
    return X[ix], Y[ix]


def chunked_forward(parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor) -> Tensors:
    """The forward pass cut into atomic steps, one tensor per step (Exercise 1).

    Returns every intermediate by name (see CHUNKED_NAMES). When the
    parameters require grad, each intermediate keeps its ``.grad`` after
    ``loss.backward()`` (``retain_grad``), so autograd can grade your answers.
    """
    C, W1, b1, W2, b2, bngain, bnbias = parameters
    n = Xb.shape[0]
    emb = C[Xb]                                       # (n, B, E) look up each character's vector
    embcat = emb.view(emb.shape[0], -1)               # (n, B*E) concatenate the B vectors
    hprebn = embcat @ W1 + b1                         # (n, H) linear layer 1
    bnmeani = 1 / n * hprebn.sum(0, keepdim=True)     # (1, H) BatchNorm: batch mean
    bndiff = hprebn - bnmeani                         # (n, H)
    bndiff2 = bndiff**2                               # (n, H)
    bnvar = 1 / (n - 1) * bndiff2.sum(0, keepdim=True)  # (1, H) variance with Bessel's n-1
    bnvar_inv = (bnvar + BN_EPS) ** -0.5              # (1, H)
    bnraw = bndiff * bnvar_inv                        # (n, H) normalised
    hpreact = bngain * bnraw + bnbias                 # (n, H) scaled and shifted
    h = torch.tanh(hpreact)                           # (n, H) non-linearity
    logits = h @ W2 + b2                              # (n, V) linear layer 2
    logit_maxes = logits.max(1, keepdim=True).values  # (n, 1) for numerical stability only
    norm_logits = logits - logit_maxes                # (n, V)
    counts = norm_logits.exp()                        # (n, V)
    counts_sum = counts.sum(1, keepdim=True)          # (n, 1)
    counts_sum_inv = counts_sum**-1                   # (n, 1) a power, not 1.0/x: see the notebook
    probs = counts * counts_sum_inv                   # (n, V) softmax
    logprobs = probs.log()                            # (n, V)
    loss = -logprobs[range(n), Yb].mean()             # () cross-entropy
    return _retain(Tensors(
        emb=emb, embcat=embcat, hprebn=hprebn, bnmeani=bnmeani, bndiff=bndiff, bndiff2=bndiff2,
        bnvar=bnvar, bnvar_inv=bnvar_inv, bnraw=bnraw, hpreact=hpreact, h=h, logits=logits,
        logit_maxes=logit_maxes, norm_logits=norm_logits, counts=counts, counts_sum=counts_sum,
        counts_sum_inv=counts_sum_inv, probs=probs, logprobs=logprobs, loss=loss,
    ), parameters, Xb, Yb)


def fused_forward(parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor,
                  retain: bool = True) -> Tensors:
    """The same model with BatchNorm and cross-entropy as whole operations (Exercises 2-4).

    ``retain=False`` skips ``retain_grad`` on the intermediates: a plain
    training step with ``loss.backward()`` needs only the parameters' grads.

    Returns emb (n, B, E), embcat (n, B*E), hprebn (n, H), bnmean (1, H),
    bnvar (1, H), bnvar_inv (1, H), bnraw (n, H), hpreact (n, H), h (n, H),
    logits (n, V) and loss ().
    """
    # Exercise 4 runs this 200,000 times on small tensors, where each operation
    # costs more in overhead than in arithmetic: hence addmm (a product and a
    # sum in one), addcmul and embedding (an index_select, cheaper than
    # indexing), with the same results as the lecture's code.
    C, W1, b1, W2, b2, bngain, bnbias = parameters
    emb = F.embedding(Xb, C)  # C[Xb]
    embcat = emb.view(emb.shape[0], -1)
    hprebn = torch.addmm(b1, embcat, W1)  # embcat @ W1 + b1
    # Two passes (mean, then the squares of the deviations) take a third of
    # the time of torch.var_mean, whose one-pass algorithm is slow on CPU.
    bnmean = hprebn.mean(0, keepdim=True)
    bndiff = hprebn - bnmean
    bnvar = (bndiff * bndiff).sum(0, keepdim=True) / (hprebn.shape[0] - 1)  # Bessel's correction
    bnvar_inv = (bnvar + BN_EPS).rsqrt()  # (bnvar + eps) ** -0.5
    bnraw = bndiff * bnvar_inv
    hpreact = torch.addcmul(bnbias, bngain, bnraw)  # bngain * bnraw + bnbias
    h = torch.tanh(hpreact)
    logits = torch.addmm(b2, h, W2)  # h @ W2 + b2
    loss = F.cross_entropy(logits, Yb)
    return _retain(Tensors(
        emb=emb, embcat=embcat, hprebn=hprebn, bnmean=bnmean, bnvar=bnvar, bnvar_inv=bnvar_inv,
        bnraw=bnraw, hpreact=hpreact, h=h, logits=logits, loss=loss,
    ), parameters, Xb, Yb, retain)


def _retain(tensors: Tensors, parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor,
            retain: bool = True) -> Tensors:
    for t in tensors.values():
        if retain and t.requires_grad:
            t.retain_grad()
    tensors.inputs = {**dict(zip(PARAM_NAMES, parameters)), "Xb": Xb, "Yb": Yb}
    return remember_forward(tensors)


def autograd_grads(parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor) -> list[torch.Tensor]:
    """The reference: gradients of the fused loss by autograd, in parameter order.

    Works on detached copies, so it never touches the caller's ``.grad``.
    """
    leaves = [p.detach().clone().requires_grad_(True) for p in parameters]
    with torch.enable_grad():
        loss = fused_forward(leaves, Xb, Yb, retain=False).loss
        return list(torch.autograd.grad(loss, leaves))


def sgd_steps(parameters: list[torch.Tensor], backward, steps: int, batch_size: int, lr: float,
              generator: torch.Generator, guard=None) -> list[torch.Tensor]:
    """``steps`` of minibatch SGD on random contexts, on copies of ``parameters``.

    ``backward(parameters, fw, Xb, Yb)`` returns the 7 gradients for the
    batch (``fw`` is ``fused_forward``'s result, computed without autograd).
    ``guard``, if given, is a context manager wrapped around each call.
    Returns the trained copies; the arguments are left as they were.
    """
    params = [p.detach().clone() for p in parameters]
    block_size = params[1].shape[0] // params[0].shape[1]
    for _ in range(steps):
        Xb = torch.randint(0, VOCAB_SIZE, (batch_size, block_size), generator=generator)
        Yb = torch.randint(0, VOCAB_SIZE, (batch_size,), generator=generator)
        with torch.no_grad():
            fw = fused_forward(params, Xb, Yb)
        if guard is None:
            grads = list(backward(params, fw, Xb, Yb))
        else:
            with guard():
                grads = list(backward(params, fw, Xb, Yb))
        with torch.no_grad():
            for p, grad in zip(params, grads):
                p -= lr * grad
    return params


def batchnorm_statistics(parameters: list[torch.Tensor], X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased variance of the hidden pre-activation over all of X.

    Training normalises with each batch's statistics; evaluation uses these,
    computed once over the training set (BatchNorm "calibration").
    Returns bnmean (1, H) and bnvar (1, H).
    """
    C, W1, b1 = parameters[:3]
    with torch.no_grad():
        hprebn = C[X].view(X.shape[0], -1) @ W1 + b1
        return hprebn.mean(0, keepdim=True), hprebn.var(0, keepdim=True, unbiased=True)


def inference_logits(parameters: list[torch.Tensor], X: torch.Tensor,
                     bnmean: torch.Tensor, bnvar: torch.Tensor) -> torch.Tensor:
    """Logits (N, V) with BatchNorm in evaluation mode (fixed statistics)."""
    C, W1, b1, W2, b2, bngain, bnbias = parameters
    hprebn = C[X].view(X.shape[0], -1) @ W1 + b1
    hpreact = bngain * (hprebn - bnmean) * (bnvar + BN_EPS) ** -0.5 + bnbias
    return torch.tanh(hpreact) @ W2 + b2


@torch.no_grad()
def split_loss(parameters: list[torch.Tensor], X: torch.Tensor, Y: torch.Tensor,
               bnmean: torch.Tensor, bnvar: torch.Tensor) -> float:
    """Mean cross-entropy of the whole split (X, Y) in evaluation mode."""
    return F.cross_entropy(inference_logits(parameters, X, bnmean, bnvar), Y).item()


@torch.no_grad()
def sample_names(parameters: list[torch.Tensor], bnmean: torch.Tensor, bnvar: torch.Tensor,
                 generator: torch.Generator, count: int = 20, block_size: int = BLOCK_SIZE) -> list[str]:
    """``count`` names drawn from the model, each from the context '...' until it emits '.'."""
    names = []
    for _ in range(count):
        context, out = [0] * block_size, []
        while True:
            logits = inference_logits(parameters, torch.tensor([context]), bnmean, bnvar)
            ix = torch.multinomial(F.softmax(logits, dim=1), num_samples=1, generator=generator).item()
            if ix == 0:
                break
            out.append(ITOS[ix])
            context = context[1:] + [ix]
        names.append("".join(out))
    return names
