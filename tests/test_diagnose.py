"""Every diagnosis the checker can give, each triggered by a real mistake in a real answer.

The mistakes live in ``tests/mistake_corpus.py``: each is written the way a
student would write it, run on the lecture's batch (or judged on the hidden
cases), and must get its own diagnosis code and a message that names the
cause, never a wrong one (torch's autograd is the oracle).
"""

from pathlib import Path

import pytest
import torch

from autograder.checking import scoreboard
from autograder.checking.checks import cmp
from autograder.diagnosis.codes import CODES, CODES_BY_NAME, NO_HINT, codes_markdown
from autograder.diagnosis.comparison import ROUNDING_NOTE, TRACKED_NOTE, compare
from autograder.diagnosis.diagnose import context_of, diagnose
from tests import mistake_corpus
from tests.mistake_corpus import (
    ANSWERS,
    CASCADES,
    LINES,
    diagnose_answer,
    diagnose_cascade,
    diagnose_line,
    problems_with,
    run_lines,
)

pytestmark = pytest.mark.ex1


@pytest.fixture(scope="module")
def ns():
    """The notebook's namespace after the forward pass: tensors, parameters, n, Xb, Yb."""
    return mistake_corpus.notebook_batch()


@pytest.fixture
def fresh_ns():
    """A forward pass of its own: cmp finds its context among the last few forward passes made,
    which judging (above) pushes out."""
    return mistake_corpus.notebook_batch()


def hint(ns, name: str, code: str) -> tuple[str, str]:
    """(code, message) of ``compare`` on the gradient of ``name`` after the student's ``code``."""
    passed, found, message = diagnose_line(ns, mistake_corpus.Line(name, code, ""))
    assert not passed, f"the mistake in {code!r} passed"
    return found, message


# --------------------------------------------------------------- the corpus

@pytest.mark.parametrize("mistake", list(LINES))
def test_each_planted_line_gets_its_diagnosis(ns, mistake):
    assert problems_with(LINES[mistake], *diagnose_line(ns, LINES[mistake])) == []


@pytest.mark.parametrize("mistake", list(ANSWERS))
def test_each_planted_answer_gets_its_diagnosis_from_the_judge(mistake, master_answers):
    assert problems_with(ANSWERS[mistake], *diagnose_answer(ANSWERS[mistake], master_answers)) == []


@pytest.mark.parametrize("mistake", list(CASCADES))
def test_each_cascade_is_told_from_a_mistake_of_its_own(mistake, master_answers):
    assert problems_with(CASCADES[mistake], *diagnose_cascade(CASCADES[mistake], master_answers)) == []


def test_a_right_gradient_after_a_wrong_one_passes_without_a_note(master_answers):
    """dlogprobs is upstream of dhpreact's typo: right, and nothing is said about the typo."""
    passed, code, message = diagnose_cascade(mistake_corpus.Cascade("logprobs", *mistake_corpus.TYPO, ""),
                                             master_answers)
    assert passed and code == "" and message == ""


def test_the_corpus_covers_every_code():
    assert mistake_corpus.covered_codes() == set(CODES_BY_NAME)


def test_the_batch_repeats_characters(ns):
    """The scatter mistake is only visible when some row of C is looked up twice."""
    assert bool((ns["Xb"].view(-1).bincount() > 1).any())


def test_the_codes_are_one_table_shown_in_the_readme():
    assert len(CODES_BY_NAME) == len(CODES)
    assert all(code.meaning and code.message for code in CODES)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert codes_markdown() in readme, "README's hints table differs from diagnosis.codes.CODES: paste codes_markdown()"


# --------------------------------------------------------------- no wrong way round

