"""Notebooks in the format of the lecture's own notebook, with known answers and known mistakes.

The project cannot ship the lecture's notebook, so these are written here:
the same structure (setup cells, the forward cell with ``retain_grad``, the
four exercise headers, the training loop with its ``# manual backprop``
region), the same variable names, and answers of our own. ``notebook(...)``
builds the correct set; each variant changes it the way a learner would.
"""

from __future__ import annotations

import json

SETUP = [
    ("markdown", "## makemore: the backward pass by hand\n\nWork through every gradient yourself."),
    ("code", "import torch\nimport torch.nn.functional as F\nimport random\n%matplotlib inline"),
    ("code", "words = open('names.txt', 'r').read().splitlines()\nprint(len(words))"),
    ("code", "chars = sorted(list(set(''.join(words))))\nstoi = {s: i + 1 for i, s in enumerate(chars)}\n"
             "stoi['.'] = 0\nitos = {i: s for s, i in stoi.items()}\nvocab_size = len(itos)"),
    ("code", "block_size = 3\n\ndef build_dataset(words):\n    X, Y = [], []\n    for w in words:\n"
             "        context = [0] * block_size\n        for ch in w + '.':\n            X.append(context)\n"
             "            Y.append(stoi[ch])\n            context = context[1:] + [stoi[ch]]\n"
             "    return torch.tensor(X), torch.tensor(Y)\n\nrandom.seed(42)\nrandom.shuffle(words)\n"
             "n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))\nXtr, Ytr = build_dataset(words[:n1])\n"
             "Xdev, Ydev = build_dataset(words[n1:n2])\nXte, Yte = build_dataset(words[n2:])"),
    ("code", "def cmp(s, dt, t):\n    ex = torch.all(dt == t.grad).item()\n    app = torch.allclose(dt, t.grad)\n"
             "    maxdiff = (dt - t.grad).abs().max().item()\n"
             "    print(f'{s:15s} | exact: {str(ex):5s} | approximate: {str(app):5s} | maxdiff: {maxdiff}')"),
    ("code", "n_embd = 10\nn_hidden = 64\ng = torch.Generator().manual_seed(2147483647)\n"
             "C = torch.randn((vocab_size, n_embd), generator=g)\n"
             "W1 = torch.randn((n_embd * block_size, n_hidden), generator=g) * (5/3) / ((n_embd * block_size)**0.5)\n"
             "b1 = torch.randn(n_hidden, generator=g) * 0.1\nW2 = torch.randn((n_hidden, vocab_size), generator=g) * 0.1\n"
             "b2 = torch.randn(vocab_size, generator=g) * 0.1\nbngain = torch.randn((1, n_hidden)) * 0.1 + 1.0\n"
             "bnbias = torch.randn((1, n_hidden)) * 0.1\nparameters = [C, W1, b1, W2, b2, bngain, bnbias]\n"
             "for p in parameters:\n    p.requires_grad = True"),
    ("code", "batch_size = 32\nn = batch_size\nix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)\n"
             "Xb, Yb = Xtr[ix], Ytr[ix]"),
    ("code", "emb = C[Xb]\nembcat = emb.view(emb.shape[0], -1)\nhprebn = embcat @ W1 + b1\n"
             "bnmeani = 1/n * hprebn.sum(0, keepdim=True)\nbndiff = hprebn - bnmeani\nbndiff2 = bndiff**2\n"
             "bnvar = 1/(n-1) * bndiff2.sum(0, keepdim=True)\nbnvar_inv = (bnvar + 1e-5)**-0.5\n"
             "bnraw = bndiff * bnvar_inv\nhpreact = bngain * bnraw + bnbias\nh = torch.tanh(hpreact)\n"
             "logits = h @ W2 + b2\nlogit_maxes = logits.max(1, keepdim=True).values\nnorm_logits = logits - logit_maxes\n"
             "counts = norm_logits.exp()\ncounts_sum = counts.sum(1, keepdims=True)\ncounts_sum_inv = counts_sum**-1\n"
             "probs = counts * counts_sum_inv\nlogprobs = probs.log()\nloss = -logprobs[range(n), Yb].mean()\n\n"
             "for p in parameters:\n    p.grad = None\n"
             "for t in [logprobs, probs, counts, counts_sum, counts_sum_inv, norm_logits, logit_maxes, logits, h,\n"
             "          hpreact, bnraw, bnvar_inv, bnvar, bndiff2, bndiff, hprebn, bnmeani, embcat, emb]:\n"
             "    t.retain_grad()\nloss.backward()\nloss"),
]

