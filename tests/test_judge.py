"""autograder.judge.verdict, scan and untrusted: hidden checks, the code scan and the autograd guard."""

from __future__ import annotations

import os
import textwrap
import time

import pytest
import torch

import autograder.cells as recording
import autograder.judge.verdict as judging
from autograder.cells import find_answers
from autograder.exercises import EX1_LINES, ITEMS, ITEMS_BY_ID, exercise_number
from autograder.judge import protocol
from autograder.judge.scan import scan_answers
from autograder.judge.untrusted import ForbiddenInAnswer, autograd_forbidden
from autograder.judge.verdict import HiddenTestFailed, hidden_check, judge_item
from autograder.judge.verdict import output_in_process as student_output
from autograder.kinds.cases import HIDDEN_CASES, case_inputs, gradient_namespace

EX1_ITEMS = [item for item in ITEMS if item.notebook == "01_atomic_backprop"]


def exercise_mark(notebook: str):
    """The task marker (ex0..ex5) of a notebook id, for ``make test EX=n``."""
    return getattr(pytest.mark, f"ex{exercise_number(notebook)}")


def answer(answer_id: str, body: str) -> str:
    """An answer cell: the directive line, then ``body``."""
    return f"#| answer: {answer_id}\n" + textwrap.dedent(body).strip() + "\n"


# ------------------------------------------------------------- the masters pass

@pytest.mark.parametrize("item", [pytest.param(i, id=i.grade_id, marks=exercise_mark(i.notebook)) for i in ITEMS])
def test_every_master_answer_passes_its_hidden_check(item, judge_with):
    verdict = judge_with(item.grade_id)
    assert verdict.passed, verdict.report()
    assert verdict.flags == []
    assert verdict.message.startswith(("matches autograd", "matches torch.optim.Adam"))


# ------------------------------------------------------------- one mistake, one item

MISTAKES = {
    # cell -> (wrong source body, the items that must fail)
    "dbndiff first part doubled": ("ex1_line_bnraw", """
        dbndiff = 2 * bnvar_inv * dbnraw
        dbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True)
        """, {"ex1_dbndiff"}),
    "dcounts second part assigned, not added": ("ex1_line_counts_sum", """
        dcounts = torch.ones_like(counts) * dcounts_sum
        """, {"ex1_dcounts"}),
    "db2 summed over the wrong dimension, dW2 and dh right": ("ex1_line_logits", """
        dh = dlogits @ W2.T
        dW2 = h.T @ dlogits
        db2 = dlogits.sum(0, keepdim=True)
        """, {"ex1_db2"}),
    "bnvar epsilon sign": ("ex1_line_bnvar_inv", """
        dbnvar = (-0.5 * (bnvar - 1e-5)**-1.5) * dbnvar_inv
        """, {"ex1_dbnvar"}),
    "the lecture's dbnmeani without keepdim": ("ex1_line_bndiff", """
        dhprebn = dbndiff.clone()
        dbnmeani = (-dbndiff).sum(0)
        """, {"ex1_dbnmeani"}),
    "a cell that raises": ("ex1_line_h", """
        dhpreact = (1.0 - h**2) @ dh
        """, {"ex1_dhpreact"}),
}


@pytest.mark.ex1
@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_one_mistake_costs_one_item(mistake, master_answers):
    cell, body, expected_failures = MISTAKES[mistake]
    answers = {**master_answers, cell: answer(cell, body)}
    failed = {item.grade_id for item in EX1_ITEMS if not judge_item(item, answers).passed}
    assert failed == expected_failures
    # the cell's other gradients, and everything that depends on the broken one, still pass
    assert all(cell in ITEMS_BY_ID[g].answers for g in failed)


@pytest.mark.ex1
def test_the_item_that_fails_says_why(master_answers):
    cell, body, _ = MISTAKES["dbndiff first part doubled"]
    verdict = judge_item(ITEMS_BY_ID["ex1_dbndiff"], {**master_answers, cell: answer(cell, body)})
    assert not verdict.passed and verdict.flags == []
    assert "on unseen inputs (batch 32, n_hidden 64, n_embd 10)" in verdict.message
    assert "values differ" in verdict.message
    assert verdict.report().startswith("ex1_dbndiff: FAILED the hidden check")


