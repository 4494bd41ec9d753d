"""Exercises 2 and 3: the fused backward passes against the atomic chains of Exercise 1.

The lecture claims the one-expression backward of cross-entropy and of
BatchNorm is much faster than going through every atomic step. Both sides
here are the masters' own answer cells, run on the lecture's batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autograder.exercises import EX1_LINES
from autograder.workbook.data import make_splits
from autograder.workbook.model import PARAM_NAMES, chunked_forward, init_params, make_generator, sample_batch
from bench.common import Row, interleaved, master_answers


def namespace() -> dict:
    """The notebooks' variables after the forward pass and autograd's backward."""
    torch.set_num_threads(1)
    splits = make_splits()
    g = make_generator()
    parameters = init_params(g)
    Xb, Yb = sample_batch(splits.Xtr, splits.Ytr, 32, g)
    fw = chunked_forward(parameters, Xb, Yb)
    fw.loss.backward()
    ns = {"torch": torch, "F": F, "n": 32, "Xb": Xb, "Yb": Yb}
    ns.update({k: v.detach() for k, v in fw.items()})
    ns.update({k: p.detach() for k, p in zip(PARAM_NAMES, parameters)})
    ns.update({f"d{k}": v.grad for k, v in fw.items() if v.grad is not None})
    return ns


def chain(first: str, last: str) -> str:
    """The masters' Exercise 1 answer cells from line ``first`` to ``last``, joined."""
    answers = master_answers()
    names = [line.output for line in EX1_LINES]
    return "\n".join(answers[f"ex1_line_{name}"] for name in names[names.index(first): names.index(last) + 1])


def timed(code: str, ns: dict):
    compiled = compile(code, "<bench>", "exec")

    def run():
        with torch.no_grad():
            exec(compiled, dict(ns))
    return run


def rows() -> list[Row]:
    ns = namespace()
    answers = master_answers()
    ce = interleaved({"atomic": timed(chain("loss", "logit_maxes"), ns),
                      "fused": timed(answers["ex2_dlogits_fused"], ns)}, repeat=500)
    bn = interleaved({"atomic": timed(chain("hpreact", "bnmeani"), ns),
                      "fused": timed(answers["ex3_dhprebn_fused"], ns)}, repeat=500)
    return [
        Row("Ex2 cross-entropy backward: fused dlogits vs the atomic chain dlogprobs..dlogits",
            "atomic chain", ce["atomic"] * 1e6, "fused", ce["fused"] * 1e6, "µs", "< 1 (\"much faster\")"),
        Row("Ex3 BatchNorm backward: fused dhprebn vs the atomic chain dbnraw..dhprebn",
            "atomic chain", bn["atomic"] * 1e6, "fused", bn["fused"] * 1e6, "µs", "< 1 (\"much faster\")"),
    ]


if __name__ == "__main__":
    for row in rows():
        print(f"{row.what}: {row.baseline} {row.baseline_value:.4g} {row.unit}, {row.ours} "
              f"{row.ours_value:.4g} {row.unit}, ratio {row.ratio:.2f}")
