"""The local EVM on proven state (node/rpc/evm.py, witness.py) against a real anvil (Prague).

anvil is the oracle: every call runs on py-evm over a witness of nodes proven against the
anchored block's stateRoot, and its output and gas must equal anvil's ``eth_call`` and
``debug_traceCall`` at that block -- a plain transfer, a contract calling another, reverts
with their data, every precompile, an EIP-7702 delegated account (called directly and from
a contract), BLOCKHASH, the block context, state overrides (supported), a contract creation.
``eth_estimateGas`` must equal anvil's (refunds, nested calls, the EIP-7623 calldata floor);
``eth_createAccessList`` must equal anvil's where anvil's is right.

Lies: an upstream wrapper alters proof nodes, balances, storage values, code, leaves out a
requested slot, answers about another address, or gives a wrong or short access list: the
result is never wrong, each lie is penalized (``Upstream.penalize`` is recorded), and the
witness holds nothing that is not reachable from the state root.

The worker process: a CPU-heavy call does not block the event loop, and the gas cap and the
timeout hold.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import importlib.util
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from eth_abi import decode, encode
from eth_account import Account

from contracts.build import run_solc
from node.chain.errors import MalformedInputError, VerificationError
from node.chain.forks import ANVIL, ANVIL_OSAKA, MAINNET
from node.chain.hashing import keccak256
from node.chain.header import Header, verify_header
from node.devnet import Anvil, RpcError, start_anvil
from node.rpc.evm import (
    BlockHashUnavailableError,
    CallStatus,
    EstimateGasError,
    EvmTimeoutError,
    LocalEvm,
    UnsupportedCallError,
    UnsupportedForkError,
    parse_call_request,
    parse_state_overrides,
    vm_class_for,
)
from node.rpc.upstream_api import AlwaysReachable, Answer, DirectUpstream
from node.rpc.witness import ProvenState, StateAnswerError, WitnessStore, reachable

from vectors import hive_block, io_case, io_cases


def devnet(test: Callable[..., Any]) -> Callable[..., Any]:
    """A test against the module's anvil, in the module's event loop (the fixtures' LocalEvm
    workers and upstream session live there)."""
    return pytest.mark.devnet(pytest.mark.asyncio(loop_scope="module")(test))


SOURCE = r"""
// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

contract Store {
    uint256 public value; // slot 0
    mapping(address => uint256) public credit; // slot 1

    error Refused(uint256 code, string why);

    function set(uint256 v) external { value = v; credit[msg.sender] = v; }
    function clear() external { value = 0; credit[msg.sender] = 0; }
    function refuse(uint256 code) external pure { revert Refused(code, "refused"); }
    function plain() external pure { require(false, "plain reason"); }
    function divide(uint256 d) external pure returns (uint256) { return 100 / d; }
}

