"""A failed visible check says why in its red box, with a traceback of one frame (the test cell)."""

from __future__ import annotations

import ast
import re

import nbformat
import pytest

from autograder.checking import checks
from autograder.checking.checks import AssertReasons, check_backward, check_grad, cmp, failure_reason
from autograder.workbook import model
from autograder.workbook.expression_graphs import NEURON_INPUTS, neuron, torch_grads
from tests.mistake_corpus import notebook_batch

pytestmark = pytest.mark.ex1

SETUP = """\
import torch
from autograder.workbook import model
from autograder.checking.checks import cmp
g = model.make_generator()
parameters = model.init_params(g)
Xb = torch.randint(0, 27, (32, 3), generator=g)
Yb = torch.randint(0, 27, (32,), generator=g)
fw = model.chunked_forward(parameters, Xb, Yb)
fw.loss.backward()
logprobs, n = fw.logprobs, 32
dlogprobs = torch.zeros_like(logprobs)
dlogprobs[range(n), Yb] = -1.0  # the mean's 1/n left out
"""
TEST_CELL = 'assert cmp("logprobs", dlogprobs, logprobs)'
SUMMARY_CELL = 'passed = sum(cmp(name, d, t) for name, d, t in [("logprobs", dlogprobs, logprobs)])\nprint(passed, "passed")'
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def assert_with_reasons(source: str, namespace: dict) -> None:
    """Run ``source`` as IPython would with the transformer installed."""
    tree = ast.fix_missing_locations(AssertReasons().visit(ast.parse(source)))
    exec(compile(tree, "<cell>", "exec"), namespace)


@pytest.fixture
def wrong_dlogprobs():
    fw = notebook_batch()["fw"]  # the workbook's batch, after loss.backward()
    return {"cmp": cmp, "logprobs": fw.logprobs, "dlogprobs": -fw.logprobs.grad}


def test_a_failed_assert_cmp_carries_the_reason(wrong_dlogprobs):
    with pytest.raises(AssertionError) as failed:
        assert_with_reasons(TEST_CELL, wrong_dlogprobs)
    assert str(failed.value).startswith("logprobs: sign flipped")


def test_a_passing_assert_cmp_is_untouched(wrong_dlogprobs):
    wrong_dlogprobs["dlogprobs"] = -wrong_dlogprobs["dlogprobs"]
    assert_with_reasons(TEST_CELL, wrong_dlogprobs)  # raises nothing


def test_only_asserts_of_a_bare_check_get_a_message():
    tree = AssertReasons().visit(ast.parse('assert cmp("a", x, y)\nassert x, "mine"\nassert other(x)'))
    asserts = [node for node in tree.body if isinstance(node, ast.Assert)]
    assert asserts[0].msg is not None
    assert isinstance(asserts[1].msg, ast.Constant) and asserts[1].msg.value == "mine"
    assert asserts[2].msg is None


def test_the_other_visible_checks_record_their_reason(capsys):
    batch = notebook_batch()
    parameters, Xb, Yb = [batch[name] for name in model.PARAM_NAMES], batch["Xb"], batch["Yb"]

    def swapped(ps, fw, Xb, Yb):
        grads = model.autograd_grads(ps, Xb, Yb)
        return grads[:5] + [grads[6], grads[5]]

    assert check_backward(swapped, parameters, Xb, Yb) is False
    assert "dbnbias is where dbngain belongs" in failure_reason()
    graph = neuron(**NEURON_INPUTS)
    reference = torch_grads(graph.output)
    graph.output.grad = 2.0  # do/do is 1
    assert check_grad(graph.output, reference) is False
    assert failure_reason().startswith("o.grad: ")
    graph.output.grad = 1.0
    assert check_grad(graph.output, reference) is True
    assert failure_reason() == checks.DEFAULT_REASON  # a pass leaves no stale reason behind


@pytest.mark.slow
def test_in_a_kernel_the_red_box_says_why_in_one_frame(tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in (SETUP, TEST_CELL, SUMMARY_CELL)])
    NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    (error,) = [o for o in nb.cells[1].outputs if o.output_type == "error"]
    assert error.ename == "AssertionError"
    assert error.evalue.startswith("logprobs: off by a factor of 32 = n: a 1/n (the mean's) is missing")
    traceback = ANSI.sub("", "\n".join(error.traceback))
    assert traceback.count("Cell In[") == 1 and "autograder" not in traceback, traceback
    assert TEST_CELL in traceback
    # the summary cell adds the checks up: they still return a bool
    summary = "".join(o.get("text", "") for o in nb.cells[2].outputs if o.output_type == "stream")
    assert "0 passed" in summary


def test_make_check_does_not_repeat_the_reason_its_check_printed():
    from autograder.checking.selfcheck import visible_result

    printed = ("logprobs        | exact: False | approximate: False | maxdiff: 9.7e-01\n"
               "                  -> off by a factor of 32 = n: a 1/n (the mean's) is missing\n")
    cell = nbformat.v4.new_code_cell(TEST_CELL, metadata={"nbgrader": {"grade_id": "ex1_dlogprobs"}})
    cell.execution_count = 3
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed),
                    nbformat.v4.new_output("error", ename="AssertionError", traceback=[],
                                           evalue="logprobs: off by a factor of 32 = n: a 1/n (the mean's) is missing")]
    passed, shown = visible_result(nbformat.v4.new_notebook(cells=[cell]), "ex1_dlogprobs")
    assert passed is False
    assert sum("a 1/n (the mean's) is missing" in line for line in shown) == 1
    assert shown[-1] == "the check's assert failed"
