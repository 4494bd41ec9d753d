"""Notebook 06's model: a one-block, pre-LayerNorm, GPT-style character model of the names.

The model reads up to T characters of a stream of names and predicts, at every
position, the character that comes next::

    x0 = wte[Xb] + wpe                     token and position embeddings
    x1 = x0 + attn(ln1(x0))                causal multi-head self-attention
    x2 = x1 + mlp(ln2(x1))                 a GELU MLP (GPT-2's tanh approximation)
    logits = lnf(x2) @ Wlm                 final LayerNorm and the language-model head
    loss = cross-entropy(logits, Yb)       mean over all B*T predictions

Shapes in the docstrings: B batch, T context length (``block_size``), C
embedding size, nh heads, hs = C // nh head size, M MLP width (4C by
default), V vocabulary size (27).

**The data.** A split's names are laid end to end, each followed by the end
marker ``.`` and the whole preceded by one ``.``: ``.emma.olivia.ava.`` (a
stream, as GPT reads its documents separated by an end-of-text token). A
training example is a window of T characters ``Xb`` and the same window moved
on by one, ``Yb``: position t predicts ``Yb[:, t]`` from ``Xb[:, :t+1]``, so
every position of every example is a real prediction (no padding, no mask in
the loss). A window may start inside one name and run into the next; the
model learns to look back no further than the last ``.``. The split is
``data.split_words``' (80/10/10, seed 42), the same as notebook 04's, and the
targets of a split's stream are exactly notebook 04's targets: every letter of
every name and its end marker, once. ``split_loss`` scores each of them once,
with the T characters before it as context, so its value sits beside
notebook 04's validation loss on the same characters.

**The softmax** of the attention subtracts each row's maximum before ``exp``,
as the lecture's cross-entropy does: for numerical safety only (the result is
the same, and the gradient of the maximum is zero up to rounding). The causal
mask sets the scores of future positions to ``-inf`` before the maximum, so
their ``exp`` is exactly 0 and no probability (and no gradient) reaches them.

**The cross-entropy** is one line (``F.cross_entropy``) in the chunked pass:
its atoms were Exercise 1 and its one-expression backward Exercise 2.

Everything random takes an explicit ``torch.Generator``. Nothing here computes
a gradient by hand: the manual backward passes are the exercises, and they
live in the master notebook ``solutions/06_transformer_block.ipynb``.

Tolerances: ``GRADIENT_RTOL`` and ``GRADIENT_ZERO_LEVEL`` below, for the
gradients (``transformer_training.TRAINED_LOSS_ATOL`` for Part 3's two runs);
the measurements behind them are in bench/transformer_tolerance.md.

Part 3's training loop, the MLP baseline beside it and the schedule are in
``autograder.workbook.transformer_training``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .data import ITOS, VOCAB_SIZE, load_names, split_words
from .model import Tensors, remember_forward

LN_EPS = 1e-5  # LayerNorm's epsilon, as in GPT-2

# How close a hand-derived gradient of this notebook must come to autograd's, in float32:
#     max|got - reference| <= GRADIENT_RTOL * max|reference|    when max|reference| >= GRADIENT_ZERO_LEVEL
#     max|got - reference| <= GRADIENT_ZERO_LEVEL                otherwise (the gradient is 0 up to rounding)
# Why these numbers, measured over thousands of seeded cases (bench/transformer_tolerance.md):
# * correct answers differ from autograd by up to 1.4e-6 of the tensor's scale in Part 1 and in the whole
#   backward pass (sums of mixed sign over up to B*T = 1024 positions), and by up to 1.5e-6 in Part 2's
#   attention head when its answer is judged on every head of a case at once; so GRADIENT_RTOL leaves 3.3x
#   headroom (notebook 01's 1.5e-6 would leave none). One head alone, a (T, hs) tensor of as few as 16
#   entries whose softmax backward cancels, reaches 2.6e-6 (1.9x): measured against the size of the terms
#   it adds up instead, 2.7e-7. So the head items are best judged on all the heads of a hidden case;
# * the smallest genuine bug, a LayerNorm epsilon subtracted or left out, is off by at least 2.0e-5 of the
#   scale, so GRADIENT_RTOL must stay below 2e-5 (4x margin); the next smallest, GELU's exact (erf) derivative
#   in place of the tanh approximation's, by 1.9e-4; most by more than 1e-2;
# * the one gradient that is mathematically zero, datt_max, comes out as rounding noise below 3e-9, while
#   every real gradient stays above 4.1e-6 (it shrinks like 1/(B*T): the loss is a mean over B*T
#   predictions), so the zero level sits at 1e-7, ten times below notebook 01's 1e-6.
# These hold for the sizes notebook 06 is checked on: T >= 4, B >= 4, B*T <= 1024, C >= 16, hs >= 2. With
# one or two positions or keys, a single sum with cancellation sets a tensor's scale, and a correct answer
# can be 1e-5 of it away (see bench/transformer_tolerance.md).
GRADIENT_RTOL = 5e-6
GRADIENT_ZERO_LEVEL = 1e-7

GELU_SCALE = math.sqrt(2.0 / math.pi)  # GELU's tanh approximation: 0.5 x (1 + tanh(GELU_SCALE (x + GELU_CUBIC x^3)))
GELU_CUBIC = 0.044715

PARAM_NAMES = ("wte", "wpe", "ln1_gain", "ln1_bias", "Wqkv", "bqkv", "Wo", "bo", "ln2_gain", "ln2_bias",
               "W1", "b1", "W2", "b2", "lnf_gain", "lnf_bias", "Wlm")

# The intermediates of the chunked forward pass, in the order it makes them.
CHUNKED_NAMES = (
    "tok_emb", "x0",
    "ln1_mean", "ln1_diff", "ln1_var", "ln1_rstd", "ln1_xhat", "ln1_out",
    "qkv", "q", "k", "v", "scores", "scaled", "masked", "att_max", "att_exp", "att_sum", "att",
    "y_heads", "y", "attn_out", "x1",
    "ln2_mean", "ln2_diff", "ln2_var", "ln2_rstd", "ln2_xhat", "ln2_out",
    "h_pre", "gelu_in", "gelu_tanh", "h", "mlp_out", "x2",
    "lnf_mean", "lnf_diff", "lnf_var", "lnf_rstd", "lnf_xhat", "lnf_out",
    "logits", "loss",
)


@dataclass(frozen=True)
class TransformerConfig:
    """The sizes of the model. ``n_mlp`` (M) defaults to 4 * n_embd, as in GPT-2.

    block_size (T): characters of context; n_embd (C): embedding size; n_head
    (nh): attention heads, which must divide C; vocab_size (V): 27.
    """

    block_size: int = 16
    n_embd: int = 32
    n_head: int = 4
    n_mlp: int = 0  # 0: 4 * n_embd
    vocab_size: int = VOCAB_SIZE

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not a multiple of n_head={self.n_head}")
        if min(self.block_size, self.n_embd, self.n_head, self.vocab_size) < 1 or self.n_mlp < 0:
            raise ValueError(f"every size must be positive: {self}")
        if not self.n_mlp:
            object.__setattr__(self, "n_mlp", 4 * self.n_embd)

    @property
    def head_size(self) -> int:
        """hs = C // nh."""
        return self.n_embd // self.n_head


