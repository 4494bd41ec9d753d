"""autograder.workbook.value, expression_graphs and drawing: the Value of notebook 00, its graphs and their drawing,
and the checks of notebook 00 (PyTorch as the oracle)."""

from __future__ import annotations

import io
import math
import textwrap

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from autograder.checking import checks
from autograder.exercises import ITEMS, ITEMS_BY_ID, notebook
from autograder.judge.scan import scan_answers
from autograder.judge.untrusted import ForbiddenInAnswer
from autograder.judge.verdict import output_in_process as student_output
from autograder.kinds import describe_case
from autograder.kinds.cases import HIDDEN_CASES
from autograder.workbook import drawing, expression_graphs
from autograder.workbook.expression_graphs import NEURON_INPUTS, REUSE_INPUTS
from autograder.workbook.value import Value, topological_order

pytestmark = pytest.mark.ex0
EX0_ITEMS = [item for item in ITEMS if item.notebook == notebook(0)]


def torch_leaf(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=True)


def torch_neuron(x1, x2, w1, w2, b):
    """The neuron written directly in torch: leaves and output."""
    leaves = {name: torch_leaf(v) for name, v in dict(x1=x1, x2=x2, w1=w1, w2=w2, b=b).items()}
    o = torch.tanh(leaves["x1"] * leaves["w1"] + leaves["x2"] * leaves["w2"] + leaves["b"])
    o.backward()
    return o.item(), {name: t.grad.item() for name, t in leaves.items()}


# ------------------------------------------------------------------ operations

numbers = st.floats(min_value=-3, max_value=3, allow_nan=False).filter(lambda x: abs(x) > 0.05)


@given(a=numbers, b=numbers)
def test_each_operation_computes_its_value(a, b):
    x, y = Value(a), Value(b)
    assert (x + y).data == a + b and (x - y).data == a - b and (x * y).data == a * b
    assert (x / y).data == pytest.approx(a / b, rel=1e-12)
    assert (x**2).data == pytest.approx(a**2, rel=1e-12) and (-x).data == -a
    assert x.exp().data == math.exp(a) and x.tanh().data == math.tanh(a)
    assert (2 + x).data == 2 + a and (2 - x).data == 2 - a and (2 * x).data == 2 * a
    assert (1 / x).data == pytest.approx(1 / a, rel=1e-12)


def test_a_result_remembers_its_inputs_and_operation():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = a * b
    assert c.children == (a, b) and c.op == "*" and c.data == -6.0
    twice = a + a
    assert twice.children == (a, a)  # a node used twice is kept twice
    assert (a**-1).op == "**-1" and a.tanh().op == "tanh"
    constant = (a + 1).children[1]
    assert constant.label == "1" and constant.data == 1.0


def test_grad_starts_at_zero_and_remembers_being_set():
    v = Value(1.0)
    assert v.grad == 0.0 and not v.grad_assigned
    v.grad = 0.0
    assert v.grad_assigned
    w = Value(1.0)
    w.grad += 0.0
    assert w.grad_assigned


OPERATIONS = {
    "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
    "div": lambda x, y: x / y, "rsub": lambda x, y: 1.5 - x, "rmul": lambda x, y: -2.0 * y,
    "pow": lambda x, y: x**3, "inv": lambda x, y: y**-1, "exp": lambda x, y: (x * 0.3).exp(),
    "tanh": lambda x, y: x.tanh(), "neg": lambda x, y: -y,
}


@st.composite
def expressions(draw):
    """A random expression over a few inputs, built with the same ops on Values and on tensors."""
    inputs = draw(st.lists(numbers, min_size=2, max_size=4))
    program = draw(st.lists(st.tuples(st.sampled_from(sorted(OPERATIONS)), st.integers(0, 100), st.integers(0, 100)),
                            min_size=1, max_size=12))
    return inputs, program


def run(program, nodes):
    nodes = list(nodes)
    for op, i, j in program:
        nodes.append(OPERATIONS[op](nodes[i % len(nodes)], nodes[j % len(nodes)]))
    return nodes


def run_values(program, inputs):
    """The expression on Values, or a skipped example when it leaves the reals (0**-1, overflow)."""
    try:
        values = run(program, [Value(x) for x in inputs])
    except (ZeroDivisionError, OverflowError):
        assume(False)
    assume(all(math.isfinite(v.data) and abs(v.data) < 1e6 for v in values))
    return values


