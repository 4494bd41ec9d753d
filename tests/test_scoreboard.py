"""autograder.checking.scoreboard: the summary table at the end of every notebook, and Exercise 1's graph.

Three parts: the status logic on namespaces built here (no kernel), the
summary cells of the executed notebooks (the blank release, a partial
submission and the solutions, from ``tests/workbook_runs.py``), and the
drawing of the forward graph without a display.
"""

from __future__ import annotations

import contextlib
import io
import math

import matplotlib
import pytest
import torch

from autograder.checking import checks
from autograder.checking.scoreboard import FAILED, NOT_ATTEMPTED, PASSED, STATUSES, Row, Scoreboard, scoreboard
from autograder.diagnosis import comparison
from autograder.exercises import EX1_LINES, NOTEBOOKS, exercise_number, items_of, notebook
from autograder.workbook import expression_graphs, iris, model
from autograder.workbook.data import BLOCK_SIZE, VOCAB_SIZE
from autograder.workbook.drawing import NO_GRADIENT_COLOURS, STATUS_COLOURS, draw_forward_graph, forward_graph
from tests.workbook_runs import KINDS, checked, expected_status

EX0, EX1, EX4, EX5 = notebook(0), notebook(1), notebook(4), notebook(5)
STUB = "#| answer: {}\n# YOUR CODE HERE\nraise NotImplementedError()"


def statuses(board: Scoreboard) -> dict[str, str]:
    return {row.grade_id: row.status for row in board.rows}


def row(board: Scoreboard, grade_id: str) -> Row:
    return next(r for r in board.rows if r.grade_id == grade_id)


@contextlib.contextmanager
def nothing_printed(capsys):
    yield
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")


# ------------------------------------------------------------------ Exercises 1-3: gradients

@pytest.fixture
def ex1_namespace(chunked_case):
    """A notebook-01-like namespace: the forward tensors (with autograd's .grad) and every right d<name>."""
    case = chunked_case(seed=20240611, n=24, n_hidden=40)
    namespace = {"torch": torch, "n": case.n, "fw": case.fw, "Xb": case.Xb, "Yb": case.Yb, **case.tensors}
    namespace.update({name: grad.clone() for name, grad in case.ref.items()})
    return namespace


@pytest.mark.ex1
def test_every_right_gradient_passes_with_its_shape_and_a_tiny_maxdiff(ex1_namespace, capsys):
    with nothing_printed(capsys):
        board = scoreboard(EX1, ex1_namespace, answers={})
    assert [r.grade_id for r in board.rows] == [item.grade_id for item in items_of(EX1)]
    assert board.count(PASSED) == len(items_of(EX1))
    for item in items_of(EX1):
        r = row(board, item.grade_id)
        assert r.name == item.spec["variable"] and r.tensor == item.spec["variable"][1:]
        assert r.shape == tuple(ex1_namespace[item.spec["variable"][1:]].shape)
        assert r.maxdiff <= comparison.tolerance_for(ex1_namespace[item.spec["variable"][1:]].grad)
    assert board.points == (sum(i.points for i in items_of(EX1)),) * 2


MISTAKES = {
    # gradient variable -> (how it goes wrong, words of the note that explains it)
    "dbnvar": (lambda ns: -ns["dbnvar"], "sign"),
    "dbnmeani": (lambda ns: ns["dbnmeani"].squeeze(0), "keepdim"),
    "dcounts": (lambda ns: ns["counts_sum_inv"] * ns["dprobs"], "+="),
    "dW2": (lambda ns: ns["dW2"].T.contiguous(), "transposed"),
}


@pytest.mark.ex1
@pytest.mark.parametrize("variable", MISTAKES)
def test_a_wrong_gradient_fails_with_the_reason_and_the_likely_cause(ex1_namespace, variable):
    wrong, words = MISTAKES[variable]
    value = ex1_namespace[variable] = wrong(ex1_namespace)
    board = scoreboard(EX1, ex1_namespace, answers={})
    grade_id = f"ex1_{variable}"
    assert {g for g, s in statuses(board).items() if s != PASSED} == {grade_id}
    r = row(board, grade_id)
    assert r.status == FAILED and r.notes
    assert any(words in note for note in r.notes), r.notes
    if value.shape == ex1_namespace[variable[1:]].shape:
        assert r.maxdiff > comparison.tolerance_for(ex1_namespace[variable[1:]].grad)
    else:
        assert r.maxdiff is None  # values of another shape are not compared


