"""Shared test configuration: markers and the list of the book's chapters."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def chapter_sources() -> list[Path]:
    """Every notebook chapter's MyST source (``book/NN_name.md`` and ``book/data_and_tasks.md``)."""
    sources = sorted(BOOK.glob("[0-9][0-9]_*.md"))
    extra = BOOK / "data_and_tasks.md"
    return sources + ([extra] if extra.exists() else [])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_data: uses MNIST/PTB fetched by tests/fetch_real_data.py")


@pytest.fixture
def host_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the tensor methods that read a value back to the host, in call order."""
    import torch

    reads: list[str] = []
    for method in ("item", "tolist", "__float__", "__bool__"):
        original = getattr(torch.Tensor, method)

        def counted(self, *args, _original=original, _method=method):
            reads.append(_method)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, method, counted)
    return reads
