"""The red team: the grader attacked as a clever, patient student would attack it.

Part 1 grades one batch through the whole pipeline: every attack is a
student of its own, graded beside an honest neighbour (the full solution),
and the tests check the attack's score of 0 or its flag, the neighbour's full
marks, OUT free of planted files and student scripts, the gradebook intact,
the batch within its budgets, and no process left behind.

Part 2 runs answer code through the judge's runner with the source scan left
out on purpose: what the sandbox and the judge's design hold on their own
(the answer is never in the child; the file system, the user, the network,
processes, memory, system calls), each defence tested by an attack that
reports what it found through its error message.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch

from autograder.exercises import ASSIGNMENT, ITEMS, ITEMS_BY_ID, items_of, max_score
from autograder.grading import report
from autograder.grading.grade import STUDENT_IDS_CSV, grade
from autograder.grading.results import GradingSettings
from autograder.grading.submissions import safe_name
from autograder.judge import runner, sandbox
from autograder.judge.forkserver import ForkServer
from autograder.judge.scan import scan_answers
from autograder.kinds.cases import HIDDEN_CASES, reference_gradients
from tests import grading_cases
from tests.grading_cases import BLANK, add_cell, ex, save, setup_cell, submission

pytestmark = [pytest.mark.grading, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
SETTINGS = GradingSettings().but(jobs=2, item_timeout=5.0, student_timeout=60.0)
EX1 = grading_cases.EX1


def answer(answer_id: str, code: str) -> str:
    return f"#| answer: {answer_id}\n{code}"


# ------------------------------------------------------------------ part 1: a graded batch

# Ways to reach autograd's answer or the interpreter that the scan must flag, one per answer cell of Exercise 1.
SNEAKY = {
    EX1["loss"]: ("def g():\n    yield\nframe = g().gi_frame.f_back\ndlogprobs = frame.f_locals['correct']\n",
                  "looks at frames"),
    EX1["logprobs"]: ("import gc\ndprobs = [o for o in gc.get_objects() if type(o).__name__ == 'Tensor'][0]\n",
                      "imports gc"),
    EX1["probs"]: ("from torch import sys\ndcounts_sum_inv = sys.modules['torch'].zeros(1)\n", "imports sys (through torch)"),
    EX1["counts_sum_inv"]: ("x = torch.nn.functional.torch.os\ndcounts_sum = counts_sum\n", "reaches the module os"),
    EX1["counts"]: ("import torch.autograd.forward_ad as fwAD\ndnorm_logits = counts\n", "imports torch.autograd.forward_ad"),
    EX1["h"]: ("x = torch.ones(3, requires_grad=True)\ndhpreact = (1.0 - h**2) * dh\n", "requires_grad"),
    EX1["bnvar_inv"]: ("dbnvar = torch.Tensor.mro()[1].__subclasses__()\n", "frames or code objects (mro)"),
    EX1["bnvar"]: ("dbndiff2 = (lambda: 0).__globals__['__builtins__']\n", "reaches into the interpreter"),
    EX1["bndiff2"]: ("kw = {'requires_grad': True}\ndbndiff = 2 * bndiff * dbndiff2\n", "requires_grad"),
    EX1["emb"]: ("dC = torch.func.grad(lambda c: c.sum())(C)\n", "torch.func"),
}


def _sneaky(folder: Path) -> None:
    save(folder, submission({a: code for a, (code, _) in SNEAKY.items()}))


# Notebook 06: PyTorch's own backward passes of the layers the notebook derives, through autograd or called as
# kernels, one per answer cell.
KERNEL = "calls one of PyTorch's own backward kernels"
BORROWED_BACKWARD = {
    "ex6_ln_fused": ("x = x_ln.clone().requires_grad_()\nF.layer_norm(x, (C,), gain_ln, None, 1e-5).backward(dout_ln)\n"
                     "dx_ln = x.grad\n", "calls backward()"),
    "ex6_attention_head": ("q, k, v = (t.clone().requires_grad_() for t in (q_h, k_h, v_h))\n"
                           "F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(dy_h)\n"
                           "dq_h, dk_h, dv_h = q.grad, k.grad, v.grad\n", "calls backward()"),
    "ex6_line_lnf_mean": ("dx2 = torch.ops.aten.native_layer_norm_backward(dlnf_out, x2, (C,), lnf_mean, lnf_rstd, "
                          "lnf_gain, lnf_bias, [True, False, False])[0]\n", KERNEL),
    "ex6_line_gelu_in": ("dh_pre = torch.ops.aten.gelu_backward(dh, h_pre, approximate='tanh')\n", KERNEL),
    "ex6_line_att_max": ("dmasked = torch._softmax_backward_data(datt, att, -1, att.dtype)\n", KERNEL),
}


def _borrowed_backward(folder: Path) -> None:
    save(folder, submission({a: code for a, (code, _) in BORROWED_BACKWARD.items()}))


def _links(out: Path, honest: Path) -> callable:
    """Every notebook but 00 is something other than a file of the student's own."""
    def write(folder: Path) -> None:
        notebooks = submission()
        nb = notebooks[ex(0)]  # readable, and its own markdown mentions the hidden-test markers
        nb.cells.insert(1, nbformat.v4.new_markdown_cell("Notes: ### BEGIN HIDDEN TESTS and ### END HIDDEN TESTS"))
        save(folder, {ex(0): nb})
        (folder / f"{ex(1)}.ipynb").symlink_to(REPO / "solutions" / f"{ex(1)}.ipynb")  # the master
        (folder / f"{ex(2)}.ipynb").symlink_to(out / "gradebook.db")  # the class gradebook
        (folder / f"{ex(3)}.ipynb").symlink_to(honest / f"{ex(3)}.ipynb")  # the neighbour's work
        os.mkfifo(folder / f"{ex(4)}.ipynb")  # a reader that opens it blocks forever
        with open(folder / f"{ex(5)}.ipynb", "wb") as huge:  # 500 MB, sparse
            huge.truncate(500 * 2**20)
        for index in range(20):  # twenty 48 MB notebooks, sparse
            with open(folder / f"copy{index:02d}.ipynb", "wb") as big:
                big.truncate(48 * 2**20)
        (folder / "planted").symlink_to(out)  # a link to OUT itself
    return write