@pytest.mark.parametrize("code, name, meaning", [
    ("dlogprobs = torch.zeros_like(logprobs); dlogprobs[range(n), Yb] = -1.0", "logprobs", "1/n (the mean's) is missing"),
    ("dlogprobs = torch.zeros_like(logprobs); dlogprobs[range(n), Yb] = -1.0 / n**2", "logprobs", "1/n is applied twice"),
    ("dbndiff2 = (1.0 / n) * torch.ones_like(bndiff2) * dbnvar", "bndiff2", "Bessel"),
    ("dbndiff = bnvar_inv * dbnraw + 4 * bndiff * dbndiff2", "bndiff", None),
    ("dbnvar = -(bnvar + 1e-5)**-1.5 * dbnvar_inv", "bnvar", "2"),
    ("dbnvar = -0.25 * (bnvar + 1e-5)**-1.5 * dbnvar_inv", "bnvar", "1/2"),
])
def test_off_by_a_known_factor(ns, code, name, meaning):
    found, text = hint(ns, name, code)
    if meaning is None:  # not a pure factor: must not be misnamed as one
        assert "factor" not in text and not found.startswith("scale.")
    else:
        assert "off by a" in text and "factor of" in text and meaning in text and found.startswith("scale.")


@pytest.mark.parametrize("relative", [1e-5, 3e-4])
def test_a_factor_close_to_one_is_never_named(ns, relative):
    """A tiny uniform error is no "factor of 1": below 1e-3 no factor is named at all."""
    expected = ns["h"].grad
    result = compare("h", expected * (1 + relative), expected, context_of(ns["fw"], ns["fw"].inputs))
    assert not result.ok and "factor" not in result.hint and result.code == "none"


@pytest.mark.parametrize("name, first_use_only", [
    ("counts", "dcounts = counts_sum_inv * dprobs"),
    ("logits", "dlogits = dnorm_logits.clone(); dlogits = F.one_hot(logits.max(1).indices, num_classes=logits.shape[1]) * dlogit_maxes"),
    ("bndiff", "dbndiff = bnvar_inv * dbnraw"),
    ("bndiff", "dbndiff = bnvar_inv * dbnraw; dbndiff = (2 * bndiff) * dbndiff2"),
    ("hprebn", "dhprebn = dbndiff.clone()"),
])
def test_one_branch_only(ns, name, first_use_only):
    # (for logits only the second use can be caught: the first alone is within rounding of the whole)
    found, text = hint(ns, name, first_use_only)
    assert found == "branch.missing" and "only one of the two uses" in text and "+=" in text


def test_no_hint_when_nothing_fits(ns):
    found, text = hint(ns, "hprebn", "dhprebn = dbndiff + 0.01 * torch.ones_like(hprebn)")
    assert found == "none" and text.endswith(NO_HINT)


# ----------------------------------------------------------- not a tensor

@pytest.mark.parametrize("value, words, code", [
    (None, "got None", "unknown"), ([1.0, 2.0], "got a list", "unknown"),
    (torch.zeros(32, 27, dtype=torch.long), "integer tensor", "int_dtype"),
    (torch.full((32, 27), float("nan")), "NaN", "nan"), (torch.full((32, 27), float("inf")), "inf", "nan"),
])
def test_values_that_are_not_gradients(ns, value, words, code):
    result = compare("logprobs", value, ns["logprobs"].grad)
    assert not result.ok and words in result.problem and result.code == code


def test_a_passing_comparison_has_no_code(ns):
    assert compare("logprobs", ns["logprobs"].grad.clone(), ns["logprobs"].grad).code == ""


def test_a_right_gradient_that_requires_grad_passes_with_a_note(ns):
    tracked = compare("logprobs", ns["logprobs"].grad.clone().requires_grad_(), ns["logprobs"].grad)
    assert tracked.ok and tracked.hint == TRACKED_NOTE
    plain = compare("logprobs", ns["logprobs"].grad.clone(), ns["logprobs"].grad)
    assert plain.ok and plain.hint != TRACKED_NOTE


def test_a_parameter_returned_instead_of_its_gradient(ns):
    result = compare("W2", ns["W2"], ns["W2"].grad)
    assert not result.ok and "parameter" in result.hint and result.code == "other_tensor"


# ------------------------------------------------------------ cmp itself

