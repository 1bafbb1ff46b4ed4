"""The verified node against the unverified upstream it stands in front of: per method, cold
and warm, what a verified answer costs in time, round trips and bytes; the local EVM's speed;
and the same over an emulated 5 ms ground link, where the warm verified answer should win.

Run from the repository root::

    python -m benchmarks.node            # full run (about a minute)
    python -m benchmarks.node --quick    # few samples, for the smoke test
    python -m benchmarks.node --check    # exit 1 if a target is missed
    python -m benchmarks.node --json     # results as JSON instead of the table

**Setup.** One anvil (``--hardfork prague``, ``node/devnet.py``) with hand-assembled
contracts deployed by real transactions: *Store* copies (two storage slots set by the
constructor; calldata of 32 bytes writes slot 0 and ``slot[caller]`` and emits a LOG2, empty
calldata returns slot 0), *Reader* copies (STATICCALL their own Store, add their own slot 0:
a contract calling another), a *Logger* (a Store that blocks of ordinary EIP-1559
transactions write to: the blocks, receipts, logs and fee history rows read them) and a
*Burner* (a keccak loop: the CPU-heavy call). Fresh EOAs are funded by transfers.

**The node** is ``orbital node run --trust checkpoint`` at the devnet's head, in its own
process (``tests/verified_node.py``), so the head -- and the block of every measurement --
is fixed; ``--refresh`` is so long that no refresh runs during the measurement. It keeps the
header store, the witness store and the verified block cache of a real deployment.

**Measured** from this process over real sockets with one aiohttp session (keep-alive, one
request at a time): each method's verified answer from the node against the *same* JSON-RPC
request sent straight to anvil (the unverified baseline: what a client without the node
gets), interleaved in the same run:

* *cold*: the first request for an account, slot, contract or block the node has not seen
  (a fresh one per sample, so the witness or the block is fetched and checked); the upstream
  round trips (HTTP requests; a batch is one) and bytes the node received for it are read from
  its ``orbital_status`` before and after;
* *warm*: the same request again, several times (no upstream traffic is expected; the table
  shows the round trips measured);
* every sample is followed by the direct call, and the node's answer is compared with
  anvil's (a disagreement stops the benchmark).

**Local EVM**: gas per second of an ``eth_call`` of the Burner (gas used from
``eth_createAccessList``, equal on both sides) on warm state, against anvil's ``eth_call`` of
the same: py-evm in the node's worker process against revm.

**Over the link**: the same cases on a second node whose upstream is reached through
:class:`sim_link.proxy.LinkEmulator` (5 ms one-way delay, 1 Gbit/s each way, always up:
the satellite's ground link); the unverified baseline crosses an identical emulator (the
client on board asking the ground directly). The client talks to the node over loopback.
Target (``--check``): every warm verified call over the link is faster than the unverified
call (ratio >= 1x).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import Row, Target, as_json, benchmark_parser, environment, render
from node.chain.hashing import keccak256
from node.devnet import Anvil, start_anvil
from node.testing.node_process import NodeProcess, start_node
from sim_link.clock import PlanClock
from sim_link.plan import Contact, ContactPlan
from sim_link.proxy import LinkEmulator

WARM_BEATS_LINK = Target("ratio", 1.0)
"""Warm verified calls over the link faster than the unverified call across it."""
T0 = 1_000.0  # plan time of the emulators' clock at start
LOCAL = ("127.0.0.1", 0)
GWEI = 10**9
LOG_TOPIC = bytes.fromhex("b0" * 32)
PERCENTILES = [25, 75]


class BenchmarkError(RuntimeError):
    """The devnet, the node or a comparison of answers went wrong."""


@dataclass(frozen=True)
class Sizes:
    cold: int  # fresh items per method: one cold sample each
    warm: int  # warm samples per item (each followed by a direct call)
    txs_per_block: int  # Logger transactions in each block the block methods read
    log_blocks: int  # blocks in each eth_getLogs range
    fee_blocks: int  # blocks in each eth_feeHistory window
    burn_gas: int  # about the gas of the CPU-heavy call
    burn_repeats: int
    delay_s: float = 0.005  # one-way, node <-> upstream and client <-> upstream
    rate_bps: float = 1e9


FULL = Sizes(cold=5, warm=10, txs_per_block=4, log_blocks=4, fee_blocks=4,
             burn_gas=2_000_000, burn_repeats=3)
QUICK = Sizes(cold=2, warm=3, txs_per_block=2, log_blocks=2, fee_blocks=2,
              burn_gas=500_000, burn_repeats=2)


# -- hand-assembled contracts ---------------------------------------------------------------

_OPS = {"STOP": 0x00, "ADD": 0x01, "LT": 0x10, "ISZERO": 0x15, "KECCAK256": 0x20,
        "CALLER": 0x33, "CALLDATALOAD": 0x35, "CALLDATASIZE": 0x36, "CODECOPY": 0x39,
        "GAS": 0x5A, "MLOAD": 0x51, "MSTORE": 0x52, "SLOAD": 0x54, "SSTORE": 0x55,
        "JUMP": 0x56, "JUMPI": 0x57, "JUMPDEST": 0x5B, "PUSH0": 0x5F, "DUP1": 0x80,
        "DUP2": 0x81, "LOG2": 0xA2, "RETURN": 0xF3, "STATICCALL": 0xFA, "REVERT": 0xFD}


def assemble(*items: str | int | bytes) -> bytes:
    """EVM bytecode: an opcode name; ``":name"`` a JUMPDEST labelled name; ``"@name"`` its
    offset (PUSH2); an int the shortest PUSH of it; bytes a PUSH of exactly them."""
    def emit(labels: dict[str, int]) -> bytes:
        out = bytearray()
        for item in items:
            if isinstance(item, bytes):
                out += bytes([0x5F + len(item)]) + item
            elif isinstance(item, int):
                raw = item.to_bytes(max(1, (item.bit_length() + 7) // 8), "big")
                out += bytes([0x5F]) if item == 0 else bytes([0x5F + len(raw)]) + raw
            elif item.startswith(":"):
                labels.setdefault(item[1:], len(out))
                out.append(_OPS["JUMPDEST"])
            elif item.startswith("@"):
                out += bytes([0x61]) + labels.get(item[1:], 0).to_bytes(2, "big")
            else:
                out.append(_OPS[item])
        return bytes(out)
    labels: dict[str, int] = {}
    emit(labels)  # first pass: where the labels are (label pushes are always PUSH2)
    return emit(labels)


STORE_RUNTIME = assemble(
    "CALLDATASIZE", "@write", "JUMPI",
    0, "SLOAD", 0, "MSTORE", 32, 0, "RETURN",  # view: slot 0
    ":write", 0, "CALLDATALOAD",  # x
    "DUP1", 0, "SSTORE", "DUP1", "CALLER", "SSTORE", 0, "MSTORE",  # slot 0, slot[caller]
    "CALLER", LOG_TOPIC, 32, 0, "LOG2", "STOP")  # log2(x; LOG_TOPIC, caller)

BURNER_RUNTIME = assemble(
    0, "CALLDATALOAD", 0,  # n, i
    ":loop", "DUP2", "DUP2", "LT", "ISZERO", "@done", "JUMPI",
    "DUP1", 32, "MSTORE", 64, 0, "KECCAK256", 0, "MSTORE",  # h = keccak(h, i)
    1, "ADD", "@loop", "JUMP",
    ":done", 32, 0, "RETURN")
BURN_GAS_PER_ROUND = 100  # about: 19 cheap opcodes and a 64-byte KECCAK256


def reader_runtime(store: str) -> bytes:
    """STATICCALL ``store`` for its slot 0; return it plus this contract's own slot 0."""
    return assemble(
        32, 0, 0, 0, bytes.fromhex(store[2:]), "GAS", "STATICCALL", "ISZERO", "@fail", "JUMPI",
        0, "MLOAD", 0, "SLOAD", "ADD", 0, "MSTORE", 32, 0, "RETURN",
        ":fail", 0, 0, "REVERT")


