"""What running the node in its container costs (issue #19), against the baseline of the
same node as a process on the host, in the same run.

One anvil (in a container of the image, its port published) and two ``orbital node run``
in front of it, same configuration (quorum of the one upstream, refresh 1 s): one a process
on the host, one in a container of the image (its RPC published on 127.0.0.1). For each:
the wall time from launch to ``serving``, and the median latency of JSON-RPC calls from this
process through each node -- ``eth_blockNumber`` (the anchored head, no upstream call) and
``eth_getBalance`` at ``latest`` (a state proof fetched and verified on every call) --
measured alternately so that the machine's noise falls on both. Needs a Docker daemon
(``scripts/dockerd.sh start``) and the image (``scripts/containers.sh build``).

Run from the repository root::

    python -m benchmarks.containers              # 200 calls of each
    python -m benchmarks.containers --calls 50 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from node.devnet import DEV_PRIVATE_KEYS, anvil_arguments, rpc_call

IMAGE = "orbital"
CONFIG = """
[node]
chain_id = 31337
data_dir = "{data}"
rpc = "{rpc}"
refresh = "1s"
chain = "anvil"

[upstreams]
urls = ["{upstream}"]

[trust]
mode = "quorum"
"""


def _docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"docker {' '.join(args[:2])}: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


def _published(container: str) -> str:
    return f"http://127.0.0.1:{_docker('port', container, '8545/tcp').rsplit(':', 1)[1]}"


def _host_node(directory: Path, upstream: str) -> tuple[subprocess.Popen[str], str, float]:
    config = directory / "host.toml"
    config.write_text(CONFIG.format(data=directory / "host-data", rpc="127.0.0.1:0",
                                    upstream=upstream))
    began = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "node.cli.main", "node", "run",
                                "--config", str(config)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("serving "):
        raise SystemExit(f"the host node did not start: {line!r}")
    return process, line.split()[1], time.monotonic() - began


def _container_node(directory: Path, network: str) -> tuple[str, str, float]:
    config = directory / "container.toml"
    config.write_text(CONFIG.format(data="/data", rpc="0.0.0.0:8545",
                                    upstream="http://anvil:8545"))
    config.chmod(0o644)
    began = time.monotonic()
    container = _docker("run", "-d", "--network", network, "-p", "127.0.0.1::8545",
                        "-v", f"{config}:/etc/orbital/node.toml:ro", IMAGE,
                        "/etc/orbital/node.toml")
    while "serving " not in subprocess.run(["docker", "logs", container], capture_output=True,
                                           text=True).stdout:
        if time.monotonic() - began > 120:
            raise SystemExit("the container's node did not start in 120 s")
        time.sleep(0.05)
    return container, _published(container), time.monotonic() - began


def measure(calls: int) -> dict[str, Any]:
    """The figures (module docstring)."""
    from eth_account import Account

    network = f"orbital-bench-{time.monotonic_ns()}"
    _docker("network", "create", network)
    containers: list[str] = []
    host = None
    try:
        anvil = _docker("run", "-d", "--network", network, "--network-alias", "anvil",
                        "-p", "127.0.0.1::8545", "--entrypoint", "anvil", IMAGE,
                        *anvil_arguments("0.0.0.0", 8545))
        containers.append(anvil)
        devnet = _published(anvil)
        deadline = time.monotonic() + 60
        while True:
            try:
                rpc_call(devnet, "evm_mine")  # past genesis (anvil's genesis proofs do not verify)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            host, host_url, host_start = _host_node(directory, devnet)
            container, container_url, container_start = _container_node(directory, network)
            containers.append(container)
            account = Account.from_key(DEV_PRIVATE_KEYS[3]).address
            for url in (host_url, container_url):  # both anchored past genesis
                while int(rpc_call(url, "eth_blockNumber"), 16) < 1:
                    time.sleep(0.2)
            latency: dict[str, dict[str, list[float]]] = {}
            for method, params in (("eth_blockNumber", ()), ("eth_getBalance",
                                                              (account, "latest"))):
                samples: dict[str, list[float]] = {"host": [], "container": []}
                for _ in range(calls):
                    for where, url in (("host", host_url), ("container", container_url)):
                        began = time.perf_counter()
                        rpc_call(url, method, *params)
                        samples[where].append(time.perf_counter() - began)
                latency[method] = samples
    finally:
        if host is not None:
            host.terminate()
            host.wait(timeout=20)
        if containers:
            subprocess.run(["docker", "rm", "-f", "-v", *containers], capture_output=True)
        subprocess.run(["docker", "network", "rm", network], capture_output=True)
    return {
        "startS": {"host": round(host_start, 2), "container": round(container_start, 2)},
        "medianMs": {method: {where: round(statistics.median(s) * 1000, 3)
                              for where, s in samples.items()}
                     for method, samples in latency.items()},
        "calls": calls,
    }


def table(result: dict[str, Any]) -> str:
    rows = [("start to serving (s)", result["startS"]["host"], result["startS"]["container"])]
    for method, median in result["medianMs"].items():
        rows.append((f"{method} median (ms)", median["host"], median["container"]))
    lines = [f"{'':30} {'host process':>13} {'container':>10} {'ratio':>6}",
             "-" * 62]
    for name, base, other in rows:
        lines.append(f"{name:30} {base:13.3f} {other:10.3f} {other / base:6.2f}x")
    lines.append(f"baseline: the same node as a process on this host; {result['calls']} "
                 "calls of each, alternating")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per method (200)")
    parser.add_argument("--json", action="store_true", help="print JSON, not the table")
    args = parser.parse_args(argv)
    result = measure(args.calls)
    print(json.dumps(result, indent=1) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
