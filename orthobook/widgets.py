"""Explorers: a figure with a slider that works in the rendered book without a kernel.

An explorer draws its figure once per slider position in advance (the frames, high-density
PNGs in the book's style, on shared axis limits so that positions compare) and displays as a
small HTML block: an image, a range slider and a few lines of script that show the frame of
the slider's position. Nothing runs in Python when the slider moves, so the page needs no
kernel, no widget manager and no require.js (Note [explorers without a kernel]). In print or
any front end that does not render HTML, the explorer displays as its initial frame.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from orthobook.plotting import figure, plot_gradient_norms

__all__ = ["MAX_FRAMES", "Explorer", "gradient_norm_explorer"]

#: The most frames an explorer holds (each is a PNG embedded in the page).
MAX_FRAMES = 101

# Note [explorers without a kernel]
# The book is read as static HTML, where an ipywidgets slider renders as dead code: its callback
# lives in a Python kernel the page does not have, and the page still loads the widget manager
# and require.js and embeds the widget state. An explorer instead precomputes what every slider
# position shows. Its frames are PNGs drawn at twice the display resolution (as the book's other
# figures) and palette-quantised, since they are embedded in the page; they are kept in a JSON
# block that the browser does not execute, and a short inline script swaps the image's source
# when the slider moves. The element ids come from a hash of the frames, so the same explorer
# gives the same HTML in every run.


@dataclass(frozen=True)
class Explorer:
    """Precomputed frames of a figure and the slider positions that select them.

    Attributes:
        label: the slider's name, e.g. ``"spectral scale λ"``.
        values: the slider positions, one per frame.
        frames: PNG images (bytes), one per position.
        initial: index of the position shown first.
        width: display width of a frame in CSS pixels.
        height: display height of a frame in CSS pixels.
        alt: text alternative of the figure.
    """

    label: str
    values: tuple[float, ...]
    frames: tuple[bytes, ...]
    initial: int
    width: int
    height: int
    alt: str

    def __repr__(self) -> str:
        # The dataclass's own repr would print every frame's bytes (megabytes of PNG) as the
        # notebook's text/plain output; the text form says what the frames show instead.
        shown = f"{self.values[0]:g} to {self.values[-1]:g}, initial {self.values[self.initial]:g}"
        return f"Explorer({len(self.frames)} frames, slider {self.label!r} from {shown})"

    def _repr_png_(self) -> tuple[bytes, dict[str, int]]:
        return self.frames[self.initial], {"width": self.width, "height": self.height}

    def _repr_html_(self) -> str:
        images = [base64.b64encode(frame).decode("ascii") for frame in self.frames]
        uid = "orthobook-explorer-" + hashlib.sha256("".join(images).encode("ascii")).hexdigest()[:12]
        shown = [f"{value:.2f}" for value in self.values]
        data = json.dumps({"images": images, "values": shown}).replace("</", "<\\/")
        label = html.escape(self.label)
        return (
            f'<div class="orthobook-explorer" id="{uid}" style="max-width: {self.width}px">'
            f'<img src="data:image/png;base64,{images[self.initial]}" width="{self.width}" '
            f'height="{self.height}" style="max-width: 100%; height: auto" alt="{html.escape(self.alt)}">'
            f'<label style="display: flex; gap: 0.75em; align-items: center">'
            f"<span>{label} = <output>{shown[self.initial]}</output></span>"
            f'<input type="range" min="0" max="{len(images) - 1}" step="1" value="{self.initial}" '
            f'style="flex: 1" aria-label="{label}"></label>'
            f'<script type="application/json">{data}</script>'
            "<script>(function () {"
            f'const root = document.getElementById("{uid}");'
            "const data = JSON.parse(root.querySelector('script[type=\"application/json\"]').textContent);"
            "const image = root.querySelector('img');"
            "const slider = root.querySelector('input');"
            "const output = root.querySelector('output');"
            "slider.addEventListener('input', () => {"
            "const i = Number(slider.value);"
            "image.src = 'data:image/png;base64,' + data.images[i];"
            "output.textContent = data.values[i];"
            "});"
            "})();</script></div>"
        )


def _png(fig: plt.Figure) -> bytes:
    """The figure as a palette-quantised PNG at twice its display resolution."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=2 * fig.dpi)
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").quantize(colors=64)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def gradient_norm_explorer(
    norms_for_scale: Callable[[float], Mapping[str, torch.Tensor]],
    *,
    scale: tuple[float, float, float] = (0.8, 1.2, 0.02),
    initial: float = 1.0,
) -> Explorer:
    """A slider for the spectral scale λ of ``W`` over the gradient-norm plot it gives.

    Every position of the slider is drawn in advance (``norms_for_scale`` is called once per
    position, the plots share their y range), so the explorer works in the static page.

    Args:
        norms_for_scale: ``λ → {label: (T,) norms}``, e.g. one curve per nonlinearity.
        scale: (min, max, step) of the slider; at most :data:`MAX_FRAMES` positions.
        initial: the λ shown first (the nearest position).

    Returns:
        The :class:`Explorer` (display it as the cell's last expression).

    Raises:
        ValueError: ``scale`` is not (min, max, step) with min < max and step > 0, or gives
            more than :data:`MAX_FRAMES` positions.
    """
    low, high, step = scale
    if not low < high or step <= 0:
        raise ValueError(f"scale must be (min, max, step) with min < max and step > 0, got {scale}")
    count = int(np.floor((high - low) / step + 1e-9)) + 1
    if count > MAX_FRAMES:
        raise ValueError(f"scale gives {count} slider positions; at most {MAX_FRAMES} are allowed")
    values = tuple(float(v) for v in np.round(low + step * np.arange(count), 10))
    curves = [{label: torch.as_tensor(v).detach().cpu().double() for label, v in norms_for_scale(s).items()} for s in values]
    positive = torch.cat([v[v > 0] for c in curves for v in c.values()])
    limits = (positive.min().item() / 2, positive.max().item() * 2) if positive.numel() else (1e-3, 1.0)
    frames = []
    for value, norms in zip(values, curves):
        fig, (ax,) = figure()
        plot_gradient_norms(norms, ax=ax, title=f"spectral scale λ = {value:.2f}")
        ax.set_ylim(*limits)
        frames.append(_png(fig))
        width, height = (int(round(x)) for x in fig.get_size_inches() * fig.dpi)
        plt.close(fig)
    start = int(np.argmin(np.abs(np.asarray(values) - initial)))
    alt = f"gradient norm against lag for spectral scales λ from {values[0]:.2f} to {values[-1]:.2f}"
    return Explorer("spectral scale λ", values, tuple(frames), start, width, height, alt)
