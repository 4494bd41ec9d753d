"""``make bench``: run every benchmark and write bench/RESULTS.md.

``--quick`` skips the three long ones (the 200,000-step run, notebook 06's 2,500 steps and the
50-student batch).
"""

import argparse

from bench import bench_fused, bench_grading, bench_lecture, bench_training, bench_transformer
from bench.common import RESULTS, write_results

NOTES = [
    "Training steps: the same fused forward pass, minibatches, in-place update and thread count on both sides; "
    "only the gradients differ (autograd's graph and `loss.backward()`, or a manual function under `no_grad`).",
    "The lecture's manual step is slower than autograd because of its Python loop over every (example, position) "
    "for the embedding's gradient; `index_add_` does the same in one operation.",
    "Grading runs on an embedded Dask cluster of `--jobs` single-threaded worker processes, each with a fork "
    "server that imports torch once, so a sandboxed judge process starts in tens of milliseconds instead of seconds.",
    "One pass: the score comes from the judge alone (each answer cell re-run in the sandbox on hidden inputs); no "
    "notebook is executed top to bottom. What the student's own run showed under each check comes from the outputs "
    "saved in their notebook, for display only and said to be so (they could be forged). The alternative, executing "
    "each notebook once in a warm sandboxed kernel, costs what the `nbconvert --execute` row shows cold (the earlier "
    "grader's execution phase took about 10 s warm); showing the saved outputs costs the `sanitize` and `feedback` "
    "phases, a few hundredths of a second. The saved outputs were chosen.",
    "Side by side as whole commands (`farm-bench`, 2 runs each, in turn), grading 6 copies of the full solution of "
    "notebooks 00-05 (before notebook 06) with "
    "`--jobs 2`, cluster start included: this grader 13.8 s wall, the earlier one (notebooks executed by nbgrader's "
    "autograde after the judge) 64.0 s; ratio 0.22. Both give the same grades.csv for every sample submission.",
    "The lecture checker: `check-lecture` as a learner runs it (a new process that imports torch, then forks its "
    "sandboxed children from itself before it computes anything) against running the same notebook's cells in a "
    "kernel; a `grade-lecture` worker keeps a fork server, so its children start warm for every student.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--count", type=int, default=50, help="students in the grading batch")
    args = parser.parse_args()
    rows = bench_training.rows(full=not args.quick) + bench_fused.rows() + bench_transformer.rows(full=not args.quick)
    rows += bench_grading.rows(5 if args.quick else args.count) + bench_grading.thread_rows()
    rows += bench_lecture.rows(1 if args.quick else 3)
    write_results(rows, NOTES)
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
