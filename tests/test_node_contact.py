"""The node behind an intermittent link (issue #15): ``orbital node run --config`` with a
contact plan, its upstream (anvil) behind ``orbital link run`` driven by the same plan, ten
times faster than real time.

Out of contact the node answers from its verified cache with the head's age, names what it
cannot answer and queues it, and queues transactions durably; at the next AOS it catches up,
answers the queued read, flushes the outbox and verifies the receipt. The schedule's
arithmetic (windows, ground passes, the shared plan clock) is tested without processes.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coincurve
import pytest
from test_outbox import sign_tx

from node.config import LinkConfig
from node.contact import ContactSchedule, ground_contacts, merge_windows
from node.devnet import Anvil
from node.testing.node_process import REPO, NodeProcess, NodeRpcError, start_node, write_node_config
from sim_link.clock import PlanClock
from sim_link.plan import Contact, ContactPlan

T0 = 1_795_392_000.0  # 2026-11-23T00:00:00Z
SCALE = 10.0
WINDOWS = [(40 + 200 * i, 100 + 200 * i) for i in range(8)]  # plan s after T0: 6 s wall
# passes 14 s apart; the tests follow whichever pass comes first after the node is up
GWEI = 10**9
STRANGER = "0x" + "be" * 20


def _contact(source: str, target: str, start: float, end: float, *,
             elevation: float | None = 40.0) -> Contact:
    return Contact(source, target, start, end, 2e6, 256e3, ((start, 0.005), (end, 0.005)),
                   max_elevation_deg=elevation)


# -- the schedule, without processes ---------------------------------------------------------


def test_overlapping_passes_are_one_window_and_isl_contacts_are_not_ground() -> None:
    plan = ContactPlan((_contact("SAT1", "GS1", 100, 200), _contact("SAT1", "GS2", 150, 260),
                        _contact("SAT1", "GS1", 400, 500),
                        _contact("SAT1", "SAT2", 0, 1000, elevation=None)))
    passes = ground_contacts(plan, "SAT1")
    assert sorted(c.link for c in passes) == ["SAT1-GS1", "SAT1-GS1", "SAT1-GS2"]
    windows = merge_windows(passes)
    assert [(w.start, w.end, w.links) for w in windows] == [
        (100, 260, ("SAT1-GS1", "SAT1-GS2")), (400, 500, ("SAT1-GS1",))]
    only = merge_windows(ground_contacts(plan, "SAT1", ["SAT1-GS2"]))
    assert [(w.start, w.end) for w in only] == [(150, 260)]


def test_the_schedule_runs_on_the_plan_clock_shared_through_the_epoch(tmp_path: Path) -> None:
    plan = ContactPlan(tuple(_contact("SAT1", "GS", T0 + a, T0 + b) for a, b in WINDOWS))
    (tmp_path / "plan.json").write_text(plan.to_json())
    epoch = time.time() - 5.0  # the plan reached T0 five wall seconds ago: plan T0 + 50
    schedule = ContactSchedule.from_config(
        LinkConfig(tmp_path / "plan.json", "SAT1", (), SCALE, T0, epoch))
    assert abs(schedule.clock.now() - (T0 + 50)) < 1.0
    window = schedule.current_or_next()
    assert window is not None and (window.start, window.end) == (T0 + 40, T0 + 100)
    status = schedule.status()
    assert status["window"]["inProgress"] is True  # type: ignore[index]
    assert 4.0 < status["window"]["wallSecondsToEnd"] < 6.0  # type: ignore[index]
    other = PlanClock.from_epoch(T0, SCALE, epoch)  # another process, same three numbers
    assert abs(other.now() - schedule.clock.now()) < 0.1
    late = ContactSchedule.from_config(
        LinkConfig(tmp_path / "plan.json", "SAT1", (), SCALE, T0, time.time() - 200))
    assert late.current_or_next() is None  # plan time T0 + 2000: no window left


# -- the node behind the emulated link --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class BehindLink:
    """A node config whose only upstream is anvil through ``orbital link run``; both follow
    the plan of :data:`WINDOWS` from the same ``epoch``."""

    config: Path
    data_dir: Path
    epoch: float
    metrics_port: int

    def start(self) -> NodeProcess:
        return start_node([], self.data_dir, "--config", str(self.config), trust="",
                          chain_id=0)


@contextlib.contextmanager
def link_and_config(directory: Path, anvil: Anvil, windows: list[tuple[float, float]], *,
                    up_bps: float = 2e6, down_bps: float = 256e3,
                    watch: list[str] = ()) -> Iterator[BehindLink]:
    """``orbital link run`` in front of anvil following ``windows`` (plan seconds after
    :data:`T0`, at :data:`SCALE`; ``up_bps`` node -> ground), and a node config behind it
    watching ``watch``; the emulator is stopped on exit."""
    anvil.rpc("anvil_mine", "0x2")  # past anvil's genesis-state quirk
    contacts = (Contact("SAT1", "GS", T0 + a, T0 + b, up_bps, down_bps,
                        ((T0 + a, 0.005), (T0 + b, 0.005)), max_elevation_deg=40.0)
                for a, b in windows)
    (directory / "plan.json").write_text(ContactPlan(tuple(contacts)).to_json())
    epoch = time.time() + 3.0  # the processes agree on plan time from here
    listen, metrics = _free_port(), _free_port()
    link = subprocess.Popen(
        [sys.executable, "-m", "node.cli.main", "link", "run", "--plan",
         str(directory / "plan.json"), "--link", "SAT1-GS", "--listen", f"127.0.0.1:{listen}",
         "--upstream", f"127.0.0.1:{anvil.port}", "--time-scale", str(SCALE),
         "--start", "2026-11-23T00:00:00Z", "--epoch", repr(epoch)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    write_node_config(directory / "node.toml", f"ground=http://127.0.0.1:{listen}", f"""