contract Probe {
    Store public store; // slot 0

    constructor(Store s) { store = s; }

    function readThrough(address who) external view returns (uint256, uint256) {
        return (store.value(), store.credit(who));
    }
    function setThrough(uint256 v) external returns (uint256) {
        store.set(v);
        return store.value();
    }
    function refuseThrough(uint256 code) external view { store.refuse(code); }
    function tryRefuse(uint256 code) external view returns (bool ok, bytes memory data) {
        (ok, data) = address(store).staticcall(abi.encodeCall(Store.refuse, (code)));
    }
    function precompile(address p, bytes calldata input)
            external view returns (bool, bytes memory) {
        return p.staticcall(input);
    }
    function hashes(uint256 count) external view returns (bytes32[] memory out) {
        out = new bytes32[](count);
        for (uint256 i = 0; i < count && i <= block.number; i++) {
            out[i] = blockhash(block.number - i);
        }
    }
    function env() external view returns (uint256, uint256, uint256, address, uint256, uint256,
                                          uint256, uint256, uint256) {
        return (block.number, block.timestamp, block.basefee, block.coinbase, block.prevrandao,
                block.gaslimit, block.chainid, tx.gasprice, block.blobbasefee);
    }
    function account(address a) external view returns (uint256, bytes32, uint256) {
        return (a.balance, a.codehash, a.code.length);
    }
    function burn(uint256 rounds) external pure returns (bytes32 h) {
        for (uint256 i = 0; i < rounds; i++) { h = keccak256(abi.encode(h, i)); }
    }
    function size(bytes calldata b) external pure returns (uint256) { return b.length; }
}
"""


def selector(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


def calldata(signature: str, *args: Any) -> bytes:
    """ABI calldata for ``signature`` (flat argument types only)."""
    inner = signature[signature.index("(") + 1: -1]
    types = [t for t in inner.split(",") if t]
    return selector(signature) + encode(types, list(args))


def hexs(data: bytes) -> str:
    return "0x" + data.hex()


def unhex(text: str) -> bytes:
    return bytes.fromhex(text[2:])


@dataclass
class Chain:
    """What the module fixture left on anvil, and the anchored block the calls run at."""

    anvil: Anvil
    header: Header  # the anchored block
    headers: dict[int, Header]  # it and its ancestors, linked backward by parentHash
    store: bytes  # Store
    probe: bytes  # Probe over Store
    delegated: bytes  # an EOA delegating to Store (EIP-7702), with storage of its own
    probe_delegated: bytes  # Probe over the delegated EOA
    store_runtime: bytes
    store_initcode: bytes
    accounts: tuple[bytes, ...]
    asked_hashes: list[int] = field(default_factory=list)

    def block_hash(self, number: int) -> bytes | None:
        """BLOCKHASH from the anchored headers only."""
        self.asked_hashes.append(number)
        header = self.headers.get(number)
        return header.hash if header is not None else None

    @property
    def tag(self) -> str:
        return hex(self.header.number)


def _compile() -> dict[str, dict[str, str]]:
    _, output = run_solc({
        "language": "Solidity", "sources": {"Probe.sol": {"content": SOURCE}},
        "settings": {"evmVersion": "prague", "optimizer": {"enabled": True, "runs": 200},
                     "outputSelection": {"*": {"*": ["evm.bytecode.object",
                                                     "evm.deployedBytecode.object"]}}}})
    return {name: {"init": c["evm"]["bytecode"]["object"],
                   "runtime": c["evm"]["deployedBytecode"]["object"]}
            for name, c in output["contracts"]["Probe.sol"].items()}


def _send(anvil: Anvil, tx: dict[str, Any]) -> dict[str, Any]:
    receipt = anvil.receipt(anvil.rpc("eth_sendTransaction", tx))
    assert receipt["status"] == "0x1", receipt
    return receipt


def _deploy(anvil: Anvil, initcode: str, args: bytes = b"") -> bytes:
    receipt = _send(anvil, {"from": anvil.accounts[0], "data": "0x" + initcode + args.hex(),
                            "gas": hex(3_000_000)})
    return unhex(receipt["contractAddress"])


def _delegate(anvil: Anvil, target: bytes) -> bytes:
    """Make dev account 4 delegate to ``target`` with a type-4 transaction paid by 2."""
    eoa, payer = Account.from_key(anvil.private_keys[4]), Account.from_key(anvil.private_keys[2])
    nonce = int(anvil.rpc("eth_getTransactionCount", eoa.address, "pending"), 16)
    payer_nonce = int(anvil.rpc("eth_getTransactionCount", payer.address, "pending"), 16)
    auth = eoa.sign_authorization({"chainId": anvil.chain_id, "address": target,
                                   "nonce": nonce})
    base_fee = int(anvil.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
    signed = payer.sign_transaction({
        "type": 4, "chainId": anvil.chain_id, "nonce": payer_nonce,
        "maxFeePerGas": 2 * base_fee + 10**9, "maxPriorityFeePerGas": 10**9, "gas": 200_000,
        "to": eoa.address, "value": 0, "data": calldata("set(uint256)", 70),
        "authorizationList": [auth]})
    tx_hash = anvil.rpc("eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())
    assert anvil.receipt(tx_hash)["status"] == "0x1"
    return unhex(eoa.address.lower())


@pytest.fixture(scope="module")
def chain(anvil: Anvil) -> Chain:
    code = _compile()
    store = _deploy(anvil, code["Store"]["init"])
    probe = _deploy(anvil, code["Probe"]["init"], encode(["address"], [hexs(store)]))
    for i, value in ((0, 7), (1, 11)):
        _send(anvil, {"from": anvil.accounts[i], "to": hexs(store),
                      "data": hexs(calldata("set(uint256)", value))})
    delegated = _delegate(anvil, store)
    _send(anvil, {"from": anvil.accounts[1], "to": hexs(delegated),
                  "data": hexs(calldata("set(uint256)", 77))})
    probe_delegated = _deploy(anvil, code["Probe"]["init"], encode(["address"], [hexs(delegated)]))
    for _ in range(5):
        anvil.rpc("evm_mine")
    head = verify_header(anvil.rpc("eth_getBlockByNumber", "latest", False))
    headers = {head.number: head}
    child = head
    while child.number > 0:  # ancestors of the anchor, each fixed by its child's parentHash
        parent = verify_header(anvil.rpc("eth_getBlockByNumber", hex(child.number - 1), False))
        assert parent.hash == child.parent_hash
        headers[parent.number] = child = parent
    return Chain(anvil, head, headers, store, probe, delegated, probe_delegated,
                 bytes.fromhex(code["Store"]["runtime"]),
                 bytes.fromhex(code["Store"]["init"]),
                 tuple(unhex(a) for a in anvil.accounts))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def evm() -> AsyncIterator[LocalEvm]:
    async with LocalEvm(ANVIL, workers=2) as local:
        yield local


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream(chain: Chain) -> AsyncIterator[DirectUpstream]:
    async with DirectUpstream(chain.anvil.url, "anvil") as direct:
        yield direct


# -- anvil as the oracle ---------------------------------------------------------------------


@dataclass(frozen=True)
class Oracle:
    ok: bool
    output: bytes  # return data, or revert data
    gas: int  # debug_traceCall's gas used


def anvil_call(chain: Chain, tx: dict[str, Any], overrides: dict[str, Any] | None = None
               ) -> Oracle:
    params: list[Any] = [tx, chain.tag] + ([overrides] if overrides else [])
    try:
        output, ok = unhex(chain.anvil.rpc("eth_call", *params)), True
    except RpcError as exc:
        output, ok = (unhex(exc.data) if isinstance(exc.data, str) else b""), False
    config = {"stateOverrides": overrides} if overrides else {}
    trace = chain.anvil.rpc("debug_traceCall", tx, chain.tag, config)
    assert trace["failed"] is not ok
    return Oracle(ok, output, trace["gas"])


async def ours(evm: LocalEvm, upstream: Any, chain: Chain, tx: dict[str, Any],
               overrides: dict[str, Any] | None = None) -> Any:
    state = ProvenState(upstream, chain.header)
    return await evm.call(state, parse_call_request(tx),
                          overrides=parse_state_overrides(overrides), block_hash=chain.block_hash)


async def assert_same(evm: LocalEvm, upstream: Any, chain: Chain, tx: dict[str, Any],
                      overrides: dict[str, Any] | None = None) -> Any:
    result = await ours(evm, upstream, chain, tx, overrides)
    oracle = anvil_call(chain, tx, overrides)
    assert (result.success, result.output, result.gas_used) == (oracle.ok, oracle.output,
                                                                oracle.gas)
    return result


def tx(chain: Chain, to: bytes | None, data: bytes = b"", sender: int = 0,
       **extra: Any) -> dict[str, Any]:
    out = {"from": hexs(chain.accounts[sender]), "input": hexs(data), **extra}
    if to is not None:
        out["to"] = hexs(to)
    return out


# -- eth_call equals anvil -------------------------------------------------------------------


@devnet
async def test_plain_transfer(evm: LocalEvm, upstream: Any, chain: Chain) -> None:
    result = await assert_same(evm, upstream, chain,
                               tx(chain, chain.accounts[5], value=hex(10**18)))
    assert result.status is CallStatus.SUCCESS and result.gas_used == 21000


@devnet
async def test_transfer_to_an_absent_account_proves_it_absent(evm: LocalEvm, upstream: Any,
                                                             chain: Chain) -> None:
    nobody = b"\x42" * 20
    await assert_same(evm, upstream, chain, tx(chain, nobody, value="0x1"))
    state = ProvenState(upstream, chain.header)
    proven = await state.account(nobody)
    assert not proven.exists and proven.account.is_empty


@devnet
async def test_contract_calling_another_contract(evm: LocalEvm, upstream: Any,
                                                 chain: Chain) -> None:
    result = await assert_same(evm, upstream, chain, tx(
        chain, chain.probe, calldata("readThrough(address)", hexs(chain.accounts[1]))))
    assert decode(["uint256", "uint256"], result.output) == (11, 11)
    await assert_same(evm, upstream, chain, tx(chain, chain.probe,
                                               calldata("setThrough(uint256)", 5), sender=3))


@devnet
async def test_revert_with_custom_error_data(evm: LocalEvm, upstream: Any, chain: Chain) -> None:
    result = await assert_same(evm, upstream, chain,
                               tx(chain, chain.store, calldata("refuse(uint256)", 9)))
    assert result.status is CallStatus.REVERT
    assert result.revert_data == calldata("Refused(uint256,string)", 9, "refused")


@pytest.mark.parametrize("signature, args", [
    ("plain()", ()),  # Error(string)
    ("divide(uint256)", (0,)),  # Panic(0x12)
])
@devnet
async def test_revert_with_error_and_panic_data(evm: LocalEvm, upstream: Any, chain: Chain,
                                                signature: str, args: tuple[Any, ...]) -> None:
    result = await assert_same(evm, upstream, chain,
                               tx(chain, chain.store, calldata(signature, *args)))
    assert result.status is CallStatus.REVERT and result.revert_data


@devnet
async def test_revert_bubbled_through_a_call_and_caught_by_another(
        evm: LocalEvm, upstream: Any, chain: Chain) -> None:
    bubbled = await assert_same(evm, upstream, chain,
                                tx(chain, chain.probe, calldata("refuseThrough(uint256)", 4)))
    assert bubbled.revert_data == calldata("Refused(uint256,string)", 4, "refused")
    caught = await assert_same(evm, upstream, chain,
                               tx(chain, chain.probe, calldata("tryRefuse(uint256)", 4)))
    assert caught.success


def _g1_generator() -> bytes:
    x = 0x17F1D3A73197D7942695638C4FA9AC0FC3688C4F9774B905A14E3A3F171BAC586C55E83FF97A1AEFFB3AF00ADB22C6BB  # noqa: E501
    y = 0x08B3F481E3AAA0F1A09E30ED741D8AE4FCF5E095D5D00AF600DB18CB2C04B3EDD03CC744A2888AE40CAA232946C5E7E1  # noqa: E501
    return x.to_bytes(64, "big") + y.to_bytes(64, "big")


def _precompile_inputs() -> list[tuple[int, bytes]]:
    key = Account.from_key("0x" + "11" * 32)
    digest = keccak256(b"orbital")
    sig = key.unsafe_sign_hash(digest)
    ecrecover = digest + encode(["uint8", "uint256", "uint256"], [sig.v, sig.r, sig.s])
    modexp = (encode(["uint256", "uint256", "uint256"], [1, 32, 32]) + b"\x03"
              + (2**255 - 19).to_bytes(32, "big") + (2**256 - 189).to_bytes(32, "big"))
    bn_g1 = (1).to_bytes(32, "big") + (2).to_bytes(32, "big")
    blake = ((12).to_bytes(4, "big") + bytes(range(64)) + bytes(128) + bytes(16) + b"\x01")
    return [
        (0x01, ecrecover), (0x02, b"orbital"), (0x03, b"orbital"), (0x04, b"identity" * 9),
        (0x05, modexp), (0x06, bn_g1 + bn_g1), (0x07, bn_g1 + (7).to_bytes(32, "big")),
        (0x08, b""), (0x09, blake), (0x0A, b"\x00" * 192),  # point evaluation: bad input
        (0x0B, _g1_generator() * 2), (0x0C, _g1_generator() + (3).to_bytes(32, "big")),
        (0x10, bytes(16) + (5).to_bytes(48, "big")), (0x11, b""),
    ]


@pytest.mark.parametrize("address, data", _precompile_inputs(),
                         ids=lambda v: hex(v) if isinstance(v, int) else None)
@devnet
async def test_precompile_called_directly_and_from_a_contract(
        evm: LocalEvm, upstream: Any, chain: Chain, address: int, data: bytes) -> None:
    target = address.to_bytes(20, "big")
    await assert_same(evm, upstream, chain, tx(chain, target, data))
    result = await assert_same(evm, upstream, chain, tx(
        chain, chain.probe, calldata("precompile(address,bytes)", hexs(target), data)))
    assert result.success


@devnet
async def test_ecrecover_recovers_the_signer(evm: LocalEvm, upstream: Any, chain: Chain) -> None:
    (_, data), = [(a, d) for a, d in _precompile_inputs() if a == 1]
    result = await assert_same(evm, upstream, chain, tx(chain, (1).to_bytes(20, "big"), data))
    assert result.output[12:] == unhex(Account.from_key("0x" + "11" * 32).address.lower())


@devnet
async def test_eip7702_delegated_account_called_directly(evm: LocalEvm, upstream: Any,
                                                         chain: Chain) -> None:
    read = await assert_same(evm, upstream, chain, tx(chain, chain.delegated,
                                                      calldata("value()")))
    assert decode(["uint256"], read.output) == (77,)  # the EOA's own storage, Store's code
    await assert_same(evm, upstream, chain, tx(chain, chain.delegated,
                                               calldata("set(uint256)", 3)))


@devnet
async def test_eip7702_delegated_account_called_from_a_contract(
        evm: LocalEvm, upstream: Any, chain: Chain) -> None:
    result = await assert_same(evm, upstream, chain, tx(
        chain, chain.probe_delegated, calldata("readThrough(address)", hexs(chain.accounts[1]))))
    assert decode(["uint256", "uint256"], result.output) == (77, 77)
    await assert_same(evm, upstream, chain, tx(chain, chain.probe_delegated,
                                               calldata("setThrough(uint256)", 8)))
    info = await assert_same(evm, upstream, chain, tx(
        chain, chain.probe, calldata("account(address)", hexs(chain.delegated))))
    _, code_hash, size = decode(["uint256", "bytes32", "uint256"], info.output)
    assert size == 23 and code_hash == keccak256(b"\xef\x01\x00" + chain.store)


@devnet
async def test_blockhash_from_the_anchored_headers(evm: LocalEvm, upstream: Any,
                                                   chain: Chain) -> None:
    chain.asked_hashes.clear()
    result = await assert_same(evm, upstream, chain, tx(chain, chain.probe,
                                                        calldata("hashes(uint256)", 8)))
    (hashes,) = decode(["bytes32[]"], result.output)
    number = chain.header.number
    assert hashes[0] == bytes(32)  # the block itself is not its own ancestor
    assert list(hashes[1:]) == [chain.headers[number - i].hash for i in range(1, 8)]
    assert sorted(set(chain.asked_hashes)) == list(range(number - 7, number))


@devnet
async def test_blockhash_without_anchored_headers_is_refused(evm: LocalEvm, upstream: Any,
                                                            chain: Chain) -> None:
    state = ProvenState(upstream, chain.header)
    request = parse_call_request(tx(chain, chain.probe, calldata("hashes(uint256)", 3)))
    with pytest.raises(BlockHashUnavailableError, match="BLOCKHASH"):
        await evm.call(state, request)
    with pytest.raises(BlockHashUnavailableError, match="not an anchored ancestor"):
        await evm.call(state, request, block_hash=lambda n: None)


@devnet
async def test_block_context_is_the_anchored_block(evm: LocalEvm, upstream: Any,
                                                   chain: Chain) -> None:
    for extra in ({}, {"gasPrice": hex(10**10)}, {"maxFeePerGas": hex(10**10),
                                                  "maxPriorityFeePerGas": hex(10**9)}):
        result = await assert_same(evm, upstream, chain,
                                   tx(chain, chain.probe, calldata("env()"), **extra))
        values = decode(["uint256", "uint256", "uint256", "address", "uint256", "uint256",
                         "uint256", "uint256", "uint256"], result.output)
        assert values[:3] == (chain.header.number, chain.header.timestamp,
                              chain.header.base_fee_per_gas)


@devnet
async def test_contract_creation_call(evm: LocalEvm, upstream: Any, chain: Chain) -> None:
    result = await assert_same(evm, upstream, chain, tx(chain, None, chain.store_initcode))
    assert result.output == chain.store_runtime


@devnet
async def test_state_overrides_are_supported(evm: LocalEvm, upstream: Any, chain: Chain) -> None:
    slot0 = "0x" + "00" * 32
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        (tx(chain, chain.store, calldata("value()")),
         {hexs(chain.store): {"stateDiff": {slot0: "0x" + "00" * 31 + "2a"}}}),
        (tx(chain, chain.store, calldata("credit(address)", hexs(chain.accounts[1]))),
         {hexs(chain.store): {"state": {slot0: "0x" + "00" * 31 + "01"}}}),
        (tx(chain, chain.probe, calldata("account(address)", hexs(b"\x77" * 20))),
         {hexs(b"\x77" * 20): {"balance": hex(12345), "nonce": "0x3",
                               "code": hexs(chain.store_runtime)}}),
        (tx(chain, b"\x66" * 20, calldata("set(uint256)", 4)),
         {hexs(b"\x66" * 20): {"code": hexs(chain.store_runtime)}}),
        (tx(chain, chain.store, calldata("set(uint256)", 0)),  # clears an overridden slot
         {hexs(chain.store): {"stateDiff": {slot0: "0x" + "00" * 31 + "05"}}}),
    ]
    for call, overrides in cases:
        await assert_same(evm, upstream, chain, call, overrides)
    with pytest.raises(UnsupportedCallError):
        parse_state_overrides({hexs(chain.store): {"movePrecompileToAddress": hexs(b"\1" * 20)}})


@devnet
async def test_insufficient_funds_is_invalid_like_anvil(evm: LocalEvm, upstream: Any,
                                                        chain: Chain) -> None:
    poor = tx(chain, chain.accounts[1], value=hex(10**30))
    result = await ours(evm, upstream, chain, poor)
    assert result.status is CallStatus.INVALID and "insufficient funds" in (result.error or "")
    with pytest.raises(RpcError, match=r"(?i)insufficient funds"):
        chain.anvil.rpc("eth_call", poor, chain.tag)


# -- eth_estimateGas equals anvil --------------------------------------------------------


ESTIMATES: list[tuple[str, Callable[[Chain], dict[str, Any]]]] = [
    ("transfer", lambda c: tx(c, c.accounts[5], value="0x1")),
    ("sstore-new-slots", lambda c: tx(c, c.store, calldata("set(uint256)", 99), sender=6)),
    ("sstore-refund", lambda c: tx(c, c.store, calldata("clear()"))),
    ("nested-call", lambda c: tx(c, c.probe, calldata("setThrough(uint256)", 1), sender=7)),
    ("delegated-eoa", lambda c: tx(c, c.probe_delegated, calldata("setThrough(uint256)", 2))),
    ("precompile", lambda c: tx(c, c.probe, calldata(
        "precompile(address,bytes)", hexs((5).to_bytes(20, "big")), _precompile_inputs()[4][1]))),
    ("create", lambda c: tx(c, None, c.store_initcode)),
    ("calldata-heavy-7623-floor", lambda c: tx(c, c.probe, calldata(
        "size(bytes)", b"\xff" * 4000))),
    ("calldata-zeros-7623-floor", lambda c: tx(c, c.accounts[5], b"\x00" * 3000)),
    ("loop", lambda c: tx(c, c.probe, calldata("burn(uint256)", 300))),
]


@devnet
@pytest.mark.parametrize("name", [n for n, _ in ESTIMATES])
async def test_estimate_gas_equals_anvil(evm: LocalEvm, upstream: Any, chain: Chain,
                                         name: str) -> None:
    call = dict(ESTIMATES)[name](chain)
    state = ProvenState(upstream, chain.header)
    gas = await evm.estimate_gas(state, parse_call_request(call), block_hash=chain.block_hash)
    assert gas == int(chain.anvil.rpc("eth_estimateGas", call, chain.tag), 16)
    if "7623" in name:
        tokens = sum(4 if b else 1 for b in parse_call_request(call).data)
        assert gas == 21000 + 10 * tokens  # the floor is what it costs


@devnet
async def test_estimate_gas_of_a_revert_gives_its_data(evm: LocalEvm, upstream: Any,
                                                       chain: Chain) -> None:
    call = tx(chain, chain.probe, calldata("refuseThrough(uint256)", 6))
    with pytest.raises(EstimateGasError, match="execution reverted") as exc:
        await evm.estimate_gas(ProvenState(upstream, chain.header), parse_call_request(call))
    with pytest.raises(RpcError) as oracle:
        chain.anvil.rpc("eth_estimateGas", call, chain.tag)
    assert exc.value.failure.revert_data == unhex(oracle.value.data)


# -- eth_createAccessList ----------------------------------------------------------------


def _acl_json(result: Any) -> list[dict[str, Any]]:
    return [{"address": hexs(a), "storageKeys": [hexs(k) for k in keys]}
            for a, keys in result.access_list]


def _sorted(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(({"address": e["address"].lower(), "storageKeys": sorted(e["storageKeys"])}
                   for e in entries), key=lambda e: e["address"])


ACCESS_LISTS: list[tuple[str, Callable[[Chain], dict[str, Any]]]] = [
    ("transfer", lambda c: tx(c, c.accounts[5], value="0x1")),
    ("storage", lambda c: tx(c, c.store, calldata("set(uint256)", 5))),
    ("nested-call", lambda c: tx(c, c.probe, calldata("readThrough(address)",
                                                      hexs(c.accounts[1])))),
    ("precompile", lambda c: tx(c, c.probe, calldata(
        "precompile(address,bytes)", hexs((2).to_bytes(20, "big")), b"x"))),
    ("delegated-eoa-direct", lambda c: tx(c, c.delegated, calldata("set(uint256)", 3))),
    ("balance-of-other", lambda c: tx(c, c.probe, calldata("account(address)",
                                                           hexs(c.accounts[8])))),
]


@devnet
@pytest.mark.parametrize("name", [n for n, _ in ACCESS_LISTS])
async def test_create_access_list_equals_anvil(evm: LocalEvm, upstream: Any, chain: Chain,
                                               name: str) -> None:
    call = dict(ACCESS_LISTS)[name](chain)
    result = await evm.create_access_list(ProvenState(upstream, chain.header),
                                          parse_call_request(call))
    oracle = chain.anvil.rpc("eth_createAccessList", call, chain.tag)
    assert _sorted(_acl_json(result)) == _sorted(oracle["accessList"])
    assert result.result.gas_used == int(oracle["gasUsed"], 16)


@devnet
async def test_access_list_lists_a_delegation_target_reached_by_a_call(
        evm: LocalEvm, upstream: Any, chain: Chain) -> None:
    """Found: anvil leaves out the delegation target of an EIP-7702 account that a contract
    calls; warming it saves gas (2400 for the entry, 2500 less for the access), so it is
    listed here, and the call with our list costs less than with anvil's."""
    call = tx(chain, chain.probe_delegated, calldata("readThrough(address)",
                                                     hexs(chain.accounts[1])))
    result = await evm.create_access_list(ProvenState(upstream, chain.header),
                                          parse_call_request(call))
    oracle = chain.anvil.rpc("eth_createAccessList", call, chain.tag)
    ours_list, theirs = _sorted(_acl_json(result)), _sorted(oracle["accessList"])
    extra = [e for e in ours_list if e not in theirs]
    assert extra == [{"address": hexs(chain.store), "storageKeys": []}]
    assert [e for e in theirs if e not in ours_list] == []
    assert result.result.gas_used == int(oracle["gasUsed"], 16) - 100
    # and anvil agrees that our list is cheaper, when it runs the call with it
    with_ours = anvil_call(chain, {**call, "accessList": _acl_json(result)})
    assert with_ours.gas == result.result.gas_used


