"""Figures of tensors for the notebooks, drawn with matplotlib: heatmaps, bars and training curves.

Each function draws on axes the caller gives it, so a notebook cell decides
the layout and ends with ``plt.show()``. Tensors may still track gradients:
they are detached before drawing. Drawings of graphs are in ``drawing``.
"""

from __future__ import annotations

import torch
from matplotlib.patches import Rectangle

from .data import CHARS


def _numpy(t: torch.Tensor):
    return t.detach().cpu().numpy()


def signed_heatmap(ax, values: torch.Tensor, title: str = "", limit: float | None = None):
    """Draw ``values`` (rows, cols) with 0 white, positive red, negative blue.

    The colour scale is symmetric, ``[-limit, limit]``, by default the largest
    magnitude in ``values``. Returns the image, for a colour bar.
    """
    array = _numpy(values)
    if limit is None:
        limit = float(abs(array).max()) or 1.0
    image = ax.imshow(array, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    ax.set_title(title)
    return image


def outline_targets(ax, Yb: torch.Tensor, color: str = "black") -> None:
    """Outline cell (i, Yb[i]) in every row i: the correct class of each example."""
    for row, target in enumerate(Yb.tolist()):
        ax.add_patch(Rectangle((target - 0.5, row - 0.5), 1, 1, fill=False, edgecolor=color, linewidth=1.2))


def vocabulary_axis(ax) -> None:
    """Label the x axis with the 27 characters ('.' then a-z)."""
    ax.set_xticks(range(len(CHARS)), list(CHARS))


def probabilities_and_gradient(ax, probs_row: torch.Tensor, grad_row: torch.Tensor, target: int) -> None:
    """Bars of one example's probabilities (V,) beside its gradient (V,), correct class in bold.

    Pass ``n * dlogits[i]`` as ``grad_row`` to see it without the 1/n of the mean.
    """
    positions = torch.arange(len(CHARS)).numpy()
    ax.bar(positions - 0.2, _numpy(probs_row), width=0.4, label="probability $p$")
    ax.bar(positions + 0.2, _numpy(grad_row), width=0.4, label="gradient $\\times\\, n$")
    ax.axhline(0, color="black", linewidth=0.8)
    vocabulary_axis(ax)
    label = ax.get_xticklabels()[target]
    label.set_fontweight("bold")
    label.set_color("crimson")
    ax.legend(loc="lower right")


def averaged_curve(values: list[float], window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of consecutive windows of ``values``: (x at each window's centre, mean).

    A trailing partial window is dropped.
    """
    usable = len(values) // window * window
    means = torch.tensor(values[:usable]).view(-1, window).mean(1)
    centres = torch.arange(len(means)) * window + window / 2
    return centres, means


# ------------------------------------------------------------------ Exercise 4: the training run


def loss_curve(ax, lossi: list[float], val_points: list[tuple[int, float]]) -> None:
    """A run's log10 loss: the mean of each window of steps (1,000 of 200,000) and the validation points.

    ``lossi``: log10 of every step's minibatch loss; ``val_points``: (step, log10 validation loss).
    """
    window = max(1, min(1000, len(lossi) // 100))
    steps, curve = averaged_curve(lossi, window)
    ax.plot(steps, curve, label=f"train (mean of {window} steps)")
    ax.plot(*zip(*val_points), "o", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("log10 loss")


def replay_curves(ax, lossi: list[float], replayed: list[float]) -> None:
    """The first ``len(replayed)`` steps of ``lossi`` (manual gradients) over the replay's (autograd's), step by step."""
    steps = len(replayed)
    ax.plot(lossi[:steps], label="manual_backward", linewidth=3, alpha=0.5)
    ax.plot(replayed, label="autograd", linewidth=1)
    ax.set_xlabel("step")
    ax.set_title(f"the first {steps} steps, one point per step")
    ax.legend()
