"""A pytest plugin for nbval: leave out of the comparison what is meant to vary with the machine.

nbval compares every output of a stored notebook with the re-executed one, except the
MIME types it skips (PNG images among them). The book's numbers from a run reach the prose
through myst-nb ``glue(name, value, display=False)``, whose outputs carry MIME types
prefixed with ``application/papermill.record/``; they are the stored run's metrics (a final
loss, an interval) and legitimately differ on another CPU. The claim checks computed from
the same numbers are compared, so a changed outcome still fails. SVG figures are skipped
like PNG ones. Everything else is compared as nbval does.

Used as ``pytest --nbval -p nbval_glue`` with ``tests/`` on ``PYTHONPATH`` (Makefile).
"""

from __future__ import annotations

from nbval.plugin import IPyNbFile

GLUE_PREFIX = "application/papermill.record/"
FIGURES = ("image/svg+xml",)


class _Skip(tuple):
    """nbval's skip list, plus every glued MIME type and the figure types."""

    def __contains__(self, key: object) -> bool:
        return (isinstance(key, str) and (key.startswith(GLUE_PREFIX) or key in FIGURES)) or tuple.__contains__(self, key)


def pytest_collectstart(collector) -> None:
    if isinstance(collector, IPyNbFile):
        collector.skip_compare = _Skip(collector.skip_compare)
