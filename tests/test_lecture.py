"""Checking notebooks in the lecture's own format (``autograder.lecture``).

Fast tests read notebooks without running them. Tests marked ``slow`` run
the fixtures of ``lecture_fixtures`` (our own answers in the lecture's
format): most in this process (``in_process``, cheap), one through the real
sandboxed child with its time limit.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.engine.cluster import ClusterSettings
from autograder.judge import sandbox
from autograder.lecture import LectureSettings, check, runner
from autograder.lecture.grade import ITEM_IDS, grade_folder
from autograder.lecture.parse import EX1_NAMES, EXPECTED, NotebookError, find_exercises, read_cells
from autograder.lecture.report import LectureResult, format_report
from autograder.lecture.statements import Cell, cell_statements
from tests import lecture_fixtures as fixtures

REPO = Path(__file__).resolve().parent.parent

IN_PROCESS = LectureSettings(in_process=True, ex4_steps=2)


def plan_of(**variant):
    return find_exercises(read_cells(fixtures.notebook_bytes(**variant), "nb.ipynb"))


def assigned(statements) -> list[str]:
    return [name for s in statements for name in s.assigns]


# ------------------------------------------------------------------ reading (fast)

@pytest.mark.parametrize("variant", ["correct", "colab", "split_cells", "out_of_order"])
def test_every_exercise_is_found_by_content(variant):
    plan = plan_of(**fixtures.VARIANTS[variant])
    assert plan.found() == ["ex1", "ex2", "ex3", "ex4"]
    assert set(EX1_NAMES) <= set(assigned(plan.statements["ex1"]))
    assert "dlogits" in assigned(plan.statements["ex2"]) and "dhprebn" not in assigned(plan.statements["ex2"])
    assert assigned(plan.statements["ex3"]).count("dhprebn") == 1
    assert "loss_fast" not in assigned(plan.statements["ex1"])  # Exercise 2's header cell is not Exercise 1's


def test_training_loop_splits_around_the_manual_backprop_region():
    loop = plan_of().ex4
    assert loop.marker
    assert "loss" in assigned(loop.forward) and "Xb" in assigned(loop.forward)
    block = assigned(loop.block)
    assert block[0] == "dlogits" and block[-1] == "grads" and set(EXPECTED["ex4"]) <= set(block)
    assert "lr" in assigned(loop.update) and not any(s.calls_backward for s in loop.forward)  # commented out


def test_training_loop_without_the_marker_starts_at_the_first_gradient():
    loop = plan_of(loop=fixtures.EX4_LOOP.replace("# manual backprop! #swole_doge_meme", "# mine")).ex4
    assert not loop.marker and loop.block[0].assigns == ("dlogits",) and "loss" in assigned(loop.forward)


def test_second_attempt_and_commented_attempts_keep_their_order():
    plan = plan_of(ex2="# dlogits = probs - 1  (a first idea)\n" + fixtures.VARIANTS["second_attempt"]["ex2"],
                   extra=fixtures.VARIANTS["second_attempt"]["extra"])
    sources = [s.source for s in plan.statements["ex2"] if "dlogits" in s.assigns]
    assert sources == ["dlogits = F.softmax(logits, 1) / n", "dlogits = F.softmax(logits, 1)",
                       "dlogits[range(n), Yb] -= 1", "dlogits /= n"]  # the commented-out idea is not code


def test_cells_without_headers_are_placed_by_what_they_assign():
    cells = [(kind, source.replace("Exercise", "Part")) for kind, source in fixtures.cells()]
    nb = {"nbformat": 4, "cells": [{"cell_type": k, "source": s} for k, s in cells]}
    plan = find_exercises(read_cells(json.dumps(nb).encode(), "nb.ipynb"))
    assert plan.headers == []
    assert set(EX1_NAMES) <= set(assigned(plan.statements["ex1"]))
    assert "dlogits" in assigned(plan.statements["ex2"]) and "dhprebn" in assigned(plan.statements["ex3"])
    assert plan.ex4 is not None and "grads" in assigned(plan.ex4.block)


def test_colab_python_export_is_read_like_the_notebook():
    cells = read_cells(fixtures.script().encode(), "makemore_part4_backprop.py")
    plan = find_exercises(cells)
    assert plan.found() == ["ex1", "ex2", "ex3", "ex4"]
    assert set(EX1_NAMES) <= set(assigned(plan.statements["ex1"]))


def test_a_part_with_a_syntax_error_costs_only_its_own_gradients():
    broken = fixtures.ex1_with("dh = dlogits @ W2.T\n", "dh = dlogits @ W2.T)\n\n")
    statements = plan_of(ex1_parts=broken).statements["ex1"]
    errors = [s for s in statements if s.syntax_error]
    assert len(errors) == 1 and "dh" in errors[0].assigns and "SyntaxError" in errors[0].syntax_error
    assert {"dlogprobs", "dC"} <= set(assigned(s for s in statements if not s.syntax_error))


@pytest.mark.parametrize("data, words", [
    (b"{ not json", "not valid JSON"),
    (b'{"cells": 3}', "no list of cells"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
])
def test_unreadable_notebooks_raise_a_clear_error(data, words):
    with pytest.raises(NotebookError, match=words):
        read_cells(data, "bad.ipynb")


def test_a_notebook_without_any_exercise_is_an_error_not_a_report():
    nb = {"nbformat": 4, "cells": [{"cell_type": "code", "source": "x = 1\nprint(x)"}]}
    result = check.check_bytes(json.dumps(nb).encode(), "other.ipynb", IN_PROCESS)
    assert result.items == [] and "no exercise of the lecture's notebook" in result.error
    assert "error:" in format_report(result)


def test_taint_follows_grad_reads_through_helpers_not_into_the_next_gradients_own_line():
    statements = cell_statements(Cell("code", (
        "tmp = logits.grad\ndlogits = tmp * 1.0\ndh = dlogits @ W2.T\ndh += 0\n"
        "dW2 = h.T @ logits.grad\ndW2 = h.T @ dlogits\ndb2 = torch.autograd.grad(loss, b2)[0]\n"
        "dlogits += 0\ncmp('logits', dlogits, logits)\n"), 0))
    # dh's line and dW2's second attempt are the learner's own: they are judged with the right dlogits fed in
    tainted = check.taint(statements)
    assert tainted == {"tmp": "grad", "dlogits": "grad", "db2": "autograd"}
    clean = check.taint(cell_statements(Cell("code", "dW2 = h.T @ W2.grad\ndW2 = h.T @ h\n", 0)))
    assert clean == {}


def test_cli_knows_both_commands():
    from autograder.cli import main

    for command in ("check-lecture", "grade-lecture"):
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0


# ------------------------------------------------------------------ running (slow)

def run(variant: str) -> LectureResult:
    result = check.check_bytes(fixtures.notebook_bytes(**fixtures.VARIANTS[variant]), f"{variant}.ipynb", IN_PROCESS)
    assert not result.error
    assert len(result.items) == 35
    return result


def statuses(result) -> dict[str, tuple[str, str]]:
    return {f"{i.exercise}_{i.name}": (i.status, i.diagnosis) for i in result.items}


def failures(result) -> dict[str, tuple[str, str]]:
    return {key: value for key, value in statuses(result).items() if value[0] != "pass"}


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["correct", "colab", "split_cells", "second_attempt", "out_of_order"])
def test_right_answers_pass_whatever_the_notebook_looks_like(variant):
    result = run(variant)
    assert failures(result) == {}
    assert result.flags == []
    report = format_report(result)
    assert report.count("✅") == 35 and "total: 35/35" in report


@pytest.mark.slow
@pytest.mark.parametrize("variant, item, diagnosis, words", [
    ("missing_keepdim", "ex1_dbnbias", "shape.missing_dim", "keepdim"),
    ("extra_dim", "ex1_db2", "shape.extra_dim", "(1, 27)"),
    ("scatter", "ex1_dC", "scatter.repeats", "repeated"),
])
def test_a_mistake_that_feeds_nothing_costs_exactly_its_item(variant, item, diagnosis, words):
    result = run(variant)
    assert failures(result) == {item: ("fail", diagnosis)}
    message = next(i.message for i in result.items if f"{i.exercise}_{i.name}" == item)
    assert words in message


@pytest.mark.slow
def test_epsilon_with_the_wrong_sign_fails_dbnvar_and_what_follows_from_it():
    failed = failures(run("epsilon"))
    assert failed["ex1_dbnvar"] == ("fail", "epsilon")
    assert {"ex1_dbnvar_inv", "ex1_dh", "ex1_dbnraw"}.isdisjoint(failed)  # upstream of the mistake
    assert "ex1_dbndiff2" in failed and "ex2_dlogits" not in failed


@pytest.mark.slow
def test_an_alias_without_clone_is_named_on_the_tensor_it_spoiled():
    result = run("alias")
    assert failures(result) == {"ex1_dbndiff": ("fail", "alias")}
    spoiled = next(i for i in result.items if i.name == "dbndiff")
    assert "dhprebn" in spoiled.message and ".clone()" in spoiled.message


@pytest.mark.slow
def test_exercise_4_gradients_listed_in_the_wrong_order():
    result = run("ex4_order")
    assert failures(result) == {"ex4_dbngain": ("fail", "order"), "ex4_dbnbias": ("fail", "order")}
    message = next(i.message for i in result.items if i.name == "dbngain" and i.exercise == "ex4")
    assert "grads[5]" in message and "grads[6]" in message


@pytest.mark.slow
def test_a_grad_copy_scores_nothing_and_is_flagged():
    result = run("grad_copy")
    assert failures(result) == {"ex2_dlogits": ("fail", "cheating.grad")}
    assert result.flags == [{"exercise": "ex2", "name": "dlogits", "flag": "grad", "penalised": True,
                             "message": result.items[26].message}]


@pytest.mark.slow
def test_a_leftover_backward_is_noted_when_unused_and_penalised_when_used():
    unused = run("backward_unused")
    assert failures(unused) == {}
    assert [(f["flag"], f["penalised"]) for f in unused.flags] == [("leftover_backward", False)]
    used = run("backward_used")
    assert failures(used) == {f"ex4_d{p}": ("fail", "cheating.grad") for p in ("C", "W1", "b1", "W2", "b2", "bngain", "bnbias")}
    assert ("leftover_backward", True) in [(f["flag"], f["penalised"]) for f in used.flags]
    # The same update without any backward() in the loop cannot use autograd: a note, no penalty.
    loop = fixtures.VARIANTS["backward_used"]["loop"].replace("    loss.backward() #", "    # gone #")
    assert "loss.backward()" not in loop
    broken_update = check.check_bytes(fixtures.notebook_bytes(loop=loop), "nb.ipynb", IN_PROCESS)
    assert failures(broken_update) == {}
    assert [(f["flag"], f["penalised"]) for f in broken_update.flags] == [("update_reads_grad", False)]


@pytest.mark.slow
def test_a_statement_that_raises_costs_the_gradients_it_left_undefined():
    result = run("raises_halfway")
    assert failures(result) == {"ex1_dembcat": ("error", "error.RuntimeError"),
                                "ex1_demb": ("error", "error.NameError"), "ex1_dC": ("error", "error.NameError")}
    dembcat = next(i for i in result.items if i.name == "dembcat")
    assert "mat1 and mat2" in dembcat.message and "line" in dembcat.message
    assert statuses(result)["ex1_dW1"] == ("pass", "")  # after the failing statement, independent of it


@pytest.mark.slow
def test_missing_names_are_missing_and_the_report_says_what_was_looked_for():
    result = check.check_bytes(fixtures.notebook_bytes(ex2="dlogits_fast = F.softmax(logits, 1)\n"), "nb.ipynb", IN_PROCESS)
    item = next(i for i in result.items if i.exercise == "ex2")
    assert (item.status, item.diagnosis) == ("missing", "not_attempted") and "dlogits_fast" in item.message
    assert "looked for: dlogits\n" in format_report(result) + "\n"


@pytest.mark.slow
def test_the_blank_notebook_is_all_missing_and_its_p_grad_update_is_not_held_against_it():
    result = check.check_bytes(fixtures.notebook_bytes(**fixtures.VARIANTS["blank"]), "blank.ipynb", IN_PROCESS)
    assert {(i.status, i.diagnosis) for i in result.items} == {("missing", "not_attempted")} and len(result.items) == 35
    assert [(f["flag"], f["penalised"]) for f in result.flags] == [("update_reads_grad", False)]


@pytest.mark.slow
def test_a_learners_own_cmp_changes_nothing():
    own_cmp = "def cmp(s, dt, t):\n    return True\ncmp = lambda *a: True\n"
    result = check.check_bytes(fixtures.notebook_bytes(ex2=own_cmp + "dlogits = logits * 0\n"), "nb.ipynb", IN_PROCESS)
    assert statuses(result)["ex2_dlogits"][0] == "fail"


@pytest.mark.slow
def test_grading_a_folder_writes_grades_and_feedback_and_survives_broken_notebooks(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    (subs / "alice").mkdir(parents=True)
    (subs / "alice" / "makemore_part4_backprop.ipynb").write_bytes(fixtures.notebook_bytes())
    (subs / "bob.ipynb").write_bytes(fixtures.notebook_bytes(**fixtures.VARIANTS["grad_copy"]))
    (subs / "carol.ipynb").write_text("{ not a notebook")
    (subs / "dave.py").write_text(fixtures.script(**fixtures.VARIANTS["scatter"]))
    # On the grading engine: each student a Dask task, each notebook in its sandboxed child process.
    results = grade_folder(subs, out, check.LectureSettings(ex4_steps=2), progress=lambda line: None,
                           engine=ClusterSettings(jobs=2))
    assert {k: v["score"] for k, v in results.items()} == {"alice": 35, "bob": 34, "carol": 0, "dave": 34}
    mistakes = {(row["item"], row["diagnosis"]): row["student_ids"] for row in csv.DictReader(open(out / "mistakes.csv"))}
    assert mistakes[("ex1_dC", "scatter.repeats")] == "dave" and mistakes[("ex2_dlogits", "cheating.grad")] == "bob"
    assert {ids for (item, code), ids in mistakes.items() if code == "not_attempted"} == {"carol"}
    assert not [key for key, ids in mistakes.items() if "alice" in ids.split()]  # all right: in no row
    rows = {row["student_id"]: row for row in csv.DictReader(open(out / "grades.csv"))}
    assert rows["bob"]["ex2_dlogits"] == "0" and rows["bob"]["ex1_dC"] == "1" and rows["bob"]["total"] == "34"
    assert "not valid JSON" in rows["carol"]["error"] and rows["carol"]["total"] == "0"
    assert rows["dave"]["ex1_dC"] == "0" and list(rows["alice"])[1:-3] == ITEM_IDS
    feedback = json.loads((out / "feedback" / "bob" / "lecture_report.json").read_text())
    assert feedback["flags"][0]["flag"] == "grad"
    assert "total: 34/35" in (out / "feedback" / "dave" / "lecture_report.txt").read_text()


@pytest.mark.slow
def test_command_line_in_the_sandbox_survives_an_endless_loop_and_file_reads(tmp_path):
    """The real child: sandboxed, time-limited; the other exercises are not lost."""
    hostile = {"ex2": "while True:\n    pass\ndlogits = F.softmax(logits, 1)\n",
               "ex3": ("words = open('names.txt').read()\n"
                       f"secret = __import__('pathlib').Path({str(REPO / 'README.md')!r}).read_text()\n"
                       "hog = torch.empty(4 << 30, dtype=torch.uint8)\n" + fixtures.EX3_ANSWER),
               "loop": fixtures.VARIANTS["ex4_order"]["loop"]}
    notebook = tmp_path / "hostile.ipynb"
    notebook.write_bytes(fixtures.notebook_bytes(**hostile))
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, "-m", "autograder", "check-lecture", str(notebook), "--json", str(out),
                           "--exercise-timeout", "4", "--ex4-steps", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    data = json.loads(out.read_text())
    by_name = {(i["exercise"], i["name"]): i for i in data["items"]}
    assert set(data) == {"items", "flags"} and len(data["items"]) == 35
    assert (by_name[("ex2", "dlogits")]["status"], by_name[("ex2", "dlogits")]["diagnosis"]) == ("error", "timeout")
    assert by_name[("ex3", "dhprebn")]["status"] == "pass"
    assert by_name[("ex4", "dbnbias")]["diagnosis"] == "order"
    assert sum(i["status"] == "pass" for i in data["items"]) == 32
    assert "PermissionError" in done.stdout and "❌ dlogits" in done.stdout
    assert "line 3: RuntimeError" in done.stdout  # 4 GB refused by the memory limit, the exercise went on
    if sandbox.available():  # the repository is hidden from the learner's code
        assert "line 2: FileNotFoundError" in done.stdout


def test_imports_of_the_setup_cells_come_along_when_an_exercise_uses_them():
    cells = fixtures.cells(ex2=fixtures.EX2_ANSWER.replace("dlogits /= n", "dlogits /= np.float32(n)"))
    cells.insert(1, ("code", "import numpy as np"))
    nb = {"nbformat": 4, "cells": [{"cell_type": k, "source": s} for k, s in cells]}
    plan = find_exercises(read_cells(json.dumps(nb).encode(), "nb.ipynb"))
    ex2 = [s.source for s in runner.with_definitions(plan, plan.statements["ex2"])]
    assert "import numpy as np" in ex2 and ex2.index("import numpy as np") < ex2.index("dlogits = F.softmax(logits, 1)")
    assert "import numpy as np" not in [s.source for s in runner.with_definitions(plan, plan.statements["ex3"])]


def test_nbformat_3_notebooks_are_read():
    nb = {"nbformat": 3, "worksheets": [{"cells": [{"cell_type": "code", "input": "# Exercise 2\ndlogits = 1"}]}]}
    plan = find_exercises(read_cells(json.dumps(nb).encode(), "old.ipynb"))
    assert plan.found() == ["ex2"]


def test_a_small_loop_assigning_gradients_is_not_taken_for_the_training_loop():
    trial = ("code", "# Exercise 4, a first try of dC\nfor _ in range(1):\n    dC = torch.zeros_like(C)\n"
                     "    dC.index_add_(0, Xb.view(-1), demb.view(-1, 10))\n    grads = [dC]\n")
    plain_loop = fixtures.EX4_LOOP.replace("# manual backprop! #swole_doge_meme", "# mine")
    for loop in (fixtures.EX4_LOOP, plain_loop):
        cells = fixtures.cells(loop=loop, extra={3: [trial]})  # in Exercise 4, before the training loop
        nb = {"nbformat": 4, "cells": [{"cell_type": k, "source": s} for k, s in cells]}
        found = find_exercises(read_cells(json.dumps(nb).encode(), "nb.ipynb")).ex4
        assert set(EXPECTED["ex4"]) <= set(assigned(found.block)) and "loss" in assigned(found.forward)


def test_a_no_grad_block_runs_line_by_line():
    statements = cell_statements(Cell("code", "with torch.no_grad():\n    dh = 1\n    dW2 = 2\n", 0))
    assert [s.assigns for s in statements] == [("dh",), ("dW2",)] and [s.line for s in statements] == [2, 3]


def test_exercises_2_and_3_without_their_headers_are_found_after_exercise_1():
    cells = [(kind, "loss_fast = F.cross_entropy(logits, Yb)" if source.startswith("# Exercise 2")
              else "x = 1" if source.startswith("# Exercise 3") else source) for kind, source in fixtures.cells()]
    nb = {"nbformat": 4, "cells": [{"cell_type": k, "source": s} for k, s in cells]}
    plan = find_exercises(read_cells(json.dumps(nb).encode(), "nb.ipynb"))
    assert plan.headers == ["ex1", "ex4"] and plan.found() == ["ex1", "ex2", "ex3", "ex4"]
    assert assigned(plan.statements["ex2"]).count("dlogits") == 3 and assigned(plan.statements["ex3"]) == ["dhprebn"]
    assert assigned(plan.statements["ex1"]).count("dlogits") == 2  # Exercise 1's own two lines


@pytest.mark.slow
def test_a_helper_defined_in_another_cell_is_available_to_the_exercise():
    helper = ("code", "import numpy as np\n\ndef fused_ce_backward(logits, Yb):\n    d = F.softmax(logits, 1)\n"
                      "    d[range(d.shape[0]), Yb] -= 1\n    return d / np.float32(d.shape[0])\n")
    cells = fixtures.cells(ex2="dlogits = fused_ce_backward(logits, Yb)\n")
    cells.insert(2, helper)  # among the setup cells
    nb = {"nbformat": 4, "cells": [{"cell_type": k, "source": s} for k, s in cells]}
    result = check.check_bytes(json.dumps(nb).encode(), "nb.ipynb", IN_PROCESS)
    assert statuses(result)["ex2_dlogits"] == ("pass", "")


@pytest.mark.slow
def test_grade_lecture_with_an_unreachable_scheduler_exits_with_its_address_not_a_traceback(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "alice.ipynb").write_bytes(fixtures.notebook_bytes())
    done = subprocess.run([sys.executable, "-m", "autograder", "grade-lecture", str(tmp_path / "subs"), "--out",
                           str(tmp_path / "out"), "--scheduler", address], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert address in done.stdout and "cannot reach" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
