"""The satellites of the demo: each one an ``orbital node run --config`` process.

A satellite's directory holds what would be on board: its keystore wallet behind the
attestation policy (pinned, sealed at first open), its gossip identity, the signed heads
and task inputs the ground uplinked, and the node's data (header store, outbox, mission
store). Its configuration (:func:`node_config`) puts everything the node reaches behind
the link emulators of one contact plan at one time scale: its upstreams are the ground
stations' links (``SAT-STATION``), its gossip peers are reached through the inter-satellite
links (``SAT-SAT``); the node works its passes and sleeps between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from node.attest.attestation import attestation_only_policy
from node.config import PowerConfig
from node.demo.placement import LOCAL, Placement
from node.gossip.transport import peer_id_of
from wallet.config import WalletConfig, save_config
from wallet.errors import WalletError
from wallet.keys import pkcs11
from wallet.keys.keystore import create_keystore
from wallet.keys.pin import PinAttempts
from wallet.policy import pin_policy

POWER = PowerConfig(capacity_wh=20, solar_w=20, idle_w=8, task_w=40, task_s=600,
                    reserve_wh=6, initial_wh=10)
"""A 6U cubesat's budget with an AI accelerator as payload: 20 W of array in sunlight, 8 W
for the bus, 40 W more while a task runs for 10 minutes, a 20 Wh battery kept above 6 Wh.
A task in shadow does not fit (48 W for 10 minutes is 8 Wh); it waits for sunrise."""

START_TIMEOUT = 120.0
"""Wall seconds a node gets to print ``serving URL`` (a loaded machine, a big fleet)."""


@dataclass
class Satellite:
    """One satellite of the demo and, once started, its node process."""

    name: str
    root: Path
    address: bytes
    seed: bytes
    gossip_port: int
    process: asyncio.subprocess.Process | None = None
    rpc_url: str | None = None
    restarts: int = 0
    hsm: Hsm | None = None  # its wallet's key is in a SoftHSM2 token

    @property
    def peer_id(self) -> str:
        return peer_id_of(self.seed)

    @property
    def heads(self) -> Path:
        return self.root / "heads"

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    @property
    def log(self) -> Path:
        return self.root / "node.log"

    @property
    def config(self) -> Path:
        return self.root / "node.toml"


def make_keystore_wallet(home: Path, chain_id: int, attestations: str, *,
                         satellite: str | None = None, submit: bool = True,
                         password: str | None = None) -> bytes:
    """A wallet home as ``orbital wallet`` leaves it: one keystore (light KDF: a demo or a
    test, not flight), the attestation policy pinned (with ``submitCertificate`` when
    ``submit``), and its password in ``home/password`` (mode 600); returns the address."""
    keystores = home / "keystores"
    keystores.mkdir(parents=True)
    password = os.urandom(16).hex() if password is None else password
    temporary = keystores / "new.json.tmp"
    address = create_keystore(temporary, password, kdf="pbkdf2", iterations=1000)
    temporary.rename(keystores / f"0x{address.hex()}.json")
    policy = home / "policy.toml"
    policy.write_text(attestation_only_policy(chain_id, attestations, submit=submit))
    save_config(WalletConfig(home, chain_id=chain_id, satellite=satellite,
                             policy_sha256=pin_policy(policy)))
    secret = home / "password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    return address


@dataclass(frozen=True)
class Hsm:
    """SoftHSM2 for the demo's satellites: its configuration (one token directory for the
    run) and the state directory of the failed-PIN counters, given to every node."""

    conf: Path
    state: Path

    @classmethod
    def found(cls, directory: Path) -> Hsm | None:
        """An HSM under ``directory`` if SoftHSM2 and p11-kit are installed, else None."""
        try:
            pkcs11.default_module()
        except WalletError:
            return None
        if shutil.which("softhsm2-util") is None:
            return None
        tokens = directory / "tokens"
        tokens.mkdir(parents=True)
        conf = directory / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                        "log.level = ERROR\nslots.removable = false\n")
        return cls(conf, directory / "state")

    def environ(self) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf),
                "ORBITAL_STATE_DIR": str(self.state)}


def make_hsm_wallet(home: Path, hsm: Hsm, label: str, chain_id: int, attestations: str,
                    *, satellite: str) -> bytes:
    """A PKCS#11 wallet home: a SoftHSM2 token ``label`` initialised (random PINs), a key
    generated inside it, the attestation policy pinned, the user PIN in ``home/pin``."""
    so_pin, pin = os.urandom(8).hex(), os.urandom(8).hex()
    saved = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)  # softhsm2-util and the module read it
    try:
        pkcs11.init_token(None, label, so_pin, pin)
        with pkcs11.Pkcs11Token(label, pin, attempts=PinAttempts.in_state_dir(hsm.state)
                                ) as token:
            address = token.generate_key()
    finally:
        if saved is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = saved
    home.mkdir(parents=True)
    policy = home / "policy.toml"
    policy.write_text(attestation_only_policy(chain_id, attestations, submit=True))
    save_config(WalletConfig(home, backend="pkcs11", token=label, chain_id=chain_id,
                             satellite=satellite, policy_sha256=pin_policy(policy)))
    secret = home / "pin"
    secret.write_text(pin + "\n")
    secret.chmod(0o600)
    return address


def make_satellite(name: str, root: Path, chain_id: int, attestations: str,
                   gossip_port: int, hsm: Hsm | None = None) -> Satellite:
    """The on-board files of a new satellite: its wallet (in a SoftHSM2 token when ``hsm``,
    else a keystore), a gossip seed, the directories the ground uplinks into."""
    if hsm is None:
        address = make_keystore_wallet(root / "wallet", chain_id, attestations,
                                       satellite=name)
    else:
        address = make_hsm_wallet(root / "wallet", hsm, name, chain_id, attestations,
                                  satellite=name)
    seed = os.urandom(32)
    (root / "gossip.key").write_text(seed.hex() + "\n")
    (root / "heads").mkdir()
    (root / "inputs").mkdir()
    return Satellite(name, root, address, seed, gossip_port, hsm=hsm)


@dataclass(frozen=True)
class LinkClock:
    """The plan's clock as every process shares it (``[link]`` and ``orbital link run``):
    plan time ``start`` at UNIX time ``epoch``, ``time_scale`` times faster."""

    start: float
    epoch: float
    time_scale: float


def node_config(sat: Satellite, *, chain_id: int, plan: Path, clock: LinkClock,
                ground_links: dict[str, str], peers: dict[str, str],
                operators: list[str], threshold: int, attestations: str, registry: str,
                from_block: int, fallback: float, placement: Placement = LOCAL) -> str:
    """The satellite's ``node.toml`` (TOML text). ``ground_links`` maps each link
    ``SAT-STATION`` to the emulator's URL in front of the ground's RPC; ``peers`` maps each
    neighbour's multiaddr (through the ISL emulator) to the link it crosses. In the compose
    placement the node serves on every interface of its container and also writes its log
    into its volume (``node.log``), where the ground reads its events."""
    upstreams = [f"{link.split('-', 1)[1].lower()}={url}" for link, url in ground_links.items()]
    wallet = ('backend = "keystore"\nhome = "wallet"\npassword_file = "wallet/password"'
              if sat.hsm is None else
              f'backend = "pkcs11"\nhome = "wallet"\ntoken = "{sat.name}"\n'
              'pin_file = "wallet/pin"')
    start = json.dumps(_iso(clock.start))
    return f"""# {sat.name}: written by orbital demo