@pytest.mark.ex1
def test_a_gradient_assigned_without_clone_is_named_when_it_fails(ex1_namespace):
    ex1_namespace["dbndiff"] = ex1_namespace["dhprebn"]  # dhprebn = dbndiff, then dhprebn += ... in the notebook
    board = scoreboard(EX1, ex1_namespace, answers={})
    r = row(board, "ex1_dbndiff")
    assert r.status == FAILED
    assert any("dhprebn" in note and "same tensor" in note for note in r.notes), r.notes


@pytest.mark.ex1
def test_not_attempted_means_a_blank_answer_cell_or_a_variable_that_was_never_made(ex1_namespace):
    del ex1_namespace["dC"]
    board = scoreboard(EX1, ex1_namespace, answers={})
    assert row(board, "ex1_dC").status == NOT_ATTEMPTED
    # the released stub, as the kernel last ran it, wins over a stale variable
    board = scoreboard(EX1, ex1_namespace, answers={"ex1_line_logprobs": STUB.format("ex1_line_logprobs")})
    assert row(board, "ex1_dprobs").status == NOT_ATTEMPTED and row(board, "ex1_dprobs").maxdiff is None
    # an item made by two cells is not attempted while either is blank, though its first part exists
    board = scoreboard(EX1, ex1_namespace, answers={"ex1_line_counts_sum": STUB.format("ex1_line_counts_sum")})
    assert row(board, "ex1_dcounts").status == NOT_ATTEMPTED
    assert row(board, "ex1_dcounts_sum_inv").status == PASSED


@pytest.mark.ex1
def test_an_answer_cell_that_ran_and_stopped_before_assigning_fails(ex1_namespace):
    del ex1_namespace["dC"]
    answers = {"ex1_line_emb": "#| answer: ex1_line_emb\ndC = torch.zeros_like(C)\ndC[Xb] += demb_typo\n"}
    r = row(scoreboard(EX1, ex1_namespace, answers=answers), "ex1_dC")
    assert r.status == FAILED and "dC is not defined" in r.notes[0]


@pytest.mark.ex1
def test_an_item_that_cannot_be_checked_says_why_instead_of_failing(ex1_namespace):
    ex1_namespace["probs"] = ex1_namespace["probs"].detach()  # as if the forward pass had not run backward()
    r = row(scoreboard(EX1, ex1_namespace, answers={}), "ex1_dprobs")
    assert r.status == NOT_ATTEMPTED and "could not be checked" in r.notes[0]


@pytest.mark.ex1
def test_the_caller_globals_are_the_default_namespace(ex1_namespace):
    code = compile(f"board = scoreboard({EX1!r})", "<cell>", "exec")
    cell_globals = {"scoreboard": scoreboard, **ex1_namespace}
    exec(code, cell_globals)
    assert cell_globals["board"].count(PASSED) == len(items_of(EX1))


@pytest.mark.ex1
def test_tensor_statuses_name_the_tensors_of_the_gradient_items(ex1_namespace):
    ex1_namespace["dh"] = 2 * ex1_namespace["dh"]
    del ex1_namespace["dC"]
    found = scoreboard(EX1, ex1_namespace, answers={}).tensor_statuses()
    assert set(found) == {item.spec["variable"][1:] for item in items_of(EX1)}
    assert (found["h"], found["C"], found["logits"]) == (FAILED, NOT_ATTEMPTED, PASSED)


# ------------------------------------------------------------------ notebook 00: scalar graphs

@pytest.fixture
def ex0_namespace(master_answers):
    """The graphs of notebook 00 under its variable names, every answer cell of the master run on them."""
    graphs = {"g": expression_graphs.neuron(**expression_graphs.NEURON_INPUTS),
              "gx": expression_graphs.neuron_exp(**expression_graphs.NEURON_INPUTS),
              "gr": expression_graphs.reuse(**expression_graphs.REUSE_INPUTS)}
    by_graph = {"neuron": "g", "neuron_exp": "gx", "reuse": "gr"}
    for item in items_of(EX0):
        for answer in item.answers:
            exec(compile(master_answers[answer], answer, "exec"), {"math": math, **graphs[by_graph[item.spec["graph"]]]})
    return graphs


