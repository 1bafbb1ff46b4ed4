"""Start ``orbital node run`` in its own process in front of an upstream, for tests (the
pytest plugin's ``orbital_node`` fixture, and the project's own tests).

The node prints ``serving http://HOST:PORT`` once it accepts connections; :func:`start_node`
waits for that line (the node chose a free port itself: no port race) and
:meth:`NodeProcess.stop` sends SIGTERM and waits for a clean exit.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass
class NodeProcess:
    """A running ``orbital node run``: its RPC ``url``, the process, its data directory,
    and the command that started it (for :meth:`restart`)."""

    url: str
    process: subprocess.Popen[str]
    data_dir: Path
    command: tuple[str, ...] = ()
    timeout: float = 60.0
    trust: str = ""
    """The trust mode, when the pytest plugin started it."""
    ground: Any = None
    """The ground operators signing its heads (``ground`` trust, pytest plugin)."""

    @property
    def log(self) -> Path:
        """The node's stderr (its log lines), beside the data directory."""
        return _log_path(self.data_dir)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def status(self) -> dict[str, Any]:
        """``orbital_status``: the head, its age and source, the trust mode, the link."""
        return self.rpc("orbital_status")

    def web3(self) -> Any:
        """A web3.py ``Web3`` on the node (``HTTPProvider(url)``), as an application uses it."""
        from web3 import Web3

        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 60}))

    def wait_for_head(self, number: int, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until the anchored head is at least block ``number``; its status."""
        deadline = time.monotonic() + timeout
        while True:
            head = self.status()["head"]
            if head is not None and int(head["number"]) >= number:
                return head
            if time.monotonic() > deadline:
                raise AssertionError(f"the node's head did not reach block {number} within "
                                     f"{timeout} s (head: {head}); log:\n{self.log_tail()}")
            time.sleep(0.1)

    def restart(self) -> None:
        """Stop the node (SIGTERM) and start it again with the same command, data
        directory and RPC port (the URL stays the same)."""
        if not self.command:
            raise RuntimeError("restart(): this NodeProcess has no command to run again")
        self.stop()
        port = self.url.rsplit(":", 1)[1]
        again = _launch([*self.command, "--rpc", f"127.0.0.1:{port}"], self.data_dir,
                        self.timeout)
        self.url, self.process = again.url, again.process

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
    and ``chain_id`` empty/0: from the file too). A node that does not start raises
    :class:`NodeStartError` with the tail of its log."""
    command = [sys.executable, "-m", "node.cli.main", "node", "run",
               *(["--trust", trust] if trust else []),
               *(["--chain-id", str(chain_id)] if chain_id else []),
               *([] if "--config" in extra else ["--rpc", "127.0.0.1:0", "--data-dir",
                                                 str(data_dir)]),
               *(a for url in upstreams for a in ("--upstream", url)), *extra]
    return _launch(command, data_dir, timeout)


class NodeStartError(RuntimeError):
    """``orbital node run`` exited or did not serve in time (the message has its log)."""


def _log_path(data_dir: Path) -> Path:
    return data_dir.parent / f"{data_dir.name}.log"


def _launch(command: list[str], data_dir: Path, timeout: float) -> NodeProcess:
    """Run ``command`` (stderr appended to the data directory's log) and wait for its
    ``serving URL`` line, at most ``timeout`` seconds."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with _log_path(data_dir).open("a") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True,
                                   stderr=log)
    assert process.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()),
                              daemon=True)  # readline blocks until the node prints or exits
    reader.start()
    reader.join(timeout)
    line = lines[0] if lines else ""
    if not line.startswith("serving "):
        process.kill()
        process.wait()
        tail = _log_path(data_dir).read_text(errors="replace")[-2000:]
        raise NodeStartError(f"the node did not start ({line.strip() or 'no serving line'} "
                             f"within {timeout} s, exit code {process.returncode}); its log "
                             f"{_log_path(data_dir)} ends:\n{tail}")
    return NodeProcess(line.split()[1], process, data_dir, tuple(command), timeout)


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
