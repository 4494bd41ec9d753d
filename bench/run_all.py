"""``make bench``: run every benchmark and write bench/RESULTS.md.

``--quick`` skips the two long ones (the 200,000-step run and the 50-student batch).
"""

import argparse

from bench import bench_fused, bench_grading, bench_training
from bench.common import RESULTS, write_results

NOTES = [
    "Training steps: the same fused forward pass, minibatches, in-place update and thread count on both sides; "
    "only the gradients differ (autograd's graph and `loss.backward()`, or a manual function under `no_grad`).",
    "The lecture's manual step is slower than autograd because of its Python loop over every (example, position) "
    "for the embedding's gradient; `index_add_` does the same in one operation.",
    "Grading runs on an embedded Dask cluster of `--jobs` single-threaded worker processes, each with a fork "
    "server that imports torch once, so a notebook's kernel and the judge start in milliseconds instead of seconds.",
    "The old home-made pool's 50-submission time was measured just before Dask replaced it, on the same machine "
    "under the load of other work; both grading rows move with that load.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--count", type=int, default=50, help="students in the grading batch")
    args = parser.parse_args()
    rows = bench_training.rows(full=not args.quick) + bench_fused.rows()
    rows += bench_grading.rows(5 if args.quick else args.count) + bench_grading.thread_rows()
    write_results(rows, NOTES)
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