@pytest.mark.ex0
def test_scalar_items_pass_fail_and_wait_on_the_notebook_graphs(ex0_namespace):
    board = scoreboard(EX0, ex0_namespace, answers={})
    assert board.count(PASSED) == len(items_of(EX0))
    ex0_namespace["g"]["w1"].grad = 0.0
    ex0_namespace["g"]["x1"].grad = ex0_namespace["g"]["w1"]  # a Value where a number belongs
    ex0_namespace["gr"] = expression_graphs.reuse(**expression_graphs.REUSE_INPUTS)  # rebuilt: no .grad set yet
    board = scoreboard(EX0, ex0_namespace, answers={})
    assert row(board, "ex0_w1_grad").status == FAILED and row(board, "ex0_w1_grad").maxdiff > 0
    assert row(board, "ex0_x1_grad").status == FAILED and "Value" in row(board, "ex0_x1_grad").notes[0]
    assert row(board, "ex0_reuse_grads").status == NOT_ATTEMPTED
    assert board.count(PASSED) == len(items_of(EX0)) - 3


@pytest.mark.ex0
def test_a_scalar_item_with_some_nodes_never_set_fails_and_names_them():
    graph = expression_graphs.neuron_exp(**expression_graphs.NEURON_INPUTS)
    graph["o"].grad = 1.0
    r = row(scoreboard(EX0, {"gx": graph}, answers={}), "ex0_exp_grads")
    assert r.status == FAILED and any("top.grad was never set" in note for note in r.notes)


# ------------------------------------------------------------------ notebooks 04 and 05: functions

@pytest.fixture
def ex4_namespace():
    g = torch.Generator().manual_seed(4242)
    parameters = model.init_params(g, n_embd=8, n_hidden=48)
    Xb = torch.randint(0, VOCAB_SIZE, (32, BLOCK_SIZE), generator=g)
    Yb = torch.randint(0, VOCAB_SIZE, (32,), generator=g)
    return {"parameters": parameters, "Xb": Xb, "Yb": Yb}


def visible_checks_ex4(backward, ns) -> dict[str, bool]:
    with contextlib.redirect_stdout(io.StringIO()):
        return {"ex4_backward": checks.check_backward(backward, ns["parameters"], ns["Xb"], ns["Yb"]),
                "ex4_training": checks.check_training(backward, ns["parameters"], steps=5, seed=2147483647)}


@pytest.mark.ex4
@pytest.mark.parametrize("mistake", [None, "dbngain sign", "dC one-liner"])
def test_ex4_agrees_with_the_test_cells_checks(ex4_namespace, reference_backward, mistake, capsys):
    def backward(*args):
        return reference_backward(*args, mistake=mistake)

    ex4_namespace["manual_backward"] = backward
    before = [p.detach().clone() for p in ex4_namespace["parameters"]]
    with nothing_printed(capsys):
        board = scoreboard(EX4, ex4_namespace, answers={})
    expected = visible_checks_ex4(backward, ex4_namespace)
    assert statuses(board) == {k: PASSED if ok else FAILED for k, ok in expected.items()}
    assert all(ok == (mistake is None) for ok in expected.values())
    assert all(torch.equal(a, b) for a, b in zip(before, ex4_namespace["parameters"]))


def _raises(error):
    def backward(parameters, fw, Xb, Yb):
        print("a student's debugging output")
        raise error

    return backward


@pytest.mark.ex4
def test_ex4_a_stub_is_not_attempted_and_an_error_fails_with_its_message(ex4_namespace, capsys):
    ex4_namespace["manual_backward"] = _raises(NotImplementedError())
    with nothing_printed(capsys):
        assert set(statuses(scoreboard(EX4, ex4_namespace, answers={})).values()) == {NOT_ATTEMPTED}
        ex4_namespace["manual_backward"] = _raises(TypeError("unsupported operand"))
        board = scoreboard(EX4, ex4_namespace, answers={})
    assert set(statuses(board).values()) == {FAILED}
    assert all("TypeError: unsupported operand" in r.notes[0] for r in board.rows)
    del ex4_namespace["manual_backward"]
    assert set(statuses(scoreboard(EX4, ex4_namespace, answers={})).values()) == {NOT_ATTEMPTED}


