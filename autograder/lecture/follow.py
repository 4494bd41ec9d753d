"""Follow the learner's own names: find the lecture's quantities among what their setup made, and the references.

Trusted side. The setup child hands back, as data, every small tensor the
learner's setup cells left (their parameters, batch and forward pass, under
their names), its ``.grad`` from their own ``loss.backward()``, their
numbers and lists (``Setup``). ``follow`` then

1. finds their parameters (by the lecture's names, else by a list of seven
   whose shapes fit, else by shape among the leaves) and their batch (by
   name, else the integer tensors that reproduce their loss);
2. recomputes the lecture's forward pass on those parameters and that batch,
   with autograd, here (``setting.references``);
3. maps each quantity of the lecture (``emb`` ... ``loss``) to the learner's
   variable: the one with the lecture's name, else the one whose values are
   that quantity's, else the tensor their own ``cmp('h', da, a)`` compares;
4. decides the references: when every quantity it could map has the values
   of the recomputation (their forward pass is the lecture's), the
   references are the recomputed gradients (``verified``), so nothing the
   learner's code wrote into a ``.grad`` counts; when their forward pass is
   another (a variance without Bessel's correction, say), the references are
   the ``.grad`` of their own tensors, as their own ``cmp`` uses them, and
   each verdict says it could not be verified.

When their setup could not be run here (a download, a file of their own) or
their parameters or batch cannot be found, the lecture's own setting stands
in (``origin == "lecture"``), under the lecture's names, and a note says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..diagnosis.diagnose import context_of
from ..kinds.cases import forward_namespace
from ..workbook import model
from ..workbook.data import VOCAB_SIZE
from . import setting

QUANTITIES = tuple(name for name in model.CHUNKED_NAMES)  # emb ... loss, in the order the forward pass makes them


@dataclass
class Setup:
    """What the setup child handed back, decoded (``values``: tensors without grad, numbers)."""

    values: dict[str, object] = field(default_factory=dict)
    grads: dict[str, torch.Tensor] = field(default_factory=dict)
    leaves: set[str] = field(default_factory=set)
    lists: dict[str, list[str]] = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)
    failed: str = ""  # why the setup child gave nothing back


@dataclass
class Followed:
    """The lecture's quantities in the learner's notebook, and the references to judge their gradients by."""

    origin: str  # "notebook": their own setup; "lecture": the lecture's setting stands in
    namespace: dict[str, object]  # what their answers run on: their names -> values (no .grad), plus lists
    lists: dict[str, list[str]]  # their lists of tensors, by member names (``parameters``)
    names: dict[str, str]  # lecture quantity (forward tensors, parameters, Xb, Yb) -> their variable
    references: dict[str, torch.Tensor]  # "d<quantity>" -> the reference gradient
    verified: bool  # the references were recomputed here from their parameters and batch
    context: dict  # what ``diagnose`` knows of the forward pass, under the lecture's names
    notes: list[str] = field(default_factory=list)

    def learner(self, quantity: str) -> str:
        """The learner's name for a lecture quantity (the lecture's own when they have none)."""
        return self.names.get(quantity, quantity)


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same values up to float32 rounding (a forward pass computed in another order)."""
    if a.shape != b.shape or not (a.is_floating_point() and b.is_floating_point()):
        return False
    a, b = a.detach().double(), b.detach().double()
    return bool(torch.isfinite(a).all()) and (a - b).abs().max().item() <= 1e-5 * b.abs().max().item() + 1e-7