EX1_HEAD = ("# Exercise 1: backprop through the whole thing manually,\n"
            "# one line of the forward pass at a time, bottom up\n\n")
EX1_PARTS = [
    "dlogprobs = torch.zeros_like(logprobs)\ndlogprobs[range(n), Yb] = -1.0 / n\ndprobs = dlogprobs / probs\n"
    "dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)\ndcounts = counts_sum_inv * dprobs\n"
    "dcounts_sum = -counts_sum**-2 * dcounts_sum_inv\ndcounts += torch.ones_like(counts) * dcounts_sum\n"
    "dnorm_logits = counts * dcounts\ndlogits = dnorm_logits.clone()\n"
    "dlogit_maxes = -dnorm_logits.sum(1, keepdim=True)\n"
    "dlogits += F.one_hot(logits.max(1).indices, num_classes=logits.shape[1]) * dlogit_maxes\n",
    "dh = dlogits @ W2.T\ndW2 = h.T @ dlogits\ndb2 = dlogits.sum(0)\ndhpreact = (1.0 - h**2) * dh\n"
    "dbngain = (bnraw * dhpreact).sum(0, keepdim=True)\ndbnbias = dhpreact.sum(0, keepdim=True)\n"
    "dbnraw = bngain * dhpreact\ndbndiff = bnvar_inv * dbnraw\ndbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True)\n"
    "dbnvar = -0.5 * (bnvar + 1e-5)**-1.5 * dbnvar_inv\ndbndiff2 = torch.ones_like(bndiff2) / (n - 1) * dbnvar\n"
    "dbndiff += 2 * bndiff * dbndiff2\n",
    "dhprebn = dbndiff.clone()\ndbnmeani = -dbndiff.sum(0, keepdim=True)\n"
    "dhprebn += torch.ones_like(hprebn) / n * dbnmeani\ndembcat = dhprebn @ W1.T\ndW1 = embcat.T @ dhprebn\n"
    "db1 = dhprebn.sum(0)\ndemb = dembcat.view(emb.shape)\ndC = torch.zeros_like(C)\n"
    "for k in range(Xb.shape[0]):\n    for j in range(Xb.shape[1]):\n        dC[Xb[k, j]] += demb[k, j]\n",
]
EX1_CMPS = ("\ncmp('logprobs', dlogprobs, logprobs)\ncmp('probs', dprobs, probs)\ncmp('logits', dlogits, logits)\n"
            "cmp('hprebn', dhprebn, hprebn)\ncmp('C', dC, C)\n")
EX2_HEAD = ("# Exercise 2: backprop through cross_entropy but all in one go\n"
            "# derive the gradient of the loss with respect to the logits on paper first\n\n"
            "loss_fast = F.cross_entropy(logits, Yb)\nprint(loss_fast.item(), 'diff:', (loss_fast - loss).item())")
EX2_ANSWER = "# backward pass\n\ndlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\ndlogits /= n\n"
EX2_CMP = "\ncmp('logits', dlogits, logits)"
EX3_HEAD = ("# Exercise 3: backprop through batchnorm but all in one go\n\n"
            "hpreact_fast = bngain * (hprebn - hprebn.mean(0, keepdim=True)) / "
            "torch.sqrt(hprebn.var(0, keepdim=True, unbiased=True) + 1e-5) + bnbias\n"
            "print('max diff:', (hpreact_fast - hpreact).abs().max())")
EX3_ANSWER = ("# backward pass\n\ndhprebn = bngain * bnvar_inv / n * (n * dhpreact - dhpreact.sum(0)\n"
              "    - n / (n - 1) * bnraw * (dhpreact * bnraw).sum(0))\n")
EX3_CMP = "\ncmp('hprebn', dhprebn, hprebn)"
EX4_INIT = ("# Exercise 4: putting it all together!\n# train the MLP with the backward pass written by hand\n\n"
            "n_embd = 10\nn_hidden = 200\ng = torch.Generator().manual_seed(2147483647)\n"
            "C = torch.randn((vocab_size, n_embd), generator=g)\n"
            "W1 = torch.randn((n_embd * block_size, n_hidden), generator=g) * (5/3) / ((n_embd * block_size)**0.5)\n"
            "b1 = torch.randn(n_hidden, generator=g) * 0.1\nW2 = torch.randn((n_hidden, vocab_size), generator=g) * 0.1\n"
            "b2 = torch.randn(vocab_size, generator=g) * 0.1\nbngain = torch.randn((1, n_hidden)) * 0.1 + 1.0\n"
            "bnbias = torch.randn((1, n_hidden)) * 0.1\nparameters = [C, W1, b1, W2, b2, bngain, bnbias]\n"
            "for p in parameters:\n    p.requires_grad = True\n\n"
            "max_steps = 200000\nbatch_size = 32\nn = batch_size\nlossi = []\n\n")