FLOOD_CELL_OUTPUT = 15 * 2**20  # a saved output of 15 MB under one test cell


def _flood(folder: Path) -> None:
    """Answers that print gigabytes, and a notebook that saved 15 MB of output under a test cell."""
    solutions = grading_cases.master_solutions()
    notebooks = submission({EX1["loss"]: "for _ in range(32):\n    print('x' * (64 << 20))\n" + solutions[EX1["loss"]]})
    two = notebooks[ex(2)]
    test = two.cells[grading_cases.position(two, grading_cases.graded_cell_of(grading_cases.EX2))]
    test.outputs = [nbformat.v4.new_output("stream", name="stdout", text="y" * FLOOD_CELL_OUTPUT)]
    save(folder, notebooks)


def _memory(folder: Path) -> None:
    solutions = grading_cases.master_solutions()
    save(folder, submission({EX1["loss"]: "big = torch.empty(2**34)\n" + solutions[EX1["loss"]],
                             EX1["logprobs"]: "big = [0] * 2**33\n" + solutions[EX1["logprobs"]]}))


SCRIPT = "<script>document.title='pwned'</script>"
EVENT = '<img src="x" onerror="alert(1)">'


def _html(folder: Path) -> None:
    """Scripts and event handlers in a markdown cell, a saved output, a raw cell and an answer."""
    notebooks = submission({EX1["loss"]: f"# {SCRIPT}\n" + grading_cases.master_solutions()[EX1["loss"]]})
    one = notebooks[ex(1)]
    add_cell(one, "x = 1", after=setup_cell(ex(1)))
    one.cells.insert(1, nbformat.v4.new_markdown_cell(f"My notes {SCRIPT} {EVENT} [x](javascript:alert(1))"))
    one.cells.insert(2, nbformat.v4.new_raw_cell(SCRIPT, metadata={"format": "text/html"}))
    test = one.cells[grading_cases.position(one, grading_cases.graded_cell_of(EX1["loss"]))]
    test.outputs = [nbformat.v4.new_output("display_data", data={"text/html": SCRIPT, "text/plain": EVENT})]
    save(folder, notebooks)


