"""Collapsed hints in the masters, and the table that points a failed check to one of them."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import torch

from autograder import cells
from autograder.checking import checks
from autograder.diagnosis import hints
from autograder.diagnosis.codes import CODES
from autograder.diagnosis.comparison import Comparison
from autograder.exercises import ITEMS, ITEMS_BY_ID, NOTEBOOKS, answer_ids, items_of, notebook_of_answer
from autograder.kinds import gradient as gradient_kind
from autograder.kinds.gradient import GradientKind

SOLUTIONS = Path(__file__).resolve().parent.parent / "solutions"
DIAGNOSIS_CODES = {code.code for code in CODES}
SUMMARY = re.compile(r"<details><summary>Hint (\d+): (.*?)</summary>\n\n")
DETAILS = re.compile(r"<details>.*?</details>", re.S)
# Written in the visible task above an answer of 01-03, these would give the derivation away.
GIVEAWAYS = ("keepdim", ".clone()", "+=", "one_hot", "1 - ", "transpose", ".T", "-1/n", "n-1)")


def _masters() -> dict[str, nbformat.NotebookNode]:
    return {name: nbformat.read(SOLUTIONS / f"{name}.ipynb", as_version=4) for name in NOTEBOOKS}


MASTERS = _masters()


def markdown_above(answer_id: str) -> str:
    """The markdown cell nearest above answer cell ``answer_id`` in its master."""
    cells = MASTERS[notebook_of_answer(answer_id)].cells
    index = next(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("grade_id") == answer_id)
    return next(c.source for c in reversed(cells[:index]) if c.cell_type == "markdown")


def hint_titles(markdown: str) -> list[tuple[int, str]]:
    return [(int(number), title) for number, title in SUMMARY.findall(markdown)]


def graded_answers(*notebooks: str) -> list[str]:
    return sorted({a for nb in notebooks for item in items_of(nb) for a in item.answers})


@pytest.mark.parametrize("answer", sorted(hints.HINT_TITLES))
def test_the_table_titles_are_the_masters_hints(answer):
    found = hint_titles(markdown_above(answer))
    assert found == list(enumerate(hints.HINT_TITLES[answer], 1))


@pytest.mark.parametrize("answer", [a for nb in NOTEBOOKS for a in answer_ids(nb)])
def test_every_hint_in_a_master_is_in_the_table(answer):
    markdown = markdown_above(answer)
    assert len(hint_titles(markdown)) == len(hints.HINT_TITLES.get(answer, ()))
    assert markdown.count("<details>") == markdown.count("</details>") == len(hint_titles(markdown))


@pytest.mark.parametrize("answer", graded_answers(*NOTEBOOKS[1:4]))
def test_every_graded_answer_of_01_to_03_has_two_levels_and_a_bare_task(answer):
    assert len(hints.HINT_TITLES.get(answer, ())) >= 2
    task = DETAILS.sub("", markdown_above(answer))
    task = "\n".join(line for line in task.splitlines() if not line.startswith("#"))  # the forward line is the task
    assert "**Produce**" in task
    assert [word for word in GIVEAWAYS if word in task] == []


def test_no_hint_opens_by_itself():
    for name, nb in MASTERS.items():
        for cell in nb.cells:
            assert "<details open" not in cell.source, name


@pytest.mark.parametrize("grade_id", sorted(hints.POINTERS))
def test_every_pointer_names_a_hint_of_its_item_for_a_known_code(grade_id):
    item = ITEMS_BY_ID[grade_id]
    for code in hints.POINTERS[grade_id]:
        assert code in DIAGNOSIS_CODES
        answer, number = hints.hint_at(grade_id, code)
        assert answer in item.answers
        assert 1 <= number <= len(hints.HINT_TITLES[answer])
        assert (number, hints.HINT_TITLES[answer][number - 1]) in hint_titles(markdown_above(answer))


def test_every_graded_gradient_of_01_to_03_has_pointers():
    gradients = [item.grade_id for item in ITEMS if item.notebook in NOTEBOOKS[1:4]]
    assert [g for g in gradients if not hints.POINTERS.get(g)] == []


def test_pointer_by_item():
    assert hints.pointer("ex1_dcounts_sum_inv", "shape.missing_dim") == "see hint 1 above: broadcasting"
    assert hints.pointer("ex1_dcounts", "branch.missing") == "see hint 2 above: the second use of counts"
    assert hints.pointer("ex1_dbnvar", "epsilon") == "see hint 2 above: the epsilon"
    assert hints.pointer("ex1_dlogits", "alias") == \
        "see hint 2 above, under `norm_logits = logits - logit_maxes`: a copy before +="


def test_no_pointer_without_a_fitting_hint():
    assert hints.pointer("ex1_dcounts", "") is None  # a pass
    assert hints.pointer("ex1_dcounts", "unknown") is None
    assert hints.pointer("ex1_dcounts", "not.a.code") is None
    assert hints.pointer("ex1_dnothing", "sign") is None


def test_a_tensor_of_two_notebooks_needs_the_notebook(monkeypatch):
    both = GradientKind.items_checking("logits")
    assert both == ["ex1_dlogits", "ex2_dlogits", "ex6_dlogits"]
    monkeypatch.setattr(cells, "_recorded_cells", [])
    assert hints.pointer_for_check(both, "scale.1/n") is None  # 01 has no hint for it, 02 has: no guess
    assert hints.pointer("ex2_dlogits", "scale.1/n") == "see hint 3 above: the whole batch"
    assert hints.pointer("ex1_dhprebn", "branch.missing") == "see hint 2 above: the second use of hprebn"
    assert hints.pointer("ex3_dhprebn", "branch.missing") == "see hint 1 above: draw the graph: a scalar fans out"


def test_a_check_in_a_kernel_finds_its_notebook_from_the_answers_it_ran(monkeypatch):
    monkeypatch.setattr(cells, "_recorded_cells", ["#| answer: ex2_dlogits_fused\ndlogits = None"])
    assert hints.pointer_for_check(GradientKind.items_checking("logits"), "sign") == \
        "see hint 2 above: the derivative of one row"
    ex1 = [f"#| answer: {a}\npass" for a in ITEMS_BY_ID["ex1_dhprebn"].answers]
    monkeypatch.setattr(cells, "_recorded_cells", ex1)
    hprebn = GradientKind.items_checking("hprebn")
    assert hints.pointer_for_check(hprebn, "alias") == \
        "see hint 3 above, under `bndiff = hprebn - bnmeani`: the shape of the answer"
    monkeypatch.setattr(cells, "_recorded_cells", [])
    assert hints.pointer_for_check(hprebn, "alias") is None  # neither notebook ran: no guess


def test_cmp_prints_the_pointer_under_a_failed_check(monkeypatch, capsys):
    failed = Comparison("counts", False, False, 0.5, 1e-6, (2, 3), "values differ", "one branch", "branch.missing")
    monkeypatch.setattr(gradient_kind, "compare", lambda *args: failed)
    counts = torch.ones(2, 3, requires_grad=True)
    counts.sum().backward()
    assert checks.cmp("counts", torch.zeros(2, 3), counts) is False
    assert capsys.readouterr().out.splitlines()[-1].endswith("-> see hint 2 above: the second use of counts")