def gradient_tolerance(reference: torch.Tensor) -> float:
    """The largest accepted max|got - reference| for a gradient of notebook 06 (see GRADIENT_RTOL)."""
    scale = reference.detach().abs().max().item() if reference.numel() else 0.0
    return GRADIENT_RTOL * scale if scale >= GRADIENT_ZERO_LEVEL else GRADIENT_ZERO_LEVEL


def param_shapes(config: TransformerConfig) -> dict[str, tuple[int, ...]]:
    """{parameter name: shape}, in the order of ``PARAM_NAMES``."""
    V, T, C, M = config.vocab_size, config.block_size, config.n_embd, config.n_mlp
    return {"wte": (V, C), "wpe": (T, C), "ln1_gain": (C,), "ln1_bias": (C,), "Wqkv": (C, 3 * C),
            "bqkv": (3 * C,), "Wo": (C, C), "bo": (C,), "ln2_gain": (C,), "ln2_bias": (C,), "W1": (C, M),
            "b1": (M,), "W2": (M, C), "b2": (C,), "lnf_gain": (C,), "lnf_bias": (C,), "Wlm": (C, V)}


def chunked_shapes(config: TransformerConfig, batch_size: int) -> dict[str, tuple[int, ...]]:
    """{intermediate name: shape} of ``chunked_forward`` on a batch of ``batch_size``, in its order."""
    B, T, C, nh, hs, M, V = (batch_size, config.block_size, config.n_embd, config.n_head, config.head_size,
                             config.n_mlp, config.vocab_size)
    row, stream, heads, scores, hidden = (B, T, 1), (B, T, C), (B, nh, T, hs), (B, nh, T, T), (B, T, M)

    def layer_norm(ln: str) -> dict:
        return {f"{ln}_mean": row, f"{ln}_diff": stream, f"{ln}_var": row, f"{ln}_rstd": row,
                f"{ln}_xhat": stream, f"{ln}_out": stream}

    shapes = {"tok_emb": stream, "x0": stream, **layer_norm("ln1"),
              "qkv": (B, T, 3 * C), "q": heads, "k": heads, "v": heads, "scores": scores, "scaled": scores,
              "masked": scores, "att_max": (B, nh, T, 1), "att_exp": scores, "att_sum": (B, nh, T, 1),
              "att": scores, "y_heads": heads, "y": stream, "attn_out": stream, "x1": stream, **layer_norm("ln2"),
              "h_pre": hidden, "gelu_in": hidden, "gelu_tanh": hidden, "h": hidden, "mlp_out": stream,
              "x2": stream, **layer_norm("lnf"), "logits": (B, T, V), "loss": ()}
    return {name: shapes[name] for name in CHUNKED_NAMES}


