"""Learners' lecture-format notebooks as they are: never a traceback, their own names, cascades, the numbers.

The notebooks come from ``lecture_corpus`` (built the way learners write
them, with autograd's ground truth from running them) and from
``lecture_fixtures``. Fast tests read notebooks; tests marked ``slow`` run
them through the checker, in this process (``in_process``: trusted
notebooks, cheap) or through the sandboxed children.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autograder.lecture import LectureSettings, check
from autograder.lecture.parse import EXPECTED, edits, find_exercises, is_header_word, read_cells
from autograder.lecture.report import format_report
from autograder.lecture.warm import fork_server
from autograder.resources import data_file
from tests import lecture_corpus as corpus
from tests import lecture_fixtures as fixtures

IN_PROCESS = LectureSettings(in_process=True, ex4_steps=1, exercise_seconds=20)
CRASH_WORDS = "the checker failed on this notebook"
BY_NAME = {notebook.name: notebook for notebook in corpus.notebooks()}


def run(notebook: corpus.Notebook, settings: LectureSettings = IN_PROCESS):
    result = check.check_bytes(notebook.to_bytes(), f"{notebook.name}.ipynb", settings)
    assert not result.error, result.error
    assert len(result.items) == 35
    return result


def items(result) -> dict[str, tuple[str, str]]:
    return {f"{i.exercise}_{i.name}": (i.status, i.diagnosis) for i in result.items}


def failed(result) -> dict[str, tuple[str, str]]:
    return {key: value for key, value in items(result).items() if value[0] != "pass"}


def message(result, item: str) -> str:
    return next(i.message for i in result.items if f"{i.exercise}_{i.name}" == item)


# ------------------------------------------------------------------ reading (fast)

@pytest.mark.parametrize("word", ["Exercise", "exercise", "EXERCISE", "Excercise", "Excercie", "Exercize", "Exersice",
                                  "Excersise", "Exercice", "Exercises", "Ex.", "ex"])
def test_headers_as_learners_spell_them_are_headers(word):
    assert is_header_word(word)


@pytest.mark.parametrize("word", ["Example", "Part", "Exp", "Extra", "Explanation", "Step", "Execute", "Experiment"])
def test_other_words_before_a_number_are_not_headers(word):
    assert not is_header_word(word)


def test_edits_count_swaps_of_neighbours_as_one():
    assert edits("exercies", "exercise") == 1 and edits("exersice", "exercise") == 2
    assert edits("excercie", "exercise") == 2 and edits("example", "exercise") > 2


def test_misspelled_headers_split_the_notebook_and_the_training_loop_stays_out_of_exercise_1():
    plan = find_exercises(read_cells(BY_NAME["misspelled_ex4_backward_left"].to_bytes(), "nb.ipynb"))
    assert plan.headers == ["ex2", "ex3", "ex4"] or plan.headers[-3:] == ["ex2", "ex3", "ex4"]
    assert plan.ex4 is not None and plan.ex4.marker
    ex1 = {name for s in plan.statements["ex1"] for name in s.assigns}
    assert "loss" not in ex1 and not any(s.calls_backward for s in plan.statements["ex1"])


def test_a_cell_before_any_header_is_placed_by_what_it_reads():
    """Only dlogits assigned, but from dnorm_logits and dlogit_maxes: Exercise 1's last lines, not Exercise 2."""
    plan = find_exercises(read_cells(BY_NAME["no_ex1_header_split"].to_bytes(), "nb.ipynb"))
    ex1 = [name for s in plan.statements["ex1"] for name in s.assigns]
    assert set(EXPECTED["ex1"]) <= set(ex1) and ex1.count("dlogits") == 2
    assert [name for s in plan.statements["ex2"] for name in s.assigns].count("dlogits") >= 1


def test_the_issues_crash_cell_is_read():
    """A comment at column 0 inside an indented block (Python ignores where a comment sits)."""
    cell = ("import torch\nwith torch.no_grad():\n  for i in range(3):\n    loss = i\n# manual backprop\n"
            "    dC = loss\n")
    nb = {"nbformat": 4, "cells": [{"cell_type": "code", "source": cell}]}
    plan = find_exercises(read_cells(json.dumps(nb).encode(), "nb.ipynb"))
    assert plan.ex4 is not None and plan.ex4.marker and [s.assigns for s in plan.ex4.block] == [("dC",)]


def test_the_setup_is_what_comes_before_the_first_answer():
    plan = find_exercises(read_cells(fixtures.notebook_bytes(), "nb.ipynb"))
    setup = [name for s in plan.setup for name in s.assigns]
    assert {"words", "Xtr", "C", "W1", "Xb", "Yb", "emb", "loss", "cmp"} <= set(setup)
    assert not set(setup) & set(EXPECTED["ex1"]) and "loss_fast" not in setup and "max_steps" not in setup