[trust]
mode = "quorum"

[link]
plan = "plan.json"
node = "SAT1"
links = ["SAT1-GS"]
time_scale = {SCALE}
start = 2026-11-23T00:00:00Z
epoch = {epoch!r}

[watch]
accounts = {json.dumps(list(watch))}

[metrics]
listen = "127.0.0.1:{metrics}"
""")
    try:
        yield BehindLink(directory / "node.toml", directory / "data", epoch, metrics)
    finally:
        link.terminate()
        link.wait(timeout=10)


@pytest.fixture
def behind_link(tmp_path: Path, anvil: Anvil) -> Iterator[BehindLink]:
    with link_and_config(tmp_path, anvil, WINDOWS,
                         watch=["0x" + _address(_key(anvil)).hex()]) as setup:
        yield setup


def _key(anvil: Anvil) -> coincurve.PrivateKey:
    return coincurve.PrivateKey(bytes.fromhex(anvil.private_keys[0].removeprefix("0x")))


def _address(key: coincurve.PrivateKey) -> bytes:
    from node.chain.hashing import keccak256
    return keccak256(key.public_key.format(compressed=False)[1:])[12:]


def _until(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _link(node: NodeProcess) -> dict[str, Any]:
    return node.rpc("orbital_status")["link"]


def _next_los(node: NodeProcess) -> int:
    """Wait for the node's next pass to begin and end; the passes it has had."""
    _until("an AOS", lambda: _link(node)["inContact"], 60)
    _until("a head", lambda: node.rpc("orbital_status")["head"], 30)
    _until("the LOS", lambda: _link(node)["inContact"] is False, 30)
    return _link(node)["contacts"]


def _still_between(node: NodeProcess, passes: int) -> None:
    """What the test did between two passes was done before the next AOS."""
    assert _link(node)["contacts"] == passes, "the test was too slow to act between passes"


@pytest.mark.devnet
@pytest.mark.slow
def test_out_of_contact_the_node_serves_its_cache_and_queues_until_the_next_pass(
        behind_link: BehindLink, anvil: Anvil) -> None:
    node = behind_link.start()
    try:
        _serve_cache_and_queue(node, behind_link, anvil)
    finally:
        node.stop()