@settings(max_examples=150, deadline=None)
@given(expressions())
def test_backward_matches_torch_on_random_expressions(expression):
    inputs, program = expression
    values = run_values(program, inputs)
    tensors = run(program, [torch_leaf(x) for x in inputs])
    values[-1].backward()
    tensors[-1].backward()
    for value, tensor in zip(values[: len(inputs)], tensors[: len(inputs)]):
        expected = tensor.grad.item() if tensor.grad is not None else 0.0
        assert value.grad == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # the oracle on the same graph gives the same numbers, for every node
    oracle = expression_graphs.torch_grads(values[-1])
    for value in topological_order(values[-1]):
        assert oracle[value] == pytest.approx(value.grad, rel=1e-9, abs=1e-9)


def test_torch_grads_does_not_use_the_stored_local_derivatives():
    g = expression_graphs.neuron(**NEURON_INPUTS)
    before = expression_graphs.torch_grads(g.o)
    g.o._local = (123.0,)  # a wrong tanh derivative: backward() would be wrong, the oracle must not
    after = expression_graphs.torch_grads(g.o)
    assert all(before[node] == after[node] for node in g.values())
    g.o.backward()
    assert g.n.grad == 123.0


# ------------------------------------------------------------------ backward and topological order

@settings(max_examples=60, deadline=None)
@given(expressions())
def test_topological_order_lists_every_node_once_after_its_children(expression):
    inputs, program = expression
    root = run_values(program, inputs)[-1]
    order = topological_order(root)
    assert order[-1] is root and len(set(map(id, order))) == len(order)
    position = {id(node): i for i, node in enumerate(order)}
    for node in order:
        assert all(position[id(child)] < position[id(node)] for child in node.children)


def test_a_node_used_twice_accumulates_and_the_assignment_bug_loses_a_contribution():
    a = Value(3.0)
    y = a + a
    y.backward()
    assert a.grad == expression_graphs.torch_grads(y)[a]
    y.backward(accumulate=False)
    assert a.grad == expression_graphs.torch_grads(y)[a] / 2


def test_backward_starts_from_fresh_zeros_each_time():
    g = expression_graphs.reuse(**REUSE_INPUTS)
    g.f.backward()
    first = {name: node.grad for name, node in g.items()}
    g.f.backward()
    assert {name: node.grad for name, node in g.items()} == first


def test_a_long_chain_needs_no_recursion():
    x = Value(0.5)
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.backward()
    assert x.grad == 1.0


# ------------------------------------------------------------------ the graphs of notebook 00

def test_the_lecture_neuron_agrees_with_torch():
    g = expression_graphs.neuron(**NEURON_INPUTS)
    o, grads = torch_neuron(**NEURON_INPUTS)
    assert g.o.data == pytest.approx(o, abs=1e-15)
    assert g.o.data == pytest.approx(1 / math.sqrt(2), abs=1e-12)  # b was chosen for this
    g.o.backward()
    for name, grad in grads.items():
        assert g[name].grad == pytest.approx(grad, abs=1e-12), name
    # the table of the lecture, as formulas
    assert g.n.grad == pytest.approx(1 - g.o.data**2, abs=1e-15)
    for node in (g.x1w1x2w2, g.b, g.x1w1, g.x2w2):
        assert node.grad == g.n.grad
    assert g.x1.grad == pytest.approx(g.w1.data * g.n.grad) and g.w1.grad == pytest.approx(g.x1.data * g.n.grad)
    assert g.x2.grad == pytest.approx(g.w2.data * g.n.grad) and g.w2.grad == 0.0


@given(st.fixed_dictionaries({name: numbers for name in NEURON_INPUTS}))
def test_tanh_made_of_exp_gives_the_same_output_and_gradients(inputs):
    plain, written_out = expression_graphs.neuron(**inputs), expression_graphs.neuron_exp(**inputs)
    if abs(plain.n.data) > 15:  # exp(2n) overflows float precision of (e - 1)/(e + 1) usefully
        return
    assert written_out.o.data == pytest.approx(plain.o.data, abs=1e-12)
    plain.o.backward()
    written_out.o.backward()
    for name in NEURON_INPUTS:
        assert written_out[name].grad == pytest.approx(plain[name].grad, abs=1e-9)
    assert written_out.e.children.count(written_out.two_n) == 1
    users = [node for node in written_out.values() if written_out.e in node.children]
    assert len(users) == 2  # e feeds top and bottom


