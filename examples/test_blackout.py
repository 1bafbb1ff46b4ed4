"""A dApp's test against an orbital node behind a link that goes down: a contract call
still answers from the node's verified cache during LOS, and a transaction sent during LOS
lands after AOS. Run it with ``pytest examples/test_blackout.py`` (orbital installed:
its pytest plugin provides the fixtures; anvil from ``scripts/setup.sh --test``)."""

import time

import pytest
from web3 import Web3

# A tiny contract, hand-assembled: get() returns the stored number (7 at deployment),
# set(uint256) stores another -- any call with a 32-byte argument stores it.
STORE_RUNTIME = "60243610600e57600435600055005b60005460005260206000f3"
STORE_INITCODE = "0x6007600055601a8060106000396000f3" + STORE_RUNTIME
STORE_ABI = [
    {"type": "function", "name": "get", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "set", "stateMutability": "nonpayable",
     "inputs": [{"name": "value", "type": "uint256"}], "outputs": []},
]


def until(what, check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


@pytest.mark.orbital_trust("quorum")
def test_reads_answer_from_cache_and_a_transaction_lands_after_the_blackout(
        anvil, orbital_node, link, keystore_wallet):
    # Deploy on the devnet (the ground's chain), then use it only through the node.
    ground = Web3(Web3.HTTPProvider(anvil.url))
    deployed = ground.eth.wait_for_transaction_receipt(ground.eth.send_transaction(
        {"from": ground.to_checksum_address(anvil.accounts[0]), "data": STORE_INITCODE}))
    orbital_node.wait_for_head(deployed["blockNumber"])
    w3 = orbital_node.web3()
    store = w3.eth.contract(deployed["contractAddress"], abi=STORE_ABI)
    assert store.functions.get().call() == 7  # proven against the anchored head
    nonce = w3.eth.get_transaction_count(keystore_wallet.address)

    # Loss of signal: the node notices at its next refresh and serves from its cache.
    link.los()
    until("the node out of contact", lambda: not orbital_node.status()["link"]["inContact"])
    assert store.functions.get().call() == 7
    head = orbital_node.status()["head"]
    assert head["number"] >= deployed["blockNumber"] and head["age"] > 0

    # A transaction signed by the wallet (policy-checked, audited) and sent during LOS:
    # accepted into the node's durable outbox, not on the chain yet.
    keystore_wallet.allow(store.address, "set(uint256)")
    raw = keystore_wallet.sign_transaction({
        "to": store.address, "data": store.encode_abi("set", [42]), "nonce": nonce,
        "gas": 100_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9,
        "chainId": 31337})
    tx_hash = w3.eth.send_raw_transaction(raw)
    queued = orbital_node.rpc("orbital_outbox")
    assert [(e["hash"], e["state"]) for e in queued] == [("0x" + tx_hash.hex(), "queued")]
    assert anvil.rpc("eth_getTransactionByHash", "0x" + tx_hash.hex()) is None
    assert keystore_wallet.audit_kinds()[-2:] == ["policy_decision", "signed"]

    # Acquisition of signal: the node flushes its outbox and verifies the receipt.
    link.aos()
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    assert receipt["status"] == 1
    until("the outbox entry included", lambda: orbital_node.rpc("orbital_outbox")[0]["state"]
          in ("included", "final"))
    orbital_node.wait_for_head(receipt["blockNumber"])
    assert store.functions.get().call() == 42
