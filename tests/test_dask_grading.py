"""Grading on Dask: the embedded cluster, a real multi-process cluster, faults, resuming, limits.

Three tiny students (one or two fast notebooks each) keep every batch short.
The embedded run is the reference: the real cluster, the run with a worker
killed mid-batch and the interrupted-then-resumed run must give the same
grades, student by student. Every process a test starts is stopped by it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from autograder.engine.cluster import cluster_client
from autograder.engine.errors import GradingError
from autograder.engine.versions import version_conflicts
from autograder.exercises import ITEMS_BY_ID, items_of, notebook
from autograder.grading import report
from autograder.grading.grade import grade
from autograder.grading.results import GradingSettings
from autograder.grading.samples import filled, master_solutions
from autograder.judge import runner, sandbox
from tests.dask_tasks import POISON, is_daemon, poison_or_grade

pytestmark = [pytest.mark.slow, pytest.mark.grading]

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SETTINGS = GradingSettings().but(jobs=2, item_timeout=10.0, student_timeout=300.0)
EX0, EX2 = notebook(0), notebook(2)


def _solution(answer: str, code: str) -> str:
    return code


def _blank(answer: str, code: str) -> None:
    return None


def _copied(answer: str, code: str) -> str:
    return "o.backward()\n"  # autograd instead of the derivation: flagged, 0 points


HANGING = "ex0_grad_o"


def _hangs(answer: str, code: str) -> str:
    """Right, but the first answer cell never ends: the student takes the item limit (10 s) to grade."""
    return code + "while True:\n    pass\n" if answer == HANGING else code


TINY = {  # student -> {notebook: how its answer cells are filled}
    "alice": {EX0: _solution, EX2: _solution},
    "bob": {EX0: _copied},
    "carol": {EX0: _blank},
    "dave": {EX0: _hangs},  # slow to grade: a worker is busy with him long enough to be killed mid-student
}


def write_tiny(folder: Path, students=tuple(TINY)) -> Path:
    for student in students:
        (folder / student).mkdir(parents=True)
        for name, edit in TINY[student].items():
            nbformat.write(filled(name, edit), folder / student / f"{name}.ipynb")
    return folder


def rows(out: Path) -> dict[str, dict]:
    with open(out / report.GRADES_CSV, newline="", encoding="utf-8") as file:
        found = list(csv.DictReader(file))
    assert len({row["student_id"] for row in found}) == len(found), "a student appears twice"
    return {row["student_id"]: row for row in found}


def cli(submissions: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "autograder", "grade", str(submissions), "--out", str(out),
            "--item-timeout", str(SETTINGS.worker.item_timeout), "--student-timeout", str(SETTINGS.worker.student_timeout),
            *extra]


def progress_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("[")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_group(process: subprocess.Popen) -> None:
    """Kill a process we started in its own session, with everything in its process group."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny(tmp_path_factory.mktemp("tiny") / "submissions")


