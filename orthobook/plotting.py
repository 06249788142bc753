"""The book's figures, in one style.

Every function draws on a given ``ax`` (or a new one) inside :func:`book_style`, and
returns the axes, so a chapter cell is one call. Importing this module changes no
global matplotlib setting.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from orthobook.train import History

__all__ = [
    "STYLE",
    "book_style",
    "figure",
    "plot_curves",
    "plot_digit",
    "plot_gradient_norms",
    "plot_pixel_sequence",
    "plot_probe",
    "plot_sequence_heatmap",
    "plot_singular_values",
]

STYLE: dict[str, object] = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "axes.prop_cycle": plt.cycler(
        color=["#1b6ca8", "#d1495b", "#edae49", "#00798c", "#6c4f8c", "#66a182", "#8d96a3", "#2e4057"]
    ),
}


# Note [interactive flag and the inline backend]
# The first pyplot figure of a Jupyter kernel loads the inline backend, which turns matplotlib's
# interactive mode on; that is what makes every later figure show at the end of its cell. When
# that first figure is made inside rc_context, leaving the context restores interactive = False
# and no later figure is shown. book_style therefore keeps the interactive flag as the block
# left it, and restores every other setting.


@contextmanager
def book_style() -> Iterator[None]:
    """Context in which matplotlib uses the book's style (:data:`STYLE`).

    Every setting is restored on exit except the interactive flag, which a backend loaded
    inside the block may have switched on (Note [interactive flag and the inline backend]).
    """
    with plt.rc_context(STYLE):
        try:
            yield
        finally:
            interactive = matplotlib.is_interactive()
    matplotlib.interactive(interactive)


def figure(ncols: int = 1, nrows: int = 1, *, width: float = 6.4, height: float = 3.6) -> tuple[Figure, np.ndarray]:
    """A new figure in the book's style with an array of ``nrows × ncols`` axes."""
    with book_style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained")
    return fig, axes.ravel()


def _axes(ax: Axes | None) -> Axes:
    return figure()[1][0] if ax is None else ax


def _finish(ax: Axes, log: bool, title: str | None) -> None:
    """The common end of the curve plots: y scale, title, legend."""
    if log:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()