def test_cmp_calls_name_the_learners_own_variables():
    plan = find_exercises(read_cells(BY_NAME["ex2_renamed_answer"].to_bytes(), "nb.ipynb"))
    assert ("logits", "dlogits_fast", "logits") in plan.cmps and ("hprebn", "dhprebn", "hprebn") in plan.cmps


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b"null", b'{"cells": {}}', b'{"nbformat": 4, "cells": []}',
                                  b'{"nbformat": 4, "cells": [1, "x", null, {"cell_type": "code"}]}',
                                  b'{"nbformat": 4, "cells": [{"cell_type": "code", "source": "def f(:\\n  pass"}]}',
                                  b'{"nbformat": 4, "cells": [{"cell_type": "code", "source": "(" }]}',
                                  b'{"nbformat": 4, "cells": [{"cell_type": "code", "source": ["x = 1\\u0000"]}]}',
                                  b'{"nbformat": 3, "worksheets": [{"cells": [{"cell_type": "code", "input": "x"}]}]}',
                                  ("[" * 5000 + "]" * 5000).encode(), b"\xff\xfe\x00"])
def test_any_file_gets_a_report_never_a_traceback(data):
    result = check.check_bytes(data, "odd.ipynb", IN_PROCESS)
    text = format_report(result)
    assert result.error and CRASH_WORDS not in result.error and "error:" in text


def test_a_deeply_nested_cell_is_a_note_not_a_crash():
    cell = "x = " + "(" * 3000 + "1" + ")" * 3000 + "\ndlogits = x\n"
    nb = {"nbformat": 4, "cells": [{"cell_type": "code", "source": "# Exercise 2\n" + cell}]}
    plan = find_exercises(read_cells(json.dumps(nb).encode(), "nb.ipynb"))
    broken, kept = plan.statements["ex2"]
    assert broken.syntax_error and (kept.assigns, kept.syntax_error) == (("dlogits",), "")


# ------------------------------------------------------------------ property: a report for every mutation

NAMES = ("Yb", "Xb", "n", "h", "dh", "logits", "dlogits", "W2", "dW2", "hpreact", "dhpreact", "counts", "C", "emb")


@st.composite
def mutated_notebooks(draw):
    """The lecture's notebook, changed the ways learners change it, a few ways at once."""
    cells = [[kind, source] for kind, source in fixtures.cells()]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["indent", "comment", "header", "order", "rename", "delete", "duplicate",
                                     "garble"]))
        index = draw(st.integers(0, len(cells) - 1))
        lines = cells[index][1].split("\n")
        line = draw(st.integers(0, len(lines) - 1))
        if kind == "indent":
            width = draw(st.sampled_from(["", " ", "\t", "  ", "        "]))
            lines[line] = width + lines[line].lstrip() if draw(st.booleans()) else width + lines[line]
            cells[index][1] = "\n".join(lines)
        elif kind == "comment":
            text = draw(st.sampled_from(["# manual backprop", "#", "# Exercise 2", "# TODO: dlogits", "  # note"]))
            lines.insert(line, text)
            cells[index][1] = "\n".join(lines)
        elif kind == "header":
            word = draw(st.sampled_from(["Excercise", "Excercie", "exercize", "Exercise", "Ex.", "Part", ""]))
            cells[index][1] = re.sub(r"Exercise", word, cells[index][1])
        elif kind == "order":
            other = draw(st.integers(0, len(cells) - 1))
            cells[index], cells[other] = cells[other], cells[index]
        elif kind == "rename":
            old, new = draw(st.sampled_from(NAMES)), draw(st.sampled_from(["yb", "BATCH_SIZE", "a", "da", "x", "_"]))
            cells = [[k, re.sub(rf"(?<![\w.]){re.escape(old)}\b", new, s)] for k, s in cells]
        elif kind == "delete" and len(cells) > 1:
            del cells[index]
        elif kind == "duplicate":
            cells.insert(index, list(cells[index]))
        elif kind == "garble":
            cut = draw(st.integers(0, len(cells[index][1])))
            cells[index][1] = cells[index][1][:cut] + draw(st.sampled_from(["(", ":", "\n  ", "'", "\\", "\x00"]))
    as_json = [{"cell_type": k, "source": s, "metadata": {}} for k, s in cells]
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": as_json}).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_notebooks())
def test_every_mutation_of_the_notebook_is_read_without_a_traceback(data):
    plan = find_exercises(read_cells(data, "nb.ipynb"))
    plan.found()


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_notebooks())
def test_every_mutation_of_the_notebook_gets_a_report(data):
    result = check.check_bytes(data, "mutated.ipynb", IN_PROCESS)
    text = format_report(result)
    assert CRASH_WORDS not in (result.error or "")
    if result.error:
        assert "no exercise of the lecture's notebook" in result.error
    else:
        assert len(result.items) == 35 and "total:" in text


