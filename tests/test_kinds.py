"""A kind is one module: a toy kind (``tests/toy_kind.py``) works everywhere with no edit to the package.

Its item goes into the registry for the length of a test; then the visible
checks, the scoreboard, the hidden judge (in this process, and in the
sandboxed child, which imports the kind's module itself) and the samples'
cheating answer all handle it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from autograder import exercises
from autograder.checking import checks, scoreboard
from autograder.grading import samples
from autograder.judge import runner, sandbox
from autograder.judge.verdict import judge_item
from autograder.kinds import KINDS
from tests import toy_kind

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setattr(exercises, "ITEMS", exercises.ITEMS + (toy_kind.ITEM,))
    monkeypatch.setattr(exercises, "ITEMS_BY_ID", {**exercises.ITEMS_BY_ID, toy_kind.ITEM.grade_id: toy_kind.ITEM})
    return toy_kind.ITEM


def test_the_kind_is_registered_by_its_module_alone():
    assert KINDS["scalar_derivative"] is toy_kind.KIND


def test_its_visible_check_is_published_with_the_others(capsys):
    check = checks.visible_checks()["check_derivative"]
    from autograder.checking.checks import check_derivative  # as a test cell imports it

    assert check_derivative is check
    f = toy_kind.function_of(toy_kind.ITEM)
    namespace = {}
    exec(toy_kind.RIGHT, {"torch": torch}, namespace)
    assert check(namespace["dfdx"], f) is True
    exec(toy_kind.WRONG, {"torch": torch}, namespace)
    assert check(namespace["dfdx"], f) is False
    assert "dfdx" in capsys.readouterr().out
    assert checks.AssertReasons  # a failing `assert check_derivative(...)` carries its reason, as for cmp
    assert "check_derivative" in checks.VISIBLE_CHECKS


def test_the_scoreboard_shows_its_row(registered):
    namespace = {"torch": torch}
    exec(toy_kind.WRONG.split("\n", 1)[1], namespace)
    board = scoreboard.scoreboard("00_scalar_warmup", namespace, {"toy_derivative": toy_kind.WRONG})
    row = next(r for r in board.rows if r.grade_id == "toy_dfdx")
    assert row.name == "dfdx" and row.status == scoreboard.FAILED


def test_the_hidden_judge_in_this_process(registered):
    assert judge_item(registered, {"toy_derivative": toy_kind.RIGHT}).passed
    wrong = judge_item(registered, {"toy_derivative": toy_kind.WRONG})
    assert not wrong.passed and "five other points" in wrong.message


def test_the_hidden_judge_in_the_sandboxed_child(registered, monkeypatch):
    """The child learns the kind from its module's name, and imports it (here from the checkout's tests/)."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    policy = sandbox.Policy((*sandbox.student_policy().readable, str(REPO / "tests")))
    children = runner._Children(policy, sandbox.Limits(), None)
    answers = {"toy_derivative": toy_kind.RIGHT}
    outcomes = runner._run_trials([runner.Trial(registered, 0), runner.Trial(registered, 1)], answers, children,
                                  item_seconds=60.0, deadline=float("inf"))
    for case in (0, 1):
        value, error = outcomes[("toy_dfdx", case)]
        assert error is None, error
        assert torch.allclose(value, toy_kind.KIND.reference(registered, runner.HIDDEN_CASES[case]))
    assert os.environ["PYTHONPATH"] == str(REPO)


def test_the_copies_grad_sample_writes_its_cheating_answer(registered):
    cheat = samples._copies_grad("toy_derivative", "return torch.sin(x) + x * torch.cos(x)\n")
    assert "backward()" in cheat
    from autograder.judge.scan import scan_answers

    assert scan_answers([f"#| answer: toy_derivative\ndef dfdx(x):\n    {cheat.replace(chr(10), chr(10) + '    ')}"])
