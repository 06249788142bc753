"""Shared by the data tests (test_downloads, test_mnist, test_ptb): a local HTTP mirror and the
fetched real data.

No data test touches the network: downloads are served by a throw-away HTTP server on
127.0.0.1. Tests marked ``real_data`` use the files that ``python tests/fetch_real_data.py``
puts in ``tests/.real_data/`` and skip when they are absent.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REAL_MNIST = HERE / ".real_data" / "mnist"
REAL_PTB = HERE / ".real_data" / "ptb"


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def real(directory: Path, what: str) -> Path:
    """``directory`` if the real files were fetched there, else skip the test."""
    if not directory.is_dir() or not any(directory.iterdir()):
        pytest.skip(f"real {what} not fetched: run python tests/fetch_real_data.py")
    return directory


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Keep the test output clean."""


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    """An HTTP server on 127.0.0.1 (free port); set ``files[path] = bytes`` to serve them."""
    handler = type("Handler", (_Handler,), {"files": {}})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.files = handler.files
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 that refuses connections."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
