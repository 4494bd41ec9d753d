"""Check and grade answers written in the lecture's own notebook (``makemore_part4_backprop.ipynb``).

Learners who worked through the lecture's notebook have their answers in its
format, in their own way: an Exercise 1 cell (or several) assigning
``dlogprobs`` ... ``dC``, an Exercise 2 cell for ``dlogits``, an Exercise 3
cell for ``dhprebn`` and the backward block inside the Exercise 4 training
loop, under headers they may have misspelled, with names of their own. The
checker follows the notebook as they ran it:

1. **Read** (trusted, ``statements``, ``parse``): the headers split the
   notebook into the exercises, read fuzzily ("Excercise 2"); a cell without
   one is placed by the gradients it assigns and reads; what comes before the
   first answer is the setup (data, parameters, batch, forward pass, their own
   ``loss.backward()``). A statement of a later exercise that comes before an
   exercise's line reading what it makes is borrowed by that exercise, to run
   at its place, as the kernel ran it top to bottom. Nothing read can end in a
   traceback.
2. **Their setup** (untrusted, ``child.setup_main``, sandboxed): one child runs
   the setup cells, autograd available, and hands back as data their tensors
   under their names and, from their own backward pass, the ``.grad`` of
   each. It runs no answer.
3. **Their names, and the references** (trusted, ``follow``): their parameters
   and batch are found (by name, by their ``parameters`` list, by shape and
   their loss), the lecture's forward pass is recomputed on them here, and
   each lecture quantity is mapped to their variable (by name, else by value,
   else by what their own ``cmp`` compares). Where their forward pass is the
   lecture's, the references are the recomputed gradients, so a ``.grad``
   their code wrote cannot pass anything; where it is another, the references
   are their own ``.grad``, as their ``cmp`` uses it, and the result is
   flagged. When the setup cannot run here, the lecture's own setting stands in.
4. **Their answers** (untrusted, ``child.answers_main``, sandboxed, autograd
   locked): each exercise runs as written on their values (``runs``), and
   where something fails, line by line on its own with the right upstream
   gradients fed in. This process never holds a reference: it is handed
   their forward tensors and, line by line, the right gradients a line reads
   once the lines that make them have answered; a request whose answer was
   handed earlier runs in a new child (``runner.Session``).
5. **Verdicts** (trusted, ``check``): each gradient as written, compared
   through ``kinds.gradient`` (``compare_gradient``: strict shapes, the
   workbook's tolerance and diagnoses); a line that reads ``.grad`` scores
   nothing, alone, and the lines after it are judged with autograd's value
   where they read it, as their kernel ran them; a wrong line that is right
   given right inputs is a cascade (``upstream``, naming the gradient to fix
   first). Exercise 4 runs its block at a few training steps on parameters and
   batches drawn here, each step's reference computed after the child answered.
6. **Report** (``report``) and a class's grades (``grade``, on the Dask engine).

The children start warm: ``check-lecture`` forks them from itself once it
has imported torch and before it computes anything (``judge.forkserver.
fork_here``); each ``grade-lecture`` worker keeps a fork server (``warm``).

May import: ``engine``, ``checking``, ``judge``, ``kinds``, ``diagnosis``, ``workbook`` and the top-level
``resources``, ``exercises`` and ``cells``; never ``grading``.

Here, torch-free so the CLI can show them in ``--help``: the defaults of
``check-lecture`` and ``grade-lecture`` and the settings they make.
"""

from dataclasses import dataclass

EXERCISE_SECONDS = 30.0  # per piece of the learner's code run at once: the setup, an exercise, a training step
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
    # The socket of a fork server that starts the children warm (``warm``); None: cold.
    fork_server: str | None = None
    # Fork the children from this process itself, before it computes anything (``check-lecture``: a fresh
    # process that has just imported torch); more than SPARE_CHILDREN come from the fork server, or cold.
    fork_here: bool = False
