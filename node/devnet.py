"""Start and stop a local anvil devnet (the tests' chain, and the chain "on the ground" of
``orbital demo``).

anvil is the real devnet the integration tests run against (see DESIGN.md, "Real parts"). It
comes from npm (``@foundry-rs/anvil``, pinned in ``tools/package.json``) as a native binary,
installed by ``scripts/setup.sh --test``. Each instance listens on 127.0.0.1 on a free port, runs
the Prague hardfork (anvil's default is later, and py-evm stops at Prague) with chain id 31337,
and funds the ten well-known dev accounts of the mnemonic ``test test ... junk``.

Only the standard library is used, so this module works before any project code does.
A missing binary raises :class:`AnvilNotFoundError`: a devnet test must fail, never skip.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
ANVIL_ENV = "ORBITAL_ANVIL"
"""Environment variable naming an anvil binary; overrides the one in tools/node_modules."""
NPM_SCOPE_DIR = REPO_ROOT / "tools" / "node_modules" / "@foundry-rs"

CHAIN_ID = 31337
HARDFORK = "prague"
DEV_MNEMONIC = "test test test test test test test test test test test junk"
"""BIP-39 mnemonic of anvil's (and hardhat's) default dev accounts, path m/44'/60'/0'/0/i."""

DEV_PRIVATE_KEYS: tuple[str, ...] = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)
"""Private keys of the first ten accounts of :data:`DEV_MNEMONIC`, in derivation order."""

STARTUP_TIMEOUT = 20.0
"""Seconds anvil gets to answer ``eth_chainId`` (it usually answers within ~50 ms)."""
STOP_TIMEOUT = 5.0
"""Seconds anvil gets to exit after SIGTERM before it is killed."""


class AnvilNotFoundError(RuntimeError):
    """No anvil binary: the tools were not installed."""


class AnvilStartError(RuntimeError):
    """anvil was found but did not come up."""


class RpcError(RuntimeError):
    """A JSON-RPC call returned an ``error`` object."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        self.method = method
        self.code: int | None = error.get("code")
        self.rpc_message: str = str(error.get("message", ""))
        self.data: Any = error.get("data")
        super().__init__(f"{method}: JSON-RPC error {self.code}: {self.rpc_message}")


def _platform_package(tool: str) -> str | None:
    """Name of the ``@foundry-rs/<tool>-*`` package holding this platform's binary."""
    system = platform.system().lower()
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if system not in ("linux", "darwin") or arch is None:
        return None
    return f"{tool}-{system}-{arch}"


def find_foundry_tool(tool: str) -> Path:
    """A foundry binary (``anvil``, ``cast``): ``$ORBITAL_<TOOL>``, else tools/node_modules,
    else on PATH."""
    env = f"ORBITAL_{tool.upper()}"
    override = os.environ.get(env)
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise AnvilNotFoundError(f"{env}={override} is not an executable file")
    candidates = []
    package = _platform_package(tool)
    if package is not None:
        candidates.append(NPM_SCOPE_DIR / package / "bin" / tool)
    # where @foundry-rs/<tool>'s postinstall puts the binary when the platform package is absent
    candidates.append(NPM_SCOPE_DIR / tool / tool)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    on_path = shutil.which(tool)
    if on_path is not None:
        return Path(on_path)
    raise AnvilNotFoundError(
        f"{tool} not found (looked at {', '.join(str(c) for c in candidates)} and PATH): "
        f"run `scripts/setup.sh --test` from the repository root, or set {env}"
    )


def find_anvil() -> Path:
    """The anvil binary: ``$ORBITAL_ANVIL``, else tools/node_modules, else ``anvil`` on PATH."""
    return find_foundry_tool("anvil")


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def rpc_call(url: str, method: str, *params: Any, timeout: float = 30.0) -> Any:
    """POST one JSON-RPC request to ``url``; return its ``result`` or raise :class:`RpcError`."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply and reply["error"] is not None:
        raise RpcError(method, reply["error"])
    return reply["result"]


_live: set[subprocess.Popen[bytes]] = set()


def _stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _live.discard(process)


@atexit.register
def _stop_leftovers() -> None:
    """Last resort: do not leave anvil running when the interpreter exits."""
    for process in list(_live):
        _stop_process(process, timeout=1.0)


@dataclass
class Anvil:
    """A running anvil instance started by :func:`start_anvil`."""

    url: str
    """HTTP JSON-RPC endpoint, ``http://127.0.0.1:<port>``."""
    port: int
    process: subprocess.Popen[bytes] | None
    """None: attached to a devnet another process runs (:func:`attach_anvil`)."""
    accounts: tuple[str, ...]
    """Addresses of the funded dev accounts as ``eth_accounts`` lists them (lowercase hex)."""
    private_keys: tuple[str, ...]
    """``private_keys[i]`` controls ``accounts[i]`` (the first :data:`DEV_PRIVATE_KEYS`)."""
    binary: Path
    chain_id: int = CHAIN_ID
    _log: IO[bytes] | None = field(default=None, repr=False)

    def rpc(self, method: str, *params: Any) -> Any:
        """Call a JSON-RPC method; return its ``result`` or raise :class:`RpcError`."""
        return rpc_call(self.url, method, *params)

    @contextlib.contextmanager
    def mining_on_request(self) -> Iterator[None]:
        """Inside: no automine, a block only when ``evm_mine`` asks for one (as a chain makes
        blocks between a satellite's contacts); automine again on the way out.

        Also the way around anvil's pool racing its own automine: a transaction added while
        its sender's previous one is being mined can wait in the pool forever, and sending it
        again only answers "already imported" (foundry-rs/foundry#10122)."""
        self.rpc("evm_setAutomine", False)
        try:
            yield
        finally:
            self.rpc("evm_setAutomine", True)

    def receipt(self, tx_hash: str, timeout: float = 10.0) -> dict[str, Any]:
        """The receipt of ``tx_hash``, mining blocks until it has one (automine answers
        ``eth_sendRawTransaction`` a moment before the receipt exists); bounded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            receipt = self.rpc("eth_getTransactionReceipt", tx_hash)
            if receipt is not None:
                return receipt
            self.rpc("evm_mine")
        raise AssertionError(f"{tx_hash} was not mined within {timeout} s")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        """What anvil wrote to stdout/stderr so far (its banner and one line per request)."""
        if self._log is None or self._log.closed:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Terminate anvil, kill it if it lingers, and wait until it has exited. Idempotent.
        An attached devnet is left running."""
        if self.process is not None:
            _stop_process(self.process, timeout)
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> Anvil:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def anvil_arguments(host: str, port: int, accounts: int = len(DEV_PRIVATE_KEYS),
                    hardfork: str | None = None) -> list[str]:
    """anvil's command line after the binary: the project's devnet (chain id
    :data:`CHAIN_ID`, :data:`HARDFORK`, the dev mnemonic's ``accounts`` funded), listening on
    ``host:port`` -- for :func:`start_anvil` and the compose file's ``anvil`` service."""
    return ["--host", host, "--port", str(port), "--chain-id", str(CHAIN_ID),
            "--hardfork", hardfork or HARDFORK, "--mnemonic", DEV_MNEMONIC,
            "--accounts", str(accounts)]


