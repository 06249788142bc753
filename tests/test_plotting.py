"""Tests of orthobook.plotting: labelled axes, one line or bar per series, no leaked style."""

from __future__ import annotations

import importlib
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import orthobook.plotting  # noqa: E402
from orthobook.plotting import (  # noqa: E402
    COLUMN_WIDTH,
    LINESTYLES,
    MARKERS,
    MIN_ROW_HEIGHT,
    PALETTE,
    STYLE,
    book_style,
    figure,
    plot_curves,
    plot_gradient_norms,
    plot_probe,
    plot_singular_values,
)
from orthobook.train import History  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _history(losses, accuracy=None) -> History:
    history = History()
    for step, loss in enumerate(losses):
        acc = None if accuracy is None else accuracy[step]
        history.append({"step": step, "loss": loss, "accuracy": acc, "grad_norm": 10 * loss})
    return history


def _histories() -> dict[str, History]:
    return {"plain": _history([1.0, 0.5, 0.25, 0.2, 0.1]), "orthogonal": _history([1.0, 0.9, 0.8, 0.7, 0.6])}


def _legend_texts(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


# plot_curves --------------------------------------------------------------------------------------


def test_plot_curves_lines_labels_and_scale():
    histories = _histories()
    ax = plot_curves(histories, "loss")
    assert ax.get_xlabel() == "training step"
    assert ax.get_ylabel() == "loss"
    assert ax.get_yscale() == "log"
    assert len(ax.get_lines()) == 2
    assert _legend_texts(ax) == ["plain", "orthogonal"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), histories["plain"].loss)
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), histories["plain"].step)


def test_plot_curves_baseline_title_and_linear_scale():
    ax = plot_curves(_histories(), "grad_norm", baseline=0.3, log=False, title="runs")
    assert len(ax.get_lines()) == 3
    baseline = ax.get_lines()[-1]
    assert baseline.get_linestyle() == "--"
    np.testing.assert_array_equal(baseline.get_ydata(), [0.3, 0.3])
    assert _legend_texts(ax)[-1] == "memoryless baseline"
    assert ax.get_ylabel() == "gradient norm ‖∇θ L‖"
    assert ax.get_yscale() == "linear"
    assert ax.get_title() == "runs"


def test_plot_curves_smoothing_shortens_to_valid_part():
    history = _history([4.0, 2.0, 0.0, 2.0, 4.0])
    ax = plot_curves({"run": history}, smooth=3, log=False)
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), [2.0, 4 / 3, 2.0], rtol=4 * np.finfo(float).eps)
    np.testing.assert_array_equal(line.get_xdata(), [2, 3, 4])


def test_plot_curves_accuracy_with_missing_values():
    history = _history([1.0, 0.5, 0.2], accuracy=[None, 0.5, 0.9])
    ax = plot_curves({"run": history}, "accuracy", log=False)
    assert ax.get_ylabel() == "accuracy"
    y = ax.get_lines()[0].get_ydata()
    assert np.isnan(y[0]) and list(y[1:]) == [0.5, 0.9]


def test_plot_curves_draws_on_given_axes():
    fig, axes = figure(2)
    ax = plot_curves(_histories(), ax=axes[1])
    assert ax is axes[1]
    assert len(axes[0].get_lines()) == 0
    assert len(plt.get_fignums()) == 1


def test_plot_curves_bad_metric():
    with pytest.raises(ValueError, match="metric must be 'loss', 'accuracy' or 'grad_norm', got 'lr'"):
        plot_curves(_histories(), "lr")


# plot_gradient_norms ------------------------------------------------------------------------------


@pytest.mark.parametrize("lag_axis", [True, False])
def test_plot_gradient_norms(lag_axis):
    norms = {"λ = 0.9": torch.tensor([0.1, 0.2, 0.4, 1.0], dtype=torch.float64), "λ = 1.1": [3.0, 2.0, 1.5, 1.0]}
    ax = plot_gradient_norms(norms, lag_axis=lag_axis, title="norms")
    assert len(ax.get_lines()) == 2
    assert _legend_texts(ax) == list(norms)
    assert ax.get_ylabel() == "‖∂L/∂h_t‖"
    assert ax.get_xlabel() == ("lag T − t (steps back from the loss)" if lag_axis else "time step t")
    assert ax.get_yscale() == "log"
    assert ax.get_title() == "norms"
    first = ax.get_lines()[0].get_ydata()
    np.testing.assert_array_equal(first, [1.0, 0.4, 0.2, 0.1] if lag_axis else [0.1, 0.2, 0.4, 1.0])
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [0, 1, 2, 3])


def test_plot_gradient_norms_accepts_tensors_with_grad():
    values = torch.ones(5, requires_grad=True) * 2
    ax = plot_gradient_norms({"run": values}, log=False)
    assert ax.get_yscale() == "linear"
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), np.full(5, 2.0))