def initcode(runtime: bytes, slots: Sequence[tuple[int, int]] = ()) -> bytes:
    """A constructor that stores ``slots`` (slot, value) and deploys ``runtime``."""
    def with_offset(offset: int) -> bytes:
        body: list[str | int | bytes] = []
        for slot, value in slots:
            body += [value, slot, "SSTORE"]
        body += [len(runtime), "DUP1", offset.to_bytes(2, "big"), 0, "CODECOPY", 0, "RETURN"]
        return assemble(*body)
    prefix = with_offset(0)
    return with_offset(len(prefix)) + runtime


def word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


# -- the devnet -----------------------------------------------------------------------------

@dataclass
class Devnet:
    """What :func:`build_devnet` left on anvil; every measurement is at block ``head``."""

    anvil: Anvil
    head: int
    head_hash: str
    sender: str  # ``from`` of every call
    eoas: list[str]  # funded fresh accounts
    stores: list[str]
    readers: list[str]  # readers[i] reads stores[reader_stores + i]
    reader_stores: int
    burner: str
    logger: str
    blocks: list[int]  # consecutive blocks of Logger transactions
    txs: dict[int, list[str]] = field(default_factory=dict)
    base_fees: dict[int, int] = field(default_factory=dict)  # of every block

    @property
    def tag(self) -> str:
        return hex(self.head)