def test_a_missing_answer_cell_is_reported():
    verdict = judge_item(ITEMS_BY_ID["ex1_dprobs"], {})
    assert not verdict.passed
    assert "#| answer: ex1_line_logprobs" in verdict.message


# ------------------------------------------------------------- the hidden cases

def test_hidden_cases_differ_from_the_notebooks():
    cases = HIDDEN_CASES
    assert len(cases) >= 2
    assert all(case.seed != 2147483647 for case in cases)
    assert len({case.seed for case in cases}) == len(cases)
    assert any(case.n != 32 for case in cases)
    assert any(case.n_hidden != 64 for case in cases)
    assert any(case.n_embd != 10 for case in cases)


def test_hidden_inputs_track_no_gradients_and_are_reproducible():
    case = HIDDEN_CASES[1]
    a, b = case_inputs(case), case_inputs(case)
    assert all(not p.requires_grad for p in a["parameters"])
    assert a["Xb"].shape == (case.n, 3) and a["parameters"][1].shape == (3 * case.n_embd, case.n_hidden)
    assert all(torch.equal(p, q) for p, q in zip(a["parameters"], b["parameters"]))
    ns = gradient_namespace(case)
    assert ns["n"] == case.n and ns["logits"].shape == (case.n, 27)
    assert not any(isinstance(v, torch.Tensor) and v.requires_grad for v in ns.values())


@pytest.mark.ex1
def test_an_answer_that_hard_codes_the_batch_size_fails_on_batch_20(judge_with):
    verdict = judge_with("ex1_dlogprobs", ex1_line_loss=answer("ex1_line_loss", """
        dlogprobs = torch.zeros_like(logprobs)
        dlogprobs[range(n), Yb] = -1.0 / 32
        """))
    assert not verdict.passed
    assert "batch 20" in verdict.message and "values differ" in verdict.message
    # sized by n it passes
    assert judge_with("ex1_dlogprobs", ex1_line_loss=answer("ex1_line_loss", """
        dlogprobs = torch.zeros_like(logprobs)
        dlogprobs[range(n), Yb] = -1.0 / n
        """)).passed


@pytest.mark.ex1
def test_an_answer_that_hard_codes_the_hidden_width_fails(judge_with):
    verdict = judge_with("ex1_dbnbias", ex1_line_hpreact=answer("ex1_line_hpreact", """
        dbngain = (bnraw * dhpreact).sum(0, keepdim=True)
        dbnbias = dhpreact.sum(0).view(1, 64)
        dbnraw = bngain * dhpreact
        """))
    assert not verdict.passed and "n_hidden 48" in verdict.message and "RuntimeError" in verdict.message


@pytest.mark.ex1
def test_a_name_error_explains_that_other_cells_are_not_part_of_the_answer(judge_with):
    verdict = judge_with("ex1_dprobs", ex1_line_logprobs=answer("ex1_line_logprobs", """
        dprobs = my_helper(probs) * dlogprobs
        """))
    assert not verdict.passed
    assert "my_helper" in verdict.message
    assert "a helper defined in another cell is not part of the answer" in verdict.message


def test_an_answer_that_assigns_nothing_fails(judge_with):
    verdict = judge_with("ex1_dprobs", ex1_line_logprobs=answer("ex1_line_logprobs", "x = 1"))
    assert not verdict.passed and "never assign dprobs" in verdict.message


@pytest.mark.ex4
def test_ex4_answers_must_define_the_function(judge_with):
    verdict = judge_with("ex4_backward", ex4_manual_backward=answer("ex4_manual_backward", """
        def backward(parameters, fw, Xb, Yb):
            return []
        """))
    assert not verdict.passed and "manual_backward" in verdict.message