def _many_cells(folder: Path) -> None:
    notebooks = submission()
    notebooks[ex(1)].cells += [nbformat.v4.new_code_cell("") for _ in range(100_000)]
    save(folder, notebooks)


def _hangs_everywhere(folder: Path) -> None:
    """Every answer cell of Exercise 1 never ends: the student's budget, not each hang, bounds the cost."""
    save(folder, submission({a: "while True:\n    pass\n" for a in grading_cases.answer_ids(ex(1))}))


FORMULA_ID = "=SUM(1,2)+cmd|'calc'!A0"  # a folder name may hold anything but a slash
SCRIPT_ID = "<img src=x onerror=alert(1)>"
LONG_ID = "a" * 253  # 'checkpoints/<id>.json' would be longer than any file name may be


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    root = tmp_path_factory.mktemp("red")
    submissions, out = root / "submissions", root / "out"
    honest = submissions / "honest"
    save(honest, submission())
    save(submissions / "honest_too", submission())
    writers = {"sneaky": _sneaky, "borrowed_backward": _borrowed_backward, "links": _links(out, honest), "flood": _flood, "memory": _memory, "html": _html,
               "many_cells": _many_cells, "hangs": _hangs_everywhere,
               FORMULA_ID: lambda folder: save(folder, submission(default=BLANK)),
               SCRIPT_ID: lambda folder: save(folder, submission(default=BLANK)),
               LONG_ID: lambda folder: save(folder, submission())}
    for student, write in writers.items():
        (submissions / student).mkdir(parents=True)
        write(submissions / student)
    honest_bytes = {p.name: p.read_bytes() for p in honest.iterdir()}
    before = _processes()
    started = time.monotonic()
    results = grade(submissions, out, SETTINGS, progress=lambda line: None)
    return {"out": out, "results": {r.student: r for r in results}, "seconds": time.monotonic() - started,
            "honest": honest, "honest_bytes": honest_bytes, "processes": before, "submissions": submissions}


def _processes() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


def test_every_student_has_a_result_and_the_honest_ones_full_marks(attacked):
    results = attacked["results"]
    assert sorted(results) == sorted(p.name for p in attacked["submissions"].iterdir())
    assert results["honest"].total() == results["honest_too"].total() == results[LONG_ID].total() == max_score()


@pytest.mark.parametrize("answer_id", list(SNEAKY))
def test_each_way_behind_the_code_is_flagged_and_scores_zero(attacked, answer_id):
    result = attacked["results"]["sneaky"]
    _, reason = SNEAKY[answer_id]
    for item in [i for i in ITEMS if answer_id in i.answers]:
        assert result.score(item.grade_id) == 0, item.grade_id
        assert any(reason in flag for flag in result.verdicts[item.grade_id].flags), result.verdicts[item.grade_id]


@pytest.mark.parametrize("answer_id", list(BORROWED_BACKWARD))
def test_pytorchs_own_backward_passes_are_flagged_and_score_zero(attacked, answer_id):
    """F.layer_norm's and F.scaled_dot_product_attention's backward through autograd, and the aten kernels."""
    result = attacked["results"]["borrowed_backward"]
    _, reason = BORROWED_BACKWARD[answer_id]
    items = [i for i in ITEMS if answer_id in i.answers]
    assert items
    for item in items:
        assert result.score(item.grade_id) == 0, item.grade_id
        assert any(reason in flag for flag in result.verdicts[item.grade_id].flags), result.verdicts[item.grade_id]
    untouched = [i for i in ITEMS if not set(i.answers) & set(BORROWED_BACKWARD)]
    assert all(result.score(i.grade_id) == i.points for i in untouched)


