"""Notebook 06 graded like the rest: its hidden settings, its three kinds, its visible checks and its judge.

The master's answers must pass every item on every hidden setting in float32;
a mistake costs its own items only (each line is fed autograd's upstream
gradients, partial ones where a cell adds to a gradient earlier cells began);
a size typed in fails on the hidden sizes and is named. The diagnoses of the
mistakes the notebook invites are planted in ``tests/mistake_corpus.py``.
"""

from __future__ import annotations

import time

import pytest
import torch

from autograder.checking import checks
from autograder.checking.scoreboard import FAILED, PASSED, scoreboard
from autograder.exercises import ITEMS_BY_ID, items_of, notebook
from autograder.judge import runner
from autograder.judge.verdict import judge_item
from autograder.kinds import KINDS
from autograder.kinds import transformer_cases as tc
from autograder.kinds.cases import HIDDEN_CASES
from autograder.workbook import transformer as tr
from autograder.workbook.transformer_training import TRAINED_LOSS_ATOL, TrainingRun
from tests.conftest import code_sources
from tests.transformer_master import manual_backward, part1_steps, run_part1

pytestmark = pytest.mark.ex6
EX6 = notebook(6)


def with_edit(master_answers: dict, answer: str, old: str, new: str) -> dict:
    assert old in master_answers[answer], (answer, old)
    return {**master_answers, answer: master_answers[answer].replace(old, new)}


# ------------------------------------------------------------------ the hidden settings

def test_the_hidden_settings_change_every_size_and_keep_them_apart():
    notebook_sizes = tc.NOTEBOOK_SETTING.sizes()
    assert tc.settings(HIDDEN_CASES[0]) == (tc.NOTEBOOK_SETTING,)
    others = tc.settings(HIDDEN_CASES[1])
    assert {s.n_head for s in others} >= {1} and any(s.n_mlp != 4 * s.n_embd for s in others)
    for setting in (tc.NOTEBOOK_SETTING, *others):
        sizes = setting.sizes()
        B, T, C, hs = sizes["B"], sizes["T"], sizes["C"], sizes["hs"]
        assert B >= 4 and T >= 4 and B * T <= 1024 and C >= 16 and hs >= 2  # where the tolerance was measured
        distinct = [B, T, C, 3 * C, sizes["M"], sizes["V"]] + ([hs] if setting.n_head > 1 else [])
        assert len(set(distinct)) == len(distinct), setting  # no size can stand in for another
    for setting in others:
        assert all(setting.sizes()[name] != value for name, value in notebook_sizes.items()), setting


def test_a_setting_is_drawn_from_its_seed_and_handed_out_as_fresh_copies():
    case = HIDDEN_CASES[1]
    first, again = tc.case_inputs(case, 0), tc.case_inputs(case, 0)
    assert all(torch.equal(a, b) for a, b in zip(first[0], again[0])) and torch.equal(first[1], again[1])
    first[0][0].zero_()
    assert not torch.equal(first[0][0], tc.case_inputs(case, 0)[0][0])
    assert not torch.equal(tc.case_inputs(case, 0)[1], tc.case_inputs(case, 1)[1])
    namespace = tc.answer_namespace(case, 1)
    assert (namespace["B"], namespace["T"], namespace["C"], namespace["nh"], namespace["hs"], namespace["M"],
            namespace["V"]) == (9, 5, 16, 1, 16, 36, 19)
    namespace["att"].zero_()  # an answer that writes into a forward tensor changes its own copy only
    assert tc.answer_namespace(case, 1)["att"].any()


@pytest.mark.parametrize("case_index", range(len(HIDDEN_CASES)))
def test_a_partial_gradient_is_what_the_cells_before_it_contribute(case_index):
    case = HIDDEN_CASES[case_index]
    for index in range(len(tc.settings(case))):
        gradients = tc.reference_gradients(case, index)
        # x1 is used by the residual sum x2 = x1 + mlp_out (its cell comes first), then by ln2: dx2 reaches it unchanged
        assert torch.allclose(tc.partial_gradient(case, index, "dx1<ln2_diff"), gradients["dx2"], rtol=0, atol=0)
        assert torch.allclose(tc.partial_gradient(case, index, "dx0<ln1_diff"), gradients["dx1"], rtol=0, atol=0)
    assert [p for item in items_of(EX6) for cell in item.spec.get("provided", ()) for p in cell if "<" in p] == \
        ["dx1<ln2_diff", "dx0<ln1_diff"]


