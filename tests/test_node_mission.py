"""The mission inside ``orbital node run --config`` (issue #15, point 3): three satellite nodes
as real processes, each with a keystore wallet behind its on-board policy, a libp2p gossip
host on 127.0.0.1 and the verified RPC in front of anvil (quorum trust, no link). The ground
deploys the contracts, registers the satellites, posts a task on chain and drops its input
into each node's inputs directory: each node learns the task from verified ``eth_getLogs``,
runs it, gossips its attestation, and the certificate forms; the lowest-address signer submits
it through its outbox, the others see it certified and step aside. A submitter killed with
``kill -9`` after the certificate formed submits exactly once after its restart. Bad
``[wallet]``/``[gossip]``/``[tasks]`` settings are refused in one line naming the key."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_utils import to_checksum_address

from node.attest.attestation import attestation_only_policy
from node.attest.certificate import SUBMIT_CERTIFICATE
from node.chain.hashing import keccak256
from node.demo.fleet import make_keystore_wallet
from node.devnet import Anvil
from node.gossip.transport import peer_id_of
from node.tasks import model as qmodel
from node.tasks.task import derive_task_id
from node.testing.node_process import REPO, NodeProcess, start_node, write_node_config
from node.testing.pytest_plugin import SoftHsmToken
from node.testing.softhsm import USER_PIN
from wallet.config import WalletConfig, save_config
from wallet.keys.pin import PinAttempts
from wallet.keys.pkcs11 import Pkcs11Token
from wallet.policy import pin_policy

from contracts_chain import Scenario, anvil_web3

PASSWORD = "mission-test"
MODEL = qmodel.load()
TILES = (Path(qmodel.__file__).parent / "expected" / "digits-inputs.bin").read_bytes()
SELECTOR = keccak256(SUBMIT_CERTIFICATE.encode())[:4]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 40.0) -> Any:
    """Poll ``check`` until it returns something true (the nodes are other processes)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


def make_wallet(home: Path, attestations: str, *, submit: bool = True) -> bytes:
    """A keystore wallet home for chain 31337 (the demo's, :mod:`node.demo.fleet`)."""
    return make_keystore_wallet(home, 31337, attestations, submit=submit, password=PASSWORD)


@dataclass
class Satellite:
    name: str
    root: Path
    address: bytes
    seed: bytes
    port: int
    tasks: dict[str, Any] = field(default_factory=dict)
    wallet: str = ('backend = "keystore"\nhome = "wallet"\n'
                   'password_file = "wallet/password"\n')
    node: NodeProcess | None = None

    @property
    def peer_id(self) -> str:
        return peer_id_of(self.seed)

    @property
    def multiaddr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.port}/p2p/{self.peer_id}"

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    def write_config(self, anvil: Anvil, sc: Scenario, peers: list[Satellite]) -> Path:
        extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in self.tasks.items())
        path = write_node_config(self.root / "node.toml", f"anvil={anvil.url}", f"""
[trust]
mode = "quorum"

[wallet]
{self.wallet}
[gossip]
listen = "127.0.0.1:{self.port}"
peers = {json.dumps([p.multiaddr for p in peers if p is not self])}
key = "gossip.key"

[tasks]
attestations = "{sc.deployment.attestations}"
registry = "{sc.deployment.registry}"
inputs = "inputs"
from_block = {sc.deployment.block}
fallback = "20s"
{extra}""")
        return path

    def start(self) -> NodeProcess:
        self.node = start_node([], self.root / "data", "--config", str(self.root / "node.toml"),
                               trust="", chain_id=0)
        return self.node

    def mission(self) -> dict[str, Any]:
        assert self.node is not None
        return self.node.rpc("orbital_status")["mission"]

    def drop_input(self, data: bytes, name: str = "tiles.bin") -> None:
        """What the ground's uplink does: write aside, then rename into place."""
        self.inputs.mkdir(exist_ok=True)
        (self.inputs / f"{name}.tmp").write_bytes(data)
        (self.inputs / f"{name}.tmp").rename(self.inputs / name)