def test_links_pipes_and_huge_files_are_never_followed_or_read(attacked):
    out, result = attacked["out"], attacked["results"]["links"]
    assert result.total() == sum(i.points for i in items_of(ex(0)))  # notebook 00 is theirs; nothing else is
    notes = " ".join(result.notes + [n for notes in result.notebook_notes.values() for n in notes])
    for notebook in (ex(1), ex(2), ex(3)):
        assert f"{notebook}.ipynb is a link" in notes
    assert f"{ex(4)}.ipynb" in notes and f"{ex(5)}.ipynb" in notes  # the pipe and the huge file: not read, said so
    # the marker text in a markdown cell of notebook 00 does not cost it its graded copy or its feedback page
    folder = out / "autograded" / "links" / ASSIGNMENT
    assert sorted(p.name for p in folder.iterdir()) == [f"{ex(0)}.ipynb"]
    assert (out / "feedback" / "links" / ASSIGNMENT / f"{ex(0)}.html").exists()


def test_out_holds_nothing_planted_and_nothing_large(attacked):
    out = attacked["out"]
    files = [p for p in out.rglob("*")]
    assert not [p for p in files if p.is_symlink()], "a link in OUT"
    assert not [p for p in files if not (p.is_file() or p.is_dir())], "a pipe, socket or device in OUT"
    sizes = {p: p.stat().st_size for p in files if p.is_file()}
    assert max(sizes.values()) < 4 * 2**20, max(sizes, key=sizes.get)
    assert sum(sizes.values()) < 64 * 2**20
    names = {p.name for p in files}
    assert not names & {"planted", "gradebook.db.ipynb"} and not any(n.startswith("copy") for n in names)


def test_the_gradebook_and_the_neighbours_work_are_intact(attacked):
    out = attacked["out"]
    with sqlite3.connect(f"file:{out / 'gradebook.db'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM student").fetchone()[0] == len(attacked["results"])
    assert {p.name: p.read_bytes() for p in attacked["honest"].iterdir()} == attacked["honest_bytes"]
    rows = {r["student_id"]: r for r in grading_cases_rows(out)}
    assert float(rows["honest"]["total"]) == max_score()


def grading_cases_rows(out: Path) -> list[dict]:
    import csv

    with open(out / report.GRADES_CSV, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_gigabytes_of_output_cost_nothing_and_saved_output_is_capped(attacked):
    out, result = attacked["out"], attacked["results"]["flood"]
    flooding = {item.grade_id for item in ITEMS if EX1["loss"] in item.answers}
    # printing is allowed and goes nowhere; at worst the flood costs its own item its time limit
    assert all(result.score(item.grade_id) == item.points for item in ITEMS if item.grade_id not in flooding)
    for grade_id in flooding:
        assert result.verdicts[grade_id].passed or "took longer than" in result.verdicts[grade_id].message
    graded = (out / "autograded" / "flood" / ASSIGNMENT / f"{ex(2)}.ipynb").read_text()
    page = (out / "feedback" / "flood" / ASSIGNMENT / f"{ex(2)}.html").read_text()
    assert len(graded) < 2**20 and len(page) < 2**20 and "more characters not shown" in page


def test_a_memory_bomb_costs_its_own_items_only(attacked):
    result = attacked["results"]["memory"]
    lost = {item.grade_id for item in ITEMS if result.score(item.grade_id) < item.points}
    assert lost == {"ex1_dlogprobs", "ex1_dprobs"}
    assert "ran out of memory" in result.verdicts["ex1_dlogprobs"].message


def test_no_student_script_survives_in_any_page(attacked):
    out = attacked["out"]
    pages = list(out.rglob("*.html"))
    assert len(pages) > 20
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text.lower(), page
        assert not re.search(r"<[^>]*\son\w+\s*=", text, re.IGNORECASE), page  # an event handler in a tag
        assert not re.search(r"(href|src)\s*=\s*[\"']?\s*javascript:", text, re.IGNORECASE), page
        assert "Content-Security-Policy" in text, page


def test_formgrader_renders_the_graded_notebook_inertly(attacked):
    """nbconvert's HTML, what formgrader shows an instructor, of a graded notebook with the student's HTML in it."""
    from nbconvert import HTMLExporter

    path = attacked["out"] / "autograded" / "html" / ASSIGNMENT / f"{ex(1)}.ipynb"
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(path, as_version=4))
    assert SCRIPT not in body, body[body.index(SCRIPT) - 2000: body.index(SCRIPT) + 200]
    assert EVENT not in body
    assert not re.search(r"(href|src)\s*=\s*[\"']?\s*javascript:", body, re.IGNORECASE)
    assert "&lt;script&gt;document.title" in body  # shown, as text


