"""Check and grade answers written in the lecture's own notebook (``makemore_part4_backprop.ipynb``).

Learners who worked through the lecture's notebook have their answers in its
format: an Exercise 1 cell assigning ``dlogprobs`` ... ``dC``, an Exercise 2
cell for ``dlogits``, an Exercise 3 cell for ``dhprebn`` and the backward
block inside the Exercise 4 training loop. This package

* finds those answers by content (``parse``),
* runs them, exercise by exercise and statement by statement, in a sandboxed
  child process in the lecture's setting (``setting``, ``child``),
* compares what they produced with autograd's gradients and reports
  (``check``), and
* grades a folder of such notebooks (``grade``).
"""

# Defaults of ``check-lecture`` and ``grade-lecture``, here (no torch) so the CLI can show them.
EXERCISE_SECONDS = 30.0  # per exercise; the lecture's answers take well under a second
EX4_STEPS = 3  # training steps of Exercise 4, each compared with autograd