def _serve_cache_and_queue(node: NodeProcess, setup: BehindLink, anvil: Anvil) -> None:
    metrics_port = setup.metrics_port
    key = _key(anvil)
    sender = "0x" + _address(key).hex()
    # First pass: the head is anchored and the watch list proven at it.
    passes = _next_los(node)
    head = node.rpc("orbital_status")["head"]
    assert head is not None
    next_aos = _link(node)["plan"]["window"]["start"]

    # Out of contact: a watched account is answered from the cache, with the head's age.
    reply, headers = node.request({"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance",
                                   "params": [sender, "latest"]})
    block = hex(int(head["number"]))
    assert reply["result"] == anvil.rpc("eth_getBalance", sender, block)
    assert headers["X-Orbital-Head"].startswith(f"{int(head['number'])} ")
    assert float(headers["X-Orbital-Head-Age"]) >= 0
    # ... an unwatched one is not: the error names it and queues the read.
    with pytest.raises(NodeRpcError) as missing:
        node.rpc("eth_getBalance", STRANGER, "latest")
    assert missing.value.code == -32002
    assert f"eth_getBalance(\"{STRANGER}\", \"latest\")" in missing.value.error_message
    assert f"out of contact by the contact plan (next AOS {next_aos})" in \
        missing.value.error_message  # known from the plan: no request spent on the link
    pending_id = missing.value.data["pending"]
    assert [p["id"] for p in node.rpc("orbital_pending")] == [pending_id]
    # ... a transaction is queued, durable, with its hash; the chain moves on meanwhile.
    nonce = int(node.rpc("eth_getTransactionCount", sender, "pending"), 16)
    raw = sign_tx(key, nonce=nonce, maxFeePerGas=50 * GWEI, maxPriorityFeePerGas=GWEI,
                  chainId=31337, to=bytes.fromhex(STRANGER[2:]), value=12345)
    tx_hash = node.rpc("eth_sendRawTransaction", "0x" + raw.hex())
    assert [e["state"] for e in node.rpc("orbital_outbox")] == ["queued"]
    assert int(node.rpc("eth_getTransactionCount", sender, "pending"), 16) == nonce + 1
    assert anvil.rpc("eth_getTransactionByHash", tx_hash) is None  # not sent during LOS
    _still_between(node, passes)
    anvil.rpc("anvil_mine", "0x3")

    # Next pass: caught up, the read answered, the transaction flushed and its receipt
    # verified against an anchored block.
    entry = _until("the transaction included", lambda: next(
        (e for e in node.rpc("orbital_outbox") if e["state"] in ("included", "final")), None),
        60)
    assert entry["hash"] == tx_hash
    receipt = node.rpc("eth_getTransactionReceipt", tx_hash)
    assert receipt["status"] == "0x1" and receipt["blockHash"] == entry["blockHash"]
    assert anvil.rpc("eth_getTransactionReceipt", tx_hash)["blockHash"] == receipt["blockHash"]
    answered = next(p for p in node.rpc("orbital_pending") if p["id"] == pending_id)
    assert answered["state"] == "ready", answered
    assert int(node.rpc("eth_getBalance", STRANGER, "latest"), 16) >= 12345
    assert node.rpc("orbital_status")["head"]["number"] > head["number"]

    # What /metrics says about it.
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
              if line and not line.startswith("#")}
    assert values["orbital_contacts_total"] >= 2
    assert values['orbital_link_bytes_total{direction="down"}'] > 0
    assert values['orbital_link_bytes_total{direction="up"}'] > 0
    assert values["orbital_head_number"] >= head["number"]
    assert values['orbital_verifications_total{kind="eth_getBalance"}'] >= 2
    assert values['orbital_refusals_total{kind="unavailable"}'] >= 1

    # SIGTERM: a clean stop, quickly, even in the middle of the plan.
    started = time.monotonic()
    assert node.stop() == 0
    assert time.monotonic() - started < 5.0
    outbox = json.loads(subprocess.run(
        [sys.executable, "-c", "import json,sqlite3,sys;"
         "print(json.dumps(sqlite3.connect(sys.argv[1]).execute("
         "'select count(*) from entries').fetchone()))",
         str(node.data_dir / "outbox.sqlite")], capture_output=True, text=True).stdout)
    assert outbox == [1]


@pytest.mark.devnet
@pytest.mark.slow
def test_killed_during_los_with_queued_transactions_the_restarted_node_lands_each_once(
        behind_link: BehindLink, anvil: Anvil) -> None:
    """kill -9 between passes with three accepted transactions; the restart resumes from
    disk (the head it had, the queue) and the next pass mines each exactly once."""
    key = _key(anvil)
    sender = "0x" + _address(key).hex()
    node = behind_link.start()
    try:
        _next_los(node)
        head = node.rpc("orbital_status")["head"]
        nonce = int(node.rpc("eth_getTransactionCount", sender, "pending"), 16)
        hashes = [node.rpc("eth_sendRawTransaction", "0x" + sign_tx(
            key, nonce=nonce + i, maxFeePerGas=50 * GWEI, maxPriorityFeePerGas=GWEI,
            chainId=31337, to=bytes.fromhex(STRANGER[2:]), value=1 + i).hex())
            for i in range(3)]
    finally:
        node.process.kill()  # SIGKILL: no clean-up of any kind
        node.process.wait()
    restarted = behind_link.start()
    try:
        status = restarted.rpc("orbital_status")
        assert status["head"]["hash"] == head["hash"]  # resumed from disk, not re-synced
        assert status["link"]["contacts"] == 0, "the test was too slow: a pass came first"
        entries = restarted.rpc("orbital_outbox")
        assert [(e["hash"], e["state"]) for e in entries] == [(h, "queued") for h in hashes]
        _until("all three included", lambda: all(
            e["state"] in ("included", "final") for e in restarted.rpc("orbital_outbox")), 60)
        assert int(restarted.rpc("eth_getTransactionCount", sender, "pending"), 16) == \
            nonce + 3
    finally:
        assert restarted.stop() == 0
    assert int(anvil.rpc("eth_getTransactionCount", sender, "latest"), 16) == nonce + 3
    blocks = {anvil.rpc("eth_getTransactionReceipt", h)["blockNumber"] for h in hashes}
    mined = [tx["hash"] for number in blocks
             for tx in anvil.rpc("eth_getBlockByNumber", number, True)["transactions"]]
    assert sorted(mined) == sorted(hashes)  # each once, nothing else from this sender