@devnet
async def test_access_list_leaves_out_precompiles_as_anvil_does(
        evm: LocalEvm, upstream: Any, chain: Chain) -> None:
    """Precompiles are always warm (EIP-2929): listing one would cost 2400 for nothing."""
    call = tx(chain, chain.probe, calldata("precompile(address,bytes)",
                                           hexs((1).to_bytes(20, "big")), b""))
    result = await evm.create_access_list(ProvenState(upstream, chain.header),
                                          parse_call_request(call))
    assert all(int.from_bytes(a, "big") > 0x11 for a, _ in result.access_list)


@devnet
async def test_access_list_of_a_reverting_call(evm: LocalEvm, upstream: Any,
                                               chain: Chain) -> None:
    """anvil answers an error for a reverting call; here the list comes with the revert."""
    call = tx(chain, chain.probe, calldata("refuseThrough(uint256)", 1))
    result = await evm.create_access_list(ProvenState(upstream, chain.header),
                                          parse_call_request(call))
    assert result.result.status is CallStatus.REVERT
    assert result.result.revert_data == calldata("Refused(uint256,string)", 1, "refused")
    assert {a for a, _ in result.access_list} == {chain.probe, chain.store}
    with pytest.raises(RpcError):
        chain.anvil.rpc("eth_createAccessList", call, chain.tag)