EX4_LOOP = """with torch.no_grad():
  for i in range(max_steps):
    ix = torch.randint(0, Xtr.shape[0], (batch_size,), generator=g)
    Xb, Yb = Xtr[ix], Ytr[ix]
    emb = C[Xb]
    embcat = emb.view(emb.shape[0], -1)
    hprebn = embcat @ W1 + b1
    bnmean = hprebn.mean(0, keepdim=True)
    bnvar = hprebn.var(0, keepdim=True, unbiased=True)
    bnvar_inv = (bnvar + 1e-5)**-0.5
    bnraw = (hprebn - bnmean) * bnvar_inv
    hpreact = bngain * bnraw + bnbias
    h = torch.tanh(hpreact)
    logits = h @ W2 + b2
    loss = F.cross_entropy(logits, Yb)

    # backward pass
    for p in parameters:
      p.grad = None
    #loss.backward() # for correctness comparisons, delete it later!

    # manual backprop! #swole_doge_meme
    # -----------------
    dlogits = F.softmax(logits, 1)
    dlogits[range(n), Yb] -= 1
    dlogits /= n
    dh = dlogits @ W2.T
    dW2 = h.T @ dlogits
    db2 = dlogits.sum(0)
    dhpreact = (1.0 - h**2) * dh
    dbngain = (bnraw * dhpreact).sum(0, keepdim=True)
    dbnbias = dhpreact.sum(0, keepdim=True)
    dhprebn = bngain * bnvar_inv / n * (n * dhpreact - dhpreact.sum(0) - n / (n - 1) * bnraw * (dhpreact * bnraw).sum(0))
    dembcat = dhprebn @ W1.T
    dW1 = embcat.T @ dhprebn
    db1 = dhprebn.sum(0)
    demb = dembcat.view(emb.shape)
    dC = torch.zeros_like(C)
    dC.index_add_(0, Xb.view(-1), demb.view(-1, n_embd))
    grads = [dC, dW1, db1, dW2, db2, dbngain, dbnbias]
    # -----------------

    # update
    lr = 0.1 if i < 100000 else 0.01
    for p, grad in zip(parameters, grads):
      p.data += -lr * grad # new way of swole doge

    if i % 10000 == 0:
      print(f'{i:7d}/{max_steps:7d}: {loss.item():.4f}')
    lossi.append(loss.log10().item())

    if i >= 100:
      break
"""
EX4_COMPARE = "for p, g in zip(parameters, grads):\n    cmp(str(tuple(p.shape)), g, p)"


def cells(ex1_parts=None, ex1_split=False, ex2=EX2_ANSWER, ex3=EX3_ANSWER, loop=EX4_LOOP, order=(1, 2, 3, 4),
          extra=None) -> list[tuple[str, str]]:
    """(kind, source) of every cell; ``extra`` maps an exercise number to cells appended after it."""
    parts = EX1_PARTS if ex1_parts is None else ex1_parts
    ex1 = ([("code", EX1_HEAD + parts[0])] + [("code", p) for p in parts[1:]] + [("code", EX1_CMPS)]
           if ex1_split else [("code", EX1_HEAD + "".join(parts) + EX1_CMPS)])
    exercises = {1: ex1, 2: [("code", EX2_HEAD), ("code", ex2 + EX2_CMP)], 3: [("code", EX3_HEAD), ("code", ex3 + EX3_CMP)],
                 4: [("code", EX4_INIT + loop), ("code", EX4_COMPARE)]}
    result = list(SETUP)
    for number in order:
        result += exercises[number] + (extra or {}).get(number, [])
    return result


def notebook(colab: bool = False, **options) -> dict:
    """An nbformat 4 notebook; ``colab`` adds Colab's metadata and some outputs, as a download from Colab has."""
    nb_cells = []
    for index, (kind, source) in enumerate(cells(**options)):
        cell = {"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
            if colab:
                cell["metadata"] = {"id": f"cell{index:04d}", "colab": {"base_uri": "https://localhost:8080/"},
                                    "outputId": f"out{index:04d}"}
                cell["execution_count"] = index
                cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["some output\n"]}]
        nb_cells.append(cell)
    metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    if colab:
        metadata.update(colab={"provenance": [], "gpuType": "T4"}, accelerator="GPU")
    return {"nbformat": 4, "nbformat_minor": 0, "metadata": metadata, "cells": nb_cells}