def _numpy(values: torch.Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    """``values`` as a float NumPy array on the CPU, detached from any graph."""
    return np.asarray(torch.as_tensor(values).detach().cpu(), dtype=float)


def _smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Running mean over ``window`` points (valid part only; the input when it is shorter)."""
    y = np.asarray(values, dtype=float)
    if window <= 1 or len(y) < window:
        return y
    return np.convolve(y, np.ones(window) / window, mode="valid")


def plot_curves(
    histories: Mapping[str, History | Sequence[History]],
    metric: str = "loss",
    *,
    baseline: float | None = None,
    ax: Axes | None = None,
    log: bool = True,
    smooth: int = 1,
    title: str | None = None,
) -> Axes:
    """Training curves: ``metric`` against the step, one line per labelled run.

    A label that maps to several histories (one per seed, logged at the same steps) is drawn
    as the median over the seeds with a band from the lowest to the highest seed.

    Args:
        histories: ``label → History`` or ``label → [History, ...]`` (seeds).
        metric: ``"loss"``, ``"accuracy"`` or ``"grad_norm"``.
        baseline: draw the memoryless baseline as a dashed line.
        ax: axes to draw on (a new figure when ``None``).
        log: logarithmic y axis.
        smooth: running-mean window over logged steps.
        title: axes title.
    """
    if metric not in ("loss", "accuracy", "grad_norm"):
        raise ValueError(f"metric must be 'loss', 'accuracy' or 'grad_norm', got {metric!r}")
    ax = _axes(ax)
    with book_style():
        for label, runs in histories.items():
            runs = [runs] if isinstance(runs, History) else list(runs)
            steps = runs[0].step
            if any(run.step != steps for run in runs):
                raise ValueError(f"the seeds of {label!r} are not logged at the same steps")
            y = np.stack([_smooth([np.nan if v is None else v for v in getattr(run, metric)], smooth) for run in runs])
            x = np.asarray(steps[len(steps) - y.shape[1] :])
            if len(runs) == 1:
                ax.plot(x, y[0], label=label)
                continue
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a step no seed logged stays a gap
                median, low, high = np.nanmedian(y, axis=0), np.nanmin(y, axis=0), np.nanmax(y, axis=0)
            (line,) = ax.plot(x, median, label=f"{label} (median, {len(runs)} seeds)")
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        if baseline is not None:
            ax.axhline(baseline, color="k", linestyle="--", linewidth=1, label="memoryless baseline")
        ax.set_xlabel("training step")
        ax.set_ylabel({"loss": "loss", "accuracy": "accuracy", "grad_norm": "gradient norm ‖∇θ L‖"}[metric])
        _finish(ax, log, title)
    return ax


def plot_probe(
    histories: Mapping[str, History],
    name: str,
    *,
    ylabel: str,
    ax: Axes | None = None,
    log: bool = True,
    title: str | None = None,
) -> Axes:
    """A scalar probe recorded during training against the step, one line per labelled run.

    Args:
        histories: ``label → History`` whose ``probes[name]`` holds ``(step, value)`` pairs with
            a number as value (see the ``probes`` argument of :func:`~orthobook.train.train`).
        name: the probe to draw.
        ylabel: what the probe measures (with units), e.g. ``"‖UᵀU − I‖_F"``.
        ax: axes to draw on (a new figure when ``None``).
        log: logarithmic y axis.
        title: axes title.

    Raises:
        KeyError: a history has no probe ``name``.
    """
    ax = _axes(ax)
    with book_style():
        for label, history in histories.items():
            if name not in history.probes:
                raise KeyError(f"history {label!r} has no probe {name!r}; it has {sorted(history.probes)}")
            steps, values = zip(*history.probes[name]) if history.probes[name] else ((), ())
            ax.plot(np.asarray(steps, dtype=float), np.asarray(values, dtype=float), marker=".", label=label)
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        _finish(ax, log, title)
    return ax


def plot_gradient_norms(
    norms: Mapping[str, torch.Tensor | Sequence[float]],
    *,
    ax: Axes | None = None,
    log: bool = True,
    title: str | None = None,
    lag_axis: bool = True,
) -> Axes:
    """``‖∂L/∂h_t‖`` against the lag ``T − t`` (or against ``t``), one line per label.

    Args:
        norms: ``label → (T,)`` norms indexed by time step ``t = 1 … T``.
        ax: axes to draw on.
        log: logarithmic y axis (gradients vanish and explode exponentially).
        title: axes title.
        lag_axis: plot against the lag ``T − t`` (steps back from the loss) instead of ``t``.
    """
    ax = _axes(ax)
    with book_style():
        for label, values in norms.items():
            y = _numpy(values)
            x = np.arange(len(y))
            ax.plot(x, y[::-1] if lag_axis else y, label=label)
        ax.set_xlabel("lag T − t (steps back from the loss)" if lag_axis else "time step t")
        ax.set_ylabel("‖∂L/∂h_t‖")
        _finish(ax, log, title)
    return ax


def plot_singular_values(
    values: Mapping[str, torch.Tensor | Sequence[float]],
    *,
    ax: Axes | None = None,
    bins: int = 40,
    title: str | None = None,
) -> Axes:
    """Histograms of singular values, one per label (e.g. per training step)."""
    ax = _axes(ax)
    with book_style():
        for label, s in values.items():
            ax.hist(_numpy(s), bins=bins, alpha=0.55, label=label)
        ax.set_xlabel("singular value σ_i")
        ax.set_ylabel("count")
        _finish(ax, False, title)
    return ax


def _as_array(values: torch.Tensor | np.ndarray | Sequence[float], name: str, ndim: int) -> np.ndarray:
    array = _numpy(values)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")
    return array


def plot_sequence_heatmap(
    x: torch.Tensor | np.ndarray,
    *,
    ax: Axes | None = None,
    ylabel: str = "feature",
    title: str | None = None,
    cmap: str = "Blues",
    colorbar: bool = False,
) -> Axes:
    """One input or target sequence as an image: time on the x axis, features on the y axis.

    Args:
        x: (seq_len, features), e.g. one one-hot copy-task input or a row of class probabilities.
        ax: axes to draw on (a new figure when ``None``).
        ylabel: what the rows are (``"symbol"``, ``"class"``).
        title: axes title.
        cmap: matplotlib colour map.
        colorbar: add a colour bar beside the axes.

    Raises:
        ValueError: ``x`` is not 2-D.
    """
    values = _as_array(x, "x", 2)
    ax = _axes(ax)
    with book_style():
        image = ax.imshow(values.T, aspect="auto", origin="lower", interpolation="nearest", cmap=cmap)
        ax.grid(False)
        ax.set_xlabel("time step t")
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        if colorbar:
            ax.figure.colorbar(image, ax=ax)
    return ax


def plot_digit(image: torch.Tensor | np.ndarray, *, ax: Axes | None = None, title: str | None = None) -> Axes:
    """An MNIST image (raw or normalised) as a 28 × 28 grey-scale picture.

    Args:
        image: (28, 28), or (784,) / (784, 1) row-major pixels (a pixel-view sequence).
        ax: axes to draw on.
        title: axes title.

    Raises:
        ValueError: ``image`` does not hold 784 pixels.
    """
    pixels = _numpy(image)
    if pixels.size != 784:
        raise ValueError(f"image must hold 28 × 28 = 784 pixels, got shape {pixels.shape}")
    ax = _axes(ax)
    with book_style():
        ax.imshow(pixels.reshape(28, 28), cmap="gray_r", interpolation="nearest")
        ax.grid(False)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        if title:
            ax.set_title(title)
    return ax


def plot_pixel_sequence(
    sequence: torch.Tensor | np.ndarray,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    label: str | None = None,
    rows: bool = True,
) -> Axes:
    """A pixel-view MNIST sequence as a line over its 784 time steps.

    Args:
        sequence: (784,) or (784, 1) pixel values in reading order.
        ax: axes to draw on.
        title: axes title.
        label: legend label of the line.
        rows: mark the start of every image row (every 28 steps) with a faint line; meaningful
            only for unpermuted sequences.

    Raises:
        ValueError: ``sequence`` does not hold 784 steps.
    """
    y = _numpy(sequence).reshape(-1)
    if y.size != 784:
        raise ValueError(f"sequence must hold 784 pixel steps, got {y.size}")
    ax = _axes(ax)
    with book_style():
        if rows:
            for start in range(28, 784, 28):
                ax.axvline(start, color="0.85", linewidth=0.5, zorder=0)
        ax.plot(np.arange(784), y, linewidth=0.8, label=label)
        ax.set_xlim(0, 783)
        ax.set_xlabel("time step t (pixel)")
        ax.set_ylabel("input x_t")
        if title:
            ax.set_title(title)
        if label:
            ax.legend()
    return ax