def _mine_all(anvil: Anvil, sends: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """Send ``sends`` (automine off), mine one block; its number and the receipts."""
    hashes = [anvil.rpc("eth_sendTransaction", tx) for tx in sends]
    anvil.rpc("evm_mine")
    number = int(anvil.rpc("eth_blockNumber"), 16)
    receipts = [anvil.rpc("eth_getTransactionReceipt", h) for h in hashes]
    for receipt in receipts:
        if receipt is None or receipt["status"] != "0x1" or int(receipt["blockNumber"],
                                                                   16) != number:
            raise BenchmarkError(f"devnet setup: a transaction failed or was not mined in "
                                 f"block {number}: {receipt}")
    return number, receipts


def _nonces(anvil: Anvil, account: str) -> itertools.count[int]:
    return itertools.count(int(anvil.rpc("eth_getTransactionCount", account, "pending"), 16))


def build_devnet(anvil: Anvil, sizes: Sizes) -> Devnet:
    """Deploy and mine what the cases read (see the module docstring)."""
    s = sizes.cold
    deployer, funder = anvil.accounts[0], anvil.accounts[5]
    anvil.rpc("evm_setAutomine", False)
    try:
        nonce = _nonces(anvil, deployer)
        fund = _nonces(anvil, funder)
        eoas = ["0x" + keccak256(b"orbital benchmark account %d" % i)[12:].hex()
                for i in range(s)]
        deploy = [{"from": deployer, "nonce": hex(next(nonce)), "gas": hex(400_000),
                   "data": "0x" + code.hex()} for code in (
            initcode(BURNER_RUNTIME), initcode(STORE_RUNTIME),
            *(initcode(STORE_RUNTIME, ((0, 1000 + i), (1, 2000 + i))) for i in range(7 * s)))]
        transfers = [{"from": funder, "nonce": hex(next(fund)), "to": eoa,
                      "value": hex(10**18 + i)} for i, eoa in enumerate(eoas)]
        _, receipts = _mine_all(anvil, deploy + transfers)
        burner, logger, *stores = (r["contractAddress"] for r in receipts[:len(deploy)])
        reader_stores = 6 * s
        _, receipts = _mine_all(anvil, [
            {"from": deployer, "nonce": hex(next(nonce)), "gas": hex(400_000),
             "data": "0x" + initcode(reader_runtime(store), ((0, 3000 + i),)).hex()}
            for i, store in enumerate(stores[reader_stores:])])
        readers = [r["contractAddress"] for r in receipts]
        senders = anvil.accounts[1:1 + sizes.txs_per_block]
        counters = {a: _nonces(anvil, a) for a in senders}
        blocks, txs = [], {}
        for b in range(2 * s + s * sizes.log_blocks + s * sizes.fee_blocks):
            number, receipts = _mine_all(anvil, [
                {"from": a, "nonce": hex(next(counters[a])), "to": logger, "gas": hex(100_000),
                 "data": word(100 * b + j), "maxFeePerGas": hex(100 * GWEI),
                 "maxPriorityFeePerGas": hex((j + 1) * GWEI)} for j, a in enumerate(senders)])
            blocks.append(number)
            txs[number] = [r["transactionHash"] for r in receipts]
        anvil.rpc("evm_mine")
        anvil.rpc("evm_mine")
    finally:
        anvil.rpc("evm_setAutomine", True)
    if blocks != list(range(blocks[0], blocks[0] + len(blocks))):
        raise BenchmarkError(f"devnet setup: Logger blocks are not consecutive: {blocks}")
    head = anvil.rpc("eth_getBlockByNumber", "latest", False)
    number = int(head["number"], 16)
    base_fees = {n: int(anvil.rpc("eth_getBlockByNumber", hex(n), False)["baseFeePerGas"], 16)
                 for n in range(number + 1)}
    return Devnet(anvil, number, head["hash"], deployer, eoas, stores, readers, reader_stores,
                  burner, logger, blocks, txs, base_fees)


# -- the cases ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One method: the params of its i-th fresh item, and what must agree with anvil."""

    name: str
    method: str
    params: Callable[[int], list[Any]]
    key: Callable[[Any], Any] = lambda answer: answer  # compared node vs anvil
    check: Callable[[Any, list[Any]], str | None] = lambda answer, params: None
    """What is wrong with the node's answer beyond ``key`` (None: nothing)."""


def _proof_key(proof: dict[str, Any]) -> Any:
    return ([proof[k] for k in ("address", "balance", "nonce", "codeHash", "storageHash")],
            [(int(p["key"], 16), int(p["value"], 16)) for p in proof["storageProof"]])


def _fee_key(history: dict[str, Any]) -> Any:
    """All but the last base fee (the block after the newest): anvil gives the one after
    its latest block there whatever the newest block asked for; the node's is checked apart
    (:func:`cases`)."""
    return (int(history["oldestBlock"], 16), history["baseFeePerGas"][:-1],
            [round(r, 9) for r in history["gasUsedRatio"]], history.get("reward"))


def cases(net: Devnet, sizes: Sizes) -> list[Case]:
    s, tag, r, f = sizes.cold, net.tag, sizes.log_blocks, sizes.fee_blocks

    def store(slice_: int) -> Callable[[int], str]:
        return lambda i: net.stores[slice_ * s + i]

    def call(to: str, data: str = "0x") -> dict[str, Any]:
        return {"from": net.sender, "to": to, "data": data}

    logs_at, fees_at = 2 * s, 2 * s + s * r

    def next_base_fee(history: dict[str, Any], params: list[Any]) -> str | None:
        after = int(params[1], 16) + 1
        if int(history["baseFeePerGas"][-1], 16) == net.base_fees[after]:
            return None
        return f"next base fee {history['baseFeePerGas'][-1]}, block {after} has " \
               f"{hex(net.base_fees[after])}"
    return [
        Case("eth_getBalance", "eth_getBalance", lambda i: [net.eoas[i], tag]),
        Case("eth_getTransactionCount", "eth_getTransactionCount",
             lambda i: [store(0)(i), tag]),
        Case("eth_getStorageAt", "eth_getStorageAt", lambda i: [store(1)(i), "0x0", tag]),
        Case("eth_getCode", "eth_getCode", lambda i: [store(2)(i), tag]),
        Case("eth_getProof (2 slots)", "eth_getProof",
             lambda i: [store(3)(i), [word(0), word(1)], tag], _proof_key),
        Case("eth_call (view)", "eth_call", lambda i: [call(store(4)(i)), tag]),
        Case("eth_call (contract->contract)", "eth_call",
             lambda i: [call(net.readers[i]), tag]),
        Case("eth_estimateGas (2 SSTORE + LOG2)", "eth_estimateGas",
             lambda i: [call(store(5)(i), word(7 + i)), tag]),
        Case(f"eth_getBlockByNumber (full, {sizes.txs_per_block} txs)", "eth_getBlockByNumber",
             lambda i: [hex(net.blocks[i]), True],
             lambda b: (b["hash"], [t["hash"] for t in b["transactions"]])),
        Case("eth_getTransactionReceipt", "eth_getTransactionReceipt",
             lambda i: [net.txs[net.blocks[s + i]][0]],
             lambda t: (t["blockHash"], t["status"], t["gasUsed"], t["logs"])),
        Case(f"eth_getLogs ({r} blocks, {r * sizes.txs_per_block} logs)", "eth_getLogs",
             lambda i: [{"fromBlock": hex(net.blocks[logs_at + i * r]),
                         "toBlock": hex(net.blocks[logs_at + i * r + r - 1]),
                         "topics": ["0x" + LOG_TOPIC.hex()]}],
             lambda logs: [(x["blockHash"], x["logIndex"], x["transactionHash"], x["data"])
                           for x in logs]),
        Case(f"eth_feeHistory ({f} blocks, {len(PERCENTILES)} percentiles)", "eth_feeHistory",
             lambda i: [hex(f), hex(net.blocks[fees_at + i * f + f - 1]), PERCENTILES],
             _fee_key, next_base_fee),
    ]


# -- the client -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Traffic:
    """The node's upstream counters (``orbital_status``) and, over the link, the wire."""

    requests: float
    received: float
    link_up: float = 0
    link_down: float = 0

    def __sub__(self, other: Traffic) -> Traffic:
        return Traffic(self.requests - other.requests, self.received - other.received,
                       self.link_up - other.link_up, self.link_down - other.link_down)


class Client:
    """One aiohttp session; the node at ``node``, the unverified upstream at ``direct``."""

    def __init__(self, session: aiohttp.ClientSession, node: str, direct: str,
                 link: LinkEmulator | None) -> None:
        self.session, self.node, self.direct, self.link = session, node, direct, link
        self._ids = itertools.count(1)

    async def call(self, url: str, method: str, params: list[Any]) -> tuple[float, Any, int]:
        """Seconds from sending the request to having the whole answer, the result, and the
        answer's size in bytes."""
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                           "params": params}).encode()
        gc.collect()
        start = time.perf_counter()
        async with self.session.post(url, data=body,
                                     headers={"Content-Type": "application/json"}) as resp:
            raw = await resp.read()
        seconds = time.perf_counter() - start
        reply = json.loads(raw)
        if reply.get("error") is not None:
            where = "node" if url == self.node else "upstream"
            raise BenchmarkError(f"{where} {method}{params}: {reply['error']}")
        return seconds, reply["result"], len(raw)

    async def traffic(self) -> Traffic:
        _, status, _ = await self.call(self.node, "orbital_status", [])
        ups = status["upstreams"]
        link = self.link.bytes if self.link is not None else {"up": 0, "down": 0}
        return Traffic(sum(u["requests"] for u in ups), sum(u["bytes_received"] for u in ups),
                       link["up"], link["down"])