def init_params(generator: torch.Generator, config: TransformerConfig) -> list[torch.Tensor]:
    """The 17 parameters in the order of ``PARAM_NAMES``: leaf tensors that require grad.

    Shapes: wte (V, C), wpe (T, C), ln1_gain/ln1_bias (C,), Wqkv (C, 3C),
    bqkv (3C,), Wo (C, C), bo (C,), ln2_gain/ln2_bias (C,), W1 (C, M),
    b1 (M,), W2 (M, C), b2 (C,), lnf_gain/lnf_bias (C,), Wlm (C, V).

    The embeddings are 0.5 N(0, 1). A weight matrix is drawn with standard
    deviation 1/sqrt(fan_in), so each layer keeps its input's scale; the two projections that write into the
    residual stream (Wo, W2) get another 1/sqrt(2), one per branch, as GPT-2
    scales them; the head is 0.1 of that, so the first predictions are nearly
    uniform (a loss near log 27). The LayerNorm gains are 1 + 0.1 N(0, 1) and
    every bias 0.1 N(0, 1) rather than 1 and 0: a gradient multiplied by an
    all-zero tensor vanishes, and a wrong formula could hide behind it.
    """
    g = generator
    V, T, C, M = config.vocab_size, config.block_size, config.n_embd, config.n_mlp

    def randn(*shape):
        return torch.randn(shape, generator=g)

    wte = randn(V, C) * 0.5
    wpe = randn(T, C) * 0.5
    ln1_gain, ln1_bias = 1.0 + 0.1 * randn(C), 0.1 * randn(C)
    Wqkv, bqkv = randn(C, 3 * C) * C**-0.5, 0.1 * randn(3 * C)
    Wo, bo = randn(C, C) * (2 * C) ** -0.5, 0.1 * randn(C)
    ln2_gain, ln2_bias = 1.0 + 0.1 * randn(C), 0.1 * randn(C)
    W1, b1 = randn(C, M) * C**-0.5, 0.1 * randn(M)
    W2, b2 = randn(M, C) * (2 * M) ** -0.5, 0.1 * randn(C)
    lnf_gain, lnf_bias = 1.0 + 0.1 * randn(C), 0.1 * randn(C)
    Wlm = randn(C, V) * 0.1 * C**-0.5
    parameters = [wte, wpe, ln1_gain, ln1_bias, Wqkv, bqkv, Wo, bo, ln2_gain, ln2_bias,
                  W1, b1, W2, b2, lnf_gain, lnf_bias, Wlm]
    for p in parameters:
        p.requires_grad = True
    return parameters


