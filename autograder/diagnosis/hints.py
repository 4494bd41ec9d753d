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

from ..exercises import EX1_LINES, EX6_LINES, ITEMS_BY_ID, Item

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
    # 06_transformer_block
    "ex6_line_loss": ("Exercise 2's formula", "how many predictions", "the shape of the answer"),
    "ex6_line_logits": ("B·T rows", "match the shapes", "the shape of the answer"),
    "ex6_line_lnf_out": ("broadcasting", "the local derivatives", "the shape of the answer"),
    "ex6_line_lnf_xhat": ("broadcasting", "the shape of the answer"),
    "ex6_line_lnf_rstd": ("the power rule", "the shape of the answer"),
    "ex6_line_lnf_var": ("the local derivative", "broadcast and add", "the shape of the answer"),
    "ex6_line_lnf_diff": ("a difference that broadcasts", "a copy before +=", "the shape of the answer"),
    "ex6_line_lnf_mean": ("a mean, backwards", "the shape of the answer"),
    "ex6_line_x2": ("a sum routes", "the shape of the answer"),
    "ex6_line_mlp_out": ("as for the head", "the shape of the answer"),
    "ex6_line_h": ("a product of two inputs", "the shape of the answer"),
    "ex6_line_gelu_tanh": ("as in Exercise 1",),
    "ex6_line_gelu_in": ("a polynomial", "the shape of the answer"),
    "ex6_line_h_pre": ("as for the down projection", "the shape of the answer"),
    "ex6_line_ln2_out": ("as for lnf",),
    "ex6_line_ln2_xhat": ("as for lnf",),
    "ex6_line_ln2_rstd": ("as for lnf",),
    "ex6_line_ln2_var": ("as for lnf",),
    "ex6_line_ln2_diff": ("add, this time", "the shape of the answer"),
    "ex6_line_ln2_mean": ("as for lnf",),
    "ex6_line_x1": ("as for x2",),
    "ex6_line_attn_out": ("as for the MLP's projections",),
    "ex6_line_y": ("moving numbers computes nothing", "the shape of the answer"),
    "ex6_line_y_heads": ("a batch of products", "the shape of the answer", "why datt is not zero in the future"),
    "ex6_line_att": ("a quotient", "broadcasting", "the shape of the answer"),
    "ex6_line_att_sum": ("a sum, backwards",),
    "ex6_line_att_exp": ("exp and a difference", "what happens to the future", "the shape of the answer"),
    "ex6_line_att_max": ("where the maximum came from", "the shape of the answer"),
    "ex6_line_masked": ("a copy and a constant", "the shape of the answer"),
    "ex6_line_scaled": ("a constant factor",),
    "ex6_line_scores": ("name the transpose", "shapes will not tell", "the shape of the answer"),
    "ex6_line_q_k_v": ("undo, then put side by side", "the shape of the answer"),
    "ex6_line_qkv": ("the same three formulas", "the shape of the answer"),
    "ex6_line_ln1_out": ("as for lnf",),
    "ex6_line_ln1_xhat": ("as for lnf",),
    "ex6_line_ln1_rstd": ("as for lnf",),
    "ex6_line_ln1_var": ("as for lnf",),
    "ex6_line_ln1_diff": ("add, this time", "the shape of the answer"),
    "ex6_line_ln1_mean": ("as for lnf",),
    "ex6_line_x0": ("broadcast over the batch", "the shape of the answer"),
    "ex6_line_tok_emb": ("as C[Xb] in Exercise 1", "without a loop", "the shape of the answer"),
    "ex6_ln_fused": ("the gain does not come out of the sums", "the variance and the mean", "into x, and the result"),
    "ex6_attention_head": ("the value mix and the scores", "the softmax of one row", "the shape of the answer"),
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