# ------------------------------------------------------------------ the learner's own names (slow)

@pytest.mark.slow
@pytest.mark.parametrize("name", ["yb", "xb_yb", "batch_size_constant", "alias_a", "lower_weights", "ex2_renamed_answer",
                                  "ex2_own_helper", "own_helpers", "misspelled_headers", "misspelled_ex4_backward_left",
                                  "no_headers", "no_ex1_header_split", "column0_comments", "column0_in_with_for",
                                  "semicolons_tabs_crlf", "nbformat3"])
def test_right_answers_pass_under_the_learners_own_names_and_layout(name):
    result = run(BY_NAME[name])
    ex123 = {k: v for k, v in failed(result).items() if not k.startswith("ex4")}
    assert ex123 == {}
    assert not [f for f in result.flags if f["penalised"] and f["exercise"] != "ex4"]


@pytest.mark.slow
def test_a_learners_own_gradient_name_is_reported_under_the_lectures():
    result = run(BY_NAME["ex2_renamed_answer"])
    assert items(result)["ex2_dlogits"] == ("pass", "")
    wrong = BY_NAME["ex2_renamed_answer"]
    wrong.cells = [(k, s.replace("dlogits_fast /= n", "dlogits_fast /= 2 * n"), r) for k, s, r in wrong.cells]
    result = run(wrong)
    assert items(result)["ex2_dlogits"] == ("fail", "scale.other") and "your dlogits_fast" in message(result, "ex2_dlogits")


@pytest.mark.slow
def test_a_forward_pass_of_their_own_is_judged_by_their_own_grad_and_flagged():
    result = run(BY_NAME["own_forward_variant"])
    assert failed(result) == {} or all(k.startswith("ex4") for k in failed(result))
    assert [f["flag"] for f in result.flags if f["exercise"] == "setup"] == ["own_forward"]


@pytest.mark.slow
def test_a_tampered_grad_in_the_setup_cannot_make_zeros_pass():
    """Their forward pass is the lecture's, so the references are recomputed here: what their setup wrote does not count."""
    notebook = BY_NAME["lecture_as_solved"]
    tampered = corpus.Notebook("tampered", (), list(notebook.cells))
    forward = max(i for i, (_, _, role) in enumerate(tampered.cells) if role == "setup")
    kind, source, role = tampered.cells[forward]
    zero_all = ("\nfor t in [logprobs, probs, counts, counts_sum, counts_sum_inv, norm_logits, logit_maxes, logits, h, "
                "hpreact, bnraw, bnvar_inv, bnvar, bndiff2, bndiff, hprebn, bnmeani, embcat, emb, *parameters]:\n"
                "    t.grad = torch.zeros_like(t)\n")
    tampered.cells[forward] = (kind, source + zero_all, role)
    zeros = "".join(f"{g} = torch.zeros_like({g[1:]})\n" for g in EXPECTED["ex1"])
    tampered.cells = [(k, "# Exercise 1\n" + zeros if r == "ex1" else s, r) for k, s, r in tampered.cells]
    result = run(tampered)
    assert sum(items(result)[f"ex1_{g}"][0] == "pass" for g in EXPECTED["ex1"]) <= 2  # only gradients that are ~0
    assert items(result)["ex1_dlogprobs"] == ("fail", "zeros")


@pytest.mark.slow
def test_setup_cells_that_cannot_run_here_leave_the_lectures_setting_and_say_so():
    notebook = BY_NAME["lecture_as_solved"]
    elsewhere = corpus.Notebook("elsewhere", (), [(k, s.replace("open('names.txt', 'r')", "open('/data/my_names.csv')"), r)
                                                  for k, s, r in notebook.cells])
    result = run(elsewhere)
    assert failed(result) == {}
    assert "lecture's own parameters and batch" in format_report(result) and "PermissionError" in format_report(result)


# ------------------------------------------------------------------ .grad reads and cascades (slow)