def test_cmp_prints_the_hint_and_the_expected_shape_and_tolerance(fresh_ns, capsys):
    scope = run_lines(fresh_ns, "dprobs = 1.0 / probs")
    assert cmp("probs", scope["dprobs"], fresh_ns["probs"]) is False
    out = capsys.readouterr().out
    assert "shape (32, 27)" in out and "tol " in out and "local derivative alone" in out


def test_cmp_notes_a_right_answer_that_is_not_bit_exact(fresh_ns, capsys):
    noisy = fresh_ns["h"].grad * (1 + 1e-7)
    assert cmp("h", noisy, fresh_ns["h"]) is True
    assert ROUNDING_NOTE in capsys.readouterr().out


ALIASED = "dhprebn = dbndiff\ndhprebn += 1.0 / n * (torch.ones_like(hprebn) * dbnmeani)"


def test_an_alias_gets_one_explanation_on_every_path(fresh_ns, capsys):
    """cmp (which sees the variables), compare (judge, scoreboard: only values) and the scoreboard agree."""
    scope = run_lines(fresh_ns, ALIASED)
    assert scope["dbndiff"] is scope["dhprebn"]
    explanation = CODES_BY_NAME["alias"].message.format(variable="dbndiff", other="dhprebn")
    # compare, from the values alone
    result = compare("bndiff", scope["dbndiff"], fresh_ns["bndiff"].grad, context_of(fresh_ns["fw"], fresh_ns["fw"].inputs))
    assert result.code == "alias" and result.hint == explanation
    # cmp, called from a cell whose globals hold both names
    exec("result = cmp('bndiff', dbndiff, bndiff)", {"cmp": cmp, "bndiff": fresh_ns["bndiff"], "dbndiff": scope["dbndiff"],
                                                     "dhprebn": scope["dhprebn"]})
    out = capsys.readouterr().out
    assert "approximate: False" in out and out.count(explanation) == 1
    # the scoreboard's row
    row = next(r for r in scoreboard.scoreboard("01_atomic_backprop", scope, {}).rows if r.grade_id == "ex1_dbndiff")
    assert row.status == scoreboard.FAILED and sum(explanation in note for note in row.notes) == 1


def test_cmp_notes_an_alias_that_the_values_do_not_show(fresh_ns, capsys):
    """An alias found only in memory (the values still right) gets the same explanation as a note."""
    shared = fresh_ns["bndiff"].grad.clone()
    exec("cmp('bndiff', dbndiff, bndiff)", {"cmp": cmp, "bndiff": fresh_ns["bndiff"], "dbndiff": shared, "dhprebn": shared})
    out = capsys.readouterr().out
    assert "approximate: True" in out
    assert "note: " + CODES_BY_NAME["alias"].message.format(variable="dbndiff", other="dhprebn") in out


def test_diagnose_works_without_a_context():
    expected = torch.linspace(-1, 1, 12).view(3, 4)
    assert diagnose("x", -expected, expected).code == "sign"
    assert diagnose("x", expected + 1, expected).code == "offset"
    assert diagnose("x", expected + torch.arange(12.0).view(3, 4) / 7, expected).message == NO_HINT


# --------------------------------------------------------------- cascades in the notebook

def _exercise_1_ran(master_answers, mistake, monkeypatch) -> dict:
    """The notebook after every Exercise 1 cell ran, one of them changed; the kernel's record of the cells."""
    from autograder import cells
    from autograder.exercises import EX1_LINES
    from autograder.judge.untrusted import IN_PROCESS

    answers = mistake_corpus.exercise_1_with(master_answers, mistake)
    scope = mistake_corpus.notebook_batch()
    for line in EX1_LINES:
        IN_PROCESS.run_cell(answers[line.answer_id], line.answer_id, scope)
    monkeypatch.setattr(cells, "_recorded_cells", [answers[line.answer_id] for line in EX1_LINES])
    return scope