# -- lies --------------------------------------------------------------------------------


Lie = Callable[[str, Sequence[Any], Any], Any]


class LyingUpstream(AlwaysReachable):
    """Wraps an honest upstream and rewrites the results ``lie`` picks (``times`` answers
    at most), recording every penalty."""

    def __init__(self, inner: DirectUpstream, lie: Lie, times: int = 10**6) -> None:
        self.inner = inner
        self.lie = lie
        self.times = times
        self.penalties: list[str] = []
        self.batches = 0

    async def call(self, method: str, params: Sequence[Any]) -> Answer:
        return (await self.batch([(method, params)]))[0]

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Answer]:
        self.batches += 1
        answers = await self.inner.batch(calls)
        out = []
        for (method, params), answer in zip(calls, answers, strict=True):
            result = answer.result
            if self.times > 0 and answer.error is None:
                lied = self.lie(method, params, copy.deepcopy(result))
                if lied != result:
                    self.times -= 1
                    result = lied
            out.append(Answer(result, "liar", answer.error))
        return out

    def penalize(self, answer: Answer, what: str) -> None:
        assert answer.upstream == "liar"
        self.penalties.append(what)


def _on_proof(edit: Callable[[dict[str, Any], Sequence[Any]], None]) -> Lie:
    def lie(method: str, params: Sequence[Any], result: Any) -> Any:
        if method == "eth_getProof":
            edit(result, params)
        return result
    return lie


