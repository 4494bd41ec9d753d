"""The diagnosis codes: one table of every mistake ``diagnose`` can name, its meaning and its message.

The codes are stable and light to import (no torch): the grading results, the
feedback, the hints (``autograder.diagnosis.hints``) and the class report
(``autograder.checking.class_mistakes``) count and look up by them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    """One row of the diagnosis table: the stable code, what it means, the message it prints."""

    code: str
    meaning: str
    message: str  # a template: ``{placeholders}`` are filled in per case


# The one table of diagnoses. The codes are stable: the grading results, the
# feedback and the class report count by them. README's hints paragraph shows
# this table (``codes_markdown``; tests/test_diagnose.py keeps them equal).
CODES: tuple[Code, ...] = (
    Code("shape.missing_dim", "a size-1 dimension is missing (a sum without keepdim=True)",
         "a dimension of size 1 is missing: {have} should be {want}{values}; sum with keepdim=True to keep it"),
    Code("shape.extra_dim", "an extra size-1 dimension (keepdim=True where the tensor has no such dimension)",
         "an extra dimension of size 1: {have} should be {want}{values}; sum without keepdim=True "
         "(or drop the extra dimension)"),
    Code("shape.transposed", "the right values, transposed",
         "transposed: the values are right but {have} should be {want}; swap the operands of the product"),
    Code("shape.broadcast_hidden", "a smaller shape that broadcasts to the right one",
         "{have} broadcasts to {want}, which hides the mismatch in arithmetic: a gradient has its "
         "tensor's full shape, so spread it over the broadcast dimensions"),
    Code("shape.missing_sum", "not summed over the dimensions the forward pass broadcast",
         "{have} where {want} is expected: the forward pass broadcast this tensor{over}, and a broadcast "
         "in the forward pass is a sum in the backward pass: sum over those dimensions{values}"),
    Code("shape.wrong_dim", "summed over the wrong dimension",
         "summed over the wrong dimension: the result must have shape {want}, not {have}"),
    Code("shape.view", "the right values in another arrangement of the same size",
         "the values are right but the shape is {have}: view it as {want}"),
    Code("sign", "the sign is flipped",
         "sign flipped: check the sign of the local derivative (a minus sign, or a subtraction's second operand)"),
    Code("scale.1/n", "off by n or 1/n: the mean's 1/n missing or applied twice",
         "off by a factor of {factor} = {detail}"),
    Code("scale.bessel", "off by n/(n-1) or (n-1)/n: Bessel's correction",
         "off by a factor of {factor} = {detail}"),
    Code("scale.other", "off by another constant factor, clearly different from 1",
         "off by a constant factor of {factor}{detail}: the shape of the formula is right, a constant is not"),
    Code("epsilon", "a tiny relative error, largest where the variance is smallest: BatchNorm's epsilon",
         "nearly right: off by at most {relative} of its scale, most where the variance is smallest; "
         "that is the mark of a wrong epsilon: check that it is (bnvar + 1e-5), added, in every power of the variance "
         "(in a LayerNorm: its var + 1e-5)"),
    Code("branch.missing", "a tensor used twice gets only one of its two contributions",
         "only one of the two uses of {name} is counted (through {use}); it also feeds {other}: "
         "add that contribution with +=, do not overwrite with ="),
    Code("other_tensor", "another tensor: a neighbour's gradient, the forward value itself, or the parameter",
         "this is {what}, not the gradient of {name}"),
    Code("local_only", "the local derivative without the upstream gradient",
         "this is the local derivative alone: multiply it by the gradient arriving from above (the chain rule)"),
    Code("local_other", "the right shape, but a neighbouring tensor (or a simple function of it) where the local "
         "derivative belongs",
         "the right shape, but the values are {candidate} times {upstream}, the gradient arriving from above: "
         "{tensor} is not the local derivative of `{line}` with respect to {name}; derive that line again"),
    Code("scatter.repeats", "dC[Xb] += demb keeps one contribution of a repeated character",
         "a character that appears several times in the batch kept only one contribution: "
         "dC[Xb] += demb does not add up repeated rows; accumulate them one by one or with index_add_"),
    Code("alias", "a gradient changed in place through another name (assigned without .clone())",
         "{variable} and {other} are the same tensor in memory ({other} = {variable} without .clone()), so "
         "the in-place += on {other} changed {variable} too: copy with .clone()"),
    Code("order", "Exercise 4: the right gradients in other places, or one parameter's gradient in another's place",
         "not in the order of the parameters: {detail}; return the gradients as {expected}"),
    Code("hardcoded_size", "right on the notebook's sizes, wrong on others: a size typed in as a number",
         "it works on the notebook's sizes ({notebook}) but not on others ({hidden}){literals}: "
         "take every size from the tensors (.shape) or from the variables that hold it (n; B, T, C, nh, hs, M, V)"),
    Code("offset", "every entry off by the same amount",
         "every entry is off by the same amount ({offset:+.4g}): the gradient did not start from zero "
         "(ones_like instead of zeros_like?) or a constant was added"),
    Code("zeros", "all zeros where the gradient is not",
         "all zeros: nothing reached it (a contribution was never added in, or the wrong positions were set)"),
    Code("nan", "NaN or inf entries",
         "a NaN or inf comes from a division by zero, a log of 0 or an exp that overflowed: look for those"),
    Code("int_dtype", "an integer tensor",
         "an integer tensor cannot hold a gradient: it was made from integer data (F.one_hot, "
         "dtype=torch.long, arange); make it a float tensor (.float(), or dtype=torch.float32)"),
    Code("upstream", "right given right inputs: a gradient the line uses is wrong (a cascade from an earlier line)",
         "this line looks right; it uses {inputs}, which {verb} wrong: fix {pronoun} first"),
    Code("none", "failed, and no known mistake fits",
         "no specific diagnosis: go through the derivation of this line again"),
    Code("unknown", "not a float tensor at all (None, a number, a list): nothing to diagnose",
         "nothing to diagnose: the answer must be a float tensor of the tensor's shape"),
    # Notebook 06: the mistakes a transformer block invites.
    Code("attention.future_leak", "a gradient that reaches masked (future) positions",
         "a gradient reaches the future: {detail}; a masked score is a constant -inf, its probability exactly 0, "
         "so no gradient may flow there (use the masked attention, not a softmax without the mask)"),
    Code("attention.scale", "the attention's 1/sqrt(hs) missing or applied twice",
         "off by a factor of {factor} = {detail}: the scores are scaled by 1/sqrt(hs) once, so their gradient "
         "carries that factor once"),
    Code("layernorm.bessel", "LayerNorm's variance taken with Bessel's correction (C - 1) where the forward divides by C",
         "this is the gradient of a variance divided by C - 1 (Bessel's correction, {where}); LayerNorm's "
         "variance divides by C, the number of features of one position: there is no n/(n-1) here"),
    Code("softmax.row_sum", "the softmax's backward without its row-sum term",
         "the softmax's backward is missing its row-sum term: the probabilities of a row share one normaliser, "
         "so a change of one score moves every probability of its row, and P * dP alone counts only the direct path"),
    Code("attention.k_transpose", "the keys' gradient from the scores' gradient not transposed (or the queries' "
                                  "from a transposed one)",
         "the right shape from the wrong product: {detail}; dS[t, s] belongs to query t and key s, so a key's "
         "gradient adds up over the queries that looked at it, a query's over the keys it looked at"),
)
CODES_BY_NAME = {code.code: code for code in CODES}
NO_HINT = CODES_BY_NAME["none"].message


@dataclass(frozen=True)
class Diagnosis:
    """A diagnosis: its code (see ``CODES``) and the one line the student reads."""

    code: str
    message: str


def diagnosis(code: str, **fields) -> Diagnosis:
    """The diagnosis ``code`` with its message filled in from ``fields``."""
    return Diagnosis(code, CODES_BY_NAME[code].message.format(**fields))


NOTHING_FITS = diagnosis("none")


def upstream(inputs: list[str] | tuple[str, ...]) -> Diagnosis:
    """A line that is right given right inputs, which uses the wrong gradients ``inputs`` (a cascade)."""
    names = [f"`{name}`" for name in inputs]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return diagnosis("upstream", inputs=listed, verb="is" if len(names) == 1 else "are",
                     pronoun="that" if len(names) == 1 else "those")


def codes_markdown() -> str:
    """The table of codes as Markdown (README's hints paragraph shows it)."""
    rows = ["| code | meaning | message |", "|---|---|---|"]
    for code in CODES:
        message = code.message.replace("|", "\\|")
        rows.append(f"| `{code.code}` | {code.meaning} | {message} |")
    return "\n".join(rows)
