"""The master notebooks and autograder/exercises.py describe the same workbook.

Every check that needs a notebook skips while that notebook is not written
yet, except for notebook 01, which must exist.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from autograder import exercises
from autograder.cells import ANSWER_DIRECTIVE
from autograder.exercises import ITEMS, NOTEBOOKS, answer_ids, exercise_number, items_of, notebook
from autograder.kinds import KINDS
from autograder.workbook import expression_graphs

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"
NOTEBOOK_METADATA = {"kernelspec", "language_info"}
CELL_METADATA = {"nbgrader"}


def exercise_mark(notebook_id: str):
    """The task marker (ex0..ex6) of a notebook id, for ``make test EX=n``."""
    return getattr(pytest.mark, f"ex{exercise_number(notebook_id)}")

by_notebook = pytest.mark.parametrize("notebook", [pytest.param(nb, marks=exercise_mark(nb)) for nb in NOTEBOOKS])


def cells_by_grade_id(nb) -> dict:
    return {cell.metadata["nbgrader"]["grade_id"]: cell for cell in nb.cells
            if "grade_id" in cell.metadata.get("nbgrader", {})}


def nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def split_hidden(source: str) -> tuple[str, str]:
    """(the visible part, the hidden region) of a test cell."""
    assert source.count(HIDDEN_BEGIN) == 1 and source.count(HIDDEN_END) == 1, "one hidden region expected"
    head, rest = source.split(HIDDEN_BEGIN)
    hidden, tail = rest.split(HIDDEN_END)
    return head + tail, hidden


# ------------------------------------------------------------- the registry itself

def test_registry_is_consistent():
    ids = [item.grade_id for item in ITEMS]
    assert len(ids) == len(set(ids))
    assert set(item.notebook for item in ITEMS) == set(NOTEBOOKS)
    assert all(item.points > 0 for item in ITEMS)
    assert len(items_of(notebook(1))) == 26
    assert exercises.max_score() == sum(item.points for item in ITEMS)
    assert [exercise_number(nb) for nb in NOTEBOOKS] == list(range(len(NOTEBOOKS)))
    for item in ITEMS:
        assert item.grade_id.startswith(f"ex{exercise_number(item.notebook)}_")
        assert set(item.answers) <= set(answer_ids(item.notebook))
        assert item.kind in KINDS, item.grade_id
        if item.kind == "gradient":
            assert item.spec["variable"].startswith("d") and len(item.spec["provided"]) == len(item.answers)
        if item.kind == "scalar":
            nodes = expression_graphs.GRAPHS[item.spec["graph"]](*[1.0] * len(expression_graphs.graph_inputs(item.spec["graph"])))
            assert item.spec["nodes"] and set(item.spec["nodes"]) <= set(nodes), item.grade_id
            assert len(item.spec["provided"]) == len(item.answers) and set(item.spec["provided"][0]) <= set(nodes)


def test_scalar_items_cover_every_step_and_node():
    """Notebook 00: the neuron is graded node by node, in the order of the backward pass."""
    neuron_items = [item for item in ITEMS if item.kind == "scalar" and item.spec["graph"] == "neuron"]
    assert [node for item in neuron_items for node in item.spec["nodes"]] == \
        ["o", "n", "x1w1x2w2", "b", "x1w1", "x2w2", "x1", "w1", "x2", "w2"]
    for item in neuron_items:  # the nodes before this step are fed in, never the item's own
        assert not set(item.spec["nodes"]) & set(item.spec["provided"][0])


def test_answer_ids_are_unique_across_notebooks():
    all_ids = [a for nb in NOTEBOOKS for a in answer_ids(nb)]
    assert len(all_ids) == len(set(all_ids))


# ------------------------------------------------------------- each master

@by_notebook
def test_answer_cells_exist_once_with_solution_metadata(notebook, master_of):
    nb = master_of(notebook)
    for answer_id in answer_ids(notebook):
        cells = [c for c in nb.cells if nbgrader(c).get("grade_id") == answer_id]
        assert len(cells) == 1, f"{answer_id}: {len(cells)} cells"
        cell = cells[0]
        meta = nbgrader(cell)
        assert cell.cell_type == "code", answer_id
        assert meta["solution"] is True and meta["grade"] is False, answer_id
        assert meta.get("locked", False) is False, answer_id
        first_line = cell.source.splitlines()[0]
        assert first_line == f"#| answer: {answer_id}", f"{answer_id}: first line is {first_line!r}"
        directives = ANSWER_DIRECTIVE.findall(cell.source)
        assert directives == [answer_id], answer_id
        # nbgrader strips the solution between the markers; the directive stays above them
        assert cell.source.count("### BEGIN SOLUTION") == 1 and cell.source.count("### END SOLUTION") == 1
        assert cell.source.index("### BEGIN SOLUTION") < cell.source.index("### END SOLUTION")


@by_notebook
def test_answer_cells_come_in_the_registry_order(notebook, master_of):
    nb = master_of(notebook)
    order = [nbgrader(c)["grade_id"] for c in nb.cells if nbgrader(c).get("solution")]
    assert order == list(answer_ids(notebook))


@by_notebook
def test_graded_cells_exist_once_with_points(notebook, master_of):
    nb = master_of(notebook)
    for item in items_of(notebook):
        cells = [c for c in nb.cells if nbgrader(c).get("grade_id") == item.grade_id]
        assert len(cells) == 1, f"{item.grade_id}: {len(cells)} cells"
        cell = cells[0]
        meta = nbgrader(cell)
        assert cell.cell_type == "code"
        assert meta["grade"] is True and meta["locked"] is True and meta["solution"] is False, item.grade_id
        assert meta["points"] == item.points, item.grade_id


@by_notebook
def test_graded_cells_assert_visibly_and_call_their_own_hidden_check(notebook, master_of):
    nb = master_of(notebook)
    for item in items_of(notebook):
        source = cells_by_grade_id(nb)[item.grade_id].source
        visible, hidden = split_hidden(source)
        lines = [line for line in visible.splitlines() if line.strip()]
        assert lines and lines[-1].startswith("assert "), f"{item.grade_id}: last visible line {lines[-1:]}"
        calls = re.findall(r"hidden_check\(\s*[\"']([A-Za-z0-9_]+)[\"']\s*\)", hidden)
        assert calls == [item.grade_id], f"{item.grade_id}: hidden region calls {calls}"


@by_notebook
def test_graded_cells_follow_their_answer_cells(notebook, master_of):
    nb = master_of(notebook)
    position = {nbgrader(c).get("grade_id"): i for i, c in enumerate(nb.cells)}
    for item in items_of(notebook):
        assert all(position[a] < position[item.grade_id] for a in item.answers), item.grade_id


@by_notebook
def test_every_nbgrader_cell_of_a_master_is_registered(notebook, master_of):
    nb = master_of(notebook)
    graded = {item.grade_id for item in items_of(notebook)}
    answers = set(answer_ids(notebook))
    for cell in nb.cells:
        meta = nbgrader(cell)
        if meta.get("grade"):
            assert meta["grade_id"] in graded, f"graded cell {meta['grade_id']} is not in ITEMS"
        if meta.get("solution"):
            assert meta["grade_id"] in answers, f"answer cell {meta['grade_id']} is not registered"
        assert not meta.get("task", False), meta.get("grade_id")
        # a hidden region belongs in a graded cell only
        if HIDDEN_BEGIN in cell.source:
            assert meta.get("grade"), meta.get("grade_id")
        # an answer directive belongs in an answer cell only
        if cell.cell_type == "code" and ANSWER_DIRECTIVE.search(cell.source):
            assert meta.get("solution"), meta.get("grade_id")


@by_notebook
def test_nbgrader_metadata_is_complete(notebook, master_of):
    nb = master_of(notebook)
    for index, cell in enumerate(nb.cells):
        meta = nbgrader(cell)
        if not meta:
            continue  # a cell nbgrader leaves alone (e.g. scratch space)
        assert meta.get("grade_id"), f"cell {index} has nbgrader metadata but no grade_id"
        assert meta.get("schema_version") == 3, meta["grade_id"]
        assert {"grade", "solution", "locked"} <= set(meta), meta["grade_id"]
        if meta["grade"]:
            assert isinstance(meta.get("points"), int), meta["grade_id"]


@by_notebook
def test_master_is_clean(notebook, master_of):
    nb = master_of(notebook)
    assert set(nb.metadata) <= NOTEBOOK_METADATA, f"notebook metadata {sorted(nb.metadata)}"
    for index, cell in enumerate(nb.cells):
        where = f"cell {index} ({nbgrader(cell).get('grade_id')})"
        extra = set(cell.metadata) - CELL_METADATA
        assert not extra, f"{where}: editor metadata {sorted(extra)}"
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{where} has outputs"
            assert cell.execution_count is None, f"{where} has an execution count"


def test_grade_ids_are_unique_across_all_masters(master_notebooks):
    counts = Counter(nbgrader(cell)["grade_id"] for nb in master_notebooks.values() for cell in nb.cells
                     if "grade_id" in nbgrader(cell))
    assert [gid for gid, count in counts.items() if count > 1] == []


def test_each_id_lives_in_its_own_notebook_only(master_notebooks):
    """Every registered answer and grade id exists in exactly one master: the one the registry names."""
    home = {item.grade_id: item.notebook for item in ITEMS}
    home.update({a: nb for nb in NOTEBOOKS for a in answer_ids(nb)})
    for name, nb in master_notebooks.items():
        for grade_id in cells_by_grade_id(nb):
            if grade_id in home:
                assert home[grade_id] == name, f"{grade_id} is in {name}, registered in {home[grade_id]}"


def test_only_registered_notebooks_are_masters(master_notebooks):
    assert set(master_notebooks) <= set(NOTEBOOKS)
    assert notebook(1) in master_notebooks