@pytest.mark.ex4
def test_ex4_wrong_backward_fails_both_items(master_answers):
    source = answer("ex4_manual_backward", """
        def manual_backward(parameters, fw, Xb, Yb):
            n = Xb.shape[0]
            C, W1, b1, W2, b2, bngain, bnbias = parameters
            dlogits = F.softmax(fw.logits, 1)
            dlogits[range(n), Yb] -= 1
            dlogits /= n
            dh = dlogits @ W2.T
            dhpreact = (1.0 - fw.h**2) * dh
            # BatchNorm treated as if the statistics were constants: a classic mistake
            dhprebn = bngain * fw.bnvar_inv * dhpreact
            demb = (dhprebn @ W1.T).view(fw.emb.shape)
            dC = torch.zeros_like(C).index_add_(0, Xb.view(-1), demb.view(-1, C.shape[1]))
            return [dC, fw.embcat.T @ dhprebn, dhprebn.sum(0), fw.h.T @ dlogits, dlogits.sum(0),
                    (fw.bnraw * dhpreact).sum(0, keepdim=True), dhpreact.sum(0, keepdim=True)]
        """)
    for grade_id in ("ex4_backward", "ex4_training"):
        verdict = judge_item(ITEMS_BY_ID[grade_id], {**master_answers, "ex4_manual_backward": source})
        assert not verdict.passed, grade_id
        assert "W1" in verdict.message


# ------------------------------------------------------------- scanning the code

FLAGGED = {
    "reads .grad": ("dlogprobs = logprobs.grad", "reads a .grad tensor"),
    "loss.backward()": ("loss.backward()\ndlogprobs = 0", "calls backward()"),
    "torch.autograd.grad": ("(dlogprobs,) = torch.autograd.grad(loss, logprobs)", "torch.autograd"),
    "torch.func": ("dlogprobs = torch.func.grad(f)(logprobs)", "torch.func"),
    "requires_grad_": ("x = logprobs.clone().requires_grad_()", "requires_grad_"),
    "requires_grad = True": ("x = logprobs.clone()\nx.requires_grad = True", "requires_grad"),
    "retain_grad": ("logprobs.retain_grad()", "retain_grad"),
    "enable_grad": ("with torch.enable_grad():\n    pass", "gradient tracking back on"),
    "import os": ("import os\ndlogprobs = 0", "imports os"),
    "from os import path": ("from os import path", "imports os"),
    "import pickle": ("import pickle", "pickle"),
    "__import__": ("m = __import__('o' + 's')", "__import__"),
    "getattr": ("f = getattr(loss, 'back' + 'ward')", "getattr"),
    "eval": ("dlogprobs = eval('logprobs')", "eval"),
    "private attribute": ("f = torch._C", "private attribute (_C)"),
    "hard-coded float": ("dlogprobs = torch.zeros_like(logprobs) - 0.0312456", "hard-coded number 0.0312456"),
    "long literal list": ("w = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])", "hard-coded list of 5 numbers"),
    "long literal tuple": ("w = (1, 2, 3, 4, 5, 6)", "hard-coded list of 6 numbers"),
}


@pytest.mark.parametrize("label", list(FLAGGED))
def test_scan_flags(label):
    code, reason = FLAGGED[label]
    reasons = scan_answers([answer("ex1_line_loss", code)])
    assert any(reason in r for r in reasons), reasons


def test_a_flagged_answer_is_not_run(judge_with, capsys):
    verdict = judge_with("ex1_dlogprobs", ex1_line_loss=answer("ex1_line_loss", """
        print("ran")
        dlogprobs = logprobs.grad
        """))
    assert not verdict.passed and verdict.flags
    assert verdict.message.startswith("Not graded, the answer reads a .grad tensor")
    assert "ran" not in capsys.readouterr().out


def test_scan_passes_every_master_answer(master_answers):
    for answer_id, source in master_answers.items():
        assert scan_answers([source]) == [], answer_id