# ------------------------------------------------------------------ data


@dataclass(frozen=True)
class Streams:
    """The train / dev / test names as streams of indices (1-D int64): ``.name.name.``."""

    train: torch.Tensor
    dev: torch.Tensor
    test: torch.Tensor


def encode_stream(words: list[str]) -> torch.Tensor:
    """``words`` as one stream of indices: a ``.`` (0), then each name followed by ``.``.

    A list of L names with n letters in all gives n + L + 1 indices, whose
    last n + L are the targets (every letter and every end marker, once).
    """
    text = "." + "".join(word + "." for word in words)
    codes = torch.frombuffer(bytearray(text.encode("ascii")), dtype=torch.uint8).long()
    return torch.where(codes == ord("."), 0, codes - ord("a") + 1)


def make_streams(words: list[str] | None = None, seed: int = 42) -> Streams:
    """Load the names (unless given), split them as ``data.split_words`` does, and encode each split."""
    if words is None:
        words = load_names()
    return Streams(*(encode_stream(part) for part in split_words(words, seed)))


def sample_batch(stream: torch.Tensor, batch_size: int, block_size: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of the stream: Xb (B, T) and Yb (B, T), Yb = Xb moved on by one.

    Position t of an example predicts ``Yb[:, t]`` from ``Xb[:, :t+1]``.
    """
    starts = torch.randint(0, stream.shape[0] - block_size, (batch_size,), generator=generator)
    index = starts[:, None] + torch.arange(block_size)
    return stream[index], stream[index + 1]


def random_batch(generator: torch.Generator, batch_size: int, block_size: int,
                 vocab_size: int = VOCAB_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random characters, Xb and Yb (B, T), with no data set needed (tests, hidden cases)."""
    Xb = torch.randint(0, vocab_size, (batch_size, block_size), generator=generator)
    Yb = torch.randint(0, vocab_size, (batch_size, block_size), generator=generator)
    return Xb, Yb


# ------------------------------------------------------------------ forward passes


def _unpack(parameters: list[torch.Tensor]):
    if len(parameters) != len(PARAM_NAMES):
        raise ValueError(f"expected {len(PARAM_NAMES)} parameters ({', '.join(PARAM_NAMES)}), got {len(parameters)}")
    return parameters


def chunked_forward(parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor,
                    config: TransformerConfig) -> Tensors:
    """The forward pass cut into atomic steps, one tensor a line (notebook 06, Part 1).

    Xb and Yb are (B, T) with T = ``config.block_size``. Returns every
    intermediate by name (``CHUNKED_NAMES``; shapes in ``chunked_shapes``).
    Each keeps its ``.grad`` after ``loss.backward()`` (``retain_grad``) when
    the parameters require grad. ``inputs`` holds the parameters by name,
    Xb, Yb and the causal mask ``causal`` (T, T) bool, True on and below the
    diagonal (the positions a query may look at).
    """
    (wte, wpe, ln1_gain, ln1_bias, Wqkv, bqkv, Wo, bo, ln2_gain, ln2_bias,
     W1, b1, W2, b2, lnf_gain, lnf_bias, Wlm) = _unpack(parameters)
    B, T = Xb.shape
    C, nh = wte.shape[1], config.n_head
    hs = C // nh
    V = Wlm.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()  # (T, T): query t sees keys 0..t

    tok_emb = wte[Xb]                                         # (B, T, C) each character's vector
    x0 = tok_emb + wpe                                        # (B, T, C) + (T, C): the residual stream
    # ln1: LayerNorm over the C features of each position (variance without Bessel's correction)
    ln1_mean = x0.mean(-1, keepdim=True)                      # (B, T, 1)
    ln1_diff = x0 - ln1_mean                                  # (B, T, C)
    ln1_var = (ln1_diff**2).mean(-1, keepdim=True)            # (B, T, 1) divided by C, not C - 1
    ln1_rstd = (ln1_var + LN_EPS) ** -0.5                     # (B, T, 1)
    ln1_xhat = ln1_diff * ln1_rstd                            # (B, T, C) normalised
    ln1_out = ln1_gain * ln1_xhat + ln1_bias                  # (B, T, C)
    # causal self-attention, nh heads of hs = C // nh
    qkv = ln1_out @ Wqkv + bqkv                               # (B, T, 3C)
    q = qkv[..., :C].view(B, T, nh, hs).transpose(1, 2)       # (B, nh, T, hs) queries
    k = qkv[..., C:2 * C].view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs) keys
    v = qkv[..., 2 * C:].view(B, T, nh, hs).transpose(1, 2)   # (B, nh, T, hs) values
    scores = q @ k.transpose(-2, -1)                          # (B, nh, T, T) query . key
    scaled = scores * hs**-0.5                                # (B, nh, T, T)
    masked = scaled.masked_fill(~causal, float("-inf"))       # (B, nh, T, T) no looking ahead
    att_max = masked.max(-1, keepdim=True).values             # (B, nh, T, 1) for numerical safety only
    att_exp = (masked - att_max).exp()                        # (B, nh, T, T) 0 at future positions
    att_sum = att_exp.sum(-1, keepdim=True)                   # (B, nh, T, 1)
    att = att_exp / att_sum                                   # (B, nh, T, T) softmax over the keys
    y_heads = att @ v                                         # (B, nh, T, hs) the value mix
    y = y_heads.transpose(1, 2).reshape(B, T, C)              # (B, T, C) heads side by side
    attn_out = y @ Wo + bo                                    # (B, T, C) output projection
    x1 = x0 + attn_out                                        # (B, T, C) first residual
    # ln2: the same atoms
    ln2_mean = x1.mean(-1, keepdim=True)                      # (B, T, 1)
    ln2_diff = x1 - ln2_mean                                  # (B, T, C)
    ln2_var = (ln2_diff**2).mean(-1, keepdim=True)            # (B, T, 1)
    ln2_rstd = (ln2_var + LN_EPS) ** -0.5                     # (B, T, 1)
    ln2_xhat = ln2_diff * ln2_rstd                            # (B, T, C)
    ln2_out = ln2_gain * ln2_xhat + ln2_bias                  # (B, T, C)
    # MLP with GELU (GPT-2's tanh approximation)
    h_pre = ln2_out @ W1 + b1                                 # (B, T, M) up projection
    gelu_in = GELU_SCALE * (h_pre + GELU_CUBIC * h_pre**3)    # (B, T, M)
    gelu_tanh = torch.tanh(gelu_in)                           # (B, T, M)
    h = 0.5 * h_pre * (1.0 + gelu_tanh)                       # (B, T, M) GELU
    mlp_out = h @ W2 + b2                                     # (B, T, C) down projection
    x2 = x1 + mlp_out                                         # (B, T, C) second residual
    # lnf: the final LayerNorm
    lnf_mean = x2.mean(-1, keepdim=True)                      # (B, T, 1)
    lnf_diff = x2 - lnf_mean                                  # (B, T, C)
    lnf_var = (lnf_diff**2).mean(-1, keepdim=True)            # (B, T, 1)
    lnf_rstd = (lnf_var + LN_EPS) ** -0.5                     # (B, T, 1)
    lnf_xhat = lnf_diff * lnf_rstd                            # (B, T, C)
    lnf_out = lnf_gain * lnf_xhat + lnf_bias                  # (B, T, C)
    logits = lnf_out @ Wlm                                    # (B, T, V) language-model head
    loss = F.cross_entropy(logits.view(B * T, V), Yb.view(B * T))  # () mean over the B*T predictions

    made = dict(locals())  # every tensor above, by its name
    tensors = Tensors({name: made[name] for name in CHUNKED_NAMES})
    for t in tensors.values():
        if t.requires_grad:
            t.retain_grad()
    tensors.inputs = {**dict(zip(PARAM_NAMES, parameters)), "Xb": Xb, "Yb": Yb, "causal": causal}
    return remember_forward(tensors)  # so that cmp finds the forward pass a tensor came from