@dataclass(frozen=True)
class CallRow(Row):
    """A row of one method, with the node's upstream traffic per verified call (JSON)."""

    where: str = ""  # "loopback" or the link
    case: str = ""
    temperature: str = ""  # "cold" or "warm"
    traffic: dict[str, float] | None = None


@dataclass
class Measured:
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    direct: list[float] = field(default_factory=list)
    cold_traffic: list[Traffic] = field(default_factory=list)
    warm_traffic: list[Traffic] = field(default_factory=list)
    direct_bytes: list[int] = field(default_factory=list)
    node_bytes: list[int] = field(default_factory=list)


async def measure_case(client: Client, case: Case, sizes: Sizes) -> Measured:
    out = Measured()
    for i in range(sizes.cold):
        params = case.params(i)
        before = await client.traffic()
        seconds, answer, size = await client.call(client.node, case.method, params)
        out.cold.append(seconds)
        out.cold_traffic.append(await client.traffic() - before)
        out.node_bytes.append(size)
        seconds, expected, size = await client.call(client.direct, case.method, params)
        out.direct.append(seconds)
        out.direct_bytes.append(size)
        wrong = case.check(answer, params)
        if case.key(answer) != case.key(expected) or wrong:
            raise BenchmarkError(f"{case.name}{params}: the node answered {answer!r}, anvil "
                                 f"{expected!r}{f' ({wrong})' if wrong else ''}")
        before = await client.traffic()
        for _ in range(sizes.warm):
            seconds, again, _ = await client.call(client.node, case.method, params)
            out.warm.append(seconds)
            if again != answer:
                raise BenchmarkError(f"{case.name}{params}: a warm answer differs from the "
                                     f"cold one")
            seconds, _, _ = await client.call(client.direct, case.method, params)
            out.direct.append(seconds)
        out.warm_traffic.append(await client.traffic() - before)
    return out