def test_the_head_hands_in_and_computes_what_part_1_calls_dy_heads_and_dq():
    """A child that was handed Part 1's dq (the input of dqkv's cell) never runs the head, whose answer it is."""
    kind = KINDS["transformer_gradient"]
    head = ITEMS_BY_ID["ex6_dq_h"]
    assert kind.given(head) == {"transformer:dy_heads"} and kind.computes(head) == {"transformer:dq"}
    assert "transformer:dq" in kind.given(ITEMS_BY_ID["ex6_dqkv"])
    assert kind.computes(ITEMS_BY_ID["ex6_dx_ln"]) == {"transformer:dx_ln"}
    for index, setting in enumerate(tc.settings(HIDDEN_CASES[1])):  # judged on every head at once
        assert kind.reference(head, HIDDEN_CASES[1])[index].shape == (setting.batch_size, setting.n_head,
                                                                      setting.block_size, setting.n_embd // setting.n_head)


# ------------------------------------------------------------------ the judge in this process

def test_the_masters_answers_pass_every_item_on_every_hidden_setting(master_answers):
    verdicts = {item.grade_id: judge_item(item, master_answers) for item in items_of(EX6)}
    assert {g: v.message for g, v in verdicts.items() if not v.passed} == {}
    assert len(verdicts) == 65 and sum(ITEMS_BY_ID[g].points for g in verdicts) == 77


@pytest.mark.parametrize("answer, old, new, failing", [
    # one line of Part 1 wrong: its own gradient fails, the gradients after it are fed autograd's
    ("ex6_line_x2", "dmlp_out = dx2.clone()", "dmlp_out = 2 * dx2", {"ex6_dmlp_out"}),
    ("ex6_line_lnf_var", "2 / C", "2 / (C - 1)", {"ex6_dlnf_diff"}),
    ("ex6_line_ln2_diff", "dln2_mean = -dln2_diff.sum(-1, keepdim=True)", "dln2_mean = dln2_diff.sum(-1, keepdim=True)",
     {"ex6_dln2_mean"}),
    ("ex6_line_ln2_diff", "dx1 += dln2_diff", "dx1 = dln2_diff", {"ex6_dx1"}),
])
def test_a_wrong_line_costs_only_its_own_items(master_answers, answer, old, new, failing):
    answers = with_edit(master_answers, answer, old, new)
    neighbours = [item for item in items_of(EX6)
                  if item.kind == "transformer_gradient" and abs(list(ITEMS_BY_ID).index(item.grade_id)
                                                                 - list(ITEMS_BY_ID).index(min(failing))) <= 4]
    failed = {item.grade_id for item in neighbours if not judge_item(item, answers).passed}
    assert failed == failing


def test_a_single_head_is_not_a_size_typed_in(master_answers):
    """An answer that drops the head dimension fails with one head only, and is not said to have typed a size."""
    answers = with_edit(master_answers, "ex6_line_y", "dy_heads = dy.view(B, T, nh, hs).transpose(1, 2)",
                        "dy_heads = dy.view(B, T, nh, hs).transpose(1, 2).squeeze()")
    verdict = judge_item(ITEMS_BY_ID["ex6_dy_heads"], answers)
    assert not verdict.passed and verdict.diagnosis != "hardcoded_size"
    assert "(nh 1)" in verdict.message and "nh 5" in verdict.message


# ------------------------------------------------------------------ the visible checks

@pytest.fixture(scope="module")
def check_batch():
    config = tr.TransformerConfig(block_size=8, n_embd=16, n_head=2)
    g = torch.Generator().manual_seed(5)
    parameters = tr.init_params(g, config)
    Xb, Yb = tr.random_batch(g, 6, 8)
    return parameters, Xb, Yb, config


def test_check_block_backward_passes_the_master_and_names_a_mistake(check_batch, capsys):
    assert checks.check_block_backward(manual_backward(), *check_batch) is True
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines if "| exact:" in line]
    assert names == list(reversed(tr.PARAM_NAMES))  # the order of the backward pass, the head first

    from tests.transformer_master import answers
    buggy = manual_backward(answers()["ex6_manual_backward"].replace(" * hs**-0.5  # softmax", "  # softmax"))
    assert checks.check_block_backward(buggy, *check_batch) is False
    assert "the scale 1/sqrt(hs) is missing" in checks.failure_reason()