def test_graph_nodes_are_named_by_their_keys_and_end_with_the_output():
    for build, inputs in ((expression_graphs.neuron, NEURON_INPUTS), (expression_graphs.neuron_exp, NEURON_INPUTS),
                          (expression_graphs.reuse, REUSE_INPUTS)):
        g = build(**inputs)
        assert all(node.name == key for key, node in g.items())
        assert g.output is list(g.values())[-1] and g.output is topological_order(g.output)[-1]
        assert list(g)[: len(inputs)] == list(inputs)


@pytest.mark.parametrize("graph", sorted(expression_graphs.GRAPHS))
def test_random_inputs_are_reproducible_nonzero_distinct_and_keep_tanh_steep(graph):
    draws = [expression_graphs.random_inputs(graph, torch.Generator().manual_seed(seed)) for seed in (1, 1, 2)]
    assert draws[0] == draws[1] and draws[0] != draws[2]
    assert list(draws[0]) == list(expression_graphs.graph_inputs(graph))
    for seed in range(50):
        values = expression_graphs.random_inputs(graph, torch.Generator().manual_seed(seed))
        assert all(abs(v) > 0.01 for k, v in values.items() if k != "b" or graph == "reuse")
        assert len(set(values.values())) == len(values)
        if graph != "reuse":
            assert -1 <= expression_graphs.GRAPHS[graph](**values)["n"].data <= 1


def test_random_inputs_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    expression_graphs.random_inputs("neuron", torch.Generator().manual_seed(3))
    assert torch.equal(state, torch.get_rng_state())


# ------------------------------------------------------------------ the visible check

def test_check_grad_passes_a_right_gradient_and_fails_a_wrong_one(capsys):
    g = expression_graphs.neuron(**NEURON_INPUTS)
    reference = expression_graphs.torch_grads(g.o)
    g.o.grad = 1.0
    assert checks.check_grad(g.o, reference)
    g.n.grad = 0.25
    assert not checks.check_grad(g.n, reference)
    out = capsys.readouterr().out
    assert out.startswith("o.grad") and "approximate: True" in out and "approximate: False" in out


def test_check_grad_fails_a_zero_that_was_never_set(capsys):
    g = expression_graphs.neuron(**NEURON_INPUTS)
    reference = expression_graphs.torch_grads(g.o)
    assert reference[g.w2] == 0.0 and g.w2.grad == 0.0
    assert not checks.check_grad(g.w2, reference)
    assert "never set" in capsys.readouterr().out
    g.w2.grad = 0.0
    assert checks.check_grad(g.w2, reference)


def test_check_grad_explains_a_value_where_a_number_belongs(capsys):
    g = expression_graphs.neuron(**NEURON_INPUTS)
    g.x2.grad = g.w2 * 0.5  # forgot .data: a Value, not a number
    assert not checks.check_grad(g.x2, expression_graphs.torch_grads(g.o))
    assert "use a node's .data" in capsys.readouterr().out


def test_check_grads_reports_every_node(capsys):
    g = expression_graphs.reuse(**REUSE_INPUTS)
    g.f.backward()
    assert checks.check_grads(list(g.values()), expression_graphs.torch_grads(g.f))
    assert len(capsys.readouterr().out.strip().splitlines()) == len(g)


# ------------------------------------------------------------------ drawing

@pytest.mark.parametrize("graph", sorted(expression_graphs.GRAPHS))
def test_layout_puts_inputs_left_of_their_users_and_keeps_nodes_apart(graph):
    inputs = NEURON_INPUTS if graph != "reuse" else REUSE_INPUTS
    root = expression_graphs.GRAPHS[graph](**inputs).output
    places = drawing.layout(root)
    assert set(map(id, places)) == set(map(id, topological_order(root)))
    for node, (column, _) in places.items():
        assert all(places[child][0] < column for child in node.children)
    by_column = {}
    for column, row in places.values():
        by_column.setdefault(column, []).append(row)
    for rows in by_column.values():
        rows.sort()
        assert all(b - a >= 1 for a, b in zip(rows, rows[1:]))