@dataclass
class Ground:
    anvil: Anvil
    sc: Scenario
    satellites: list[Satellite]

    def configure(self) -> None:
        for sat in self.satellites:
            sat.write_config(self.anvil, self.sc, self.satellites)

    def start(self) -> None:
        with ThreadPoolExecutor(len(self.satellites)) as pool:
            list(pool.map(Satellite.start, self.satellites))
        wait_for("every node connected to its two peers", lambda: all(
            len(s.mission()["peers"]["connected"]) == len(self.satellites) - 1
            for s in self.satellites))

    def post_task(self, tiles: int = 8, quorum: int = 3) -> tuple[bytes, bytes, int]:
        """Post a task on the digits model; return (task id, its input, the block)."""
        data = TILES[: 64 * tiles]
        task_id = derive_task_id(MODEL.model_hash, keccak256(data), time.time_ns())
        receipt = self.sc.send(self.sc.attestations.functions.postTask(
            task_id, MODEL.model_hash, keccak256(data), quorum))
        return task_id, data, receipt["blockNumber"]

    def submissions_on_chain(self, since: int) -> list[dict[str, Any]]:
        """Every submitCertificate transaction mined since block ``since``."""
        w3 = self.sc.w3
        out = []
        for number in range(since, w3.eth.block_number + 1):
            for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
                if tx["to"] == self.sc.deployment.attestations and \
                        bytes(tx["input"])[:4] == SELECTOR:
                    out.append(dict(tx))
        return out

    def stop(self) -> None:
        for sat in self.satellites:
            if sat.node is not None:
                sat.node.stop()


@pytest.fixture
def ground(tmp_path: Path, anvil: Anvil) -> Iterator[Ground]:
    anvil.rpc("anvil_mine", "0x2")  # past anvil's genesis-state quirk
    sc = Scenario(anvil_web3(anvil), satellites=0)
    satellites = []
    for i in range(3):
        root = tmp_path / f"sat{i}"
        address = make_wallet(root / "wallet", sc.deployment.attestations)
        seed = os.urandom(32)
        (root / "gossip.key").write_text(seed.hex() + "\n")
        satellites.append(Satellite(f"SAT{i}", root, address, seed, _free_port()))
        checksummed = to_checksum_address(address)
        sc.send(sc.registry.functions.register(checksummed, f"SAT{i}", 70000 + i))
        sc.send({"to": checksummed, "value": 10**18, "gas": 21000})
    satellites.sort(key=lambda s: s.address)  # [0] is the lowest address: it submits first
    g = Ground(anvil, sc, satellites)
    try:
        yield g
    finally:
        g.stop()


@pytest.mark.devnet
@pytest.mark.slow
def test_three_nodes_certify_a_posted_task_and_one_submission_lands(ground: Ground) -> None:
    for sat in ground.satellites:
        # every node is to form the certificate itself (checked below): the submitter holds
        # its submission long enough for the last attestation to reach the others, or on a
        # loaded machine its TaskCertified can close the task at a node still waiting for it
        # (a node never forms a certificate for a task the chain already certified)
        sat.tasks = {"submit_delay": "5s"}
    ground.configure()
    ground.start()
    first = ground.satellites[0].mission()
    assert first["peerId"] == ground.satellites[0].peer_id  # the seed file's identity
    assert first["registry"]["active"] == 3
    task_id, data, posted_at = ground.post_task()
    for sat in ground.satellites:
        sat.drop_input(data)
    output = wait_for("the task certified on chain", lambda: (
        out := ground.sc.certified_output(task_id)) != bytes(32) and out)
    assert output == keccak256(qmodel.infer(MODEL, data))  # the model's bytes, certified
    lowest = ground.satellites[0]
    wait_for("the submission included (verified receipt in the outbox)",
             lambda: lowest.mission()["tasks"]["included"] == 1)
    wait_for("every node to see it certified",
             lambda: all(s.mission()["tasks"]["onChain"] == 1 for s in ground.satellites))
    for sat in ground.satellites:
        tasks = sat.mission()["tasks"]
        assert (tasks["seen"], tasks["run"], tasks["certified"]) == (1, 1, 1), sat.name
        assert tasks["submitted"] == (1 if sat is lowest else 0), sat.name
        gossip = sat.mission()["gossip"]  # both peers' attestations came, nobody graylisted
        assert gossip["delivered"] >= 2 and gossip["storeFailures"] == 0, (sat.name, gossip)
        assert gossip["syncRefused"] == gossip["syncServesRefused"] == 0, (sat.name, gossip)
    mined = ground.submissions_on_chain(posted_at)
    assert len(mined) == 1 and bytes(mined[0]["from"] if isinstance(mined[0]["from"], bytes)
                                      else bytes.fromhex(mined[0]["from"][2:])) == lowest.address
    assert lowest.node is not None
    entries = [e for e in lowest.node.rpc("orbital_outbox")
               if e["hash"] == lowest.mission()["submissions"][0]["tx"]]
    assert [(e["state"], e["kind"]) for e in entries] == [("included", "certificate")]
    for sat in ground.satellites:  # SIGTERM stops the node, gossip host included, within 5 s
        assert sat.node is not None
        began = time.monotonic()
        assert sat.node.stop() == 0
        assert time.monotonic() - began < 5.0