@pytest.mark.parametrize("code", [
    "x = bnvar + 1e-5",
    "x = 0.5 * h",
    "x = -1.0 / n",
    "x = y ** -1.5",
    "x = 1 - h**2",
    "x = (1, 64)",
    "x = [0, 0, 0]",
    "x = 2147483647 + 10",
    "x = 1e-3 * 0.25 / 3.125",
    "import math\nimport torch\nimport numpy\nimport torch.nn.functional as F",
    "with torch.no_grad():\n    x = h.sum(0, keepdim=True)",
    "%time x = 1\n!ls",
    "this is not python (",
])
def test_scan_leaves_ordinary_code_alone(code):
    assert scan_answers([answer("ex1_line_loss", code)]) == []


def test_scan_reports_each_reason_once_over_several_cells():
    reasons = scan_answers(["a = x.grad\nb = y.grad", "c = z.grad"])
    assert reasons == ["reads a .grad tensor (autograd's answer)"]


# ------------------------------------------------------------- autograd at run time

SNEAKY_BACKWARD = answer("ex1_line_loss", """
    x = torch.nn.Parameter(logprobs.clone())  # requires_grad = True, without naming it
    total = -x[range(n), Yb].mean()
    match total:  # a class pattern fetches .backward without an attribute in the code
        case torch.Tensor(backward=run):
            run()
    match x:
        case torch.Tensor(grad=found):
            dlogprobs = found
    """)


def test_class_patterns_that_fetch_backward_are_caught_by_the_scan_and_by_the_guard():
    assert "calls backward() (autograd)" in scan_answers([SNEAKY_BACKWARD])
    item = ITEMS_BY_ID["ex1_dlogprobs"]
    for case in HIDDEN_CASES:  # run past the scan: the guard stops it as well
        with pytest.raises(ForbiddenInAnswer, match="backward is not allowed here"):
            student_output(item, {"ex1_line_loss": SNEAKY_BACKWARD}, case)
    verdict = judge_item(item, {"ex1_line_loss": SNEAKY_BACKWARD})
    assert not verdict.passed and "calls backward() (autograd)" in verdict.flags
    assert torch.is_grad_enabled()


def test_autograd_is_forbidden_for_a_plain_answer_when_the_scan_is_skipped(monkeypatch):
    monkeypatch.setattr(judging, "scan_answers", lambda sources: [])
    source = answer("ex1_line_loss", """
        x = logprobs.clone()
        x.requires_grad = True
        (-x[range(n), Yb].mean()).backward()
        dlogprobs = x.grad
        """)
    verdict = judge_item(ITEMS_BY_ID["ex1_dlogprobs"], {"ex1_line_loss": source})
    assert not verdict.passed and "not allowed" in verdict.message


@pytest.mark.parametrize("code", [
    "torch.autograd.grad(y, x)",
    "torch.autograd.backward(y)",
    "y.backward()",
    "torch.set_grad_enabled(True)",
    "torch.autograd.set_grad_enabled(True)",
    "torch.enable_grad()",
    "torch.func.grad(lambda t: t.sum())(x)",
    "torch.autograd.functional.jacobian(lambda t: t.sum(), x)",
    "y.register_hook(lambda g: g)",
])
def test_autograd_forbidden_blocks(code):
    x = torch.ones(3, requires_grad=True)
    y = (x * 2).sum()  # a graph made before the guard
    with autograd_forbidden():
        assert not torch.is_grad_enabled()
        with pytest.raises(ForbiddenInAnswer):
            exec(code, {"torch": torch, "x": x, "y": y})
    assert x.grad is None


@pytest.mark.parametrize("method", ["requires_grad_", "retain_grad"])
def test_autograd_forbidden_blocks_the_listed_tensor_methods(method):
    with autograd_forbidden():
        with pytest.raises(ForbiddenInAnswer):
            getattr(torch.ones(3, requires_grad=True), method)()


def test_no_grad_inside_an_answer_still_works(judge_with):
    verdict = judge_with("ex1_dprobs", ex1_line_logprobs=answer("ex1_line_logprobs", """
        with torch.no_grad():
            dprobs = (1.0 / probs) * dlogprobs
        """))
    assert verdict.passed, verdict.report()