# plot_probe ---------------------------------------------------------------------------------------


def test_plot_probe_draws_each_run_against_its_probe_steps():
    histories = {"m = 0": History(probes={"err": [(10, 1e-7), (20, 2e-7)]}), "m = 1": History(probes={"err": [(10, 3e-7)]})}
    ax = plot_probe(histories, "err", ylabel="‖UᵀU − I‖_F", title="drift")
    assert len(ax.get_lines()) == 2 and _legend_texts(ax) == list(histories)
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [10, 20])
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), [1e-7, 2e-7])
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "‖UᵀU − I‖_F"
    assert ax.get_yscale() == "log" and ax.get_title() == "drift"


def test_plot_probe_missing_probe_is_named():
    with pytest.raises(KeyError, match="history 'a' has no probe 'err'"):
        plot_probe({"a": History(probes={"other": []})}, "err", ylabel="x")


# plot_singular_values -----------------------------------------------------------------------------


def test_plot_singular_values_histograms_share_bins_and_do_not_hide_each_other():
    values = {"step 0": torch.ones(16), "step 100": torch.linspace(0.5, 1.5, 16)}
    ax = plot_singular_values(values, bins=10, title="spectrum")
    assert ax.get_xlabel() == "singular value σ_i"
    assert ax.get_ylabel() == "count"
    assert ax.get_title() == "spectrum"
    assert _legend_texts(ax) == list(values)
    edges = np.histogram_bin_edges(torch.cat(list(values.values())).numpy(), bins=10)
    outlines = ax.patches
    assert len(outlines) == 2, "one outline (histtype='step') per series"
    for patch, s in zip(outlines, values.values()):
        assert not patch.get_fill()
        xy = patch.get_xy()
        np.testing.assert_allclose([xy[:, 0].min(), xy[:, 0].max()], [edges[0], edges[-1]])
        assert xy[:, 1].max() == np.histogram(s.numpy(), bins=edges)[0].max()
    assert outlines[0].get_linestyle() != outlines[1].get_linestyle()
    assert outlines[0].get_edgecolor() != outlines[1].get_edgecolor()


# Style --------------------------------------------------------------------------------------------


def _rc_snapshot() -> dict:
    return {key: value for key, value in matplotlib.rcParams.items() if key != "backend"}


@pytest.mark.parametrize(
    "draw",
    [
        lambda: plot_curves(_histories(), baseline=0.5),
        lambda: plot_gradient_norms({"a": [1.0, 2.0]}),
        lambda: plot_singular_values({"a": [1.0, 2.0]}),
        lambda: plot_probe({"a": History(probes={"p": [(1, 1.0)]})}, "p", ylabel="p"),
        lambda: figure(2, 2),
    ],
)
def test_style_does_not_leak(draw):
    before = _rc_snapshot()
    draw()
    assert _rc_snapshot() == before


def test_book_style_keeps_an_interactive_mode_switched_on_inside_it():
    """A backend loaded inside the block (Jupyter's inline one) turns interactive mode on; it stays on."""
    was = matplotlib.is_interactive()
    try:
        matplotlib.interactive(False)
        with book_style():
            matplotlib.interactive(True)
        assert matplotlib.is_interactive()
    finally:
        matplotlib.interactive(was)


def test_style_is_applied_inside_book_style():
    with book_style():
        assert matplotlib.rcParams["axes.grid"] is True
        assert matplotlib.rcParams["axes.spines.top"] is False
        assert list(matplotlib.rcParams["axes.prop_cycle"]) == list(STYLE["axes.prop_cycle"])
    fig, axes = figure(2, 3, width=7.0, height=6.0)
    assert axes.shape == (6,)
    np.testing.assert_array_equal(fig.get_size_inches(), [7.0, 6.0])
    assert not axes[0].spines["top"].get_visible(), "the book's style reaches the axes"


def test_palette_line_styles_and_markers_are_distinct_and_cycle_together():
    """Series sharing an axis differ in colour and in dash pattern (and, in the curve plots, marker)."""
    assert len(set(PALETTE)) == len(PALETTE) == len(set(map(str, LINESTYLES))) == len(set(MARKERS))
    assert list(STYLE["axes.prop_cycle"]) == [{"color": c, "linestyle": ls} for c, ls in zip(PALETTE, LINESTYLES)]
    norms = {f"series {k}": [1.0, 2.0, 3.0] for k in range(len(PALETTE))}
    ax = plot_gradient_norms(norms)
    lines = ax.get_lines()
    colours = [matplotlib.colors.to_hex(line.get_color()) for line in lines]
    assert colours == [c.lower() for c in PALETTE]
    assert [line.get_marker() for line in lines] == list(MARKERS)
    assert len({str(line._dash_pattern) for line in lines}) == len(lines)


