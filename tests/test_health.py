"""``python -m node.health``, the image's HEALTHCHECK (issue #19): one line and exit 0 when
the node answers ``orbital_status`` (saying its head and what anchored it), one line and
exit 1 when nothing answers, when the answer is an error, or when it is not JSON-RPC."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from node.health import check, main

pytestmark = pytest.mark.devnet


@pytest.fixture
def not_json_rpc() -> Iterator[str]:
    """A web server on 127.0.0.1 that answers every POST with an HTML page."""
    class Page(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b"<html>not here</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def test_a_serving_node_is_healthy_and_says_its_anchored_head(orbital_node) -> None:
    orbital_node.wait_for_head(0)
    healthy, line = check(orbital_node.url)
    assert healthy, line
    assert line.startswith("healthy: serving (quorum), head ") and "anchored by quorum" in line
    done = subprocess.run([sys.executable, "-m", "node.health", orbital_node.url],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.count("\n") == 1


def test_nothing_listening_is_unhealthy_in_one_line(capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    assert main([f"http://127.0.0.1:{port}"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"unhealthy: http://127.0.0.1:{port}: ") and out.count("\n") == 1


def test_an_rpc_that_is_not_a_node_is_unhealthy_but_answers_its_own_method(anvil) -> None:
    healthy, line = check(anvil.url)  # anvil has no orbital_status
    assert not healthy and line.startswith("unhealthy: orbital_status: ")
    assert check(anvil.url, "eth_chainId") == (True, "healthy: eth_chainId = 0x7a69")


def test_a_server_that_does_not_speak_json_rpc_is_unhealthy(not_json_rpc: str) -> None:
    healthy, line = check(not_json_rpc)
    assert not healthy and line.startswith(f"unhealthy: {not_json_rpc}: ")