@pytest.mark.devnet
@pytest.mark.slow
def test_a_submitter_killed_after_the_certificate_formed_submits_once_after_restart(
        ground: Ground) -> None:
    submitter, *others = ground.satellites
    submitter.tasks = {"submit_delay": "5m"}  # holds its submission: killed before it
    for sat in others:
        sat.tasks = {"submit": False}
    ground.configure()
    ground.start()
    task_id, data, posted_at = ground.post_task()
    for sat in ground.satellites:
        sat.drop_input(data)
    wait_for("the certificate to form at the submitter",
             lambda: submitter.mission()["tasks"]["certified"] == 1)
    assert submitter.mission()["tasks"]["submitted"] == 0
    assert submitter.node is not None
    submitter.node.process.send_signal(signal.SIGKILL)
    submitter.node.process.wait()
    submitter.tasks = {}
    ground.configure()
    submitter.start()
    wait_for("the restarted node's submission included",
             lambda: submitter.mission()["tasks"]["included"] == 1)
    assert ground.sc.certified_output(task_id) == keccak256(qmodel.infer(MODEL, data))
    status = submitter.mission()
    assert status["tasks"]["submitted"] == 1 and status["tasks"]["run"] == 1
    assert len(ground.submissions_on_chain(posted_at)) == 1
    for sat in others:
        assert sat.mission()["tasks"]["submitted"] == 0
    # certified on chain: nothing of the task is held in memory, at run time and after a
    # restart whose replay of the gossip store brings it back
    nothing = {"tasks": 0, "inputs": 0, "signed": 0}
    wait_for("the submitter to see the task certified on chain",
             lambda: submitter.mission()["tasks"]["onChain"] == 1)
    assert submitter.mission()["held"] == nothing
    submitter.node.process.send_signal(signal.SIGKILL)
    submitter.node.process.wait()
    submitter.start()
    assert submitter.mission()["held"] == nothing