def test_draw_renders_without_a_display_and_shows_data_and_grad():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = expression_graphs.neuron(**NEURON_INPUTS)
    g.o.backward()
    figure = drawing.draw(g.o, highlight=[g.x1], title="after backward")
    texts = [t.get_text() for t in figure.axes[0].texts]
    for node in g.values():
        assert any(f"data {node.data:.4f}" in t and f"grad {node.grad:.4f}" in t for t in texts), node.name
    assert {"+", "*", "tanh"} <= set(texts)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"
    plt.close(figure)


def test_draw_survives_a_gradient_that_is_not_a_number():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = expression_graphs.reuse(**REUSE_INPUTS)
    g.a.grad = g.b  # a mistake a student can make
    figure = drawing.draw(g.f)
    assert any("grad Value" in t.get_text() for t in figure.axes[0].texts)
    plt.close(figure)


# ------------------------------------------------------------------ the hidden checks of notebook 00

def answer(answer_id: str, body: str) -> str:
    return f"#| answer: {answer_id}\n" + textwrap.dedent(body).strip() + "\n"


def test_setting_grad_is_allowed_in_notebook_00_only():
    assert scan_answers([answer("ex0_grad_o", "o.grad = 1.0")]) == []
    assert "reads a .grad tensor (autograd's answer)" in scan_answers([answer("ex1_line_loss", "x = o.grad")])
    assert "calls backward() (autograd)" in scan_answers([answer("ex0_grad_o", "o.backward()")])


def test_assigning_instead_of_adding_costs_the_reuse_item_only(master_answers, judge_with):
    wrong = master_answers["ex0_reuse_backward"].replace("+=", "=")
    assert wrong != master_answers["ex0_reuse_backward"]
    verdict = judge_with("ex0_reuse_grads", ex0_reuse_backward=wrong)
    assert not verdict.passed and "a.grad" in verdict.message and "f.grad" not in verdict.message
    assert judge_with("ex0_exp_grads").passed


def test_a_hard_coded_gradient_fails_on_other_inputs(judge_with):
    verdict = judge_with("ex0_x1_grad", ex0_grad_x1w1=answer("ex0_grad_x1w1", """
        x1.grad = -1.5
        w1.grad = x1.data * x1w1.grad
        """))
    assert not verdict.passed and "x1 = " in verdict.message
    assert judge_with("ex0_w1_grad", ex0_grad_x1w1=answer("ex0_grad_x1w1", """
        x1.grad = -1.5
        w1.grad = x1.data * x1w1.grad
        """)).passed  # the other node of the same cell is right


def test_w2_right_only_because_x2_is_zero_fails(judge_with):
    verdict = judge_with("ex0_w2_grad", ex0_grad_x2w2=answer("ex0_grad_x2w2", """
        x2.grad = w2.data * x2w2.grad
        w2.grad = 0.0
        """))
    assert not verdict.passed


def test_an_upstream_mistake_costs_only_its_own_item(judge_with):
    wrong_n = answer("ex0_grad_n", "n.grad = (1 - o.data) * o.grad")
    assert not judge_with("ex0_n_grad", ex0_grad_n=wrong_n).passed
    assert judge_with("ex0_x1_grad", ex0_grad_n=wrong_n).passed


def test_value_backward_is_refused_at_run_time_even_past_the_scan():
    item = ITEMS_BY_ID["ex0_o_grad"]
    sneaky = answer("ex0_grad_o", """
        cls = type(o)
        match o:  # a class pattern fetches .backward without an attribute in the code
            case cls(backward=run):
                run()
        """)
    assert "calls backward() (autograd)" in scan_answers([sneaky])
    for case in HIDDEN_CASES:
        with pytest.raises(ForbiddenInAnswer, match="backward is not allowed here"):
            student_output(item, {"ex0_grad_o": sneaky}, case)
    assert Value.backward is not None and callable(Value.backward)  # restored afterwards
    g = expression_graphs.neuron(**NEURON_INPUTS)
    g.o.backward()
    assert g.x1.grad != 0


def test_every_scalar_item_has_a_description_of_its_inputs():
    for item in EX0_ITEMS:
        for case in HIDDEN_CASES:
            text = describe_case(item, case)
            assert all(f"{name} = " in text for name in expression_graphs.graph_inputs(item.spec["graph"]))