def _per_call(traffic: Sequence[Traffic], calls: int) -> Traffic:
    total = Traffic(0, 0)
    for t in traffic:
        total = Traffic(total.requests + t.requests, total.received + t.received,
                        total.link_up + t.link_up, total.link_down + t.link_down)
    return Traffic(total.requests / calls, total.received / calls, total.link_up / calls,
                   total.link_down / calls)


def _rows(where: str, case: Case, m: Measured, target: Target | None) -> list[CallRow]:
    cold = _per_call(m.cold_traffic, len(m.cold))
    warm = _per_call(m.warm_traffic, len(m.warm))
    direct_kb = statistics.mean(m.direct_bytes) / 1000

    def ms(samples: list[float]) -> tuple[float, float]:
        return 1000 * min(samples), 1000 * statistics.median(samples)

    def info(t: Traffic) -> dict[str, float]:
        out = {"round_trips": t.requests, "kB_received": t.received / 1000,
               "answer_kB": statistics.mean(m.node_bytes) / 1000, "direct_answer_kB": direct_kb}
        if t.link_up or t.link_down:
            out |= {"link_kB_up": t.link_up / 1000, "link_kB_down": t.link_down / 1000}
        return out

    base, base_median = ms(m.direct)
    rows = []
    for temp, samples, traffic, goal in (("cold", m.cold, cold, None),
                                         ("warm", m.warm, warm, target)):
        ours, ours_median = ms(samples)
        label = f"{traffic.requests:.3g} rt"
        if traffic.requests or temp == "cold":
            label += f", {traffic.received / 1000:.1f} kB"
        rows.append(CallRow(f"{where} {case.name}, {temp} [{label}]", "ms/call", ours, base,
                            goal, ours_median, base_median, where, case.name, temp,
                            info(traffic)))
    return rows