@pytest.mark.parametrize("cascade, tensor, wrong", [("dhpreact's typo, at dbngain", "bngain", "dhpreact"),
                                                    ("dlogits overwritten, at dh", "h", "dlogits"),
                                                    ("dlogits overwritten, at dW2", "W2", "dlogits"),
                                                    ("dlogits overwritten, at db2", "b2", "dlogits")])
def test_cmp_in_the_notebook_names_the_wrong_gradient_a_right_line_uses(master_answers, monkeypatch, capsys, cascade,
                                                                        tensor, wrong):
    from autograder.checking.checks import failure_reason

    scope = _exercise_1_ran(master_answers, CASCADES[cascade], monkeypatch)
    exec(f"result = cmp('{tensor}', d{tensor}, {tensor})", {**scope, "cmp": cmp})
    out = capsys.readouterr().out
    assert "approximate: False" in out
    assert f"this line looks right; it uses `{wrong}`, which is wrong: fix that first" in out
    assert f"`{wrong}`" in failure_reason()  # the message of a failed `assert cmp(...)`
    before = {key: value.clone() for key, value in scope.items() if isinstance(value, torch.Tensor)}
    exec(f"cmp('{tensor}', d{tensor}, {tensor})", {**scope, "cmp": cmp})
    assert all(torch.equal(before[key], scope[key]) for key in before)  # running the cell again changed nothing


def test_cmp_without_the_answer_cells_gives_the_line_no_cause(master_answers, monkeypatch, capsys):
    """Outside a kernel that recorded its cells, no cell can be run again: the honest 'no diagnosis'."""
    from autograder import cells

    scope = _exercise_1_ran(master_answers, CASCADES["dhpreact's typo, at dbngain"], monkeypatch)
    monkeypatch.setattr(cells, "_recorded_cells", [])
    exec("cmp('bngain', dbngain, bngain)", {**scope, "cmp": cmp})
    out = capsys.readouterr().out
    assert "approximate: False" in out and "fix that first" not in out and NO_HINT in out


def test_the_progress_table_names_the_cascade_too(master_answers, monkeypatch):
    scope = _exercise_1_ran(master_answers, CASCADES["dhpreact's typo, at dbngain"], monkeypatch)
    from autograder import cells

    rows = {r.grade_id: r for r in scoreboard.scoreboard("01_atomic_backprop", scope, cells.recorded_answers()).rows}
    assert rows["ex1_dbngain"].status == scoreboard.FAILED
    assert any("uses `dhpreact`, which is wrong" in note for note in rows["ex1_dbngain"].notes)
    assert not any("fix that first" in note for note in rows["ex1_dhpreact"].notes)  # its own mistake
    assert rows["ex1_dlogprobs"].status == scoreboard.PASSED


def test_the_hidden_judge_says_which_failed_gradient_a_passing_line_depends_on(master_answers):
    """Fed right inputs, the line after the typo passes the hidden check; its feedback says why the notebook's fails."""
    from autograder.exercises import ITEMS_BY_ID
    from autograder.judge.verdict import judge_item, note_cascades

    answers = mistake_corpus.exercise_1_with(master_answers, CASCADES["dhpreact's typo, at dbngain"])
    items = [ITEMS_BY_ID[i] for i in ("ex1_dlogprobs", "ex1_dh", "ex1_dhpreact", "ex1_dbngain", "ex1_dbnraw")]
    verdicts = {item.grade_id: judge_item(item, answers) for item in items}
    assert [v.passed for v in verdicts.values()] == [True, True, False, True, True]
    note_cascades(verdicts, items, answers)
    for grade_id in ("ex1_dbngain", "ex1_dbnraw"):
        assert verdicts[grade_id].passed and "note [upstream]" in verdicts[grade_id].message
        assert "uses `dhpreact`, which is wrong: fix that first" in verdicts[grade_id].message
    assert "upstream" not in verdicts["ex1_dlogprobs"].message + verdicts["ex1_dh"].message
    assert "upstream" not in verdicts["ex1_dhpreact"].message  # its own mistake