def test_ids_are_safe_in_every_csv_and_mapped_when_no_file_system_takes_them(attacked):
    out = attacked["out"]
    assert "'" + FORMULA_ID in (out / report.GRADES_CSV).read_text(encoding="utf-8")
    for path in out.glob("*.csv"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r'(^|,)"?[=+@]', text, re.M), path.name  # a formula only ever as quoted text: '=SUM
    export = out / "canvas.csv"
    subprocess.run([sys.executable, "-m", "autograder", "export", str(out), "--format", "canvas", "--output",
                    str(export)], check=True, cwd=REPO, capture_output=True)
    assert not re.search(r'(^|,)"?[=+@]', export.read_text(encoding="utf-8"), re.M)
    mapping = (out / STUDENT_IDS_CSV).read_text(encoding="utf-8")
    assert safe_name(LONG_ID) in mapping and safe_name(LONG_ID) != LONG_ID
    assert (out / "feedback" / safe_name(LONG_ID) / "index.html").exists()
    assert safe_name(LONG_ID) in (out / "report.html").read_text(encoding="utf-8")


def test_a_notebook_of_100000_cells_is_refused_quickly(attacked):
    result = attacked["results"]["many_cells"]
    assert "100001 cells" in " ".join(result.notebook_notes[ex(1)]) or "cells" in result.notebook_notes[ex(1)][0]
    assert result.phases["sanitize"] < 5 and result.total() == max_score() - sum(i.points for i in items_of(ex(1)))


def test_the_student_budget_holds(attacked):
    result = attacked["results"]["hangs"]
    assert result.seconds <= SETTINGS.worker.student_timeout + 15
    assert any("time budget" in v.message for v in result.verdicts.values())
    assert all(result.score(item.grade_id) == item.points for item in items_of(ex(0)))  # judged before the hangs


def test_no_process_is_left_behind(attacked):
    time.sleep(1)
    left = []
    for pid in _processes() - attacked["processes"]:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(REPO) in command and ("autograder" in command or "distributed" in command):  # this checkout's
            left.append(command[:120])
    assert left == []


# ------------------------------------------------------------------ part 2: the judge, its scan left out

@pytest.fixture(scope="module")
def fork_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forkserver")
    from autograder.grading.worker import grading_env

    server = ForkServer(folder / "fork.sock", {**grading_env(), "HOME": str(folder)}, folder / "log")
    yield str(server.socket_path)
    server.close()


def run_unscanned(fork_server, grade_id: str, code: str, earlier: dict[str, str] | None = None, limits=None,
                  children_class=runner._Children) -> dict[str, tuple[object, str | None]]:
    """Run ``code`` as the (last) answer cell of ``grade_id`` on hidden case 0, with no scan; outcomes by grade id.

    ``earlier``: items judged first, in the same run: grade id -> code added to the master's answer.
    """
    solutions = grading_cases.master_solutions()
    earlier = earlier or {}
    item = ITEMS_BY_ID[grade_id]
    answers = {}
    for gid, extra in earlier.items():
        answers.update({a: solutions[a] + extra for a in ITEMS_BY_ID[gid].answers})
    answers.update({a: solutions[a] for a in item.answers})
    answers[item.answers[-1]] = answer(item.answers[-1], code)
    trials = [runner.Trial(ITEMS_BY_ID[gid], 0) for gid in (*earlier, grade_id)]
    children = children_class(sandbox.student_policy(), limits or sandbox.Limits(), fork_server)
    outcomes = runner._run_trials(trials, answers, children, item_seconds=20.0, deadline=float("inf"))
    return {gid: outcomes[(gid, 0)] for gid in (*earlier, grade_id)}