def answer_namespace(forward: Tensors, config: TransformerConfig) -> dict:
    """What notebook 06's Part 1 answer cells see of ``forward`` (a ``chunked_forward`` pass): plain data.

    The sizes B, T, C, nh, hs, M, V; the parameters by name; Xb, Yb and
    ``causal``; every intermediate (detached); the GELU constants and the
    modules torch, F and math. Needs no autograd (the judge's child builds it).
    """
    inputs = forward.inputs
    Xb, Yb = inputs["Xb"], inputs["Yb"]
    B, T = Xb.shape
    C = inputs["wte"].shape[1]
    namespace = {"torch": torch, "F": F, "math": math, "GELU_SCALE": GELU_SCALE, "GELU_CUBIC": GELU_CUBIC,
                 "B": B, "T": T, "C": C, "nh": config.n_head, "hs": C // config.n_head,
                 "M": inputs["W1"].shape[1], "V": inputs["Wlm"].shape[1],
                 "Xb": Xb, "Yb": Yb, "causal": inputs["causal"]}
    namespace.update({name: inputs[name].detach() for name in PARAM_NAMES})
    namespace.update({name: t.detach() for name, t in forward.items()})
    return namespace


def notebook_variables(parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor,
                       config: TransformerConfig) -> tuple[dict, dict[str, torch.Tensor]]:
    """What notebook 06's Part 1 answer cells see, and autograd's answers, for one case.

    Returns (namespace, gradients): ``answer_namespace`` of the chunked
    forward pass, and ``gradients``, which maps ``d<name>`` to autograd's
    gradient of every intermediate and parameter. Works on copies: the
    caller's tensors and their ``.grad`` are left alone.
    """
    leaves = [p.detach().clone().requires_grad_(True) for p in parameters]
    with torch.enable_grad():
        forward = chunked_forward(leaves, Xb, Yb, config)
        forward.loss.backward()
    gradients = {f"d{name}": t.grad for name, t in forward.items() if t.grad is not None}
    gradients.update({f"d{name}": p.grad for name, p in zip(PARAM_NAMES, leaves)})
    return answer_namespace(forward, config), gradients