def test_check_training_run_compares_every_logged_step(capsys):
    run = TrainingRun(steps=5, log_every=2, losses=[3.0, 2.9, 2.8, 2.7, 2.6],
                      reference_losses=[3.0, 2.9, 2.8 + 0.5 * TRAINED_LOSS_ATOL, 2.0, 2.6 + 0.9 * TRAINED_LOSS_ATOL])
    assert checks.check_training_run(run) is True  # step 3 is off, but it is not a logged step (0, 2, 4)
    text = capsys.readouterr().out
    assert [line.split(":")[0] for line in text.splitlines()[:3]] == ["step      0", "step      2", "step      4"]
    run.reference_losses[4] = 2.6 + 2 * TRAINED_LOSS_ATOL
    assert checks.check_training_run(run) is False
    assert "<- too far" in capsys.readouterr().out and "at step 4" in checks.failure_reason()
    assert checks.check_training_run(TrainingRun(5, 2, [1.0] * 5)) is False
    assert "no autograd run beside it" in checks.failure_reason()


def test_the_scoreboard_of_part_1_follows_cmp(capsys):
    parameters, Xb, Yb, config = tc.case_inputs(HIDDEN_CASES[0], 0) + (tc.NOTEBOOK_SETTING.config,)
    leaves = [p.requires_grad_() for p in parameters]
    fw = tr.chunked_forward(leaves, Xb, Yb, config)
    fw.loss.backward()
    namespace = {**run_part1(tr.answer_namespace(fw, config)), **fw, **dict(zip(tr.PARAM_NAMES, leaves))}
    namespace["dlnf_diff"] = namespace["dlnf_diff"] - 2 / 32 * fw.lnf_diff.detach() * fw.lnf_var.grad \
        + 2 / 31 * fw.lnf_diff.detach() * fw.lnf_var.grad  # Bessel's correction slipped in
    board = scoreboard(EX6, namespace, answers={})
    statuses = {row.grade_id: row.status for row in board.rows}
    part1 = [f"ex6_d{name}" for step in part1_steps() for name in step.checked]
    assert {g for g in part1 if statuses[g] != PASSED} == {"ex6_dlnf_diff"}
    row = next(r for r in board.rows if r.grade_id == "ex6_dlnf_diff")
    assert row.status == FAILED and any("C - 1" in note for note in row.notes), row.notes
    assert any("see hint 1 above: the local derivative" in note for note in row.notes), row.notes


# ------------------------------------------------------------------ the sandboxed child

@pytest.mark.grading
@pytest.mark.slow
def test_the_sandboxed_child_judges_notebook_06(master_notebooks):
    """All 65 items of the master, then a submission with sizes typed in, through the sandboxed child."""
    master_code_cells = {EX6: code_sources(master_notebooks[EX6])}
    items = list(items_of(EX6))
    started = time.monotonic()
    verdicts = runner.judge_submission(items, {EX6: master_code_cells[EX6]})
    seconds = time.monotonic() - started
    assert {g: v.message for g, v in verdicts.items() if not v.passed} == {}
    assert seconds < 30, seconds  # a bound against a hang, not a measure of speed (bench/ measures that)

    typed = [source.replace("/ (B * T)", "/ 384").replace("nh = config.n_head", "nh = 4")
             for source in master_code_cells[EX6]]
    verdicts = runner.judge_submission([ITEMS_BY_ID[g] for g in ("ex6_dlogits", "ex6_backward", "ex6_training",
                                                                 "ex6_dWlm")], {EX6: typed})
    assert verdicts["ex6_dWlm"].passed
    for grade_id in ("ex6_dlogits", "ex6_backward", "ex6_training"):
        verdict = verdicts[grade_id]
        assert not verdict.passed and verdict.diagnosis == "hardcoded_size", (grade_id, verdict.message)
    assert "384 appears in your code; the hidden case has B * T = 66" in verdicts["ex6_dlogits"].message
    assert "4 appears in your code; the hidden case has nh = 5" in verdicts["ex6_backward"].message