def _ex6_pointers() -> dict[str, dict[str, Hint]]:
    """Notebook 06: Part 1's gradients, Part 2's LayerNorm and attention head (its two functions have no hints)."""
    summed = SHAPE_CODES + ("shape.missing_sum", "shape.wrong_dim")
    values = ("sign", "scale.other", "local_only", "other_tensor")
    # A projection's three gradients: its first hint says how (B·T rows), its second gives the formulas.
    projection = {**_codes(*SHAPE_ALL, "shape.missing_sum", "hardcoded_size", "other_tensor", "local_only", hint=1),
                  **_codes("sign", "scale.other", hint=2)}
    table: dict[str, dict[str, Hint]] = {
        "ex6_dlogits": {**_codes("sign", "offset", "other_tensor", "local_only", hint=1),
                        **_codes("scale.1/n", "scale.other", "hardcoded_size", hint=2), **_codes(*SHAPE_ALL, hint=3)},
        "ex6_dlnf_rstd": {**_codes(*summed, hint=1), **_codes("sign", "scale.other", "local_only", hint=2)},
        "ex6_dlnf_var": {**_codes("epsilon", "sign", "scale.other", "local_only", hint=1), **_codes(*SHAPE_CODES, hint=2)},
        "ex6_dlnf_diff": {**_codes("layernorm.bessel", "scale.other", "sign", "local_only", hint=1),
                          **_codes("branch.missing", "alias", hint=2), **_codes(*SHAPE_CODES, hint=3)},
        "ex6_dlnf_mean": {**_codes("sign", *summed, hint=1), **_codes("other_tensor", hint=3)},
        "ex6_dx2": {**_codes("scale.other", "scale.1/n", hint=1), **_codes(*SHAPE_CODES, hint=2),
                    **_codes("branch.missing", "alias", hint=("ex6_line_lnf_diff", 2))},
        "ex6_dmlp_out": _codes("other_tensor", "sign", "scale.other", hint=1),
        "ex6_dgelu_tanh": _codes(*values, hint=1),
        "ex6_dgelu_in": _codes(*values, hint=1),
        "ex6_dh_pre": {**_codes("scale.other", "sign", "local_only", hint=1), **_codes("branch.missing", "alias", hint=2)},
        "ex6_dx1": _codes("branch.missing", "alias", "scale.other", hint=1),
        "ex6_dattn_out": _codes("other_tensor", "sign", "scale.other", hint=1),
        "ex6_dy_heads": {**_codes("shape.view", "hardcoded_size", hint=1), **_codes(*SHAPE_ALL, hint=2)},
        "ex6_datt_sum": {**_codes(*values, hint=1), **_codes(*summed, hint=2)},
        "ex6_datt_exp": _codes("branch.missing", "alias", *SHAPE_CODES, hint=1),
        "ex6_datt_max": {**_codes("sign", *summed, hint=1), **_codes("other_tensor", hint=3)},
        "ex6_dmasked": {**_codes("branch.missing", "alias", hint=1),
                        **_codes("local_only", "other_tensor", hint=("ex6_line_att_exp", 1)),
                        **_codes("attention.future_leak", hint=("ex6_line_att_exp", 2))},
        "ex6_dscaled": _codes("attention.future_leak", "attention.scale", "other_tensor", hint=1),
        "ex6_dscores": _codes("attention.scale", "scale.other", "sign", "other_tensor", hint=1),
        "ex6_dqkv": {**_codes("shape.view", "other_tensor", "hardcoded_size", hint=1), **_codes(*SHAPE_ALL, hint=2)},
        "ex6_dx0": _codes("branch.missing", "alias", "scale.other", hint=1),
        "ex6_dtok_emb": _codes("other_tensor", "sign", "scale.other", hint=1),
        "ex6_dwpe": {**_codes(*summed, "hardcoded_size", "other_tensor", hint=1), **_codes("sign", "scale.other", hint=2)},
        "ex6_dwte": {**_codes("other_tensor", "local_only", "scale.other", hint=1),
                     **_codes("scatter.repeats", "offset", hint=2), **_codes(*SHAPE_ALL, "hardcoded_size", hint=3)},
        "ex6_dx_ln": {**_codes("branch.missing", "local_only", "other_tensor", hint=1),
                      **_codes("layernorm.bessel", "scale.1/n", "scale.other", "sign", "epsilon", *SHAPE_ALL, hint=3)},
        "ex6_dv_h": {**_codes("other_tensor", "shape.transposed", "sign", "scale.other", hint=1),
                     **_codes("attention.future_leak", hint=2)},
    }
    for name in ("dlnf_out", "dWlm"):  # the head: B·T rows, then the shapes
        table[f"ex6_{name}"] = {**_codes("other_tensor", "local_only", hint=1),
                                **_codes(*SHAPE_ALL, "hardcoded_size", hint=2), **_codes("sign", "scale.other", hint=3)}
    for name in ("dlnf_xhat", "dlnf_gain", "dlnf_bias"):
        table[f"ex6_{name}"] = {**_codes(*summed, hint=1), **_codes(*values, hint=2)}
    for name in ("dh", "dW2", "db2", "dln2_out", "dW1", "db1", "dln1_out", "dWqkv", "dbqkv"):
        table[f"ex6_{name}"] = projection
    for name in ("dy", "dWo", "dbo"):  # their cell has one hint
        table[f"ex6_{name}"] = _codes(*SHAPE_ALL, "shape.missing_sum", "hardcoded_size", *values, hint=1)
    for name in ("datt", "dv"):
        table[f"ex6_{name}"] = {**_codes("other_tensor", "local_only", "shape.transposed", hint=1),
                                **_codes("sign", "scale.other", hint=2)}
    for ln in ("ln2", "ln1"):  # their cells' one hint, "as for lnf", but at the diff and the mean
        for name in ("xhat", "gain", "bias", "rstd"):
            table[f"ex6_d{ln}_{name}"] = _codes(*summed, *values, hint=1)
        table[f"ex6_d{ln}_var"] = _codes("epsilon", "sign", "scale.other", "local_only", hint=1)
        table[f"ex6_d{ln}_diff"] = _codes("layernorm.bessel", "branch.missing", "alias", "scale.other", "sign", hint=1)
        table[f"ex6_d{ln}_mean"] = {**_codes("sign", "other_tensor", hint=1), **_codes(*summed, hint=2)}
    for name in ("dq", "dk"):
        table[f"ex6_{name}"] = {**_codes("other_tensor", "local_only", "attention.scale", *SHAPE_ALL, hint=1),
                                **_codes("attention.k_transpose", hint=2)}
        table[f"ex6_{name}_h"] = {**_codes("attention.k_transpose", "attention.scale", "shape.transposed", *values,
                                           hint=1),
                                  **_codes("softmax.row_sum", "attention.future_leak", hint=2)}
    return table


POINTERS.update(_ex6_pointers())


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
    """The forward line an Exercise 1 (or notebook 06 Part 1) answer cell undoes (its heading), else the id."""
    return next((line.code for line in EX1_LINES + EX6_LINES if line.answer_id == answer_id), answer_id)


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