HARVEST = """
import gc, sys
found, seen = [], set()
def take(value):  # every tensor of the answer's shape within reach
    if isinstance(value, torch.Tensor) and tuple(value.shape) == tuple(logits.shape) and id(value) not in seen:
        seen.add(id(value)); found.append(value)
frame = sys._getframe()
while frame is not None:
    for scope in (frame.f_locals, frame.f_globals):
        for value in list(scope.values()):
            take(value)
            if isinstance(value, (list, tuple, dict)):
                for inner in (value.values() if isinstance(value, dict) else value):
                    take(inner)
    frame = frame.f_back
for obj in gc.get_objects():
    take(obj)
    if isinstance(obj, dict):
        for value in list(obj.values()):
            take(value)
for module in list(sys.modules.values()):
    for value in list(getattr(module, '__dict__', {}).values()):
        take(value)
dlogits = found
"""


class _OneChild(runner._Children):
    """What the judge would be without its rule: one child for every trial, whatever it was handed."""

    def run(self, trial, answers, item_seconds, deadline):
        handed = self.handed
        self.handed = set()
        try:
            return super().run(trial, answers, item_seconds, deadline)
        finally:
            self.handed |= handed


def _matches(candidates, reference) -> bool:
    return any(isinstance(c, torch.Tensor) and c.shape == reference.shape and torch.allclose(c.float(), reference, atol=1e-7)
               for c in candidates or [])


def test_the_answer_is_nowhere_in_the_childs_reach(fork_server):
    """Exercise 2's answer, dlogits, is handed to Exercise 1's trials as an input: never in the same child.

    The student's own Exercise 1 cell keeps what it is handed where Exercise 2's cell will look.
    """
    reference = reference_gradients(HIDDEN_CASES[0])["dlogits"]
    earlier = {"ex1_dlogprobs": "", "ex1_dh": "torch.nn.stash = dlogits.clone()\n"}  # ex1_dh's cell gets dlogits
    judged = run_unscanned(fork_server, "ex2_dlogits", HARVEST, earlier)
    candidates, error = judged["ex2_dlogits"]
    assert error is None and len(candidates) >= 3  # the harvest ran: logits, norm_logits, counts, probs, ...
    assert not _matches(candidates, reference)
    # the same attack in a judge without the rule finds it: the test can fail
    leaky = run_unscanned(fork_server, "ex2_dlogits", HARVEST, earlier, children_class=_OneChild)
    assert _matches(leaky["ex2_dlogits"][0], reference)


def _report(fork_server, code: str, limits=None) -> str:
    """What ``code`` raised in the judge's child (its findings travel back in the error message)."""
    value, error = run_unscanned(fork_server, "ex1_dlogprobs", code, limits=limits)["ex1_dlogprobs"]
    assert error is not None, value
    return error


needs_sandbox = pytest.mark.skipif(not sandbox.available(), reason="Linux namespaces are not available here")


@needs_sandbox
def test_the_child_sees_an_allow_list_of_the_host(fork_server):
    found = _report(fork_server, f"""
import os
raise RuntimeError(repr((sorted(os.listdir('/')), os.path.exists({str(REPO / 'solutions')!r}),
                         os.path.exists('/etc/shadow'), os.path.exists({str(Path.home())!r} + '/.bashrc'),
                         sorted(os.listdir({str(REPO)!r})))))
""")
    listing, solutions, shadow, home_file, repo = eval(found.split("RuntimeError: ", 1)[1])
    assert set(listing) <= {"dev", "etc", "lib", "lib32", "lib64", "proc", "tmp", "usr", "work", "root", "opt", "home",
                            "srv", "bin", "sbin"} | {Path(sys.prefix).parts[1], Path(sys.base_prefix).parts[1]}
    assert not solutions and not shadow and not home_file
    assert "solutions" not in repo and "tests" not in repo and "build" not in repo