@pytest.mark.devnet
@pytest.mark.slow
@pytest.mark.hsm
def test_a_node_with_its_key_in_an_hsm_certifies_a_quorum_one_task_alone(
        ground: Ground, softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    """The wallet's PKCS#11 backend (SoftHSM2 through p11-kit-proxy): the same mission, the
    key never leaving the token."""
    home = tmp_path / "hsm-sat" / "wallet"
    home.mkdir(parents=True)
    with Pkcs11Token(softhsm_token.label, USER_PIN,
                     attempts=PinAttempts.in_state_dir(home)) as token:
        address = token.generate_key()
    policy = home / "policy.toml"
    policy.write_text(attestation_only_policy(31337, ground.sc.deployment.attestations,
                                              submit=True))
    save_config(WalletConfig(home, backend="pkcs11", chain_id=31337,
                             policy_sha256=pin_policy(policy)))
    (home / "pin").write_text(USER_PIN + "\n")
    (home / "pin").chmod(0o600)
    checksummed = to_checksum_address(address)
    ground.sc.send(ground.sc.registry.functions.register(checksummed, "HSM-SAT", 71000))
    ground.sc.send({"to": checksummed, "value": 10**18, "gas": 21000})
    sat = Satellite("HSM", home.parent, address, os.urandom(32), _free_port(),
                    wallet=f'backend = "pkcs11"\nhome = "wallet"\ntoken = "{softhsm_token.label}"\n'
                           f'pin_file = "wallet/pin"\n')
    (sat.root / "gossip.key").write_text(sat.seed.hex() + "\n")
    ground.satellites = [sat]  # alone: no peers
    ground.configure()
    sat.start()
    assert sat.mission()["address"] == "0x" + address.hex()
    task_id, data, posted_at = ground.post_task(tiles=2, quorum=1)
    sat.drop_input(data)
    wait_for("its submission included",
             lambda: sat.mission()["tasks"]["included"] == 1)
    assert ground.sc.certified_output(task_id) == keccak256(qmodel.infer(MODEL, data))
    assert len(ground.submissions_on_chain(posted_at)) == 1


# -- pieces, without processes ----------------------------------------------------------------


def test_certificate_calldata_is_the_contracts_abi_encoding() -> None:
    from web3 import Web3

    from contracts.deploy import ATTESTATIONS, contract
    from contracts.eip712 import TaskResult
    from node.attest.certificate import Certificate

    result = TaskResult(b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32, 9)
    cert = Certificate(result, (b"\x05" * 65, b"\x06" * 65), (b"\x07" * 20, b"\x08" * 20))
    bound = contract(Web3(), ATTESTATIONS, "0x" + "11" * 20)
    expected = bound.encode_abi("submitCertificate", args=cert.to_contract_args())
    assert cert.calldata() == bytes.fromhex(expected[2:])
    assert cert.calldata()[:4] == SELECTOR


def test_the_mission_store_keeps_one_submission_per_task_across_reopening(
        tmp_path: Path) -> None:
    from node.mission.store import MissionStore, PostedTask

    store = MissionStore(tmp_path / "mission.sqlite")
    task = PostedTask(b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, 2, 17)
    store.learn([task], {}, 20)
    assert store.record_submission(task.task_id, b"\xaa" * 32, b"raw-a", 4)
    assert not store.record_submission(task.task_id, b"\xbb" * 32, b"raw-b", 5)
    store.close()
    store = MissionStore(tmp_path / "mission.sqlite")  # a restart
    assert store.get_meta("scanned_to") == 20
    assert store.tasks(open_only=True) == [task]
    kept = store.submission(task.task_id)
    assert kept is not None and (kept.tx_hash, kept.raw, kept.nonce) == (b"\xaa" * 32,
                                                                        b"raw-a", 4)
    assert not store.replace_submission(task.task_id, b"\xcc" * 32, b"\xbb" * 32, b"b", 5)
    assert store.replace_submission(task.task_id, b"\xaa" * 32, b"\xbb" * 32, b"raw-b", 5)
    store.learn([task], {task.task_id: b"\x04" * 32}, 21)  # seen again, and certified
    assert store.tasks(open_only=True) == [] and len(store.tasks()) == 1
    store.close()


def test_the_gossip_identity_is_made_once_and_kept(tmp_path: Path) -> None:
    from node.mission import gossip_seed
    from node.service import ServiceError

    path = tmp_path / "id" / "gossip.key"
    seed = gossip_seed(path)
    assert gossip_seed(path) == seed and path.stat().st_mode & 0o777 == 0o600
    assert peer_id_of(seed) == peer_id_of(gossip_seed(path))
    path.write_text("not hex")
    with pytest.raises(ServiceError, match=r"^gossip\.key: .*\(64 hex digits\)"):
        gossip_seed(path)


# -- refusals ---------------------------------------------------------------------------------


def _run_config(path: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli.main", "node", "run", "--config",
                           str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL,
                          env={k: v for k, v in os.environ.items()
                               if k != "ORBITAL_KEYSTORE_PASSWORD"})


_TRUST = f"""
[trust]
mode = "checkpoint"
checkpoint = "1:0x{"ab" * 32}"
"""
_ATT = "0x" + "11" * 20
_REG = "0x" + "22" * 20
_MISSION = f"""
[wallet]
home = "wallet"
{{wallet}}
[gossip]
listen = "127.0.0.1:0"
{{gossip}}
[tasks]
attestations = "{_ATT}"
registry = "{_REG}"
{{tasks}}
"""


@pytest.mark.parametrize(("sections", "key", "fragment"), [
    ({"gossip": 'peers = ["/ip4/127.0.0.1/tcp/4001"]'}, "gossip.peers[0]", "/p2p/PEER_ID"),
    ({"tasks": 'inputs = "node.toml"'}, "tasks.inputs", "not a directory"),
    ({"wallet": 'password_file = "nope"'}, "wallet.password_file", "no such file"),
    ({"wallet": 'pin_file = "wallet/password"'}, "wallet.pin_file",
     'not used by backend "keystore"'),
], ids=["gossip", "tasks", "wallet", "wallet-backend"])
def test_a_bad_mission_config_is_refused_in_one_line_naming_the_key(
        tmp_path: Path, sections: dict[str, str], key: str, fragment: str) -> None:
    make_wallet(tmp_path / "wallet", _ATT)
    write_node_config(tmp_path / "node.toml", "http://127.0.0.1:9", _TRUST + _MISSION.format(
        **{"wallet": "", "gossip": "", "tasks": "", **sections}))
    done = _run_config(tmp_path / "node.toml")
    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line and f": {key}: " in line and fragment in line, line


@pytest.mark.parametrize(("wallet", "submit", "fragment"), [
    ("", True, "wallet: "),  # no password: neither a file nor the environment
    ('password_file = "wallet/password"', False, "tasks.submit: the wallet's policy refuses"),
], ids=["no-password", "policy"])
def test_a_wallet_that_cannot_serve_the_mission_stops_the_start_in_one_line(
        tmp_path: Path, wallet: str, submit: bool, fragment: str) -> None:
    make_wallet(tmp_path / "wallet", _ATT, submit=submit)
    write_node_config(tmp_path / "node.toml", "http://127.0.0.1:9",
                      _TRUST + _MISSION.format(wallet=wallet, gossip="", tasks=""))
    done = _run_config(tmp_path / "node.toml")
    assert done.returncode == 2, done.stderr[-2000:]
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("orbital: ") and fragment in line, done.stderr[-2000:]
