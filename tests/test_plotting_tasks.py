"""The plotting helpers of the page "Data and tasks": sequence heatmaps, MNIST digits and
pixel sequences (orthobook.plotting)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from orthobook.mnist import mnist_permutation
from orthobook.plotting import figure, plot_digit, plot_pixel_sequence, plot_sequence_heatmap
from orthobook.tasks import CopyTask


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_sequence_heatmap_puts_time_on_the_x_axis() -> None:
    task = CopyTask(delay=5, n_copy=3, layout="onehot")
    x, _ = task.sample(1, torch.Generator().manual_seed(0))
    _, (ax,) = figure()
    assert plot_sequence_heatmap(x[0], ax=ax, ylabel="symbol", title="copy") is ax
    (image,) = ax.get_images()
    assert image.get_array().shape == (task.input_size, task.seq_len)  # features × time
    np.testing.assert_array_equal(image.get_array(), x[0].T.numpy())
    assert ax.get_xlabel() == "time step t" and ax.get_ylabel() == "symbol" and ax.get_title() == "copy"


def test_sequence_heatmap_rejects_a_vector() -> None:
    with pytest.raises(ValueError, match="x must be 2-D"):
        plot_sequence_heatmap(torch.zeros(10))


@pytest.mark.parametrize("shape", [(28, 28), (784,), (784, 1)])
def test_digit_accepts_image_and_sequence_shapes(shape: tuple[int, ...]) -> None:
    pixels = torch.arange(784, dtype=torch.float32).reshape(shape)
    ax = plot_digit(pixels, title="a digit")
    (image,) = ax.get_images()
    np.testing.assert_array_equal(image.get_array(), np.arange(784.0).reshape(28, 28))  # row-major
    assert ax.get_xlabel() == "column" and ax.get_ylabel() == "row"


def test_digit_rejects_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="784 pixels"):
        plot_digit(torch.zeros(27, 28))


def test_pixel_sequence_draws_784_steps() -> None:
    perm = mnist_permutation(0)
    ax = plot_pixel_sequence(perm.float().unsqueeze(-1), label="permuted", rows=False)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), np.arange(784))
    np.testing.assert_array_equal(line.get_ydata(), perm.numpy())
    assert ax.get_xlabel() == "time step t (pixel)" and ax.get_ylabel() == "input x_t"


def test_pixel_sequence_marks_the_rows() -> None:
    ax = plot_pixel_sequence(torch.zeros(784))
    assert len(ax.get_lines()) == 27 + 1  # 27 row boundaries and the sequence


def test_pixel_sequence_rejects_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="784 pixel steps"):
        plot_pixel_sequence(torch.zeros(28, 28, 2))
