"""The judge's untrusted half: runs student answer cells on hidden inputs (the kinds' ``run``).

Started by ``runner`` inside the sandbox as
``python -m autograder.judge.child``. It reads one JSON request from
stdin (the answer sources and a list of [grade_id, case index] trials), writes
``{"ready": true}`` once it has loaded torch and then one JSON line per
finished trial to its original stdout. Before any
student code runs, file descriptors 1 and 2 are pointed at /dev/null, so what
the code prints cannot be mistaken for a result.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    from .protocol import announce_ready, read_request, send_reply
    from .sandbox import limit_memory, results_channel

    if argv[:1] == ["--data-bytes"]:  # started without the fork server, which sets the limit itself
        limit_memory(int(argv[1]))
    request = read_request()
    results = results_channel()

    import torch

    from ..exercises import ITEMS_BY_ID
    from ..kinds import student_output
    from ..kinds.cases import HIDDEN_CASES
    from .transport import encode
    from .untrusted import describe_error

    torch.set_num_threads(1)  # many graders share the cores; small tensors gain nothing from threads
    # Loaded: from here on each trial has item_seconds (the start-up has its own allowance).
    announce_ready(results)
    for index, (grade_id, case_index) in enumerate(request["trials"]):
        try:
            value = student_output(ITEMS_BY_ID[grade_id], request["answers"], HIDDEN_CASES[case_index])
            reply = {"trial": index, "value": encode(value)}
        except BaseException as err:  # SystemExit and KeyboardInterrupt are the student's too
            reply = {"trial": index, "error": out_of_memory(err) or describe_error(err)}
        send_reply(results, reply)


def out_of_memory(err: BaseException) -> str | None:
    """The reason for an answer that hit the memory limit, or None for any other error."""
    if not (isinstance(err, MemoryError) or "can't allocate memory" in str(err)):
        return None
    limit = os.environ.get("NINJA_MEMORY_LIMIT_BYTES")
    return f"ran out of memory (limit {int(limit) / 2**30:g} GB)" if limit else "ran out of memory"


if __name__ == "__main__":
    main()