# The input of each LayerNorm in the chunked forward pass.
LAYER_NORM_INPUTS = {"ln1": "x0", "ln2": "x1", "lnf": "x2"}


def layer_norm_task(forward: Tensors, name: str = "ln2") -> Tensors:
    """Part 2's LayerNorm task: LayerNorm ``name`` of ``forward`` on its own, with autograd's answer.

    ``forward`` is a ``chunked_forward`` pass after ``loss.backward()``. Its
    LayerNorm's input is copied into a leaf ``x_ln`` (B, T, C), put through
    ``F.layer_norm`` with the same gain and bias, and the gradient that
    arrived at the LayerNorm's output, ``dout_ln`` (B, T, C), is sent back
    through it: ``x_ln.grad`` is then the LayerNorm's part of the gradient of
    its input alone (the residual path left out). Also returns ``out_ln``
    and, from ``forward``, ``gain_ln`` (C,), ``xhat_ln`` (B, T, C) and
    ``rstd_ln`` (B, T, 1).
    """
    source = forward[LAYER_NORM_INPUTS[name]]
    gain, bias = forward.inputs[f"{name}_gain"].detach(), forward.inputs[f"{name}_bias"].detach()
    dout = forward[f"{name}_out"].grad
    x_ln = source.detach().clone().requires_grad_()
    with torch.enable_grad():
        out_ln = F.layer_norm(x_ln, (x_ln.shape[-1],), gain, bias, eps=LN_EPS)
        out_ln.backward(dout)
    task = Tensors(x_ln=x_ln, out_ln=out_ln.detach(), gain_ln=gain, xhat_ln=forward[f"{name}_xhat"].detach(),
                   rstd_ln=forward[f"{name}_rstd"].detach(), dout_ln=dout)
    return remember_forward(task)


