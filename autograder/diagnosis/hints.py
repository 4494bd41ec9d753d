"""Which collapsed hint of a notebook addresses a diagnosed mistake.

Above every answer cell the notebooks state the task and keep the derivation
in collapsed hints, ``<details><summary>Hint N: title</summary>``, each a step
closer to the answer. When a check fails with a diagnosis code (see
``autograder.diagnosis.codes``), the hint line points to the hint that addresses that
mistake: ``pointer("ex1_dcounts", "branch.missing")`` gives "see hint 2 above:
the second use of counts".

Two tables, the one home of both:

* ``HINT_TITLES``: answer cell id -> the titles of the hints in the markdown
  cell right above it, in order. ``tests/test_hints.py`` checks them against
  the masters in ``solutions/``.
* ``POINTERS``: graded item id -> {diagnosis code: hint}. A hint is its number
  under the item's last answer cell (the one right above the check), or
  ``(answer id, number)`` for a hint above an earlier answer cell of the item.

Codes with no entry (``none``, ``nan``, ``int_dtype``, ``unknown``, ...) get
no pointer: the diagnosis itself says all there is.
"""

from __future__ import annotations

from ..exercises import EX1_LINES, ITEMS_BY_ID, Item

SHAPE_CODES = ("shape.missing_dim", "shape.extra_dim", "shape.broadcast_hidden")
SHAPE_ALL = SHAPE_CODES + ("shape.transposed",)

HINT_TITLES: dict[str, tuple[str, ...]] = {
    # 00_scalar_warmup
    "ex0_grad_o": ("one for one",),
    "ex0_grad_n": ("the chain rule", "the derivative of tanh"),
    "ex0_grad_sum": ("nudge an input", "the shape of the answer"),
    "ex0_grad_x1w1": ("nudge a factor", "the shape of the answer"),
    "ex0_exp_backward": ("the local derivatives", "a node used twice", "the shape of the answer"),
    "ex0_reuse_backward": ("two paths each", "the shape of the answer"),
    # 01_atomic_backprop
    "ex1_line_loss": ("which entries reach the loss", "the local derivative", "the shape of the answer"),
    "ex1_line_logprobs": ("an element-wise function", "the local derivative", "the shape of the answer"),
    "ex1_line_probs": ("broadcasting", "the local derivatives", "the shape of the answer"),
    "ex1_line_counts_sum_inv": ("the power rule", "the shape of the answer"),
    "ex1_line_counts_sum": ("a sum is a broadcast backwards", "the second use of counts", "the shape of the answer"),
    "ex1_line_counts": ("the derivative of exp", "nothing to recompute"),
    "ex1_line_norm_logits": ("broadcasting", "a copy before +=", "the shape of the answer"),
    "ex1_line_logit_maxes": ("where the maximum came from", "the second use of logits", "the shape of the answer"),
    "ex1_line_logits": ("work out a tiny case", "match the shapes", "the shape of the answer"),
    "ex1_line_h": ("the derivative of tanh", "written with the output"),
    "ex1_line_hpreact": ("broadcasting", "the local derivatives", "the shape of the answer"),
    "ex1_line_bnraw": ("broadcasting", "the local derivatives", "the shape of the answer"),
    "ex1_line_bnvar_inv": ("the power rule", "the epsilon"),
    "ex1_line_bnvar": ("a sum is a broadcast backwards", "the constant"),
    "ex1_line_bndiff2": ("the derivative of a square", "the second use of bndiff"),
    "ex1_line_bndiff": ("broadcasting", "keep the dimension", "the shape of the answer"),
    "ex1_line_bnmeani": ("a sum is a broadcast backwards", "the second use of hprebn"),
    "ex1_line_hprebn": ("the same as the second layer", "match the shapes", "the shape of the answer"),
    "ex1_line_embcat": ("a view relabels", "the shape of the answer"),
    "ex1_line_emb": ("a row used many times", "add one contribution at a time", "the shape of the answer"),
    # 02_fused_cross_entropy
    "ex2_dlogits_fused": ("one example at a time", "the derivative of one row", "the whole batch"),
    # 03_fused_batchnorm
    "ex3_dhprebn_fused": ("draw the graph: a scalar fans out", "into the variance and the mean",
                          "into x, and the result"),
    # 04_manual_training
    "ex4_manual_backward": ("what the loop adds up", "index_add_", "why not dC[Xb] += demb"),
    # 05_iris_adam
    "ex5_mlp_backward": ("three kinds of steps", "the local derivatives", "where to stop"),
}

Hint = int | tuple[str, int]  # a number under the item's last answer cell, or (answer id, number)


