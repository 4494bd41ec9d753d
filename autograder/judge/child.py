"""The judge's untrusted half: runs student answer cells on hidden inputs (the kinds' ``run``).

Started by ``runner`` inside the sandbox, warm from the fork server
(``autograder.judge.child:main``) or as ``python -m autograder.judge.child``.
Before any student code runs it gives up autograd for good
(``untrusted.lock_autograd``) and points file descriptors 1 and 2 at
/dev/null, so nothing the code prints can be mistaken for a result. Then it
says it is ready and works in lock-step (``protocol``): one trial per line
on stdin (an item, its answer cells, a hidden case and the inputs the judge
hands it, such as correct upstream gradients), one result per line on its
original stdout.

It never holds a reference answer: the judge computes those itself, and
never hands a child the answer to a trial it will run (``runner``).
"""

from __future__ import annotations

import importlib
import os
import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    from .protocol import announce_ready, next_request, send_reply
    from .sandbox import results_channel

    requests = sys.stdin.buffer
    results = results_channel()

    import torch

    from ..exercises import Item
    from ..kinds import KINDS
    from ..kinds.cases import HIDDEN_CASES
    from .transport import decode, encode
    from .untrusted import LOCKED, describe_error, lock_autograd

    torch.set_num_threads(1)  # many graders share the cores; small tensors gain nothing from threads
    lock_autograd()
    # Loaded: from here on each trial has item_seconds (the start-up has its own allowance).
    announce_ready(results)
    while (trial := next_request(requests)) is not None:
        try:
            item = Item(**{**trial["item"], "answers": tuple(trial["item"]["answers"])})
            if item.kind not in KINDS:  # a kind defined outside this package registers on import
                importlib.import_module(trial["kind_module"])
            inputs = {name: decode(value) for name, value in trial["inputs"].items()}
            value = KINDS[item.kind].run(item, trial["answers"], HIDDEN_CASES[trial["case"]], inputs, LOCKED)
            reply = {"value": encode(value)}
        except BaseException as err:  # SystemExit and KeyboardInterrupt are the student's too
            reply = {"error": out_of_memory(err) or describe_error(err)}
        send_reply(results, {"nonce": trial.get("nonce"), **reply})


def out_of_memory(err: BaseException) -> str | None:
    """The reason for an answer that hit the memory limit, or None for any other error."""
    if not (isinstance(err, MemoryError) or "can't allocate memory" in str(err)):
        return None
    limit = os.environ.get("NINJA_MEMORY_LIMIT_BYTES")
    return f"ran out of memory (limit {int(limit) / 2**30:g} GB)" if limit else "ran out of memory"


if __name__ == "__main__":
    main()
