"""ipywidgets explorers. Each has a static figure beside it in the book (widgets need a kernel).

ipywidgets is part of the ``[book]`` extra, not a core dependency: it is imported when an
explorer is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from orthobook.plotting import figure, plot_gradient_norms

__all__ = ["gradient_norm_explorer"]


def gradient_norm_explorer(
    norms_for_scale: Callable[[float], Mapping[str, torch.Tensor]],
    *,
    scale: tuple[float, float, float] = (0.8, 1.2, 0.01),
    initial: float = 1.0,
):
    """A slider for the spectral scale λ of ``W`` and the gradient-norm plot it gives.

    Args:
        norms_for_scale: ``λ → {label: (T,) norms}``; called on every slider move.
        scale: (min, max, step) of the slider.
        initial: starting λ.

    Returns:
        The ``ipywidgets.interactive`` widget (display it as the cell's last expression).
    """
    try:
        import ipywidgets
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("gradient_norm_explorer needs ipywidgets: pip install 'orthobook[book]'") from error
    import matplotlib.pyplot as plt

    low, high, step = scale
    if not low < high or step <= 0:
        raise ValueError(f"scale must be (min, max, step) with min < max and step > 0, got {scale}")

    def draw(spectral_scale: float) -> None:
        fig, axes = figure()
        plot_gradient_norms(norms_for_scale(spectral_scale), ax=axes[0], title=f"spectral scale λ = {spectral_scale:.2f}")
        plt.show()

    slider = ipywidgets.FloatSlider(value=initial, min=low, max=high, step=step, description="λ", continuous_update=False)
    return ipywidgets.interactive(draw, spectral_scale=slider)
