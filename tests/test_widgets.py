"""Tests of orthobook.widgets: the gradient-norm explorer builds a slider that redraws."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

ipywidgets = pytest.importorskip("ipywidgets")

from orthobook.widgets import gradient_norm_explorer  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _norms(calls):
    def norms_for_scale(scale):
        calls.append(scale)
        lags = torch.arange(6, dtype=torch.float64)
        return {"linear": scale**lags, "tanh": 0.5 * scale**lags}

    return norms_for_scale


def test_explorer_is_a_widget_with_the_slider():
    calls = []
    widget = gradient_norm_explorer(_norms(calls), scale=(0.5, 1.5, 0.05), initial=0.9)
    assert isinstance(widget, ipywidgets.interactive)
    slider = widget.children[0]
    assert isinstance(slider, ipywidgets.FloatSlider)
    assert (slider.min, slider.max, slider.step, slider.value) == (0.5, 1.5, 0.05, 0.9)
    assert calls == [0.9], "the widget draws its initial state once"


def test_explorer_function_draws():
    calls = []
    widget = gradient_norm_explorer(_norms(calls))
    figures = len(plt.get_fignums())
    widget.f(1.1)
    assert calls[-1] == 1.1
    assert len(plt.get_fignums()) == figures + 1
    ax = plt.figure(plt.get_fignums()[-1]).axes[0]
    assert ax.get_title() == "spectral scale λ = 1.10"
    assert len(ax.get_lines()) == 2
    assert ax.get_ylabel() == "‖∂L/∂h_t‖"
    assert ax.get_lines()[0].get_ydata()[-1] == pytest.approx(1.0)  # lag 0 holds the last step


def test_slider_moves_redraw():
    calls = []
    widget = gradient_norm_explorer(_norms(calls))
    widget.children[0].value = 0.85
    assert calls[-1] == pytest.approx(0.85)


@pytest.mark.parametrize("scale", [(1.2, 0.8, 0.01), (1.0, 1.0, 0.01), (0.8, 1.2, 0.0), (0.8, 1.2, -0.1)])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match=r"scale must be \(min, max, step\) with min < max and step > 0"):
        gradient_norm_explorer(_norms([]), scale=scale)