def notebook_bytes(**options) -> bytes:
    return json.dumps(notebook(**options)).encode()


def script(**options) -> str:
    """A ``.py`` export as Colab writes it: markdown as string statements, magics as they were."""
    chunks = ['# -*- coding: utf-8 -*-\n"""makemore_part4_backprop.ipynb\n\nAutomatically generated by Colab.\n"""']
    for kind, source in cells(**options):
        chunks.append(f'"""{source}"""' if kind == "markdown" else source)
    return "\n\n".join(chunks) + "\n"


def ex1_with(old: str, new: str) -> list[str]:
    """Exercise 1's parts with one piece of code replaced (it must be there)."""
    joined = "\x00".join(EX1_PARTS)
    assert old in joined, old
    return joined.replace(old, new, 1).split("\x00")


def loop_with(old: str, new: str) -> str:
    assert old in EX4_LOOP, old
    return EX4_LOOP.replace(old, new, 1)


# The variants the tests check, by name: keyword arguments of ``notebook``.
VARIANTS = {
    "correct": {},
    "colab": {"colab": True},
    "missing_keepdim": {"ex1_parts": ex1_with("dbnbias = dhpreact.sum(0, keepdim=True)", "dbnbias = dhpreact.sum(0)")},
    "extra_dim": {"ex1_parts": ex1_with("db2 = dlogits.sum(0)", "db2 = dlogits.sum(0, keepdim=True)")},
    "epsilon": {"ex1_parts": ex1_with("(bnvar + 1e-5)**-1.5", "(bnvar - 1e-5)**-1.5")},
    "alias": {"ex1_parts": ex1_with("dhprebn = dbndiff.clone()", "dhprebn = dbndiff")},
    "scatter": {"ex1_parts": ex1_with(
        "for k in range(Xb.shape[0]):\n    for j in range(Xb.shape[1]):\n        dC[Xb[k, j]] += demb[k, j]\n",
        "dC[Xb] += demb\n")},
    "ex4_order": {"loop": loop_with("grads = [dC, dW1, db1, dW2, db2, dbngain, dbnbias]",
                                    "grads = [dC, dW1, db1, dW2, db2, dbnbias, dbngain]")},
    "second_attempt": {"ex2": "dlogits = F.softmax(logits, 1) / n  # first try\n",
                       "extra": {2: [("code", "# second try, after reading the hint\n" + EX2_ANSWER + EX2_CMP)]}},
    "split_cells": {"ex1_split": True},
    "grad_copy": {"ex2": "dlogits = logits.grad.clone()\n"},
    "backward_unused": {"loop": loop_with("#loss.backward()", "loss.backward()").replace("with torch.no_grad():\n", "if True:\n")},
    "backward_used": {"loop": loop_with("#loss.backward()", "loss.backward()").replace("with torch.no_grad():\n", "if True:\n")
                      .replace("p.data += -lr * grad # new way of swole doge", "p.data += -lr * p.grad # old way of cheats")},
    "raises_halfway": {"ex1_parts": ex1_with("dembcat = dhprebn @ W1.T", "dembcat = dhprebn @ W1")},
    "out_of_order": {"order": (3, 1, 4, 2)},
}


def _blank_loop() -> str:
    """The loop as handed out: placeholders in the manual region, the update still on p.grad."""
    start = EX4_LOOP.index("    dlogits = F.softmax")
    end = EX4_LOOP.index("    # -----------------\n\n    # update")
    placeholders = ("    dC, dW1, db1, dW2, db2, dbngain, dbnbias = None, None, None, None, None, None, None\n"
                    "    grads = [dC, dW1, db1, dW2, db2, dbngain, dbnbias]\n")
    loop = EX4_LOOP[:start] + placeholders + EX4_LOOP[end:]
    return loop.replace("p.data += -lr * grad # new way of swole doge", "p.data += -lr * p.grad # old way of cheats")


# Nothing answered yet: the notebook as a learner starts it.
VARIANTS["blank"] = {"ex1_parts": ["# -----------------\n# YOUR CODE HERE :)\n# -----------------\n"],
                     "ex2": "dlogits = None # TODO\n", "ex3": "dhprebn = None # TODO\n", "loop": _blank_loop()}