@pytest.mark.ex4
def test_ex4_a_backward_that_changes_its_inputs_leaves_the_notebooks_parameters_alone(ex4_namespace, reference_backward):
    def clobbering(parameters, fw, Xb, Yb):
        grads = reference_backward(parameters, fw, Xb, Yb)
        parameters[0].zero_()
        return grads

    ex4_namespace["manual_backward"] = clobbering
    before = [p.detach().clone() for p in ex4_namespace["parameters"]]
    scoreboard(EX4, ex4_namespace, answers={})
    assert all(torch.equal(a, b) for a, b in zip(before, ex4_namespace["parameters"]))


@pytest.fixture(scope="module")
def ex5_functions(master_answers):
    """The master's mlp_backward and adam_step."""
    namespace = {"torch": torch, "F": torch.nn.functional}
    for answer in ("ex5_mlp_backward", "ex5_adam_update"):
        exec(compile(master_answers[answer], answer, "exec"), namespace)
    return namespace["mlp_backward"], namespace["adam_step"]


@pytest.fixture(scope="module")
def ex5_namespace():
    split = iris.split_iris(*iris.load_iris())
    return {"parameters": iris.init_mlp(model.make_generator()), "Xtr": split.Xtr, "Ytr": split.Ytr}


def visible_checks_ex5(backward, step, ns) -> dict[str, bool]:
    args = (ns["parameters"], ns["Xtr"], ns["Ytr"])
    with contextlib.redirect_stdout(io.StringIO()):
        return {"ex5_backward": checks.check_mlp_backward(backward, *args),
                "ex5_adam_step": checks.check_adam_step(step, *args),
                "ex5_training": checks.check_adam_training(backward, step, *args)}


@pytest.mark.ex5
@pytest.mark.parametrize("mistake", [None, "gradients doubled", "learning rate doubled"])
def test_ex5_agrees_with_the_test_cells_checks(ex5_namespace, ex5_functions, mistake, capsys):
    backward, step = ex5_functions

    def doubled_gradients(*args):
        return [2 * g for g in ex5_functions[0](*args)]

    def doubled_learning_rate(*args, lr, **kwargs):
        return ex5_functions[1](*args, lr=2 * lr, **kwargs)

    if mistake == "gradients doubled":
        backward = doubled_gradients
    if mistake == "learning rate doubled":
        step = doubled_learning_rate
    namespace = {**ex5_namespace, "mlp_backward": backward, "adam_step": step}
    with nothing_printed(capsys):
        board = scoreboard(EX5, namespace, answers={})
    expected = visible_checks_ex5(backward, step, namespace)
    assert statuses(board) == {k: PASSED if ok else FAILED for k, ok in expected.items()}
    assert (mistake is None) == all(expected.values())


# ------------------------------------------------------------------ never raises, never prints

JUNK = {"dlogprobs": "not a tensor", "logprobs": 3, "dC": torch.zeros(2, dtype=torch.int64), "C": torch.ones(2),
        "g": 5, "gx": {"o": None}, "gr": expression_graphs.reuse(1.0, 2.0), "manual_backward": lambda *a: 1 / 0,
        "parameters": None, "Xb": "x", "mlp_backward": print, "adam_step": 7, "Xtr": [], "Ytr": None}


@pytest.mark.parametrize("notebook_id", [pytest.param(nb, marks=getattr(pytest.mark, f"ex{exercise_number(nb)}"))
                                         for nb in NOTEBOOKS])
def test_a_board_is_built_whatever_the_namespace_holds(notebook_id, capsys):
    with nothing_printed(capsys):
        for namespace in ({}, JUNK):
            for answers in ({}, {"ex1_line_loss": None, "ex4_manual_backward": 42}):
                board = scoreboard(notebook_id, namespace, answers=answers)
                assert len(board.rows) == len(items_of(notebook_id))
                assert {r.status for r in board.rows} <= set(STATUSES)
                str(board), board._repr_html_()
    assert scoreboard("99_no_such_notebook", {}).rows == []