@pytest.mark.slow
@pytest.mark.parametrize("name, gradient", [("grad_shortcut_dhpreact", "dhpreact"), ("grad_shortcut_dbnraw", "dbnraw")])
def test_a_grad_read_in_the_middle_of_exercise_1_fails_only_its_own_line(name, gradient):
    result = run(BY_NAME[name])
    ex123 = {k: v for k, v in failed(result).items() if not k.startswith("ex4")}
    assert ex123 == {f"ex1_{gradient}": ("fail", "cheating.grad")}
    assert [(f["name"], f["flag"]) for f in result.flags if f["penalised"]] == [(gradient, "grad")]


@pytest.mark.slow
def test_a_typo_in_dhpreact_is_its_own_and_every_line_below_names_it():
    result = run(BY_NAME["typo_cascade"])
    wrong = failed(result)
    assert wrong["ex1_dhpreact"] == ("fail", "none")
    for item in ("ex1_dbngain", "ex1_dbnbias", "ex1_dbnraw"):
        assert wrong[item] == ("fail", "upstream")
        assert "this line looks right; it uses `dhpreact`, which is wrong: fix that first" in message(result, item)
    assert wrong["ex1_dC"] == ("fail", "upstream") and "`demb`" in message(result, "ex1_dC")
    assert wrong["ex3_dhprebn"] == ("fail", "upstream") and "`dhpreact`" in message(result, "ex3_dhprebn")
    assert {k for k, (_, code) in wrong.items() if k.startswith("ex1") and code != "upstream"} == {"ex1_dhpreact"}
    assert "ex1_dh" not in wrong and "ex2_dlogits" not in wrong  # above the typo, and Exercise 2 does not use it


@pytest.mark.slow
def test_a_wrong_dlogits_is_named_by_dh_dW2_and_db2():
    result = run(BY_NAME["wrong_dlogits_cascade"])
    wrong = failed(result)
    assert wrong["ex1_dlogits"] == ("fail", "branch.missing")
    for item in ("ex1_dh", "ex1_dW2", "ex1_db2"):
        assert wrong[item] == ("fail", "upstream")
        assert "it uses `dlogits`, which is wrong: fix that first" in message(result, item)
    assert "ex2_dlogits" not in wrong


@pytest.mark.slow
def test_two_attempts_at_one_gradient_the_last_one_counts():
    right_last = run(BY_NAME["second_attempt_cell"])
    assert {k for k in failed(right_last) if k.startswith("ex1")} == set()
    notebook = BY_NAME["lecture_as_solved"]
    wrong_last = corpus.Notebook("wrong_last", (), list(notebook.cells))
    position = max(i for i, (_, _, role) in enumerate(wrong_last.cells) if role == "ex1")
    wrong_last.cells.insert(position + 1, ("code", "# trying another way\ndb2 = dlogits.sum(0, keepdim=True)\n", "ex1"))
    assert failed(run(wrong_last)) == {"ex1_db2": ("fail", "shape.extra_dim")}


@pytest.mark.slow
def test_a_gradient_from_a_cell_of_another_exercise_above_is_read_as_their_kernel_ran_it():
    """No headers, the fused dlogits first (Exercise 2's cell), the rest of Exercise 1 below it, top to bottom."""
    notebook = BY_NAME["fused_dlogits_first_unheaded"]
    plan = find_exercises(read_cells(notebook.to_bytes(), "nb.ipynb"))
    assert [s.assigns for s in plan.statements["ex2"]] == [("dlogits",)] * 3
    assert plan.borrowed["ex1"] == plan.statements["ex2"] and "ex1" not in plan.borrowed.get("ex3", {})
    assert [s.assigns for s in plan.statements["ex3"]] == [("dhprebn",)]  # the fused line beside dbngain, judged twice
    result = run(notebook)
    assert not any("NameError" in i.message or i.diagnosis.startswith("error.") for i in result.items)
    got = items(result)
    for item in ("ex1_dh", "ex1_dW2", "ex1_db2", "ex1_dhpreact", "ex1_dbngain", "ex1_db1", "ex2_dlogits"):
        assert got[item] == ("pass", ""), item
    assert got["ex3_dhprebn"] == got["ex1_dhprebn"] == ("fail", "none")  # no Bessel's correction
    assert got["ex1_dembcat"] == ("fail", "upstream") and "`dhprebn`" in message(result, "ex1_dembcat")
    found = corpus.measure(lambda data, name: check.check_bytes(data, name, IN_PROCESS).to_json(), [notebook],
                           data_file("names.txt"))
    assert (found.agree, found.misleading, found.no_report) == (found.verdicts, [], []), found.disagreements


def test_notebooks_that_read_nothing_made_by_a_later_exercise_above_borrow_nothing():
    for name in ("lecture_as_solved", "no_headers", "out_of_order", "no_ex1_header_split"):
        plan = find_exercises(read_cells(BY_NAME[name].to_bytes(), "nb.ipynb"))
        assert plan.borrowed == {}, name