def follow(setup: Setup | None, cmps: list[tuple[str, str, str]]) -> Followed:
    """The learner's quantities and the references (see the module's docstring)."""
    if setup is None or setup.failed:
        why = setup.failed if setup is not None else "there was no setup before the exercises"
        return lecture_setting(f"your setup cells could not be run here ({why})")
    tensors = {name: value for name, value in setup.values.items() if isinstance(value, torch.Tensor)}
    parameters = find_parameters(tensors, setup.leaves, setup.lists)
    if parameters is None:
        return lecture_setting("the parameters C, W1, b1, W2, b2, bngain, bnbias were not found among what your "
                               "setup cells made" + _first_error(setup))
    batch = find_batch(tensors, [tensors[name] for name in parameters])
    if batch is None:
        return lecture_setting("the batch Xb, Yb was not found among what your setup cells made" + _first_error(setup))
    params = [tensors[name].float() for name in parameters]
    Xb, Yb = tensors[batch[0]], tensors[batch[1]]
    forward, grads = setting.references(params, Xb, Yb)
    names = dict(zip(model.PARAM_NAMES, parameters)) | {"Xb": batch[0], "Yb": batch[1]}
    mismatched = _map_quantities(names, tensors, forward, cmps)
    verified = not mismatched
    notes = []
    references = dict(grads)
    if not verified:
        own = {f"d{q}": setup.grads[names[q]] for q in (*QUANTITIES, *model.PARAM_NAMES)
               if names.get(q) in setup.grads and q != "loss"}
        references.update(own)
        notes.append(f"your forward pass is not the lecture's ({', '.join(mismatched[:4])} differ from the lecture's "
                     "on your parameters and batch): your gradients are checked against the .grad of your own "
                     "forward pass, as your cmp does, which this checker cannot recompute")
    # Their own values under their own names; where their setup left a lecture name undefined (a forward
    # cell cut short, say) and their forward pass is the lecture's, the recomputed value fills the gap.
    namespace = forward_namespace(params, Xb, Yb) if verified else {}
    namespace.update(setup.values)
    context = context_of(forward, forward.inputs) if verified else _own_context(names, tensors, references, Xb, Yb)
    return Followed("notebook", namespace, dict(setup.lists), names, references, verified, context, notes)


def lecture_setting(why: str) -> Followed:
    """The lecture's own setting, under its names, when the learner's cannot be followed."""
    parameters, Xb, Yb = setting.lecture_inputs()
    forward, grads = setting.references(parameters, Xb, Yb)
    names = {q: q for q in (*QUANTITIES, *model.PARAM_NAMES, "Xb", "Yb")}
    note = f"{why}: your answers were run on the lecture's own parameters and batch, under the lecture's names"
    return Followed("lecture", setting.lecture_namespace(parameters, Xb, Yb), {}, names, dict(grads), True,
                    context_of(forward, forward.inputs), [note])


def _first_error(setup: Setup) -> str:
    if not setup.errors:
        return ""
    error = setup.errors[0]
    return f" (cell {error['cell'] + 1}, line {error['line']}: {error['error'][:160]})"


# ------------------------------------------------------------------ parameters and batch

def _shapes_fit(shapes: list[tuple[int, ...]]) -> bool:
    """C (V, E), W1 (3E, H), b1 (H,), W2 (H, V), b2 (V,), bngain (1, H), bnbias (1, H)."""
    if len(shapes) != 7 or any(len(s) != d for s, d in zip(shapes, (2, 2, 1, 2, 1, 2, 2))):
        return False
    (V, E), (BE, H), (h1,), (h2, V2), (V3,), (one1, h3), (one2, h4) = shapes
    return (V == V2 == V3 == VOCAB_SIZE and E > 0 and BE % E == 0 and H == h1 == h2 == h3 == h4
            and one1 == one2 == 1)


def find_parameters(tensors: dict[str, torch.Tensor], leaves: set[str],
                    lists: dict[str, list[str]]) -> list[str] | None:
    """The learner's names of C, W1, b1, W2, b2, bngain, bnbias; None when they cannot be told."""
    floats = {n: t for n, t in tensors.items() if t.is_floating_point()}

    def fits(names: list[str]) -> bool:
        return all(n in floats for n in names) and _shapes_fit([tuple(floats[n].shape) for n in names])

    by_name = list(model.PARAM_NAMES)
    if fits(by_name):
        return by_name
    lowered = {n.lower(): n for n in floats}
    by_lower = [lowered.get(n.lower(), "") for n in model.PARAM_NAMES]
    if fits(by_lower):
        return by_lower
    for members in lists.values():  # their `parameters = [C, W1, ...]`
        if len(members) == 7 and fits(list(members)):
            return list(members)
    candidates = [n for n in floats if n in leaves]
    by_shape = []
    for index in range(7):
        chosen = next((n for n in candidates if n not in by_shape and _fits_role(index, floats[n], floats, by_shape)),
                      None)
        if chosen is None:
            return None
        by_shape.append(chosen)
    return by_shape if fits(by_shape) else None