# ------------------------------------------------------------------ how it reads

def test_the_text_and_html_tables_show_every_row_its_notes_and_the_counts(ex1_namespace):
    ex1_namespace["dbnvar"] = -ex1_namespace["dbnvar"]
    del ex1_namespace["dC"]
    board = scoreboard(EX1, ex1_namespace, answers={})
    text, html = str(board), board._repr_html_()
    assert repr(board) == text
    lines = text.splitlines()
    assert str(board.count(PASSED)) in lines[0] and str(board.count(NOT_ATTEMPTED)) in lines[0]
    for r in board.rows:
        line = next(line for line in lines if line.startswith(r.grade_id + " "))
        assert line.endswith({PASSED: "✅ passed", FAILED: "❌ failed", NOT_ATTEMPTED: "not attempted"}[r.status])
        assert r.name in line and str(r.shape) in line
        assert f"<code>{r.grade_id}</code>" in html
    failed = lines.index(next(line for line in lines if line.startswith("ex1_dbnvar ")))
    assert lines[failed + 1].lstrip().startswith("->") and "sign" in text
    assert "<table>" in html and "sign flipped" in html
    odd = Scoreboard(EX1, [Row("ex1_dC", "<dC>", None, FAILED, None, ("a < b & c",), 1)])
    assert "&lt;dC&gt;" in odd._repr_html_() and "a &lt; b &amp; c" in odd._repr_html_()


# ------------------------------------------------------------------ the summary cells, executed

def summary_text(executed, notebook_id: str) -> tuple[str, list]:
    grade_id = f"ex{exercise_number(notebook_id)}_scoreboard"
    cell = next(c for c in executed.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    results = [o for o in cell.outputs if o.output_type == "execute_result"]
    assert len(results) == 1, cell.outputs
    return results[0].data["text/plain"], cell.outputs


by_kind_and_notebook = pytest.mark.parametrize("kind,notebook", [
    pytest.param(kind, nb, marks=getattr(pytest.mark, f"ex{exercise_number(nb)}"), id=f"{kind}-{nb}")
    for kind in KINDS for nb in NOTEBOOKS])


@pytest.mark.slow
@by_kind_and_notebook
def test_the_summary_cell_shows_every_item_with_the_status_it_deserves(kind, notebook, needed_notebooks):
    run = checked(kind, needed_notebooks)
    text, outputs = summary_text(run.result(notebook).executed, notebook)
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"]
    assert "text/html" in next(o for o in outputs if o.output_type == "execute_result").data
    lines = text.splitlines()
    expected = {item.grade_id: expected_status(kind, item) for item in items_of(notebook)}
    shown = {}
    for grade_id in expected:
        line = next(line for line in lines if line.startswith(grade_id + " "))
        shown[grade_id] = next(s for s in STATUSES if line.endswith(s))
    assert shown == expected
    counts = {s: list(expected.values()).count(s) for s in STATUSES}
    assert lines[0].startswith(f"{notebook}: {counts[PASSED]} of {len(expected)} passed ✅ · {counts[FAILED]} failed ❌ · "
                               f"{counts[NOT_ATTEMPTED]} not attempted")
    for grade_id, status in expected.items():  # a failing row explains itself on the lines below it
        if status == FAILED:
            below = lines[lines.index(next(line for line in lines if line.startswith(grade_id + " "))) + 1]
            assert below.lstrip().startswith("->"), grade_id


@pytest.mark.slow
@pytest.mark.ex1
@pytest.mark.parametrize("kind", KINDS)
def test_notebook_01_draws_its_graph_at_the_start_and_beside_the_scoreboard(kind, needed_notebooks):
    if EX1 not in needed_notebooks:
        pytest.skip("notebook 01 is not among the selected tests")
    executed = checked(kind, needed_notebooks).result(EX1).executed
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in executed.cells]
    assert ids.index("ex1_graph") < ids.index(EX1_LINES[0].answer_id) < ids.index("ex1_scoreboard") \
        < ids.index("ex1_graph_progress")
    for grade_id in ("ex1_graph", "ex1_graph_progress"):
        outputs = executed.cells[ids.index(grade_id)].outputs
        assert [o for o in outputs if "image/png" in o.get("data", {})], grade_id
        assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"], grade_id