[node]
chain_id = {chain_id}
data_dir = "data"
rpc = "{placement.node_rpc}"
history = 1024
refresh = "1s"
chain = "anvil"

[upstreams]
urls = {json.dumps(upstreams)}

[trust]
mode = "ground"
operators = {json.dumps(operators)}
threshold = {threshold}
heads_dir = "heads"
max_head_age = "12h"

[link]
plan = "{plan}"
node = "{sat.name}"
links = {json.dumps(sorted(ground_links))}
time_scale = {clock.time_scale}
start = {start}
epoch = {clock.epoch}

[wallet]
{wallet}

[gossip]
listen = "{placement.gossip_host}:{sat.gossip_port}"
peers = {json.dumps(sorted(peers))}
key = "gossip.key"

[tasks]
attestations = "{attestations}"
registry = "{registry}"
inputs = "inputs"
from_block = {from_block}
fallback = {fallback:.3f}

[power]
capacity_wh = {POWER.capacity_wh:g}
solar_w = {POWER.solar_w:g}
idle_w = {POWER.idle_w:g}
task_w = {POWER.task_w:g}
task_s = {POWER.task_s:g}
reserve_wh = {POWER.reserve_wh:g}
initial_wh = {POWER.initial_wh:g}

[log]
format = "json"
level = "info"
{'file = "node.log"' if placement.compose else ""}
"""


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def start_node(sat: Satellite) -> str:
    """Start ``sat``'s node (``orbital node run --config``); return its RPC URL once it
    serves. Its log goes to ``sat.log`` (appended across restarts)."""
    log = sat.log.open("ab")
    try:
        sat.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "node.cli.main", "node", "run", "--config", str(sat.config),
            stdout=asyncio.subprocess.PIPE, stderr=log, cwd=sat.root,
            env=None if sat.hsm is None else sat.hsm.environ())
    finally:
        log.close()
    assert sat.process.stdout is not None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            line = (await sat.process.stdout.readline()).decode()
    except TimeoutError:
        line = ""
    if not line.startswith("serving "):
        with contextlib.suppress(ProcessLookupError):
            sat.process.kill()
        await sat.process.wait()
        tail = sat.log.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"{sat.name}: the node did not start ({line.strip()!r}):\n{tail}")
    sat.rpc_url = line.split()[1]
    return sat.rpc_url


async def stop_node(sat: Satellite, *, kill: bool = False, timeout: float = 10.0) -> None:
    """SIGTERM (or SIGKILL with ``kill``) and wait."""
    process = sat.process
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        async with asyncio.timeout(timeout):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def rpc(session: aiohttp.ClientSession, url: str, method: str, *params: Any) -> Any:
    """One JSON-RPC call to a node (its local RPC, not behind the link)."""
    async with session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                       "params": list(params)}) as response:
        body = await response.json(content_type=None)
    if "error" in body:
        raise RuntimeError(f"{method}: {body['error'].get('message')}")
    return body["result"]


async def await_node(sat: Satellite, url: str, timeout: float = START_TIMEOUT) -> str:
    """Wait until the node of ``sat`` that something else started (its container, in the
    compose placement) answers ``orbital_status`` at ``url``; return ``url``."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError, RuntimeError):
                        await rpc(session, url, "orbital_status")
                        break
                    await asyncio.sleep(0.5)
        except TimeoutError:
            tail = sat.log.read_text(errors="replace")[-1500:] if sat.log.exists() else ""
            raise RuntimeError(f"{sat.name}: no node answers at {url} after {timeout:g} s "
                               f"(is its container running?)\n{tail}") from None
    sat.rpc_url = url
    return url