def _flip_node(result: dict[str, Any], params: Sequence[Any]) -> None:
    node = bytearray(unhex(result["accountProof"][-1]))
    node[-1] ^= 1
    result["accountProof"][-1] = hexs(bytes(node))


def _more_balance(result: dict[str, Any], params: Sequence[Any]) -> None:
    result["balance"] = hex(int(result["balance"], 16) + 10**18)


def _storage_value(result: dict[str, Any], params: Sequence[Any]) -> None:
    for entry in result["storageProof"]:
        entry["value"] = hex(int(entry["value"], 16) + 1)


def _omit_slot(result: dict[str, Any], params: Sequence[Any]) -> None:
    if result["storageProof"]:
        result["storageProof"].pop()


def _forged_extra_node(result: dict[str, Any], params: Sequence[Any]) -> None:
    result["accountProof"].append(hexs(b"\xc2\x80\x80" + b"\x00" * 40))


def _other_address(result: dict[str, Any], params: Sequence[Any]) -> None:
    result["address"] = hexs(b"\x13" * 20)


def _other_code(method: str, params: Sequence[Any], result: Any) -> Any:
    if method == "eth_getCode" and result not in ("0x", None):
        return result[:-2] + ("00" if result[-2:] != "00" else "01")
    return result


LIES: dict[str, Lie] = {
    "proof-node-altered": _on_proof(_flip_node),
    "balance-altered": _on_proof(_more_balance),
    "storage-value-altered": _on_proof(_storage_value),
    "requested-slot-omitted": _on_proof(_omit_slot),
    "forged-node-appended": _on_proof(_forged_extra_node),
    "answer-about-another-address": _on_proof(_other_address),
    "code-altered": _other_code,
}