@pytest.mark.parametrize("code", [
    "with torch.no_grad():\n    y = x * 2",
    "with torch.set_grad_enabled(False):\n    y = x * 2",
    "torch.set_grad_enabled(False)\ny = x * 2",
    "with torch.inference_mode():\n    y = x * 2",
    "@torch.no_grad()\ndef f(t):\n    return t * 2\ny = f(x)",
])
def test_switching_gradients_off_is_allowed_under_the_guard(code):
    ns = {"torch": torch, "x": torch.ones(3)}
    with autograd_forbidden():
        exec(code, ns)
        assert not torch.is_grad_enabled()
    assert torch.equal(ns["y"], torch.full((3,), 2.0))
    assert torch.is_grad_enabled()


def test_autograd_works_again_after_the_guard_even_when_the_code_raised():
    before = torch.Tensor.backward
    with pytest.raises(ZeroDivisionError):
        with autograd_forbidden():
            _ = 1 / 0
    assert torch.Tensor.backward is before
    assert torch.is_grad_enabled()
    x = torch.ones(3, requires_grad=True)
    (x * 3).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), 3.0))
    with torch.enable_grad():
        (z,) = torch.autograd.grad((x**2).sum(), x)
    assert torch.equal(z, 2 * x.detach())
    torch.set_grad_enabled(True)


def test_the_guard_restores_a_disabled_grad_mode():
    with torch.no_grad():
        with autograd_forbidden():
            pass
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()


def test_private_torch_internals_cannot_copy_autograds_answer():
    source = answer("ex1_line_loss", """
        match torch:
            case object(_C=c, autograd=ag, nn=nn_):
                pass
        match c:
            case object(_set_grad_enabled=switch):
                switch(True)
        match ag:
            case object(graph=gr):
                pass
        match gr:
            case object(_engine_run_backward=run_backward):
                pass
        x = nn_.Parameter(logprobs.clone())
        total = -x[range(n), Yb].mean()
        run_backward((total,), (torch.ones(()),), False, False, (), allow_unreachable=True, accumulate_grad=True)
        switch(False)
        match x:
            case torch.Tensor(grad=found):
                dlogprobs = found
        """)
    verdict = judge_item(ITEMS_BY_ID["ex1_dlogprobs"], {"ex1_line_loss": source})
    assert torch.is_grad_enabled()
    assert not verdict.passed


# ------------------------------------------------------------- finding the answers

def test_find_answers_keeps_the_last_cell_with_a_directive():
    cells = [
        "import torch",
        "#| answer: ex1_line_loss\ndlogprobs = 1",
        "#| answer: ex1_line_logprobs\ndprobs = 2",
        None,
        "x = 1\n#|answer:  ex1_line_loss  \ndlogprobs = 3",
        "# | answer: ex1_line_h\nnot a directive",
    ]
    found = find_answers(cells)
    assert set(found) == {"ex1_line_loss", "ex1_line_logprobs"}
    assert found["ex1_line_loss"].endswith("dlogprobs = 3")
    assert found["ex1_line_logprobs"] == cells[2]


def test_find_answers_on_a_master_finds_every_ex1_cell(master_answers):
    assert all(line.answer_id in master_answers for line in EX1_LINES)


# ------------------------------------------------------------- in a real IPython shell