def _fits_role(index: int, t: torch.Tensor, floats: dict, chosen: list[str]) -> bool:
    shape = tuple(t.shape)
    if index == 0:
        return len(shape) == 2 and shape[0] == VOCAB_SIZE
    E = floats[chosen[0]].shape[1]
    if index == 1:
        return len(shape) == 2 and shape[0] % E == 0 and shape[1] != VOCAB_SIZE
    H = floats[chosen[1]].shape[1]
    return {2: shape == (H,), 3: shape == (H, VOCAB_SIZE), 4: shape == (VOCAB_SIZE,),
            5: shape == (1, H) and t.mean().item() > 0.5, 6: shape == (1, H) and t.mean().item() <= 0.5}[index]


def find_batch(tensors: dict[str, torch.Tensor], params: list[torch.Tensor]) -> tuple[str, str] | None:
    """The learner's names of Xb (n, block) and Yb (n,): by name, else the pair that reproduces their loss."""
    block = params[1].shape[0] // params[0].shape[1]

    def integer(t: torch.Tensor) -> bool:
        return not t.is_floating_point() and t.dtype != torch.bool and t.numel() > 0 \
            and 0 <= t.min().item() and t.max().item() < VOCAB_SIZE

    xs = [n for n, t in tensors.items() if integer(t) and t.dim() == 2 and t.shape[1] == block]
    ys = [n for n, t in tensors.items() if integer(t) and t.dim() == 1]
    pairs = [(x, y) for x in xs for y in ys if tensors[x].shape[0] == tensors[y].shape[0]]
    if ("Xb", "Yb") in pairs:
        return "Xb", "Yb"
    losses = [t for n, t in sorted(tensors.items(), key=lambda item: item[0] != "loss")
              if t.is_floating_point() and t.dim() == 0]
    for x, y in pairs:
        with torch.no_grad():
            loss = model.fused_forward([p.float() for p in params], tensors[x], tensors[y], retain=False).loss
        if any(close(loss, own) for own in losses):
            return x, y
    named = [(x, y) for x, y in pairs if x.lower().startswith("x") and y.lower().startswith("y")]
    return (named or pairs or [None])[0]


# ------------------------------------------------------------------ the forward pass

def _map_quantities(names: dict[str, str], tensors: dict[str, torch.Tensor], forward: model.Tensors,
                    cmps: list[tuple[str, str, str]]) -> list[str]:
    """Fill ``names`` with the learner's variable of each forward quantity; the quantities whose values differ."""
    compared = {}  # lecture quantity -> the tensor their own cmp compares under that label
    for label, _gradient, tensor in cmps:
        if tensor in tensors:
            compared.setdefault(label, tensor)
    taken = set(names.values())
    mismatched = []
    for quantity in QUANTITIES:
        reference = forward[quantity].detach()
        own = tensors.get(quantity)
        if own is not None and own.is_floating_point():
            names[quantity] = quantity
            if not close(own, reference):
                mismatched.append(quantity)
            continue
        by_value = [n for n, t in tensors.items() if n not in taken and close(t, reference)]
        by_value.sort(key=lambda n: n != compared.get(quantity))
        if by_value:
            names[quantity] = by_value[0]
            taken.add(by_value[0])
        elif quantity in compared:
            names[quantity] = compared[quantity]
            mismatched.append(quantity)
    return mismatched


def _own_context(names: dict[str, str], tensors: dict[str, torch.Tensor], references: dict[str, torch.Tensor],
                 Xb: torch.Tensor, Yb: torch.Tensor) -> dict:
    """``diagnose``'s context from the learner's own forward pass (values under the lecture's names)."""
    context: dict[str, object] = {q: tensors[n] for q, n in names.items() if n in tensors}
    context.update(references)
    context.update(Xb=Xb, Yb=Yb, n=len(Yb))
    return context