def _lie_call(chain: Chain) -> dict[str, Any]:
    return tx(chain, chain.probe, calldata("readThrough(address)", hexs(chain.accounts[1])))


@devnet
@pytest.mark.parametrize("name", sorted(LIES))
async def test_a_lie_is_never_an_answer_and_is_penalized(evm: LocalEvm, upstream: DirectUpstream,
                                                         chain: Chain, name: str) -> None:
    liar = LyingUpstream(upstream, LIES[name])
    state = ProvenState(liar, chain.header)
    with pytest.raises(StateAnswerError) as exc:
        await evm.call(state, parse_call_request(_lie_call(chain)))
    assert isinstance(exc.value, VerificationError) and "liar" in str(exc.value)
    assert liar.penalties and all("at block" in p for p in liar.penalties)
    assert reachable(state.store, chain.header.state_root) == state.store.hashes()


@devnet
@pytest.mark.parametrize("name", sorted(LIES))
async def test_after_one_lie_the_retry_gives_the_right_answer(
        evm: LocalEvm, upstream: DirectUpstream, chain: Chain, name: str) -> None:
    """A pool routes the retry away from a penalized upstream; here the liar lies once."""
    liar = LyingUpstream(upstream, LIES[name], times=1)
    state = ProvenState(liar, chain.header)
    result = await evm.call(state, parse_call_request(_lie_call(chain)))
    honest = anvil_call(chain, _lie_call(chain))
    assert (result.output, result.gas_used) == (honest.output, honest.gas)
    assert len(liar.penalties) == 1
    assert reachable(state.store, chain.header.state_root) == state.store.hashes()


HINTS: dict[str, Lie] = {
    "empty": lambda m, p, r: {**r, "accessList": []} if m == "eth_createAccessList" else r,
    "wrong": lambda m, p, r: {**r, "accessList": [
        {"address": hexs(b"\x99" * 20), "storageKeys": ["0x" + "ab" * 32]}]}
        if m == "eth_createAccessList" else r,
    "malformed": lambda m, p, r: {"accessList": "nope"} if m == "eth_createAccessList" else r,
    "huge": lambda m, p, r: {**r, "accessList": [
        {"address": hexs(i.to_bytes(20, "big")), "storageKeys": []} for i in range(1, 400)]}
        if m == "eth_createAccessList" else r,
}


@devnet
@pytest.mark.parametrize("name", sorted(HINTS))
async def test_a_bad_access_list_hint_costs_round_trips_never_the_answer(
        evm: LocalEvm, upstream: DirectUpstream, chain: Chain, name: str) -> None:
    call = _lie_call(chain)
    honest = LyingUpstream(upstream, lambda m, p, r: r)
    expected = await evm.call(ProvenState(honest, chain.header), parse_call_request(call))
    liar = LyingUpstream(upstream, HINTS[name])
    state = ProvenState(liar, chain.header)
    result = await evm.call(state, parse_call_request(call))
    assert result == expected
    assert liar.penalties == []  # a hint is not a claim: nothing to penalize
    assert liar.batches > honest.batches  # the misses are found by running, round by round
    if name == "wrong":  # what the wrong hint named was proven (absent), at a cost
        proven = state.known_account(b"\x99" * 20)
        assert proven is not None and not proven.exists


@devnet
async def test_round_trips_cold_and_warm(evm: LocalEvm, upstream: DirectUpstream,
                                         chain: Chain) -> None:
    """Cold: the sender and target, alongside the hint; then what the hint names. Warm: no
    upstream traffic at all."""
    counting = LyingUpstream(upstream, lambda m, p, r: r)
    state = ProvenState(counting, chain.header)
    request = parse_call_request(_lie_call(chain))
    await evm.call(state, request)
    cold = counting.batches
    assert cold <= 3
    await evm.call(state, request)
    await evm.estimate_gas(state, request)
    assert counting.batches == cold


@devnet
async def test_a_forged_node_in_the_store_is_never_reached(evm: LocalEvm, upstream: Any,
                                                           chain: Chain) -> None:
    """A node can only sit under the hash of its own bytes: a forged account leaf added to the
    witness changes nothing, because no node on a path from the state root refers to it."""
    store = WitnessStore()
    state = ProvenState(upstream, chain.header, store=store)
    call = parse_call_request(tx(chain, chain.store, calldata("value()")))
    before = await evm.call(state, call)
    forged = bytes.fromhex("f8440180a0") + bytes(32) + bytes.fromhex("a0") + keccak256(b"x")
    store.add(forged)
    after = await evm.call(state, call)
    assert after == before
    assert reachable(store, chain.header.state_root) == store.hashes() - {keccak256(forged)}


@devnet
async def test_proof_served_from_the_witness_verifies(upstream: Any, chain: Chain) -> None:
    from node.chain.proof import verify_account_proof

    state = ProvenState(upstream, chain.header)
    served = await state.proof(chain.store, [0, 1, 2**200])
    proven = verify_account_proof(chain.header.state_root, served)
    assert [s.value for s in proven.storage] == [11, 0, 0]
    assert served["codeHash"] == hexs(keccak256(await state.code(chain.store)))
    absent = verify_account_proof(chain.header.state_root,
                                  await state.proof(b"\x55" * 20, [3]))
    assert not absent.exists and absent.storage[0].value == 0


# -- the worker process ------------------------------------------------------------------


@devnet
async def test_a_cpu_heavy_call_does_not_block_the_event_loop(evm: LocalEvm, upstream: Any,
                                                              chain: Chain) -> None:
    state = ProvenState(upstream, chain.header)
    heavy = parse_call_request(tx(chain, chain.probe, calldata("burn(uint256)", 8000)))
    await evm.call(state, parse_call_request(tx(chain, chain.probe, calldata("burn(uint256)",
                                                                            1))))  # warm
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    async with asyncio.TaskGroup() as group:
        group.create_task(ticker())
        started = time.perf_counter()
        result = await evm.call(state, heavy)
        elapsed = time.perf_counter() - started
        done.set()
    assert result.success and result.gas_used > 2_000_000  # ~0.3 s of py-evm
    assert elapsed > 0.1
    assert ticks >= elapsed / 0.005 / 4  # the loop kept turning while py-evm ran


@devnet
async def test_gas_cap_is_enforced(upstream: Any, chain: Chain) -> None:
    async with LocalEvm(ANVIL, gas_cap=1_000_000) as capped:
        state = ProvenState(upstream, chain.header)
        endless = parse_call_request(tx(chain, chain.probe, calldata("burn(uint256)", 10**6),
                                        gas=hex(30_000_000)))
        result = await capped.call(state, endless)
        assert result.status is CallStatus.HALT and result.gas_used == 1_000_000
        assert result.error == "out of gas"
        with pytest.raises(EstimateGasError, match=r"gas required exceeds allowance \(1000000\)"):
            await capped.estimate_gas(state, endless)