async def measure_gas(client: Client, net: Devnet, sizes: Sizes) -> Row:
    """The Burner through the node's eth_call (warm state) against anvil's eth_call."""
    rounds = sizes.burn_gas // BURN_GAS_PER_ROUND
    call = [{"from": net.sender, "to": net.burner, "data": word(rounds)}, net.tag]
    _, ours, _ = await client.call(client.node, "eth_createAccessList", call)
    _, theirs, _ = await client.call(client.direct, "eth_createAccessList", call)
    gas = int(ours["gasUsed"], 16)
    if gas != int(theirs["gasUsed"], 16):
        raise BenchmarkError(f"Burner gas: the node says {gas}, anvil {theirs['gasUsed']}")
    _, output, _ = await client.call(client.node, "eth_call", call)
    _, expected, _ = await client.call(client.direct, "eth_call", call)
    if output != expected:
        raise BenchmarkError(f"Burner output: the node {output}, anvil {expected}")
    node_s, anvil_s = [], []
    for _ in range(sizes.burn_repeats):
        node_s.append((await client.call(client.node, "eth_call", call))[0])
        anvil_s.append((await client.call(client.direct, "eth_call", call))[0])
    mgas = gas / 1e6
    return Row(f"local EVM: eth_call of a keccak loop ({gas / 1e6:.1f} Mgas, warm state)",
               "Mgas/s", mgas / min(node_s), mgas / min(anvil_s), None,
               mgas / statistics.median(node_s), mgas / statistics.median(anvil_s))