@pytest.mark.devnet
@pytest.mark.slow
@pytest.mark.timeout(900)  # five passes; the pytest-wide 300 s is for one-pass tests
def test_a_thousand_transactions_queued_out_of_contact_flush_over_several_passes(
        tmp_path: Path, anvil: Anvil) -> None:
    """1,000 transfers from four senders accepted during LOS; the uplink (24 kbit/s at
    about 300 bytes a transaction) carries at most ~600 in one 60 s pass, so the flush
    resumes at the next: every one mined exactly once, no nonce twice, each sender's in
    nonce order, each marked included on a verified receipt."""
    keys = [coincurve.PrivateKey(bytes.fromhex(k.removeprefix("0x")))
            for k in anvil.private_keys[1:5]]
    senders = ["0x" + _address(k).hex() for k in keys]
    windows = [(40, 100), (240, 300), (440, 500), (640, 700), (840, 900)]
    anvil.rpc("evm_setIntervalMining", 1)  # blocks every second, as a chain makes them
    try:
        with link_and_config(tmp_path, anvil, windows, up_bps=24e3, down_bps=2e6,
                             watch=senders) as setup:
            node = setup.start()
            try:
                _thousand_through_passes(node, setup, anvil, keys, senders)
            finally:
                assert node.stop() == 0
    finally:
        anvil.rpc("evm_setAutomine", True)


def _thousand_through_passes(node: NodeProcess, setup: BehindLink, anvil: Anvil,
                             keys: list[coincurve.PrivateKey], senders: list[str]) -> None:
    _next_los(node)
    starts = [int(anvil.rpc("eth_getTransactionCount", s, "latest"), 16) for s in senders]
    calls = [{"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction",
              "params": ["0x" + sign_tx(k, nonce=start + i, maxFeePerGas=50 * GWEI,
                                        maxPriorityFeePerGas=GWEI, chainId=31337,
                                        to=bytes.fromhex(STRANGER[2:]), value=1).hex()]}
             for i in range(250) for k, start in zip(keys, starts, strict=True)]
    replies, _ = node.request(calls)  # one batch of 1,000, each fsync'd before its answer
    passes = _link(node)["contacts"]  # on a slow machine a pass may have begun meanwhile:
    # it and the next carry at most ~900 of them, so some still wait after the next one
    hashes = [r["result"] for r in sorted(replies, key=lambda r: r["id"])]
    assert len(set(hashes)) == 1000

    def counts() -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in node.rpc("orbital_outbox"):
            out[entry["state"]] = out.get(entry["state"], 0) + 1
        return out

    _until("LOS after the first pass that flushes",
           lambda: _link(node)["contacts"] > passes and _link(node)["inContact"] is False, 60)
    after_one = counts()
    assert after_one.get("queued", 0) > 0, f"one pass carried them all: {after_one}"
    _until("all 1,000 included", lambda: counts() in ({"included": 1000},), 300)
    for sender, start in zip(senders, starts, strict=True):
        assert int(anvil.rpc("eth_getTransactionCount", sender, "latest"), 16) == start + 250
    seen: dict[str, list[int]] = {s: [] for s in senders}
    blocks = sorted({int(anvil.rpc("eth_getTransactionReceipt", h)["blockNumber"], 16)
                     for h in hashes})
    for number in blocks:
        for tx in anvil.rpc("eth_getBlockByNumber", hex(number), True)["transactions"]:
            if tx["from"] in seen:
                seen[tx["from"]].append(int(tx["nonce"], 16))
    for sender, start in zip(senders, starts, strict=True):
        assert seen[sender] == list(range(start, start + 250))  # once each, in nonce order
