"""The anvil fixture starts a real devnet as configured and stops it without leftovers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import coincurve
import pytest
import sha3

from node.devnet import (
    ANVIL_ENV,
    CHAIN_ID,
    DEV_PRIVATE_KEYS,
    Anvil,
    AnvilNotFoundError,
    RpcError,
    find_anvil,
    port_is_open,
    start_anvil,
)

pytestmark = pytest.mark.devnet

Rpc = Callable[..., Any]


def _address(private_key: str) -> str:
    public = coincurve.PrivateKey(bytes.fromhex(private_key[2:])).public_key.format(False)
    return "0x" + sha3.keccak_256(public[1:]).hexdigest()[-40:]


def test_chain_id_is_31337(anvil_rpc: Rpc) -> None:
    assert int(anvil_rpc("eth_chainId"), 16) == CHAIN_ID == 31337


def test_runs_prague(anvil_rpc: Rpc) -> None:
    assert anvil_rpc("anvil_nodeInfo")["hardFork"].lower() == "prague"


def test_evm_mine_advances_block_number(anvil_rpc: Rpc) -> None:
    before = int(anvil_rpc("eth_blockNumber"), 16)
    anvil_rpc("evm_mine")
    assert int(anvil_rpc("eth_blockNumber"), 16) == before + 1


def test_accounts_are_controlled_by_the_dev_keys(anvil: Anvil) -> None:
    assert len(anvil.accounts) == len(anvil.private_keys) == len(DEV_PRIVATE_KEYS)
    derived = [_address(key) for key in anvil.private_keys]
    assert [a.lower() for a in anvil.accounts] == derived
    assert derived[0] == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".lower()


def test_mining_on_request_mines_only_when_asked_then_automines_again(anvil: Anvil) -> None:
    def send() -> str:
        return anvil.rpc("eth_sendTransaction", {"from": anvil.accounts[8],
                                                 "to": anvil.accounts[9], "value": "0x1"})

    with anvil.mining_on_request():
        held = send()
        assert anvil.rpc("eth_getTransactionReceipt", held) is None  # in the pool
        anvil.rpc("evm_mine")
        assert anvil.rpc("eth_getTransactionReceipt", held)["status"] == "0x1"
    assert anvil.receipt(send(), timeout=2.0)["status"] == "0x1"  # automine is back
    with pytest.raises(RuntimeError), anvil.mining_on_request():
        raise RuntimeError("a failing test body")
    assert anvil.receipt(send(), timeout=2.0)["status"] == "0x1"  # restored all the same


def test_rpc_error_raises(anvil_rpc: Rpc) -> None:
    with pytest.raises(RpcError) as caught:
        anvil_rpc("eth_noSuchMethod")
    assert caught.value.code == -32601


def test_stop_ends_process_and_closes_port() -> None:
    with start_anvil(accounts=1) as node:
        assert node.running
        assert port_is_open(node.port)
        assert int(node.rpc("eth_chainId"), 16) == CHAIN_ID
    assert node.process.poll() is not None
    assert not port_is_open(node.port)
    node.stop()  # idempotent


def test_missing_binary_fails_with_setup_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ANVIL_ENV, str(tmp_path / "no-anvil"))
    with pytest.raises(AnvilNotFoundError, match=ANVIL_ENV):
        find_anvil()
    monkeypatch.delenv(ANVIL_ENV)
    monkeypatch.setattr("node.devnet.NPM_SCOPE_DIR", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AnvilNotFoundError, match=r"scripts/setup\.sh --test"):
        start_anvil()