def attach_anvil(url: str, timeout: float = STARTUP_TIMEOUT) -> Anvil:
    """The project's devnet already running at ``url`` (the compose file's ``anvil``
    service), once it answers chain id :data:`CHAIN_ID`; :meth:`Anvil.stop` leaves it running."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            chain_id = int(rpc_call(url, "eth_chainId", timeout=2.0), 16)
            break
        except (OSError, ValueError) as exc:
            if time.monotonic() > deadline:
                raise AnvilStartError(f"no devnet answers at {url} after {timeout:g} s: "
                                      f"{exc}") from None
            time.sleep(0.5)
    if chain_id != CHAIN_ID:
        raise AnvilStartError(f"{url} answers chain id {chain_id}, expected {CHAIN_ID}")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    return Anvil(url=url, port=port, process=None, accounts=tuple(rpc_call(url, "eth_accounts")),
                 private_keys=DEV_PRIVATE_KEYS, binary=Path("anvil"))


def start_anvil(
    *,
    binary: Path | None = None,
    accounts: int = len(DEV_PRIVATE_KEYS),
    extra_args: tuple[str, ...] = (),
    startup_timeout: float = STARTUP_TIMEOUT,
    hardfork: str | None = None,
) -> Anvil:
    """Start anvil on 127.0.0.1 and return once it answers ``eth_chainId``.

    ``accounts`` dev accounts are funded (at most ten: the keys of more are not kept here).
    ``extra_args`` go to anvil's command line after the defaults (e.g. ``("--no-mining",)``);
    ``hardfork`` replaces the default :data:`HARDFORK`.
    Raises :class:`AnvilNotFoundError` without a binary and :class:`AnvilStartError` if anvil
    exits or stays silent for ``startup_timeout`` seconds.
    """
    if not 1 <= accounts <= len(DEV_PRIVATE_KEYS):
        raise ValueError(f"accounts must be 1..{len(DEV_PRIVATE_KEYS)}, not {accounts}")
    binary = binary if binary is not None else find_anvil()
    # Port 0: the kernel picks a free port at anvil's own bind and anvil prints it, so no other
    # process (a parallel test session's anvil) can take the port between choosing and binding.
    log = tempfile.TemporaryFile(prefix="anvil-")  # noqa: SIM115 - Anvil.stop() closes it
    command = [str(binary), *anvil_arguments("127.0.0.1", 0, accounts, hardfork), *extra_args]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT)
    _live.add(process)
    try:
        port = _listening_port(process, log, startup_timeout)
        url = f"http://127.0.0.1:{port}"
        ready = port is not None and _wait_ready(process, url, startup_timeout)
    except BaseException:
        _stop_process(process, STOP_TIMEOUT)
        log.close()
        raise
    if ready:
        node = Anvil(url=url, port=port, process=process, accounts=(),
                     private_keys=DEV_PRIVATE_KEYS[:accounts], binary=binary, _log=log)
        try:
            node.accounts = tuple(node.rpc("eth_accounts"))
        except BaseException:
            node.stop()
            raise
        return node
    _stop_process(process, STOP_TIMEOUT)
    log.seek(0)
    output = log.read().decode(errors="replace").strip()
    log.close()
    raise AnvilStartError(
        f"{binary} did not start listening and answer eth_chainId within {startup_timeout} s "
        f"(exit code {process.returncode}): {output[-2000:] or '(no output)'}"
    )


_LISTENING = re.compile(rb"Listening on 127\.0\.0\.1:(\d+)")


def _listening_port(process: subprocess.Popen[bytes], log: Any, timeout: float) -> int | None:
    """The port in anvil's ``Listening on 127.0.0.1:PORT`` line (None if anvil exits or
    stays silent for ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log.seek(0)
        found = _LISTENING.search(log.read())
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.02)
    return None


def _wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float) -> bool:
    """Poll ``eth_chainId`` until it answers 31337 (True), anvil exits or time runs out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError, ValueError):  # not listening yet / half-started
            chain_id = rpc_call(url, "eth_chainId", timeout=1.0)
            if int(chain_id, 16) != CHAIN_ID:
                raise AnvilStartError(f"{url} answers chain id {chain_id}, expected {CHAIN_ID}")
            return True
        # Bounded poll interval; returns at once if anvil exits meanwhile.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.02)
    return False