@devnet
async def test_timeout_kills_the_worker_and_the_next_call_works(upstream: Any,
                                                                chain: Chain) -> None:
    async with LocalEvm(ANVIL, gas_cap=10**9, timeout=0.3) as slow:
        state = ProvenState(upstream, chain.header)
        quick = parse_call_request(tx(chain, chain.store, calldata("value()")))
        await slow.call(state, quick)
        (pid,) = slow.worker_pids
        endless = parse_call_request(tx(chain, chain.probe, calldata("burn(uint256)", 10**7),
                                        gas=hex(10**9)))
        started = time.perf_counter()
        with pytest.raises(EvmTimeoutError):
            await slow.call(state, endless)
        assert time.perf_counter() - started < 5
        result = await slow.call(state, quick)  # a new worker, resynced from zero
        assert result.success and decode(["uint256"], result.output) == (11,)
        assert slow.worker_pids != [pid] and slow.stats.timeouts == 1


@devnet
async def test_the_worker_is_sent_only_new_witness_entries(upstream: Any,
                                                           chain: Chain) -> None:
    sizes: list[int] = []
    store = WitnessStore()
    original = store.entries_since

    def spy(offset: int) -> list[tuple[bytes, bytes]]:
        entries = original(offset)
        sizes.append(len(entries))
        return entries

    store.entries_since = spy  # type: ignore[method-assign]
    state = ProvenState(upstream, chain.header, store=store)
    async with LocalEvm(ANVIL, workers=1) as evm:
        await evm.call(state, parse_call_request(_lie_call(chain)))
        assert sum(sizes) == len(store)  # each entry once
        sizes.clear()
        await evm.call(state, parse_call_request(_lie_call(chain)))
        assert sizes == [0]  # warm: nothing new to send
        sizes.clear()
        before = len(store)
        other = tx(chain, chain.probe_delegated, calldata("readThrough(address)",
                                                          hexs(chain.accounts[1])))
        await evm.call(state, parse_call_request(other))  # two more accounts, their slots
        assert before < len(store) and sum(sizes) == len(store) - before


# -- without a devnet: the call object, the VM of a block, the witness on recorded proofs --


def test_parse_call_request_reads_the_generic_transaction() -> None:
    request = parse_call_request({"from": "0x" + "11" * 20, "to": "0x" + "22" * 20,
                                  "input": "0x1234", "data": "0x1234", "value": "0x5",
                                  "gas": "0x5208", "maxFeePerGas": "0x10",
                                  "maxPriorityFeePerGas": "0x1", "chainId": "0x7a69",
                                  "accessList": [{"address": "0x" + "33" * 20,
                                                  "storageKeys": ["0x" + "00" * 32]}]})
    assert (request.sender, request.to, request.data, request.value, request.gas) == (
        b"\x11" * 20, b"\x22" * 20, b"\x12\x34", 5, 21000)
    assert request.access_list == ((b"\x33" * 20, (bytes(32),)),) and request.priced
    bare = parse_call_request({"to": "0x" + "22" * 20})
    assert bare.sender == bytes(20) and bare.data == b"" and not bare.priced