def _codes(*codes: str, hint: Hint) -> dict[str, Hint]:
    return dict.fromkeys(codes, hint)


def _product(other: Hint, broadcast: Hint | None = None) -> dict[str, Hint]:
    """A factor of a product: the local derivative (the other factor), and the broadcast if it had one."""
    table = _codes("sign", "scale.other", "local_only", "other_tensor", hint=other)
    if broadcast is not None:
        table.update(_codes(*SHAPE_CODES, hint=broadcast))
    return table


POINTERS: dict[str, dict[str, Hint]] = {
    # 00: the neuron node by node, then two whole graphs.
    "ex0_o_grad": _codes("scale.other", "sign", "offset", hint=1),
    "ex0_n_grad": {**_codes("local_only", hint=1), **_codes("sign", "scale.other", hint=2)},
    "ex0_x1w1x2w2_grad": _codes("scale.other", "sign", "other_tensor", hint=1),
    "ex0_b_grad": _codes("scale.other", "sign", "other_tensor", hint=1),
    "ex0_x1_grad": {**_codes("other_tensor", "scale.other", hint=1), **_codes("local_only", "sign", hint=2)},
    "ex0_w1_grad": {**_codes("other_tensor", "scale.other", hint=1), **_codes("local_only", "sign", hint=2)},
    "ex0_exp_grads": {**_codes("sign", "scale.other", "other_tensor", hint=1),
                      **_codes("branch.missing", hint=2), **_codes("local_only", hint=3)},
    "ex0_reuse_grads": {**_codes("branch.missing", hint=1),
                        **_codes("sign", "scale.other", "local_only", "other_tensor", hint=2)},
    # 01: every gradient.
    "ex1_dlogprobs": {**_codes("offset", "other_tensor", hint=1), **_codes("sign", "scale.1/n", "scale.other", hint=2),
                      **_codes(*SHAPE_ALL, hint=3)},
    "ex1_dprobs": {**_codes("local_only", "other_tensor", hint=1), **_codes("sign", "scale.other", hint=2),
                   **_codes(*SHAPE_ALL, hint=3)},
    "ex1_dcounts_sum_inv": _product(other=2, broadcast=1),
    "ex1_dcounts_sum": {**_codes("sign", "scale.other", hint=1), **_codes("local_only", "other_tensor", *SHAPE_ALL,
                                                                          hint=2)},
    "ex1_dcounts": {**_codes(*SHAPE_CODES, "local_only", hint=1), **_codes("branch.missing", hint=2),
                    **_codes("sign", "scale.other", "other_tensor", hint=("ex1_line_probs", 2))},
    "ex1_dnorm_logits": {**_codes("sign", "scale.other", "other_tensor", hint=1), **_codes("local_only", hint=2)},
    "ex1_dlogit_maxes": {**_codes("sign", *SHAPE_CODES, hint=1), **_codes("other_tensor", "local_only", hint=3)},
    "ex1_dlogits": {**_codes("other_tensor", "local_only", "offset", hint=1), **_codes("branch.missing", hint=2),
                    **_codes(*SHAPE_ALL, hint=3), **_codes("alias", hint=("ex1_line_norm_logits", 2)),
                    **_codes("sign", hint=("ex1_line_norm_logits", 1))},
    "ex1_dh": {**_codes("other_tensor", "local_only", hint=1), **_codes(*SHAPE_ALL, hint=2)},
    "ex1_dW2": {**_codes("other_tensor", "local_only", hint=1), **_codes(*SHAPE_ALL, hint=2)},
    "ex1_db2": {**_codes("other_tensor", hint=1), **_codes(*SHAPE_ALL, "scale.1/n", "scale.other", hint=2)},
    "ex1_dhpreact": {**_codes("sign", "scale.other", "other_tensor", hint=1), **_codes("local_only", hint=2)},
    "ex1_dbngain": _product(other=2, broadcast=1),
    "ex1_dbnbias": {**_codes(*SHAPE_CODES, hint=1), **_codes("scale.other", "other_tensor", "local_only", hint=2)},
    "ex1_dbnraw": {**_product(other=2), **_codes(*SHAPE_CODES, hint=3)},
    "ex1_dbnvar_inv": _product(other=2, broadcast=1),
    "ex1_dbnvar": {**_codes("sign", "scale.other", "other_tensor", hint=1), **_codes("epsilon", "local_only",
                                                                                      *SHAPE_ALL, hint=2)},
    "ex1_dbndiff2": {**_codes(*SHAPE_CODES, "local_only", "other_tensor", hint=1),
                     **_codes("scale.bessel", "scale.1/n", "scale.other", "sign", hint=2)},
    "ex1_dbndiff": {**_codes("sign", "scale.other", "local_only", hint=1), **_codes("branch.missing", hint=2),
                    **_codes("other_tensor", hint=("ex1_line_bnraw", 2))},
    "ex1_dbnmeani": {**_codes("sign", "shape.broadcast_hidden", hint=1),
                     **_codes("shape.missing_dim", "shape.extra_dim", hint=2),
                     **_codes("other_tensor", "local_only", hint=3)},
    "ex1_dhprebn": {**_codes("scale.1/n", "scale.other", *SHAPE_CODES, "local_only", hint=1),
                    **_codes("branch.missing", hint=2), **_codes("alias", "sign", hint=("ex1_line_bndiff", 3))},
    "ex1_dembcat": {**_codes("other_tensor", "local_only", hint=1), **_codes(*SHAPE_ALL, hint=2)},
    "ex1_dW1": {**_codes("other_tensor", "local_only", hint=1), **_codes(*SHAPE_ALL, hint=2)},
    "ex1_db1": {**_codes("other_tensor", hint=1), **_codes(*SHAPE_ALL, "scale.1/n", "scale.other", hint=2)},
    "ex1_demb": {**_codes("scale.other", "sign", "other_tensor", hint=1),
                 **_codes(*SHAPE_ALL, "hardcoded_size", hint=2)},
    "ex1_dC": {**_codes("other_tensor", "local_only", "scale.other", hint=1),
               **_codes("scatter.repeats", "offset", hint=2), **_codes(*SHAPE_ALL, hint=3)},
    # 02 and 03: one fused formula each.
    "ex2_dlogits": {**_codes("local_only", "other_tensor", hint=1), **_codes("sign", "offset", hint=2),
                    **_codes("scale.1/n", "scale.other", *SHAPE_ALL, hint=3)},
    "ex3_dhprebn": {**_codes("branch.missing", "local_only", "other_tensor", hint=1),
                    **_codes("scale.bessel", "scale.1/n", "scale.other", "sign", "epsilon", *SHAPE_ALL, hint=3)},
    # 04 and 05: whole backward passes.
    "ex4_backward": _codes("scatter.repeats", "offset", hint=1),
    "ex4_training": _codes("scatter.repeats", "offset", hint=1),
    "ex5_backward": {**_codes("local_only", "other_tensor", hint=1), **_codes("scale.1/n", "sign", *SHAPE_ALL,
                                                                              hint=2)},
}


