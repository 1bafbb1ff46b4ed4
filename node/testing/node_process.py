"""Start ``orbital node run`` in its own process in front of an upstream, for tests.

The node prints ``serving http://HOST:PORT`` once it accepts connections; :func:`start_node`
waits for that line (the node chose a free port itself: no port race) and
:meth:`NodeProcess.stop` sends SIGTERM and waits for a clean exit.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass
class NodeProcess:
    url: str
    process: subprocess.Popen[str]
    data_dir: Path

    def rpc(self, method: str, *params: Any) -> Any:
        """The ``result`` of one call (an ``error`` raises :class:`NodeRpcError`)."""
        reply, _ = self.request({"jsonrpc": "2.0", "id": 1, "method": method,
                                 "params": list(params)})
        if "error" in reply:
            raise NodeRpcError(reply["error"])
        return reply["result"]

    def request(self, body: Any) -> tuple[Any, dict[str, str]]:
        """POST ``body``; the decoded answer and the HTTP headers."""
        data = json.dumps(body).encode()
        request = urllib.request.Request(self.url, data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
            return (json.loads(raw) if raw else None), dict(response.headers)

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class NodeRpcError(RuntimeError):
    def __init__(self, error: dict[str, Any]) -> None:
        self.code = error.get("code")
        self.error_message = str(error.get("message"))
        self.data = error.get("data")
        super().__init__(f"{self.code}: {self.error_message}")


def start_node(upstreams: list[str], data_dir: Path, *extra: str, trust: str = "quorum",
               chain_id: int = 31337, timeout: float = 60.0) -> NodeProcess:
    """``orbital node run`` with ``extra`` options; returns once it serves. With
    ``--config`` in ``extra`` the file gives the data directory and the address (``trust``
    and ``chain_id`` empty/0: from the file too)."""
    command = [sys.executable, "-m", "node.cli.main", "node", "run",
               *(["--trust", trust] if trust else []),
               *(["--chain-id", str(chain_id)] if chain_id else []),
               *([] if "--config" in extra else ["--rpc", "127.0.0.1:0", "--data-dir",
                                                 str(data_dir)]),
               *(a for url in upstreams for a in ("--upstream", url)), *extra]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True,
                               stderr=open(data_dir.parent / f"{data_dir.name}.log", "w"))  # noqa: SIM115
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the node prints or exits
    if not line.startswith("serving ") or time.monotonic() > deadline:
        process.kill()
        log = (data_dir.parent / f"{data_dir.name}.log").read_text()
        raise RuntimeError(f"the node did not start: {line!r}\n{log[-2000:]}")
    return NodeProcess(line.split()[1], process, data_dir)


def write_node_config(path: Path, upstream: str, sections: str) -> Path:
    """A node configuration file at ``path``: chain 31337 (anvil's fork schedule), data in
    ``data`` beside it, any free RPC port, a refresh every second, the one ``upstream``
    (``NAME=URL``), then ``sections`` (TOML text: ``[trust]`` and whatever the test needs)."""
    path.write_text(f"""
[node]
chain_id = 31337
data_dir = "data"
rpc = "127.0.0.1:0"
refresh = "1s"
chain = "anvil"

[upstreams]
urls = ["{upstream}"]
{sections}""")
    return path