@pytest.mark.parametrize("obj, error", [
    ({"to": "0x" + "22" * 19}, MalformedInputError),
    ({"to": "0x" + "22" * 20, "input": "0x12", "data": "0x13"}, MalformedInputError),
    ({"to": "0x" + "22" * 20, "gasPrice": "0x1", "maxFeePerGas": "0x1"}, MalformedInputError),
    ({"to": "0x" + "22" * 20, "value": "12"}, MalformedInputError),
    ({"to": "0x" + "22" * 20, "gas": "0x1" + "0" * 16}, MalformedInputError),
    ({"to": "0x" + "22" * 20, "accessList": [{"address": "0x00", "storageKeys": []}]},
     MalformedInputError),
    ({"to": "0x" + "22" * 20, "authorizationList": []}, UnsupportedCallError),
    ({"to": "0x" + "22" * 20, "blobVersionedHashes": []}, UnsupportedCallError),
    ([], MalformedInputError),
])
def test_parse_call_request_refuses(obj: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_call_request(obj)


def test_parse_state_overrides() -> None:
    address = "0x" + "44" * 20
    (override,) = parse_state_overrides({address: {
        "balance": "0x10", "nonce": "0x2", "code": "0x6000",
        "stateDiff": {"0x" + "00" * 32: "0x" + "00" * 31 + "07"}}})
    assert (override.balance, override.nonce, override.code) == (16, 2, b"\x60\x00")
    assert override.state_diff == ((bytes(32), 7),) and override.state is None
    assert parse_state_overrides(None) == ()
    for bad in ({address: {"state": {}, "stateDiff": {}}}, {address: {"storage": {}}},
                {"0x12": {}}, {address: {"stateDiff": {"0x00": "0x" + "00" * 32}}}):
        with pytest.raises(MalformedInputError):
            parse_state_overrides(bad)


def _header_at(number: int, timestamp: int) -> Header:
    return Header(bytes(32), bytes(32), bytes(20), bytes(32), bytes(32), bytes(32), bytes(256),
                  0, number, 30_000_000, 0, timestamp, b"", bytes(32), bytes(8), 7)


def test_vm_class_for_picks_the_fork_of_the_block() -> None:
    from eth.vm.forks import CancunVM, LondonVM, ParisVM, PragueVM, ShanghaiVM

    assert vm_class_for(_header_at(5, 1), ANVIL) is PragueVM
    cases = [(12_965_000, 1628166822, LondonVM), (15_537_394, 1663224179, ParisVM),
             (17_034_870, 1681338455, ShanghaiVM), (19_426_587, 1710338135, CancunVM),
             (22_431_084, 1746612311, PragueVM)]
    for number, timestamp, expected in cases:
        assert vm_class_for(_header_at(number, timestamp), MAINNET) is expected
    with pytest.raises(UnsupportedForkError, match="berlin"):
        vm_class_for(_header_at(12_244_000, 1618481223), MAINNET)


def test_vm_class_for_osaka_uses_node_rpc_osaka_when_it_is_there() -> None:
    osaka_time = MAINNET.time_of("osaka")
    bpo2_time = MAINNET.time_of("bpo2")
    assert osaka_time is not None and bpo2_time is not None
    if importlib.util.find_spec("node.rpc.osaka") is None:  # the hook, unfilled
        with pytest.raises(UnsupportedForkError, match="osaka"):
            vm_class_for(_header_at(23_935_694, osaka_time), MAINNET)
        return
    from node.rpc.osaka import OsakaVM

    assert vm_class_for(_header_at(23_935_694, osaka_time), MAINNET) is OsakaVM
    bpo2 = vm_class_for(_header_at(24_200_000, bpo2_time), MAINNET)
    assert issubclass(bpo2, OsakaVM)
    assert bpo2.blob_schedule() == MAINNET.era_at(bpo2_time).blobs


class RecordedUpstream(AlwaysReachable):
    """Answers ``eth_getProof`` from the execution-apis cases (the hive chain's block 54),
    optionally edited; anything else is a JSON-RPC error."""

    def __init__(self, edit: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.edit = edit
        self.penalties: list[str] = []
        self.asked: list[tuple[str, Sequence[Any]]] = []

    async def call(self, method: str, params: Sequence[Any]) -> Answer:
        return (await self.batch([(method, params)]))[0]

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Answer]:
        self.asked.extend(calls)
        out = []
        for method, params in calls:
            found = [c.result for c in io_cases("eth_getProof")
                     if method == "eth_getProof" and c.result["address"] == params[0]
                     and len(c.result["storageProof"]) == len(params[1])]
            if not found:
                out.append(Answer(None, "recorded", {"code": -32601, "message": "not here"}))
                continue
            result = copy.deepcopy(found[0])
            if self.edit is not None:
                self.edit(result)
            out.append(Answer(result, "recorded"))
        return out

    def penalize(self, answer: Answer, what: str) -> None:
        self.penalties.append(what)


RECORDED = "0x7dcd17433742f4c0ca53122ab541d0ba67fc27df"


async def test_proven_state_on_recorded_proofs_rebuilds_the_same_proof() -> None:
    recorded = io_case("eth_getProof", "get-account-proof-with-storage").result
    upstream = RecordedUpstream()
    state = ProvenState(upstream, hive_block(54).header)
    address = unhex(RECORDED)
    proven = await state.account(address)
    assert proven.exists and proven.account.balance == int(recorded["balance"], 16)
    assert await state.storage(address, 0) == int(recorded["storageProof"][0]["value"], 16)
    asked = len(upstream.asked)
    served = await state.proof(address, [0])
    assert len(upstream.asked) == asked == 2  # served from the witness, not asked again
    assert served["accountProof"] == recorded["accountProof"]
    assert served["storageProof"][0]["proof"] == recorded["storageProof"][0]["proof"]
    assert upstream.asked[1] == ("eth_getProof", [RECORDED, ["0x" + "00" * 32],
                                                  {"blockHash": hexs(hive_block(54).header.hash)}])
    assert reachable(state.store, state.state_root) == state.store.hashes()


async def test_a_recorded_proof_that_lies_is_penalized_offline() -> None:
    def lie(result: dict[str, Any]) -> None:
        result["storageProof"][0]["value"] = "0x39"

    upstream = RecordedUpstream(lie)
    state = ProvenState(upstream, hive_block(54).header)
    with pytest.raises(StateAnswerError, match="0x39"):
        await state.storage(unhex(RECORDED), 0)
    assert len(upstream.penalties) == 2  # the lie, and the same lie on the retry
    assert state.known_storage(unhex(RECORDED), bytes(32)) is None
    assert len(state.store) == 0  # nothing of a lying answer is kept


@devnet
async def test_concurrent_calls_on_one_cold_state(evm: LocalEvm, upstream: Any,
                                                  chain: Chain) -> None:
    """Two workers, one state: proofs in flight for one call are awaited by the other, and
    both answers are anvil's."""
    state = ProvenState(upstream, chain.header)
    calls = [tx(chain, chain.probe, calldata("readThrough(address)", hexs(chain.accounts[i])))
             for i in (0, 1, 2)]
    calls.append(tx(chain, chain.probe_delegated, calldata("setThrough(uint256)", 4)))
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(evm.call(state, parse_call_request(c))) for c in calls]
    for call, task in zip(calls, tasks, strict=True):
        oracle = anvil_call(chain, call)
        assert (task.result().output, task.result().gas_used) == (oracle.output, oracle.gas)


# -- Osaka: vm_class_for's hook filled by node/rpc/osaka.py, against anvil --hardfork osaka --


OSAKA_ANVIL = ANVIL_OSAKA


@pytest.fixture(scope="module")
def osaka_head() -> Iterator[tuple[Anvil, Header]]:
    node = start_anvil(hardfork="osaka")
    try:
        node.rpc("evm_mine")
        yield node, verify_header(node.rpc("eth_getBlockByNumber", "latest", False))
    finally:
        node.stop()


def _p256_input() -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key = ec.derive_private_key(0xC0FFEE, ec.SECP256R1())
    r, s = decode_dss_signature(key.sign(b"orbital", ec.ECDSA(hashes.SHA256())))
    point = key.public_key().public_numbers()
    return hashlib.sha256(b"orbital").digest() + b"".join(
        v.to_bytes(32, "big") for v in (r, s, point.x, point.y))


@devnet
async def test_osaka_calls_equal_anvil_osaka(osaka_head: tuple[Anvil, Header]) -> None:
    node, header = osaka_head
    assert vm_class_for(header, OSAKA_ANVIL).__name__ == "OsakaVM"
    sender = node.accounts[0]
    calls = [
        {"from": sender, "input": "0x600f1e5f5260205ff3"},  # CLZ(15) (EIP-7939), returned
        {"from": sender, "to": hexs((0x100).to_bytes(20, "big")),  # P256VERIFY (EIP-7951)
         "input": hexs(_p256_input())},
        {"from": sender, "to": hexs((5).to_bytes(20, "big")),  # MODEXP repriced (EIP-7883)
         "input": hexs(_precompile_inputs()[4][1])},
    ]
    async with DirectUpstream(node.url) as direct, LocalEvm(OSAKA_ANVIL) as local:
        for call in calls:
            state = ProvenState(direct, header)
            result = await local.call(state, parse_call_request(call))
            trace = node.rpc("debug_traceCall", call, hex(header.number), {})
            assert (result.output, result.gas_used) == (
                unhex(node.rpc("eth_call", call, hex(header.number))), trace["gas"])
            assert await local.estimate_gas(state, parse_call_request(call)) == int(
                node.rpc("eth_estimateGas", call, hex(header.number)), 16)
        clz = await local.call(ProvenState(direct, header), parse_call_request(calls[0]))
        p256 = await local.call(ProvenState(direct, header), parse_call_request(calls[1]))
        assert int.from_bytes(clz.output, "big") == 252 and p256.output == (1).to_bytes(32, "big")