@pytest.fixture
def shell(monkeypatch, tmp_path):
    """A fresh in-process IPython shell whose cells recording.record_cells can see."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setattr(recording, "_recorded_cells", [])
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    ip = InteractiveShell.instance(config=config)
    yield ip
    if recording._record in ip.events.callbacks["pre_run_cell"]:
        ip.events.unregister("pre_run_cell", recording._record)
    InteractiveShell.clear_instance()


SHELL_SETUP = """
import torch
import torch.nn.functional as F
from autograder.cells import record_cells
from autograder.judge.verdict import hidden_check
from autograder.workbook.model import chunked_forward, init_params, make_generator
from autograder.workbook.data import VOCAB_SIZE
g = make_generator()
parameters = init_params(g)
n = 32
Xb = torch.randint(0, VOCAB_SIZE, (n, 3), generator=g)
Yb = torch.randint(0, VOCAB_SIZE, (n,), generator=g)
fw = chunked_forward(parameters, Xb, Yb)
logprobs = fw.logprobs
record_cells()
"""


def test_record_cells_and_hidden_check_in_an_ipython_shell(shell, master_answers, capsys):
    assert shell.run_cell(SHELL_SETUP).success
    shell.run_cell("record_cells()")  # registering twice keeps one hook
    assert shell.events.callbacks["pre_run_cell"].count(recording._record) == 1

    # a wrong answer first, then the master's: the later run counts
    assert shell.run_cell(answer("ex1_line_loss", "dlogprobs = torch.zeros_like(logprobs)")).success
    failed = shell.run_cell("hidden_check('ex1_dlogprobs')")
    assert isinstance(failed.error_in_exec, HiddenTestFailed)
    assert "ex1_dlogprobs: FAILED the hidden check" in str(failed.error_in_exec)

    assert shell.run_cell(master_answers["ex1_line_loss"]).success
    capsys.readouterr()
    passed = shell.run_cell("ok = hidden_check('ex1_dlogprobs')")
    assert passed.success and shell.user_ns["ok"] is True
    assert capsys.readouterr().out == ""  # a pass is silent: the test cell shows the visible check only
    assert any(cell.startswith("#| answer: ex1_line_loss") for cell in recording._recorded_cells)


def test_hidden_check_without_recorded_cells_fails_clearly(monkeypatch):
    monkeypatch.setattr(recording, "_recorded_cells", [])
    with pytest.raises(HiddenTestFailed, match="answer cell not found"):
        hidden_check("ex1_dlogprobs")


# ------------------------------------------------------------- diagnosis codes in verdicts and results

@pytest.mark.ex1
def test_a_verdict_carries_the_diagnosis_code_into_the_results_and_the_feedback(judge_with):
    from autograder.diagnosis.hints import pointer
    from autograder.grading.feedback import index_page
    from autograder.grading.results import StudentResult

    wrong = judge_with("ex1_dlogprobs", ex1_line_loss=answer("ex1_line_loss", """
        dlogprobs = torch.zeros_like(logprobs)
        dlogprobs[range(n), Yb] = 1.0 / n
        """))
    right = judge_with("ex1_dprobs")
    flagged = judge_with("ex1_dlogit_maxes", ex1_line_norm_logits=answer("ex1_line_norm_logits", """
        dlogits = dnorm_logits.clone()
        dlogit_maxes = logit_maxes.grad
        """))
    assert (wrong.passed, wrong.diagnosis) == (False, "sign") and "sign flipped" in wrong.message
    assert wrong.message.endswith(f"-> {pointer('ex1_dlogprobs', 'sign')} (above the answer cell in 01_atomic_backprop)")
    assert (right.passed, right.diagnosis) == (True, "")
    assert not flagged.passed and flagged.flags and flagged.diagnosis == ""
    # the grading result carries the verdicts; report.json and the feedback page show the code
    result = StudentResult("s1", {"ex1_dlogprobs": 0.0, "ex1_dprobs": 1.0},
                           {v.grade_id: v for v in (wrong, right, flagged)})
    public = result.public()
    assert public["verdicts"]["ex1_dlogprobs"]["diagnosis"] == "sign"
    assert StudentResult.from_public(public).verdicts["ex1_dlogprobs"].diagnosis == "sign"
    page = index_page("s1", result.scores, public["verdicts"], [], {})
    assert "<td><code>sign</code></td>" in page
    assert all(v.diagnosis == "" for v in StudentResult.failure("s2", "broken", 0.0).verdicts.values())


@pytest.mark.ex1
def test_an_answer_that_raises_on_other_sizes_is_told_it_hard_codes_a_size(judge_with):
    verdict = judge_with("ex1_dbnbias", ex1_line_hpreact=answer("ex1_line_hpreact", """
        dbngain = (bnraw * dhpreact).sum(0, keepdim=True)
        dbnbias = dhpreact.sum(0).view(1, 64)
        dbnraw = bngain * dhpreact
        """))
    assert verdict.diagnosis == "hardcoded_size"
    assert verdict.message.startswith("it works on the notebook's sizes")
    assert "64 appears in your code; the hidden case has n_hidden = 48" in verdict.message
    assert "RuntimeError" in verdict.message  # the error itself is still shown


@pytest.mark.ex1
def test_a_mistake_that_fails_on_every_case_is_not_blamed_on_sizes(judge_with):
    verdict = judge_with("ex1_dlogprobs", ex1_line_loss=answer("ex1_line_loss", """
        dlogprobs = torch.zeros_like(logprobs)
        dlogprobs[range(n), Yb] = -1.0 / n**2
        """))
    assert verdict.diagnosis == "scale.1/n" and "notebook's sizes" not in verdict.message


# ------------------------------------------------------------------ the child-process protocol


def _pipe_with(data: bytes, close: bool = True):
    """A readable file whose other end has written ``data`` (and is closed, unless ``close`` is False)."""
    read, write = os.pipe()
    os.write(write, data)
    if close:
        os.close(write)
    return os.fdopen(read, "rb"), write


@pytest.mark.parametrize("data, close, expected", [
    (b'{"ready": true}\n{"a": 1}\n{"a": 2}\n', True, (2, None)),
    (b'{"ready": true}\n{"a": 1}\n', True, (1, protocol.Stop.STOPPED)),
    (b'', True, (0, protocol.Stop.FAILED_TO_START)),
    (b'', False, (0, protocol.Stop.NOT_STARTED)),
    (b'{"ready": true}\n{"a": 1}\n', False, (1, protocol.Stop.TIMED_OUT)),
])
def test_the_parent_reads_the_ready_line_then_each_reply_or_says_why_it_stopped(data, close, expected):
    stream, write = _pipe_with(data, close)
    lines = []
    try:
        got = protocol.read_replies(stream, 2, lambda index, line: lines.append((index, line)), startup_seconds=0.2,
                                    reply_seconds=0.2)
    finally:
        stream.close()
        if not close:
            os.close(write)
    assert got == expected
    assert lines == [(0, b'{"a": 1}'), (1, b'{"a": 2}')][: expected[0]]


def test_the_budget_ends_the_wait_once_the_child_is_ready():
    stream, write = _pipe_with(b'{"ready": true}\n', close=False)
    try:
        got = protocol.read_replies(stream, 1, lambda *_: None, startup_seconds=5, reply_seconds=5,
                                    deadline=time.monotonic() + 0.2)
    finally:
        stream.close()
        os.close(write)
    assert got == (0, protocol.Stop.BUDGET_SPENT)


def test_a_stop_in_words_names_the_parents_trade():
    words = {stop: protocol.stop_reason(stop, "grader", "answer", 60, timed_out="slow", budget_spent="spent")
             for stop in protocol.Stop}
    assert words[protocol.Stop.NOT_STARTED] == "the grader's process did not start within 60 s"
    assert words[protocol.Stop.FAILED_TO_START] == ("the grader's process failed to start (a problem of the grader, "
                                                    "not of the answer)")
    assert words[protocol.Stop.STOPPED] == "stopped the grader's process (os._exit, a crash, or it ran out of memory)"
    assert (words[protocol.Stop.TIMED_OUT], words[protocol.Stop.BUDGET_SPENT]) == ("slow", "spent")


# ------------------------------------------------------------- children forked from the caller

def test_a_guardian_forked_here_keeps_only_the_descriptors_it_was_given():
    """Another child's pipe held open by this one would keep that child alive after its owner closed it."""
    from autograder.judge.forkserver import _close_all_but

    report_read, report_write = os.pipe()
    other_read, other_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _close_all_but({0, 1, 2, report_write})  # as fork_here keeps them
            os.write(report_write, " ".join(os.listdir("/proc/self/fd")).encode())
        finally:
            os._exit(0)
    os.close(report_write)
    seen = {int(fd) for fd in os.read(report_read, 4096).split()}
    os.waitpid(pid, 0)
    for fd in (report_read, other_read, other_write):
        os.close(fd)
    assert {0, 1, 2, report_write} <= seen and not seen & {other_read, other_write}