def attention_head(forward: Tensors, example: int | None = 0, head: int | None = 0) -> Tensors:
    """Part 2's attention task: one head of ``forward`` on its own, with autograd's answers.

    ``forward`` is a ``chunked_forward`` pass after ``loss.backward()``. The
    queries, keys and values of head ``head`` of example ``example`` are
    copied into leaves ``q_h``, ``k_h``, ``v_h`` (T, hs), put through
    ``F.scaled_dot_product_attention`` with the causal mask, and the gradient
    that arrived at that head's output, ``dy_h`` (T, hs), is sent back: their
    ``.grad`` are autograd's answers. Also returns ``y_h`` and ``att_h``
    (T, T), the head's attention probabilities. ``None`` for ``example``
    or ``head`` takes all of them at once: (B, nh, T, hs) with every head.
    """
    index = (slice(None) if example is None else example, slice(None) if head is None else head)
    q_h, k_h, v_h = (forward[name][index].detach().clone().requires_grad_() for name in ("q", "k", "v"))
    dy_h = forward.y_heads.grad[index]
    with torch.enable_grad():
        y_h = F.scaled_dot_product_attention(q_h, k_h, v_h, is_causal=True)
        y_h.backward(dy_h)
    task = Tensors(q_h=q_h, k_h=k_h, v_h=v_h, y_h=y_h.detach(), att_h=forward.att[index].detach(), dy_h=dy_h)
    return remember_forward(task)


def _layer_norm(x: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor):
    """LayerNorm over the last dimension in one kernel: (out, xhat, rstd), rstd of shape (..., 1)."""
    xhat, _, rstd = torch.native_layer_norm(x, (x.shape[-1],), None, None, LN_EPS)
    return torch.addcmul(bias, xhat, gain), xhat, rstd


def fused_forward(parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor | None,
                  config: TransformerConfig) -> Tensors:
    """The same model with whole operations, for training (notebook 06, Parts 2 and 3).

    Xb (B, T) with T <= block_size; Yb (B, T), or None for no loss. Returns
    what a backward pass needs: x0, x1, x2 (B, T, C); for each LayerNorm
    (ln1, ln2, lnf) its ``_xhat`` (B, T, C), ``_rstd`` (B, T, 1) and ``_out``
    (B, T, C); q, k, v (B, nh, T, hs); att (B, nh, T, T), the attention
    probabilities (0 above the diagonal); y (B, T, C), the merged heads;
    h_pre and h (B, T, M); logits (B, T, V); and loss () when Yb is given.
    No ``retain_grad``: autograd's answer is ``autograd_grads``.
    """
    (wte, wpe, ln1_gain, ln1_bias, Wqkv, bqkv, Wo, bo, ln2_gain, ln2_bias,
     W1, b1, W2, b2, lnf_gain, lnf_bias, Wlm) = _unpack(parameters)
    B, T = Xb.shape
    C, nh = wte.shape[1], config.n_head
    hs = C // nh
    # Thousands of steps on small tensors, where each operation costs more in
    # overhead than in arithmetic: hence embedding, addmm on (B*T, .) views,
    # native_layer_norm (mean, rstd and xhat in one kernel) and addcmul.
    x0 = F.embedding(Xb, wte) + wpe[:T]
    ln1_out, ln1_xhat, ln1_rstd = _layer_norm(x0, ln1_gain, ln1_bias)
    qkv = torch.addmm(bqkv, ln1_out.view(B * T, C), Wqkv)
    q, k, v = qkv.view(B, T, 3, nh, hs).permute(2, 0, 3, 1, 4)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    scores = (q @ k.transpose(-2, -1)).mul_(hs**-0.5).masked_fill_(future, float("-inf"))
    att = torch.softmax(scores, -1)
    y = (att @ v).transpose(1, 2).reshape(B * T, C)
    x1 = torch.addmm(bo, y, Wo).view(B, T, C).add_(x0)
    ln2_out, ln2_xhat, ln2_rstd = _layer_norm(x1, ln2_gain, ln2_bias)
    h_pre = torch.addmm(b1, ln2_out.view(B * T, C), W1)
    h = F.gelu(h_pre, approximate="tanh")
    x2 = torch.addmm(b2, h, W2).view(B, T, C).add_(x1)
    lnf_out, lnf_xhat, lnf_rstd = _layer_norm(x2, lnf_gain, lnf_bias)
    logits = lnf_out.view(B * T, C) @ Wlm
    tensors = Tensors(x0=x0, ln1_xhat=ln1_xhat, ln1_rstd=ln1_rstd, ln1_out=ln1_out, q=q, k=k, v=v, att=att,
                      y=y.view(B, T, C), x1=x1, ln2_xhat=ln2_xhat, ln2_rstd=ln2_rstd, ln2_out=ln2_out,
                      h_pre=h_pre.view(B, T, -1), h=h.view(B, T, -1), x2=x2, lnf_xhat=lnf_xhat,
                      lnf_rstd=lnf_rstd, lnf_out=lnf_out, logits=logits.view(B, T, -1))
    if Yb is not None:
        tensors["loss"] = F.cross_entropy(logits, Yb.reshape(B * T))
    tensors.inputs = {**dict(zip(PARAM_NAMES, parameters)), "Xb": Xb, "Yb": Yb}
    return tensors


