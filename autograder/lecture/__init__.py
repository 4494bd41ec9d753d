"""Check and grade answers written in the lecture's own notebook (``makemore_part4_backprop.ipynb``).

Learners who worked through the lecture's notebook have their answers in its
format: an Exercise 1 cell assigning ``dlogprobs`` ... ``dC``, an Exercise 2
cell for ``dlogits``, an Exercise 3 cell for ``dhprebn`` and the backward
block inside the Exercise 4 training loop. This package

* splits their code into statements (``statements``) and finds those
  answers among them by content (``parse``),
* runs them, exercise by exercise and statement by statement, in a sandboxed
  child process in the lecture's setting (``runner``, ``child``, ``setting``),
* compares what they produced with autograd's gradients (``check``) and
  reports (``report``), and
* grades a folder of such notebooks (``grade``).

May import: ``engine``, ``checking``, ``judge``, ``kinds``, ``diagnosis``, ``workbook`` and the top-level
``resources``, ``exercises`` and ``cells``; never ``grading``.

Here, torch-free so the CLI can show them in ``--help``: the defaults of
``check-lecture`` and ``grade-lecture`` and the settings they make.
"""

from dataclasses import dataclass

EXERCISE_SECONDS = 30.0  # per exercise; the lecture's answers take well under a second
EX4_STEPS = 3  # training steps of Exercise 4, each compared with autograd
STARTUP_SECONDS = 120.0  # for the child to load Python, torch and the names (a busy machine is slow)


@dataclass(frozen=True)
class LectureSettings:
    """How lecture-format notebooks are checked: the commands' options and the tests' switches."""

    exercise_seconds: float = EXERCISE_SECONDS
    ex4_steps: int = EX4_STEPS
    sandboxed: bool = True  # run the child in the sandbox when the machine has one
    startup_seconds: float = STARTUP_SECONDS
    # Run the learner's code in this process, without a time limit the process can enforce from
    # outside: for tests with notebooks written for them, never for submissions.
    in_process: bool = False
