"""Tests of orthobook.widgets: the gradient-norm explorer precomputes one frame per slider
position and displays as HTML that needs no kernel (Note [explorers without a kernel])."""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from orthobook.widgets import MAX_FRAMES, Explorer, gradient_norm_explorer  # noqa: E402


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


def _page_data(explorer: Explorer) -> dict:
    match = re.search(r'<script type="application/json">(.*?)</script>', explorer._repr_html_(), re.S)
    assert match, "the frames travel as a JSON block"
    return json.loads(match.group(1))


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def test_one_frame_per_slider_position():
    calls = []
    explorer = gradient_norm_explorer(_norms(calls), scale=(0.5, 1.5, 0.25), initial=0.9)
    assert explorer.values == (0.5, 0.75, 1.0, 1.25, 1.5)
    assert calls == list(explorer.values), "each position is drawn once, in advance"
    assert len(explorer.frames) == 5
    assert explorer.initial == 2, "the nearest position to the initial λ"
    assert len(set(explorer.frames)) == 5, "every position shows a different figure"


def test_frames_are_high_density_pngs_of_the_display_size():
    explorer = gradient_norm_explorer(_norms([]), scale=(0.9, 1.1, 0.1))
    for frame in explorer.frames:
        width, height = _png_size(frame)
        assert (width // 2, height // 2) == (explorer.width, explorer.height)
    png, metadata = explorer._repr_png_()
    assert png == explorer.frames[explorer.initial]
    assert metadata == {"width": explorer.width, "height": explorer.height}


def test_html_holds_the_slider_the_frames_and_the_initial_image():
    explorer = gradient_norm_explorer(_norms([]), scale=(0.8, 1.2, 0.1), initial=1.0)
    page = explorer._repr_html_()
    data = _page_data(explorer)
    assert data["values"] == ["0.80", "0.90", "1.00", "1.10", "1.20"]
    assert [base64.b64decode(image) for image in data["images"]] == list(explorer.frames)
    assert f'src="data:image/png;base64,{data["images"][2]}"' in page
    slider = re.search(r'<input type="range" min="0" max="(\d+)" step="1" value="(\d+)"', page)
    assert slider and slider.groups() == ("4", "2")
    assert "<output>1.00</output>" in page
    assert "ipywidgets" not in page and "require" not in page


def test_html_is_the_same_in_every_run():
    first = gradient_norm_explorer(_norms([]), scale=(0.9, 1.1, 0.1))._repr_html_()
    second = gradient_norm_explorer(_norms([]), scale=(0.9, 1.1, 0.1))._repr_html_()
    assert first == second


def test_frames_share_their_y_range():
    """Positions compare: the figures of λ = 0.5 and λ = 1.5 have one y range (read back from pixels)."""
    explorer = gradient_norm_explorer(_norms([]), scale=(0.5, 1.5, 1.0))
    images = [np.asarray(Image.open(io.BytesIO(frame)).convert("L")) for frame in explorer.frames]
    assert images[0].shape == images[1].shape
    # The axes frame (the darkest long horizontal line, the x axis) sits in the same pixel row.
    rows = [int(np.argmax((image < 80).sum(axis=1))) for image in images]
    assert rows[0] == rows[1]


def test_repr_names_the_slider_not_the_frames():
    explorer = gradient_norm_explorer(_norms([]), scale=(0.5, 1.5, 0.25), initial=0.9)
    text = repr(explorer)
    assert text == "Explorer(5 frames, slider 'spectral scale λ' from 0.5 to 1.5, initial 1)"
    assert sum(map(len, explorer.frames)) > 100 * len(text), "the frames stay out of the text"


def test_explorer_imports_no_widget_library():
    code = "import sys, orthobook.widgets; assert 'ipywidgets' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("scale", [(1.2, 0.8, 0.01), (1.0, 1.0, 0.01), (0.8, 1.2, 0.0), (0.8, 1.2, -0.1)])
def test_bad_scale(scale):
    with pytest.raises(ValueError, match=r"scale must be \(min, max, step\) with min < max and step > 0"):
        gradient_norm_explorer(_norms([]), scale=scale)


def test_too_many_positions():
    with pytest.raises(ValueError, match=f"at most {MAX_FRAMES}"):
        gradient_norm_explorer(_norms([]), scale=(0.0, 2.0, 0.001))
