"""The book's figures, in one style.

Every function draws on a given ``ax`` (or a new one) inside :func:`book_style`, and
returns the axes, so a chapter cell is one call. Importing this module changes no
global matplotlib setting.
"""

from __future__ import annotations

import itertools
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
    "COLUMN_WIDTH",
    "LINESTYLES",
    "MARKERS",
    "MIN_ROW_HEIGHT",
    "PALETTE",
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

#: Okabe & Ito's colour-blind-safe palette (black left out: it is the reference lines' colour),
#: yellow last as it is the faintest on white.
PALETTE: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442")
#: One dash pattern per colour, cycled together with it, so that series sharing an axis differ
#: in two ways (and still differ in grey-scale print).
LINESTYLES: tuple[str | tuple[float, tuple[float, ...]], ...] = (
    "-",
    (0, (5, 2)),
    (0, (1, 1.5)),
    (0, (6, 2, 1, 2)),
    (0, (10, 3)),
    (0, (3, 1.5, 1, 1.5, 1, 1.5)),
    (0, (8, 2, 2, 2)),
)
#: The markers the curve plots put on their lines, a few along each line, one per series in
#: the order of the palette.
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X")
#: Width of the book's text column in inches at ``figure.dpi`` (about 750 px in the HTML
#: theme): :func:`figure` keeps figures within it, so the page shows them at their own size and
#: the fonts of :data:`STYLE` are the sizes the reader sees (Note [figure sizes and fonts]).
COLUMN_WIDTH = 7.5
#: The least height in inches of a row of panels in a figure scaled down to the column.
MIN_ROW_HEIGHT = 2.4

#: The book's matplotlib settings, applied inside :func:`book_style`.
STYLE: dict[str, object] = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 11,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "lines.markersize": 4.5,
    "axes.prop_cycle": plt.cycler(color=list(PALETTE), linestyle=list(LINESTYLES)),
}


# Note [figure sizes and fonts]
# The HTML page shows a figure at figure.dpi pixels per inch unless it is wider than the text
# column (COLUMN_WIDTH), in which case the browser shrinks it, fonts and all: a 13-inch figure
# of three panels ends up with 5-pixel legends. figure() therefore lays out at most two panels
# a row (more are wrapped onto further rows) and scales a figure wider than the column down to
# it before anything is drawn, so matplotlib lays out the text at its real size (9 pt ticks and
# legends, 10 pt labels). Inside a notebook, book_style also makes the figures high-density
# PNGs (IPython's "retina" format: twice the pixels, shown at the same size), so that they are
# sharp on high-density screens (Note [retina figures]).

# Note [retina figures]
# IPython turns a figure into an output through the formatters of its display system; the
# inline backend registers plain PNG ones when it is loaded, which happens at the first pyplot
# figure of a kernel (inside book_style). book_style sets the inline backend's figure_formats to
# {"retina"} (so that loading the backend registers retina PNGs) and registers them itself (so
# that a backend already loaded does too). The PNG output carries its display width and height
# in its metadata, which myst-nb writes into the page's <img>. Outside IPython nothing happens.