async def warm_up(client: Client, net: Devnet) -> None:
    """Open both connections and let the node prove the sender and the Burner once (not
    one of the cases' items)."""
    call = [{"from": net.sender, "to": net.burner, "data": word(1)}, net.tag]
    for url in (client.node, client.direct):
        await client.call(url, "eth_call", call)
        await client.call(url, "eth_blockNumber", [])


# -- the two set-ups ------------------------------------------------------------------------

def _plan(sizes: Sizes) -> ContactPlan:
    return ContactPlan((Contact("SAT", "GS", T0, T0 + 1e9, sizes.rate_bps, sizes.rate_bps,
                                ((T0, sizes.delay_s),)),), "benchmark: always up")


async def _start_node(upstream: str, net: Devnet, directory: Path, name: str) -> NodeProcess:
    return await asyncio.to_thread(
        start_node, [upstream], directory / name, "--checkpoint",
        f"{net.head}:{net.head_hash}", "--refresh", "1e9", trust="checkpoint")


async def measure_setup(net: Devnet, sizes: Sizes, directory: Path, over_link: bool,
                        say: Callable[[str], None]) -> list[Row]:
    anvil_at = ("127.0.0.1", net.anvil.port)
    links: list[LinkEmulator] = []
    if over_link:  # node -> ground, and client -> ground for the baseline: one link each
        links = [LinkEmulator(_plan(sizes), "SAT-GS", LOCAL, anvil_at, PlanClock(T0))
                 for _ in range(2)]
        for link in links:
            await link.start()
    upstream, direct = ([f"http://127.0.0.1:{link.port}" for link in links] if links
                        else [net.anvil.url, net.anvil.url])
    where = f"{sizes.delay_s * 1000:g} ms link" if over_link else "loopback"
    node = await _start_node(upstream, net, directory, "link" if over_link else "loopback")
    rows: list[Row] = []
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(session, node.url, direct, links[0] if links else None)
            await warm_up(client, net)
            for case in cases(net, sizes):
                say(f"{where}: {case.name}")
                measured = await measure_case(client, case, sizes)
                rows += _rows(where, case, measured, WARM_BEATS_LINK if over_link else None)
            if not over_link:
                say("local EVM: gas per second")
                rows.append(await measure_gas(client, net, sizes))
    finally:
        await asyncio.to_thread(node.stop)
        for link in links:
            await link.stop()
    return rows