# ------------------------------------------------------------------ Exercise 1's graph

@pytest.mark.ex1
def test_the_graph_has_every_tensor_of_the_forward_pass_in_order():
    nodes, operations = forward_graph()
    gradients = {item.spec["variable"][1:] for item in items_of(EX1)}
    loss = EX1_LINES[0].output
    assert set(nodes) == gradients | {loss, "Xb", "Yb"} and len(nodes) == len(set(nodes))
    assert [op.output for op in operations] == [line.output for line in reversed(EX1_LINES)]
    for op in operations:  # every input is made before it is used: the forward order
        assert op.inputs and all(nodes.index(i) < nodes.index(op.output) for i in op.inputs), op
        assert op.label and all(i in next(line.code for line in EX1_LINES if line.output == op.output) for i in op.inputs)


@pytest.mark.ex1
def test_the_graph_renders_headless_with_one_box_per_tensor_coloured_by_status(ex1_namespace, capsys):
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    plt.switch_backend("Agg")
    ex1_namespace["dh"] = -ex1_namespace["dh"]
    for name in ("dC", "demb", "dembcat"):
        del ex1_namespace[name]
    tensor_statuses = scoreboard(EX1, ex1_namespace, answers={}).tensor_statuses()
    assert set(tensor_statuses.values()) == set(STATUSES)
    with nothing_printed(capsys):
        figure = draw_forward_graph(ex1_namespace, tensor_statuses, title="progress")
        figure.canvas.draw()  # renders every artist, as saving or showing would
    assert matplotlib.get_backend().lower() == "agg"
    artists = {a.get_gid(): a for a in figure.axes[0].texts if a.get_gid()}
    nodes, operations = forward_graph()
    assert sorted(g[5:] for g in artists if g.startswith("node:")) == sorted(nodes)
    edges = {tuple(g[5:].split("->")) for g in artists if g.startswith("edge:")}
    assert edges == {(i, op.output) for op in operations for i in op.inputs}
    for name in nodes:
        box = artists[f"node:{name}"]
        assert box.get_text().startswith(name) and str(tuple(ex1_namespace[name].shape)) in box.get_text()
        fill = NO_GRADIENT_COLOURS[0] if name not in tensor_statuses else STATUS_COLOURS[tensor_statuses[name]][0]
        assert box.get_bbox_patch().get_facecolor() == to_rgba(fill), name
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
    plt.close(figure)


@pytest.mark.ex1
def test_the_graph_without_statuses_is_all_grey_and_without_tensors_shows_names_only():
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba

    plt.switch_backend("Agg")
    figure = draw_forward_graph()
    boxes = {a.get_gid()[5:]: a for a in figure.axes[0].texts if (a.get_gid() or "").startswith("node:")}
    grey = to_rgba(STATUS_COLOURS[NOT_ATTEMPTED][0])
    for item in items_of(EX1):
        assert boxes[item.spec["variable"][1:]].get_bbox_patch().get_facecolor() == grey
        assert boxes[item.spec["variable"][1:]].get_text() == item.spec["variable"][1:]
    plt.close(figure)


# ------------------------------------------------------------------ every figure of every notebook

@pytest.mark.slow
@pytest.mark.parametrize("notebook", [pytest.param(nb, marks=getattr(pytest.mark, f"ex{exercise_number(nb)}"))
                                      for nb in NOTEBOOKS])
def test_every_figure_of_the_solved_notebook_renders_without_stderr(notebook, needed_notebooks):
    """Each cell that shows a figure leaves a PNG in the executed solution, and nothing reaches stderr
    (nbgrader would fail a test cell with stderr output)."""
    executed = checked("solutions", needed_notebooks).result(notebook).executed
    figures = [cell for cell in executed.cells if cell.cell_type == "code" and "plt.show()" in cell.source]
    assert figures, "every notebook draws at least one figure"
    for cell in figures:
        assert [o for o in cell.outputs if "image/png" in o.get("data", {})], cell.source[:80]
    for cell in executed.cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.get("name") == "stderr" or o.output_type == "error"], \
                cell.source[:80]