def _retina_figures() -> None:
    """Make IPython display figures as high-density PNGs (Note [retina figures])."""
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    try:
        from matplotlib_inline.backend_inline import InlineBackend
    except ImportError:
        kwargs: dict[str, object] = {"bbox_inches": "tight"}
    else:
        config = InlineBackend.instance(parent=shell)
        if config.figure_formats != {"retina"}:
            config.figure_formats = {"retina"}
        kwargs = dict(config.print_figure_kwargs)
    select_figure_formats(shell, {"retina"}, **kwargs)


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
    In an IPython kernel it also makes figures display as high-density PNGs
    (Note [retina figures]).
    """
    _retina_figures()
    with plt.rc_context(STYLE):
        try:
            yield
        finally:
            interactive = matplotlib.is_interactive()
    matplotlib.interactive(interactive)


def figure(ncols: int = 1, nrows: int = 1, *, width: float = 6.4, height: float = 3.6) -> tuple[Figure, np.ndarray]:
    """A new figure in the book's style with ``nrows × ncols`` axes, at most two a row.

    The panels keep their order (row by row): with ``ncols > 2`` they are wrapped onto rows of
    two and an unused last axes is removed, so a panel with a legend is never narrower than
    half the column. A figure wider than the text column (:data:`COLUMN_WIDTH` inches) is
    scaled down to it, heights in proportion but each row at least :data:`MIN_ROW_HEIGHT`
    inches, so that the page shows it at its own size and its fonts at the sizes of
    :data:`STYLE` (Note [figure sizes and fonts]).

    Args:
        ncols: panels a row asked for.
        nrows: rows asked for.
        width: width in inches of the requested layout.
        height: height in inches of the requested layout.

    Returns:
        The figure and the ``nrows * ncols`` axes as a flat array, row by row.

    Raises:
        ValueError: ``ncols``/``nrows`` below 1 or a size that is not positive.
    """
    if ncols < 1 or nrows < 1:
        raise ValueError(f"ncols and nrows must be at least 1, got ncols={ncols}, nrows={nrows}")
    if not (width > 0 and height > 0):
        raise ValueError(f"width and height must be positive, got width={width}, height={height}")
    panels = ncols * nrows
    cols = min(ncols, 2)
    rows = -(-panels // cols)
    width_out = width * cols / ncols
    row_height = height / nrows
    scale = min(1.0, COLUMN_WIDTH / width_out)
    size = (width_out * scale, rows * max(row_height * scale, min(MIN_ROW_HEIGHT, row_height)))
    with book_style():
        fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False, layout="constrained")
    axes = axes.ravel()
    for extra in axes[panels:]:
        extra.remove()
    return fig, axes[:panels]


def _axes(ax: Axes | None) -> Axes:
    return figure()[1][0] if ax is None else ax


def _finish(ax: Axes, log: bool, title: str | None) -> None:
    """The common end of the curve plots: y scale, title, legend."""
    if log:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()


def _marks(index: int) -> dict[str, object]:
    """The marker of the ``index``-th series of a curve plot, a few along the line."""
    return {"marker": MARKERS[index % len(MARKERS)], "markevery": 0.1}


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
    as the median over the seeds with a band from the lowest to the highest seed. A seed that
    stopped early (a run that :func:`orthobook.train.train` stopped when it diverged) is logged
    at the first steps of the others; from its last step on, median and band are over the seeds
    still running.

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
        for index, (label, runs) in enumerate(histories.items()):
            runs = [runs] if isinstance(runs, History) else list(runs)
            steps = max((run.step for run in runs), key=len)
            if any(run.step != steps[: len(run.step)] for run in runs):
                raise ValueError(f"the seeds of {label!r} are not logged at the same steps")
            curves = [_smooth([np.nan if v is None else v for v in getattr(run, metric)], smooth) for run in runs]
            y = np.full((len(runs), max(len(c) for c in curves)), np.nan)
            for row, curve in zip(y, curves):
                row[: len(curve)] = curve  # a seed that stopped early leaves the band there
            x = np.asarray(steps[len(steps) - y.shape[1] :])
            if len(runs) == 1:
                ax.plot(x, y[0], label=label, **_marks(index))
                continue
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a step no seed logged stays a gap
                median, low, high = np.nanmedian(y, axis=0), np.nanmin(y, axis=0), np.nanmax(y, axis=0)
            (line,) = ax.plot(x, median, label=f"{label} (median, {len(runs)} seeds)", **_marks(index))
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        if baseline is not None:
            ax.axhline(baseline, color="0.25", linestyle="--", linewidth=1, label="memoryless baseline")
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
        for index, (label, history) in enumerate(histories.items()):
            if name not in history.probes:
                raise KeyError(f"history {label!r} has no probe {name!r}; it has {sorted(history.probes)}")
            steps, values = zip(*history.probes[name]) if history.probes[name] else ((), ())
            ax.plot(np.asarray(steps, dtype=float), np.asarray(values, dtype=float), label=label, **_marks(index))
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
        for index, (label, values) in enumerate(norms.items()):
            y = _numpy(values)
            x = np.arange(len(y))
            ax.plot(x, y[::-1] if lag_axis else y, label=label, **_marks(index))
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
    """Histograms of singular values, one per label (e.g. per training step).

    The histograms share their bins (over the range of all values) and are drawn as outlines in
    the colours and line styles of the book's cycle, so that none hides another.

    Args:
        values: ``label → (n,)`` singular values.
        ax: axes to draw on (a new figure when ``None``).
        bins: number of bins.
        title: axes title.
    """
    ax = _axes(ax)
    arrays = {label: _numpy(s).reshape(-1) for label, s in values.items()}
    everything = np.concatenate(list(arrays.values())) if arrays else np.zeros(0)
    edges = np.histogram_bin_edges(everything, bins=bins)
    with book_style():
        for (label, s), style in zip(arrays.items(), itertools.cycle(STYLE["axes.prop_cycle"])):
            ax.hist(s, bins=edges, histtype="step", linewidth=1.8, label=label, **style)
        ax.set_xlabel("singular value σ_i")
        ax.set_ylabel("count")
        _finish(ax, False, title)
    return ax


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
    values = _numpy(x)
    if values.ndim != 2:
        raise ValueError(f"x must be 2-D, got shape {values.shape}")
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