def test_a_message_reads_as_sentences():
    assert check._sentences("raised NameError: name 'dlogits' is not defined", "Your line itself is right") == (
        "raised NameError: name 'dlogits' is not defined. Your line itself is right")
    assert check._sentences("", "Note: x") == "Note: x" and check._sentences("wrong.", "Note: x") == "wrong. Note: x"


# ------------------------------------------------------------------ the answer is never where learner code runs (slow)

HARVEST = """
import gc
found = None
for candidate in gc.get_objects():
    if isinstance(candidate, torch.Tensor) and candidate.shape == logits.shape and candidate.is_floating_point():
        rows = candidate.sum(1).abs().max().item()
        if rows < 1e-6 and candidate.abs().max().item() > 1e-4:  # n * dlogits: every row sums to zero
            found = candidate.clone()
dlogits = found
"""


@pytest.mark.slow
def test_an_exercise_cannot_find_its_answer_in_the_process_that_runs_it(tmp_path):
    """Exercise 2 harvests every tensor in reach for the one whose rows sum to zero, the mark of the right dlogits.

    In the sandboxed answers child there is none (Exercise 1 left blank, so
    not even the learner's own): it fails. Run in this process, where the
    checker holds its references (a fresh Python, so that nothing left by
    other tests is in reach), the same harvest finds the answer: that is
    how this test knows it can fail.
    """
    notebook = BY_NAME["lecture_as_solved"]
    cells = [(k, "# Exercise 1\nx = 1\n" if r == "ex1" else ("# Exercise 2\n" + HARVEST if r == "ex2" else s), r)
             for k, s, r in notebook.cells]
    cells = [(k, s, r) for k, s, r in cells if not s.startswith("\ncmp(") and "cmp('logits'" not in s]
    harvesting = corpus.Notebook("harvest", (), cells)
    with fork_server(LectureSettings(ex4_steps=1)) as sandboxed:
        here = check.check_bytes(harvesting.to_bytes(), "harvest.ipynb", sandboxed)
    assert items(here)["ex2_dlogits"][0] != "pass"
    assert in_a_fresh_process(harvesting, tmp_path)["ex2_dlogits"] == ["pass", ""]


def in_a_fresh_process(notebook: corpus.Notebook, tmp_path) -> dict[str, list[str]]:
    """The in-process check of ``notebook`` in a new Python, so that the harvest sees only this check's tensors
    (in the test process, tensors left by earlier tests also have rows that sum to zero)."""
    path = tmp_path / "notebook.ipynb"
    path.write_bytes(notebook.to_bytes())
    script = ("import json, sys\n"
              "from autograder.lecture import LectureSettings, check\n"
              "settings = LectureSettings(in_process=True, ex4_steps=1, exercise_seconds=20)\n"
              "result = check.check_bytes(open(sys.argv[1], 'rb').read(), 'harvest.ipynb', settings)\n"
              "print(json.dumps({f'{i.exercise}_{i.name}': [i.status, i.diagnosis] for i in result.items}))\n")
    run = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parent.parent)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ the numbers (slow)

@pytest.mark.slow
def test_the_corpus_verdicts_agree_with_autograd_and_the_hints_are_right(capsys):
    """Issue 22's bars on the whole corpus: >= 99% of verdicts, >= 90% right diagnoses, none misleading."""
    torch.set_num_threads(1)
    notebooks = corpus.notebooks()
    found = corpus.measure(lambda data, name: check.check_bytes(data, name, IN_PROCESS).to_json(), notebooks,
                           data_file("names.txt"))
    with capsys.disabled():
        print(f"\nlecture corpus, {len(notebooks)} notebooks: {found.line()}")
    assert found.no_report == []
    assert found.agree / found.verdicts >= 0.99, found.disagreements[:20]
    assert found.right_hint / found.wrong >= 0.90, found.missed[:20]
    assert found.misleading == []


@pytest.mark.slow
def test_the_sandboxed_children_give_the_same_verdicts_as_the_checker_in_process():
    chosen = ["yb", "alias_a", "typo_cascade", "grad_shortcut_dhpreact", "column0_in_with_for", "own_forward_variant",
              "mix28"]
    with fork_server(LectureSettings(ex4_steps=1)) as sandboxed:
        for name in chosen:
            inside = check.check_bytes(BY_NAME[name].to_bytes(), f"{name}.ipynb", sandboxed)
            here = check.check_bytes(BY_NAME[name].to_bytes(), f"{name}.ipynb", IN_PROCESS)
            assert items(inside) == items(here), name