def autograd_grads(parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor,
                   config: TransformerConfig) -> list[torch.Tensor]:
    """The reference: autograd's gradients of the fused loss, in the order of ``PARAM_NAMES``.

    Works on detached copies, so it never touches the caller's ``.grad``.
    """
    return autograd_loss_and_grads(parameters, Xb, Yb, config)[1]


def autograd_loss_and_grads(parameters: list[torch.Tensor], Xb: torch.Tensor, Yb: torch.Tensor,
                            config: TransformerConfig) -> tuple[float, list[torch.Tensor]]:
    """The fused loss (a float) and ``autograd_grads``, from one forward pass."""
    leaves = [p.detach().clone().requires_grad_(True) for p in parameters]
    with torch.enable_grad():
        loss = fused_forward(leaves, Xb, Yb, config).loss
        return loss.item(), list(torch.autograd.grad(loss, leaves))


def autograd_backward(parameters, fw, Xb, Yb, config) -> list[torch.Tensor]:
    """``autograd_grads`` with a manual backward function's signature (``fw`` unused): the reference run."""
    return autograd_grads(parameters, Xb, Yb, config)


# ------------------------------------------------------------------ evaluation and sampling


@torch.no_grad()
def inference_logits(parameters: list[torch.Tensor], X: torch.Tensor, config: TransformerConfig) -> torch.Tensor:
    """Logits (N, T', V) for contexts X (N, T') with T' <= block_size."""
    return fused_forward(parameters, X, None, config).logits


@torch.no_grad()
def split_loss(parameters: list[torch.Tensor], stream: torch.Tensor, config: TransformerConfig,
               chunk: int = 2048) -> float:
    """Mean cross-entropy over every target of ``stream`` (all but its first index), each scored once.

    A target is predicted from the T = block_size indices before it (fewer
    at the very start of the stream): the first window scores all its
    positions, every later window (moved on by one) its last position only.
    """
    T = config.block_size
    if stream.shape[0] <= T + 1:
        logits = inference_logits(parameters, stream[None, :-1], config)[0]
        return F.cross_entropy(logits, stream[1:]).item()
    total = F.cross_entropy(inference_logits(parameters, stream[None, :T], config)[0], stream[1:T + 1],
                            reduction="sum").item()
    windows = stream.unfold(0, T + 1, 1)[1:]  # (N - T - 1, T + 1): each window's last index is its target
    for start in range(0, windows.shape[0], chunk):
        part = windows[start:start + chunk]
        logits = inference_logits(parameters, part[:, :T], config)[:, -1]
        total += F.cross_entropy(logits, part[:, T], reduction="sum").item()
    return total / (stream.shape[0] - 1)


@torch.no_grad()
def sample_names(parameters: list[torch.Tensor], config: TransformerConfig, generator: torch.Generator,
                 count: int = 20, max_length: int = 50) -> list[str]:
    """``count`` names drawn from the model, each from the context ``.`` until it emits ``.``.

    The context grows by one character a step and keeps the last block_size.
    """
    names = []
    for _ in range(count):
        context, out = [0], []
        while len(out) < max_length:
            logits = inference_logits(parameters, torch.tensor([context[-config.block_size:]]), config)[0, -1]
            ix = torch.multinomial(F.softmax(logits, -1), num_samples=1, generator=generator).item()
            if ix == 0:
                break
            out.append(ITOS[ix])
            context.append(ix)
        names.append("".join(out))
    return names
