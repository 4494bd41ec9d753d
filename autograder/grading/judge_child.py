"""The judge's untrusted half: runs student answer cells on hidden inputs (the kinds' ``run``).

Started by ``judge_runner`` inside the sandbox as
``python -m autograder.grading.judge_child``. It reads one JSON request from
stdin (the answer sources and a list of [grade_id, case index] jobs), writes
``{"ready": true}`` once it has loaded torch and then one JSON line per
finished job to its original stdout. Before any
student code runs, file descriptors 1 and 2 are pointed at /dev/null, so what
the code prints cannot be mistaken for a result.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    request = json.loads(sys.stdin.read())
    results = os.fdopen(os.dup(1), "w", buffering=1)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    sys.stdout = sys.stderr = open(os.devnull, "w")

    import torch

    from ..exercises import ITEMS_BY_ID
    from ..kinds import student_output
    from ..kinds.cases import HIDDEN_CASES
    from ..untrusted import describe_error
    from .transport import encode

    torch.set_num_threads(1)  # many graders share the cores; small tensors gain nothing from threads
    # Loaded: from here on each job has job_seconds (the start-up has its own allowance).
    results.write(json.dumps({"ready": True}) + "\n")
    for index, (grade_id, case_index) in enumerate(request["jobs"]):
        try:
            value = student_output(ITEMS_BY_ID[grade_id], request["answers"], HIDDEN_CASES[case_index])
            reply = {"job": index, "value": encode(value)}
        except BaseException as err:  # SystemExit and KeyboardInterrupt are the student's too
            reply = {"job": index, "error": describe_error(err)}
        results.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