@needs_sandbox
def test_the_child_is_an_unprivileged_user_that_can_write_nothing_but_its_tmp(fork_server):
    found = _report(fork_server, f"""
import os
results = [os.getuid() == 0 and os.geteuid() == 0]
for path in ({str(REPO / 'autograder' / 'planted')!r}, '/etc/planted', '/planted'):
    try:
        open(path, 'w').write('x'); results.append('wrote ' + path)
    except OSError as err:
        results.append(type(err).__name__)
try:
    with open('/tmp/fill', 'wb') as file:
        for _ in range(1000):
            file.write(b'x' * 2**20)
except OSError as err:
    results.append('tmp ' + err.strerror)
raise RuntimeError(repr(results))
""")
    results = eval(found.split("RuntimeError: ", 1)[1])
    if os.getuid() == 0:
        assert results[0] is False  # root grader, unprivileged child
    assert not [r for r in results[1:] if str(r).startswith("wrote")]
    assert results[-1] in ("tmp No space left on device", "tmp File too large")


@needs_sandbox
def test_the_child_has_no_network(fork_server):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        found = _report(fork_server, f"""
import socket
try:
    socket.create_connection(('127.0.0.1', {port}), timeout=3)
    raise RuntimeError('connected')
except OSError as err:
    raise RuntimeError('refused ' + type(err).__name__)
""")
    finally:
        listener.close()
    assert "refused" in found


@needs_sandbox
def test_processes_and_memory_are_bounded(fork_server):
    found = _report(fork_server, """
import os, mmap
results = []
count = 0
try:
    while count < 500:
        if os.fork() == 0:
            import time; time.sleep(30); os._exit(0)
        count += 1
except OSError:
    pass
results.append(count)
for make in (lambda: torch.empty(2**33), lambda: mmap.mmap(-1, 6 * 2**30, flags=mmap.MAP_SHARED)):
    try:
        make(); results.append('allocated')
    except (MemoryError, OSError, RuntimeError) as err:
        results.append('refused')
raise RuntimeError(repr(results))
""", limits=sandbox.Limits(memory_bytes=2 * 2**30))
    count, tensor, shared = eval(found.split("RuntimeError: ", 1)[1])
    assert count < sandbox.Limits().processes + 1 if os.getuid() == 0 else count <= 500
    assert (tensor, shared) == ("refused", "refused")


@needs_sandbox
def test_system_calls_a_gradient_has_no_use_for_are_refused(fork_server):
    found = _report(fork_server, """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
results = []
for call in (lambda: libc.unshare(0x10000000), lambda: libc.ptrace(16, 1, 0, 0),
             lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)):
    results.append((call(), ctypes.get_errno()))
raise RuntimeError(repr(results))
""")
    assert eval(found.split("RuntimeError: ", 1)[1]) == [(-1, 1)] * 3  # EPERM, each


def test_a_forged_line_in_the_results_channel_is_not_taken_for_a_reply(fork_server):
    code = """
import os
for fd in range(3, 20):
    try:
        os.write(fd, b'{"value": {"kind": "none"}}\\n')
    except OSError:
        pass
dlogprobs = torch.zeros_like(logprobs)
"""
    value, error = run_unscanned(fork_server, "ex1_dlogprobs", code)["ex1_dlogprobs"]
    assert value is None and "results channel" in error


def test_the_scan_flags_every_way_around_the_derivation():
    for code, reason in [(code, reason) for code, reason in SNEAKY.values()] + [
            ("f = getattr(torch, 'auto' + 'grad')", "getattr"), ("import importlib", "imports importlib"),
            ("x = eval('1')", "eval"), ("import ctypes", "imports ctypes"), ("x = torch.ops.aten", "torch.ops"),
            ("x = vars(torch)", "vars"), ("x = torch.nn.Parameter(h)", "nn.Parameter"),
            ("x = torch._C", "private attribute"), ("from numpy import os", "uses os"),
            ("x = F.torch.sys.modules", "reaches the module sys"),
            ("x = torch.batch_norm_backward_elemt", "backward kernels (batch_norm_backward_elemt)"),
            ("x = torch.ops.aten.native_layer_norm_backward", "backward kernels (native_layer_norm_backward)"),
            ("from torch import _softmax_backward_data", "backward kernels (_softmax_backward_data)")]:
        flags = scan_answers([answer("ex1_line_loss", code)])
        assert any(reason in flag for flag in flags), (code, flags)