async def run_async(sizes: Sizes, say: Callable[[str], None]) -> tuple[list[Row], Devnet]:
    with start_anvil() as anvil, tempfile.TemporaryDirectory(prefix="orbital-bench-") as tmp:
        say("devnet: deploying and mining")
        net = build_devnet(anvil, sizes)
        say(f"devnet: head {net.head}; the node runs at it")
        rows = await measure_setup(net, sizes, Path(tmp), False, say)
        rows += await measure_setup(net, sizes, Path(tmp), True, say)
    return rows, net


def run(sizes: Sizes = FULL, say: Callable[[str], None] | None = None
        ) -> tuple[list[Row], Devnet]:
    """Measure everything; the rows of the table and the devnet they were measured on."""
    return asyncio.run(run_async(sizes, say or (lambda _: None)))


def notes(rows: Sequence[Row], net: Devnet, sizes: Sizes, mode: str) -> list[str]:
    link = f"{sizes.delay_s * 1000:g} ms link"
    targets = [row for row in rows if row.target is not None]
    missed = [row.capability.split(", warm")[0].removeprefix(f"{link} ") for row in targets
              if not row.passed]
    verdict = (f"all {len(targets)} warm verified calls over the {link} beat the unverified "
               f"call across it" if not missed else
               f"{len(missed)} of {len(targets)} warm verified calls over the {link} did NOT "
               f"beat the unverified call across it: {', '.join(missed)}")
    return [
        "ms/call: best sample (JSON: median too), client -> answer over HTTP keep-alive; "
        "ours = the verified node (orbital node run --trust checkpoint, its own process), "
        "baseline = the same request straight to anvil (unverified), interleaved; "
        "ratio > 1: the node is faster",
        f"cold = first request for a fresh account/slot/contract/block ({sizes.cold} items, one "
        f"sample each: witness or block fetched and checked); warm = the same again "
        f"({sizes.warm} samples per item); [n rt, kB] = upstream round trips (HTTP requests, a "
        "batch is one) and bytes the node received, per call, from its orbital_status",
        f"all at block {net.head} (the checkpoint; no refresh during the run); the node's "
        "answer is compared with anvil's for every item",
        f"{link}: sim_link LinkEmulator, {sizes.delay_s * 1000:g} ms one way, "
        f"{sizes.rate_bps / 1e6:g} Mbit/s each way, always up, between node and anvil and "
        "(a second one) between client and anvil for the baseline; client <-> node is "
        f"loopback. Target rows: warm over the link >= 1x. Result: {verdict}",
        "eth_estimateGas searches, as anvil does, for the exact least gas limit: a binary "
        "search from gasUsed to gasUsed*64/63, about a dozen py-evm runs per answer, warm or "
        "cold (a warm eth_call is one run)",
        "cold eth_getLogs and eth_feeHistory (with percentiles) fetch and verify each block's "
        "full transactions and receipts in one batch; eth_feeHistory's last base fee (the "
        "block after the newest) is checked against that block's header: anvil answers there "
        "the base fee after its latest block whatever the newest block asked for, so that "
        "entry is not compared with anvil's",
        "local EVM: gas used from eth_createAccessList (node and anvil agree), time of a warm "
        "eth_call: py-evm in the node's worker process vs anvil (revm); the loop is ~5 gas "
        "per opcode (keccak of 64 bytes, jumps, stack ops), and py-evm pays per opcode",
        f"not pinned: anvil, the node, its EVM worker and this client are separate processes; "
        f"{mode} run",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("benchmarks.node", __doc__)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    say = (lambda _: None) if args.json else (
        lambda text: print(text, file=sys.stderr, flush=True))
    rows, net = run(sizes, say)
    mode = "quick" if args.quick else "full"
    if args.json:
        print(json.dumps(as_json(rows, sizes=asdict(sizes), statistic="best", head=net.head,
                                 notes=notes(rows, net, sizes, mode), **environment(None)),
                         indent=2))
    else:
        print(render(rows, notes(rows, net, sizes, mode)))
    failed = [row.capability for row in rows if row.passed is False]
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