def test_plot_curves_series_differ_in_colour_dashes_and_marker():
    ax = plot_curves(_histories())
    first, second = ax.get_lines()
    assert first.get_color() != second.get_color()
    assert first._dash_pattern != second._dash_pattern
    assert first.get_marker() != second.get_marker()


def test_figure_wraps_more_than_two_panels_a_row_onto_further_rows():
    fig, axes = figure(ncols=3, width=13)
    assert axes.shape == (3,) and len(fig.axes) == 3
    rows = [ax.get_subplotspec().rowspan.start for ax in axes]
    cols = [ax.get_subplotspec().colspan.start for ax in axes]
    assert (rows, cols) == ([0, 0, 1], [0, 1, 0])
    assert fig.get_size_inches()[0] <= COLUMN_WIDTH


@pytest.mark.parametrize(("ncols", "width", "height"), [(2, 11.0, 4.6), (2, 12.8, 4.0), (1, 9.0, 3.6)])
def test_figure_wider_than_the_column_is_scaled_to_it(ncols, width, height):
    fig, axes = figure(ncols=ncols, width=width, height=height)
    w, h = fig.get_size_inches()
    assert w == pytest.approx(COLUMN_WIDTH)
    assert h == pytest.approx(max(height * COLUMN_WIDTH / width, MIN_ROW_HEIGHT))


def test_figure_within_the_column_keeps_its_size():
    fig, _ = figure(width=6.4, height=3.6)
    np.testing.assert_array_equal(fig.get_size_inches(), [6.4, 3.6])


@pytest.mark.parametrize("kwargs", [{"ncols": 0}, {"nrows": 0}, {"width": 0.0}, {"height": -1.0}])
def test_figure_bad_layout(kwargs):
    with pytest.raises(ValueError, match="must be"):
        figure(**kwargs)


def _run_fresh(code: str) -> None:
    """Run ``code`` in a fresh interpreter; its assertions fail the test."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_figures_display_as_retina_png_in_ipython():
    """Inside IPython, a book figure displays as a PNG with twice the pixels of its display size."""
    code = (
        "import matplotlib; matplotlib.use('Agg')\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "from orthobook.plotting import figure\n"
        "fig, (ax,) = figure(width=6.4, height=3.6)\n"
        "ax.plot([0, 1], [0, 1])\n"
        "data, metadata = shell.display_formatter.format(fig)\n"
        "import base64, struct\n"
        "png = base64.b64decode(data['image/png'])\n"
        "width, height = struct.unpack('>II', png[16:24])\n"
        "shown = metadata['image/png']\n"
        "assert (width // 2, height // 2) == (shown['width'], shown['height']), (width, height, shown)\n"
        "assert 600 <= shown['width'] <= 660, shown\n"
    )
    _run_fresh(code)


def test_module_body_changes_no_rcparams():
    before = _rc_snapshot()
    importlib.reload(orthobook.plotting)
    assert _rc_snapshot() == before


@pytest.mark.slow
def test_import_changes_no_rcparams():
    """In a fresh interpreter, the first import of the plotting modules leaves rcParams alone."""
    code = (
        "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot\n"
        "before = dict(matplotlib.rcParams)\n"
        "import orthobook.plotting, orthobook.widgets\n"
        "after = dict(matplotlib.rcParams)\n"
        "changed = sorted(k for k in before if before[k] != after[k])\n"
        "assert not changed, changed\n"
    )
    _run_fresh(code)


def test_plot_curves_draws_the_median_and_band_over_seeds() -> None:
    import numpy as np

    from orthobook.train import History

    runs = []
    for k in range(3):
        history = History()
        for step in range(4):
            history.append({"step": step, "loss": float(k + step + 1), "grad_norm": 1.0})
        runs.append(history)
    ax = plot_curves({"seeds": runs}, log=False)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), [2.0, 3.0, 4.0, 5.0])
    (band,) = ax.collections
    lows, highs = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
    assert (lows, highs) == (1.0, 6.0)
    assert "3 seeds" in ax.get_legend_handles_labels()[1][0]


def test_plot_curves_band_goes_on_over_the_seeds_still_running() -> None:
    import numpy as np

    from orthobook.train import History

    runs = []
    for k, steps in enumerate((4, 4, 2)):  # the third seed stopped after two steps
        history = History()
        for step in range(steps):
            history.append({"step": step, "loss": float(k + step + 1), "grad_norm": 1.0})
        runs.append(history)
    ax = plot_curves({"seeds": runs}, log=False)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), [0, 1, 2, 3])
    np.testing.assert_allclose(line.get_ydata(), [2.0, 3.0, 3.5, 4.5])
    skipped = History()
    for step in (0, 2):
        skipped.append({"step": step, "loss": 1.0, "grad_norm": 1.0})
    with pytest.raises(ValueError, match="not logged at the same steps"):
        plot_curves({"seeds": [runs[0], skipped]})
