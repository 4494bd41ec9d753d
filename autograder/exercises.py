"""What is graded: every notebook, answer cell and graded item, by id.

The ids here are the nbgrader ``grade_id`` of the cells in ``solutions/``:
an answer cell (``ex1_line_probs``) holds code the student writes; a graded
item (``ex1_dcounts``) is a test cell worth ``points`` that checks one
gradient. ``tests/test_registry.py`` fails when a master notebook and this
registry disagree.

An answer cell starts with a directive line ``#| answer: <answer id>``, so the
hidden checks can find its code both in a notebook file and in a kernel's
input history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

ASSIGNMENT = "backprop_ninja"


@dataclass(frozen=True)
class Line:
    """One line of the chunked forward pass and what its backward step yields."""

    output: str  # the tensor the line makes, e.g. "probs"
    code: str  # the forward line itself
    grads: tuple[str, ...]  # gradient variables its answer cell assigns, e.g. ("dcounts_sum_inv", "dcounts")
    exercise: int = 1  # the notebook's number: Exercise 1's lines, or notebook 06's Part 1

    @property
    def answer_id(self) -> str:
        return f"ex{self.exercise}_line_{self.output}"


# Exercise 1, in the order of the backward pass (the forward lines, bottom up).
EX1_LINES = (
    Line("loss", "loss = -logprobs[range(n), Yb].mean()", ("dlogprobs",)),
    Line("logprobs", "logprobs = probs.log()", ("dprobs",)),
    Line("probs", "probs = counts * counts_sum_inv", ("dcounts_sum_inv", "dcounts")),
    Line("counts_sum_inv", "counts_sum_inv = counts_sum**-1", ("dcounts_sum",)),
    Line("counts_sum", "counts_sum = counts.sum(1, keepdim=True)", ("dcounts",)),
    Line("counts", "counts = norm_logits.exp()", ("dnorm_logits",)),
    Line("norm_logits", "norm_logits = logits - logit_maxes", ("dlogits", "dlogit_maxes")),
    Line("logit_maxes", "logit_maxes = logits.max(1, keepdim=True).values", ("dlogits",)),
    Line("logits", "logits = h @ W2 + b2", ("dh", "dW2", "db2")),
    Line("h", "h = torch.tanh(hpreact)", ("dhpreact",)),
    Line("hpreact", "hpreact = bngain * bnraw + bnbias", ("dbngain", "dbnbias", "dbnraw")),
    Line("bnraw", "bnraw = bndiff * bnvar_inv", ("dbndiff", "dbnvar_inv")),
    Line("bnvar_inv", "bnvar_inv = (bnvar + 1e-5)**-0.5", ("dbnvar",)),
    Line("bnvar", "bnvar = 1/(n-1) * bndiff2.sum(0, keepdim=True)", ("dbndiff2",)),
    Line("bndiff2", "bndiff2 = bndiff**2", ("dbndiff",)),
    Line("bndiff", "bndiff = hprebn - bnmeani", ("dhprebn", "dbnmeani")),
    Line("bnmeani", "bnmeani = 1/n * hprebn.sum(0, keepdim=True)", ("dhprebn",)),
    Line("hprebn", "hprebn = embcat @ W1 + b1", ("dembcat", "dW1", "db1")),
    Line("embcat", "embcat = emb.view(emb.shape[0], -1)", ("demb",)),
    Line("emb", "emb = C[Xb]", ("dC",)),
)


# Notebook 06's Part 1, in the order of the backward pass (the forward lines of
# ``workbook.transformer.chunked_forward``, bottom up). A tensor used twice or
# three times (x0, x1, x2, the LayerNorms' diffs, h_pre, att_exp, masked) gets
# its gradient over several cells.
EX6_LINES = (
    Line("loss", "loss = F.cross_entropy(logits.view(B * T, V), Yb.view(B * T))", ("dlogits",), 6),
    Line("logits", "logits = lnf_out @ Wlm", ("dlnf_out", "dWlm"), 6),
    Line("lnf_out", "lnf_out = lnf_gain * lnf_xhat + lnf_bias", ("dlnf_xhat", "dlnf_gain", "dlnf_bias"), 6),
    Line("lnf_xhat", "lnf_xhat = lnf_diff * lnf_rstd", ("dlnf_rstd", "dlnf_diff"), 6),
    Line("lnf_rstd", "lnf_rstd = (lnf_var + 1e-5)**-0.5", ("dlnf_var",), 6),
    Line("lnf_var", "lnf_var = (lnf_diff**2).mean(-1, keepdim=True)", ("dlnf_diff",), 6),
    Line("lnf_diff", "lnf_diff = x2 - lnf_mean", ("dx2", "dlnf_mean"), 6),
    Line("lnf_mean", "lnf_mean = x2.mean(-1, keepdim=True)", ("dx2",), 6),
    Line("x2", "x2 = x1 + mlp_out", ("dx1", "dmlp_out"), 6),
    Line("mlp_out", "mlp_out = h @ W2 + b2", ("dh", "dW2", "db2"), 6),
    Line("h", "h = 0.5 * h_pre * (1.0 + gelu_tanh)", ("dh_pre", "dgelu_tanh"), 6),
    Line("gelu_tanh", "gelu_tanh = torch.tanh(gelu_in)", ("dgelu_in",), 6),
    Line("gelu_in", "gelu_in = GELU_SCALE * (h_pre + GELU_CUBIC * h_pre**3)", ("dh_pre",), 6),
    Line("h_pre", "h_pre = ln2_out @ W1 + b1", ("dln2_out", "dW1", "db1"), 6),
    Line("ln2_out", "ln2_out = ln2_gain * ln2_xhat + ln2_bias", ("dln2_xhat", "dln2_gain", "dln2_bias"), 6),
    Line("ln2_xhat", "ln2_xhat = ln2_diff * ln2_rstd", ("dln2_rstd", "dln2_diff"), 6),
    Line("ln2_rstd", "ln2_rstd = (ln2_var + 1e-5)**-0.5", ("dln2_var",), 6),
    Line("ln2_var", "ln2_var = (ln2_diff**2).mean(-1, keepdim=True)", ("dln2_diff",), 6),
    Line("ln2_diff", "ln2_diff = x1 - ln2_mean", ("dx1", "dln2_mean"), 6),
    Line("ln2_mean", "ln2_mean = x1.mean(-1, keepdim=True)", ("dx1",), 6),
    Line("x1", "x1 = x0 + attn_out", ("dx0", "dattn_out"), 6),
    Line("attn_out", "attn_out = y @ Wo + bo", ("dy", "dWo", "dbo"), 6),
    Line("y", "y = y_heads.transpose(1, 2).reshape(B, T, C)", ("dy_heads",), 6),
    Line("y_heads", "y_heads = att @ v", ("datt", "dv"), 6),
    Line("att", "att = att_exp / att_sum", ("datt_exp", "datt_sum"), 6),
    Line("att_sum", "att_sum = att_exp.sum(-1, keepdim=True)", ("datt_exp",), 6),
    Line("att_exp", "att_exp = (masked - att_max).exp()", ("dmasked", "datt_max"), 6),
    Line("att_max", "att_max = masked.max(-1, keepdim=True).values", ("dmasked",), 6),
    Line("masked", 'masked = scaled.masked_fill(~causal, float("-inf"))', ("dscaled",), 6),
    Line("scaled", "scaled = scores * hs**-0.5", ("dscores",), 6),
    Line("scores", "scores = q @ k.transpose(-2, -1)", ("dq", "dk"), 6),
    Line("q_k_v", "q, k, v = the thirds of qkv, cut into heads", ("dqkv",), 6),
    Line("qkv", "qkv = ln1_out @ Wqkv + bqkv", ("dln1_out", "dWqkv", "dbqkv"), 6),
    Line("ln1_out", "ln1_out = ln1_gain * ln1_xhat + ln1_bias", ("dln1_xhat", "dln1_gain", "dln1_bias"), 6),
    Line("ln1_xhat", "ln1_xhat = ln1_diff * ln1_rstd", ("dln1_rstd", "dln1_diff"), 6),
    Line("ln1_rstd", "ln1_rstd = (ln1_var + 1e-5)**-0.5", ("dln1_var",), 6),
    Line("ln1_var", "ln1_var = (ln1_diff**2).mean(-1, keepdim=True)", ("dln1_diff",), 6),
    Line("ln1_diff", "ln1_diff = x0 - ln1_mean", ("dx0", "dln1_mean"), 6),
    Line("ln1_mean", "ln1_mean = x0.mean(-1, keepdim=True)", ("dx0",), 6),
    Line("x0", "x0 = tok_emb + wpe", ("dtok_emb", "dwpe"), 6),
    Line("tok_emb", "tok_emb = wte[Xb]", ("dwte",), 6),
)


@dataclass(frozen=True)
class Step:
    """One answer cell of notebook 00: it sets the ``.grad`` of some nodes of one expression graph."""

    answer_id: str
    graph: str  # the builder in autograder.workbook.expression_graphs.GRAPHS: "neuron", "neuron_exp" or "reuse"
    nodes: tuple[str, ...]  # the nodes whose .grad the cell sets, in the order of the backward pass
    points: int = 1  # per node when the step is graded node by node, else for the whole step
    item_id: str = ""  # the one graded item of a whole step; "" grades each node ("ex0_x1_grad")


# Notebook 00, in the order of the backward pass: the neuron node by node, then
# the neuron with tanh made of exp (e feeds two nodes) and a graph that uses
# its inputs twice, each as one item.
EX0_STEPS = (
    Step("ex0_grad_o", "neuron", ("o",)),
    Step("ex0_grad_n", "neuron", ("n",)),
    Step("ex0_grad_sum", "neuron", ("x1w1x2w2", "b")),
    Step("ex0_grad_products", "neuron", ("x1w1", "x2w2")),
    Step("ex0_grad_x1w1", "neuron", ("x1", "w1")),
    Step("ex0_grad_x2w2", "neuron", ("x2", "w2")),
    Step("ex0_exp_backward", "neuron_exp", ("o", "top", "inv", "bottom", "e", "two_n", "n"), 3, "ex0_exp_grads"),
    Step("ex0_reuse_backward", "reuse", ("f", "d", "e", "a", "b"), 3, "ex0_reuse_grads"),
)


@dataclass(frozen=True)
class Item:
    """One graded test cell: a gradient (or a function) checked on hidden inputs.

    ``spec`` holds what only the item's kind reads (its own fields: the
    variable a gradient item checks, the function an answer cell defines,
    ...); each kind documents and types them (``autograder.kinds``).
    """

    grade_id: str  # test cell id and gradebook column, e.g. "ex1_dcounts"
    notebook: str  # notebook id, e.g. "01_atomic_backprop"
    answers: tuple[str, ...]  # answer cells whose code makes it, run in this order
    points: int
    kind: str  # how it is checked: a name in autograder.kinds.KINDS
    spec: Mapping[str, object] = field(default_factory=dict, hash=False, compare=False)


def _ex0_items() -> tuple[Item, ...]:
    """An item per node for the neuron (upstream gradients fed in correct), one per later step."""
    items, done = [], {}  # done: graph -> nodes finished by earlier steps
    for step in EX0_STEPS:
        provided = (tuple(done.get(step.graph, ())),)
        groups = [(step.item_id, step.nodes)] if step.item_id else \
            [(f"ex0_{node}_grad", (node,)) for node in step.nodes]
        for grade_id, nodes in groups:
            items.append(Item(grade_id, notebook(0), (step.answer_id,), step.points, "scalar",
                              {"graph": step.graph, "nodes": nodes, "provided": provided}))
        done[step.graph] = done.get(step.graph, ()) + step.nodes
    return tuple(items)


def _line_items(lines: tuple[Line, ...], kind: str, spec: Mapping[str, object] | None = None) -> tuple[Item, ...]:
    """One item per gradient of ``lines`` (one exercise's), graded after the answer cell that completes it."""
    completed_at: dict[str, int] = {}  # gradient -> index of the line that finishes it
    for index, line in enumerate(lines):
        for grad in line.grads:
            completed_at[grad] = index
    order = sorted(completed_at, key=lambda g: (completed_at[g], lines[completed_at[g]].grads.index(g)))
    exercise = lines[0].exercise
    items = []
    for grad in order:
        cells = [i for i, line in enumerate(lines) if grad in line.grads]
        answers = tuple(lines[i].answer_id for i in cells)
        # An answer cell may use every gradient finished before it, and one that earlier cells have
        # begun and it adds to (``dx1 += ...`` where x1 is used three times) as they leave it:
        # "dx1<ln2_diff" is dx1 before the cell of line ln2_diff.
        provided = tuple(tuple(g for g in order if completed_at[g] < i) + _partial(lines, i, grad) for i in cells)
        items.append(Item(f"ex{exercise}_{grad}", notebook(exercise), answers, 1, kind,
                          {**(spec or {}), "variable": grad, "provided": provided}))
    return tuple(items)


def _partial(lines: tuple[Line, ...], index: int, grad: str) -> tuple[str, ...]:
    """The gradients (other than ``grad``) that the cell of ``lines[index]`` adds to before they are complete."""
    begun = {g for line in lines[:index] for g in line.grads}
    return tuple(f"{g}<{lines[index].output}" for g in lines[index].grads if g != grad and g in begun)


def _ex1_items() -> tuple[Item, ...]:
    return _line_items(EX1_LINES, "gradient")


def _ex6_items() -> tuple[Item, ...]:
    """Part 1 line by line; Part 2's LayerNorm, attention head and whole backward pass; Part 3's training."""
    def part2(variable: str, answer: str, points: int, task: str, provided: tuple[str, ...]) -> Item:
        return Item(f"ex6_{variable}", notebook(6), (answer,), points, "transformer_gradient",
                    {"task": task, "variable": variable, "provided": (provided,)})

    return _line_items(EX6_LINES, "transformer_gradient", {"task": "line"}) + (
        part2("dx_ln", "ex6_ln_fused", 3, "layer_norm", ("dout_ln",)),
        part2("dq_h", "ex6_attention_head", 2, "head", ("dy_h",)),
        part2("dk_h", "ex6_attention_head", 2, "head", ("dy_h",)),
        part2("dv_h", "ex6_attention_head", 1, "head", ("dy_h",)),
        Item("ex6_backward", notebook(6), ("ex6_manual_backward",), 6, "transformer_backward",
             {"functions": ("manual_backward",)}),
        Item("ex6_training", notebook(6), ("ex6_manual_backward",), 4, "transformer_training",
             {"functions": ("manual_backward",)}),
    )


# In the order a student works through them; the number in front is the exercise's.
NOTEBOOKS = (
    "00_scalar_warmup",
    "01_atomic_backprop",
    "02_fused_cross_entropy",
    "03_fused_batchnorm",
    "04_manual_training",
    "05_iris_adam",
    "06_transformer_block",
)


def notebook(number: int) -> str:
    """The notebook id of exercise ``number``: notebook(1) is "01_atomic_backprop"."""
    found = [nb for nb in NOTEBOOKS if exercise_number(nb) == number]
    if not found:
        raise KeyError(f"no notebook for exercise {number}")
    return found[0]


def exercise_number(notebook_id: str) -> int:
    """The exercise a notebook id belongs to: 1 for "01_atomic_backprop"."""
    return int(notebook_id.split("_", 1)[0])


ITEMS: tuple[Item, ...] = _ex0_items() + _ex1_items() + (
    Item("ex2_dlogits", notebook(2), ("ex2_dlogits_fused",), 4, "gradient", {"variable": "dlogits", "provided": ((),)}),
    Item("ex3_dhprebn", notebook(3), ("ex3_dhprebn_fused",), 6, "gradient",
         {"variable": "dhprebn", "provided": (("dhpreact",),)}),
    Item("ex4_backward", notebook(4), ("ex4_manual_backward",), 6, "function", {"functions": ("manual_backward",)}),
    Item("ex4_training", notebook(4), ("ex4_manual_backward",), 4, "sgd_training", {"functions": ("manual_backward",)}),
    Item("ex5_backward", notebook(5), ("ex5_mlp_backward",), 4, "mlp_backward", {"functions": ("mlp_backward",)}),
    Item("ex5_adam_step", notebook(5), ("ex5_adam_update",), 3, "adam_step", {"functions": ("adam_step",)}),
    Item("ex5_training", notebook(5), ("ex5_mlp_backward", "ex5_adam_update"), 3, "adam_training",
         {"functions": ("mlp_backward", "adam_step")}),
) + _ex6_items()

ITEMS_BY_ID = {item.grade_id: item for item in ITEMS}

# Answer cells that are practice, not graded: a student brings Exercise 1 code
# into a later notebook to time it against the fused version.
PRACTICE_ANSWERS = {
    "ex2_atomic_chain": notebook(2),
    "ex3_atomic_chain": notebook(3),
    "ex4_dC_loop": notebook(4),
    "ex6_ln_atomic_chain": notebook(6),
}


def items_of(notebook: str) -> tuple[Item, ...]:
    return tuple(item for item in ITEMS if item.notebook == notebook)


def items_with_answer(answer_id: str) -> tuple[Item, ...]:
    """The graded items built from answer cell ``answer_id``."""
    return tuple(item for item in ITEMS if answer_id in item.answers)


def answer_ids(notebook_id: str) -> tuple[str, ...]:
    """Every answer cell of a notebook, in notebook order (graded ones, then practice)."""
    if notebook_id in (notebook(1), notebook(6)):
        lines = EX1_LINES if notebook_id == notebook(1) else EX6_LINES
        graded = tuple(line.answer_id for line in lines)
        graded += tuple(dict.fromkeys(a for item in items_of(notebook_id) for a in item.answers if a not in graded))
    else:
        graded = tuple(dict.fromkeys(a for item in items_of(notebook_id) for a in item.answers))
    return graded + tuple(a for a, nb in PRACTICE_ANSWERS.items() if nb == notebook_id)


def notebook_of_answer(answer_id: str) -> str | None:
    """The notebook that holds answer cell ``answer_id``, or None for an unknown id."""
    return next((nb for nb in NOTEBOOKS if answer_id in answer_ids(nb)), None)


def max_score() -> int:
    return sum(item.points for item in ITEMS)