def hint_at(grade_id: str, code: str) -> tuple[str, int] | None:
    """(answer id, hint number) of the hint for ``code`` on item ``grade_id``, or None."""
    item = ITEMS_BY_ID.get(grade_id)
    hint = POINTERS.get(grade_id, {}).get(code)
    if item is None or hint is None:
        return None
    return hint if isinstance(hint, tuple) else (item.answers[-1], hint)


def pointer(grade_id: str, code: str) -> str | None:
    """The hint line for a failed check of item ``grade_id``, e.g. "see hint 1 above: broadcasting"; None when none fits."""
    item = ITEMS_BY_ID.get(grade_id)
    return None if item is None else _text(item, code)


def _text(item: Item, code: str) -> str | None:
    found = hint_at(item.grade_id, code)
    if found is None:
        return None
    answer, number = found
    title = HINT_TITLES[answer][number - 1]
    if answer == item.answers[-1]:
        return f"see hint {number} above: {title}"
    return f"see hint {number} above, under `{_forward_line(answer)}`: {title}"


def _forward_line(answer_id: str) -> str:
    """The forward line an Exercise 1 answer cell undoes (the heading of its markdown), else the id."""
    return next((line.code for line in EX1_LINES if line.answer_id == answer_id), answer_id)


def pointer_for_check(grade_ids: list[str], code: str) -> str | None:
    """The hint line for a visible check that may belong to any of ``grade_ids`` (a running notebook), or None.

    A visible check knows its tensor, not its notebook: ``dlogits`` is checked
    in notebooks 01 and 02. When the candidates point different ways, the one
    whose answer cells this kernel has run (see ``cells.record_cells``)
    decides. Never raises: a hint line is a courtesy.
    """
    try:
        texts = {pointer(grade_id, code) for grade_id in grade_ids}
        if len(texts) == 1 or not code:
            return texts.pop() if len(texts) == 1 else None
        ran = [grade_id for grade_id in grade_ids if _ran_in_this_kernel(ITEMS_BY_ID[grade_id])]
        return pointer(ran[0], code) if len(ran) == 1 else None
    except Exception:
        return None


def _ran_in_this_kernel(item: Item) -> bool:
    from ..cells import recorded_answer

    try:
        for answer in item.answers:
            recorded_answer(answer)
    except LookupError:
        return False
    return True