@pytest.fixture(scope="module")
def embedded(tiny, tmp_path_factory) -> dict[str, dict]:
    """The reference: the tiny batch on the embedded cluster (two worker processes)."""
    out = tmp_path_factory.mktemp("embedded") / "out"
    results = grade(tiny, out, SETTINGS, progress=lambda line: None)
    assert sorted(r.student for r in results) == sorted(TINY)
    graded = rows(out)
    ex0 = sum(item.points for item in items_of(EX0))
    ex2 = sum(item.points for item in items_of(EX2))
    assert float(graded["alice"]["total"]) == ex0 + ex2  # the sandbox and fork server work in the workers
    assert float(graded["bob"]["total"]) == 0 and float(graded["carol"]["total"]) == 0
    hung = sum(item.points for item in items_of(EX0) if HANGING in item.answers)
    assert float(graded["dave"]["total"]) == ex0 - hung
    return graded


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``dask scheduler`` and two ``dask worker`` processes from the venv, on 127.0.0.1, outside the checkout."""
    from distributed import Client

    home = tmp_path_factory.mktemp("cluster")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False",
           "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(SETTINGS.cluster.tries - 1), "OMP_NUM_THREADS": "1"}
    log = open(home / "cluster.log", "ab")
    started = [subprocess.Popen([str(VENV_BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                 "--no-dashboard"], cwd=home, env=env, stdout=log, stderr=log,
                                start_new_session=True)]
    try:
        for _ in range(2):
            started.append(subprocess.Popen(
                [str(VENV_BIN / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1", "--host",
                 "127.0.0.1", "--no-dashboard", "--memory-limit", "0"],
                cwd=home, env=env, stdout=log, stderr=log, start_new_session=True))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=180)
        yield address
    finally:
        for process in reversed(started):
            stop_group(process)
        log.close()


# ------------------------------------------------------------ the same grades

def test_the_embedded_workers_are_not_daemonic():
    """A daemonic worker could not start the sandboxes and fork server; the setting must reach the workers."""
    with cluster_client(replace(SETTINGS.cluster, jobs=1), progress=lambda line: None) as client:
        assert list(client.run(is_daemon).values()) == [False]


def test_a_real_cluster_grades_like_the_embedded_one(tiny, embedded, cluster, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(cli(tiny, out, "--scheduler", cluster), capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"grading on the Dask cluster at {cluster}" in run.stdout
    assert rows(out) == embedded


def test_the_scheduler_address_can_come_from_the_environment(tiny, embedded, cluster, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "DASK_SCHEDULER_ADDRESS": cluster}
    run = subprocess.run(cli(tiny, out) + ["--regrade"], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"at {cluster}" in run.stdout and rows(out) == embedded


def test_a_worker_killed_mid_student_costs_nothing(tiny, embedded, cluster, tmp_path):
    """SIGKILL a worker while it grades: that student is graded again elsewhere, and appears once."""
    from distributed import Client

    out = tmp_path / "out"
    driver = subprocess.Popen(cli(tiny, out, "--scheduler", cluster), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True)
    try:
        with Client(cluster, timeout=30) as client:
            victim = None
            deadline = time.monotonic() + 300
            while victim is None and time.monotonic() < deadline and driver.poll() is None:
                busy = [worker for worker, keys in client.processing().items() if keys]
                if busy:
                    time.sleep(2)  # well inside the student's grading
                    busy = [worker for worker, keys in client.processing().items() if keys]
                    if busy:
                        victim = busy[0]
                        pid = client.run(os.getpid, workers=[victim])[victim]
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.2)
            assert victim is not None, "no worker was ever busy"
        stdout, stderr = driver.communicate(timeout=600)
    finally:
        stop_group(driver)
    assert driver.returncode == 0, stderr[-3000:]
    assert len(progress_lines(stdout)) == len(TINY)
    assert rows(out) == embedded


# ------------------------------------------------------------------- faults

def test_a_poison_pill_fails_after_bounded_tries_and_the_others_are_graded(embedded, tmp_path):
    submissions = write_tiny(tmp_path / "submissions", ["carol"])
    (submissions / "mallory").mkdir()
    (submissions / "mallory" / POISON).write_text("kills its worker")
    out = tmp_path / "out"
    results = {r.student: r for r in grade(submissions, out, SETTINGS.but(jobs=1),
                                           progress=lambda line: None, task=poison_or_grade)}
    assert set(results) == {"carol", "mallory"}
    assert results["mallory"].failed
    graded = rows(out)
    assert graded["carol"] == embedded["carol"] and float(graded["mallory"]["total"]) == 0
    saved = json.loads((out / "feedback" / "mallory" / "report.json").read_text())
    assert any(f"{SETTINGS.cluster.tries} tries" in note and "stopped the grader's worker" in note for note in saved["notes"])


def test_an_interrupted_run_resumes_with_the_rest(embedded, tmp_path):
    """Ctrl-C after the first result keeps it; the same command grades the rest.

    One fast student and two slow ones (answers that hang until the item
    timeout): whichever is graded first, a slow one is still running when the
    interrupt comes, however loaded the machine.
    """
    submissions = write_tiny(tmp_path / "submissions", ["alice", "dave"])
    shutil.copytree(submissions / "dave", submissions / "erin")
    students = ["alice", "dave", "erin"]
    out = tmp_path / "out"
    first = subprocess.Popen(cli(submissions, out, "--jobs", "1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list((out / "checkpoints").glob("*.json")) and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()[1][-3000:]
            time.sleep(0.2)
        first.send_signal(signal.SIGINT)  # Ctrl-C
        _, stderr = first.communicate(timeout=120)
    finally:
        stop_group(first)
    assert first.returncode != 0 and "interrupted" in stderr, (first.returncode, stderr[-3000:])
    done = len(list((out / "checkpoints").glob("*.json")))
    assert 1 <= done < len(students)
    second = subprocess.run(cli(submissions, out, "--jobs", "1"), capture_output=True, text=True, timeout=600,
                            cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(progress_lines(second.stdout)) == len(students) - done
    assert f"{done} of {len(students)} students already have a result" in second.stdout
    graded = rows(out)
    assert sorted(graded) == students
    assert graded["alice"] == embedded["alice"] and graded["dave"] == embedded["dave"]
    assert graded["erin"] == {**embedded["dave"], "student_id": "erin"}


def test_an_unreachable_scheduler_fails_fast_naming_it_and_writes_nothing(tiny, tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "out"
    started = time.monotonic()
    with pytest.raises(GradingError, match=address):
        grade(tiny, out, SETTINGS.but(scheduler=address), progress=lambda line: None)
    assert time.monotonic() - started < 35
    assert not out.exists()


def test_version_conflicts_name_both_versions():
    mine = {"package": "1.0 (code aaa)", "torch": "2.13.0"}
    theirs = {"package": "1.0 (code aaa)", "torch": "2.12.1"}
    assert version_conflicts(mine, theirs, "worker w1") == ["worker w1 has torch 2.12.1, the grader has 2.13.0"]
    assert version_conflicts(mine, dict(mine), "worker w1") == []


# ------------------------------------------------------------------- limits

def _children(limits: sandbox.Limits | None = None) -> runner._Children:
    return runner._Children(sandbox.student_policy(), limits or sandbox.Limits(), None)


def test_a_memory_bomb_stops_at_the_limit_and_costs_only_its_item():
    bomb = ITEMS_BY_ID["ex1_dprobs"], "buffers = []\nwhile True:\n    buffers.append(bytearray(200_000_000))\n"
    right = ITEMS_BY_ID["ex1_dlogprobs"], master_solutions()["ex1_line_loss"]
    answers = {item.answers[0]: code for item, code in (bomb, right)}
    trials = [runner.Trial(bomb[0], 0), runner.Trial(right[0], 0)]
    outcomes = runner._run_trials(trials, answers, _children(sandbox.Limits(memory_bytes=2**30)), item_seconds=30.0,
                                  deadline=float("inf"))
    assert outcomes[("ex1_dprobs", 0)] == (None, "ran out of memory (limit 1 GB)")
    value, error = outcomes[("ex1_dlogprobs", 0)]
    assert error is None and tuple(value.shape) == (32, 27)  # torch works under the same limit


def test_items_not_judged_within_the_budget_score_zero_with_the_reason():
    hang = ITEMS_BY_ID["ex1_dprobs"], "while True:\n    pass\n"
    right = ITEMS_BY_ID["ex1_dlogprobs"], master_solutions()["ex1_line_loss"]
    answers = {item.answers[0]: code for item, code in (hang, right)}
    trials = [runner.Trial(hang[0], 0), runner.Trial(right[0], 0)]
    spent = runner._run_trials(trials, answers, _children(), item_seconds=60.0, deadline=time.monotonic() + 0.5)
    assert spent == {("ex1_dprobs", 0): (None, runner.BUDGET_SPENT),
                     ("ex1_dlogprobs", 0): (None, runner.BUDGET_SPENT)}
