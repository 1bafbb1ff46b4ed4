"""The wallet's signatures against an independent implementation: foundry's ``cast``
(npm ``@foundry-rs/cast``, pinned in tools/) signs the same transactions with the same
key, offline, and must produce byte-identical raw transactions."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from node.devnet import find_foundry_tool
from wallet.keys.keystore import KeystoreSigner, create_keystore
from wallet.transactions import request_from_json, sign_transaction

KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
TO = "0x2222222222222222222222222222222222222222"

CASES = {
    "eip-1559": ({"chainId": 31337, "nonce": 3, "gas": 21000, "to": TO, "value": "5",
                  "maxFeePerGas": "3000000000", "maxPriorityFeePerGas": "1000000000"},
                 ["--gas-price", "3000000000", "--priority-gas-price", "1000000000"]),
    "legacy-155": ({"type": 0, "chainId": 31337, "nonce": 7, "gas": 30000, "to": TO,
                    "value": "1000", "gasPrice": "2000000000", "data": "0xabcdef"},
                   ["--legacy", "--gas-price", "2000000000"]),
    "eip-2930": ({"type": 1, "chainId": 1, "nonce": 0, "gas": 50000, "to": TO, "value": "0",
                  "gasPrice": "1000000000", "data": "0x01",
                  "accessList": [{"address": TO, "storageKeys": []}]},
                 ["--legacy", "--gas-price", "1000000000", "--access-list",
                  f'[{{"address":"{TO}","storageKeys":[]}}]']),
}


@pytest.fixture(scope="module")
def keystore_signer(tmp_path_factory: pytest.TempPathFactory) -> KeystoreSigner:
    path = tmp_path_factory.mktemp("keystore") / "key.json"
    create_keystore(path, "correct horse", private_key=bytes.fromhex(KEY[2:]),
                    kdf="pbkdf2", iterations=2)
    return KeystoreSigner(path, "correct horse")


@pytest.mark.parametrize("name", sorted(CASES))
def test_keystore_signature_is_byte_identical_to_cast(name: str,
                                                      keystore_signer: KeystoreSigner) -> None:
    body, flags = CASES[name]
    ours = sign_transaction(request_from_json(body), keystore_signer)
    cast = subprocess.run(
        [str(find_foundry_tool("cast")), "mktx", "--private-key", KEY,
         "--chain", str(body["chainId"]), "--nonce", str(body["nonce"]),
         "--gas-limit", str(body["gas"]), "--value", str(body["value"]), *flags,
         TO, *([body["data"]] if "data" in body else [])],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent)
    assert cast.returncode == 0, cast.stderr
    assert "0x" + ours.raw.hex() == cast.stdout.strip()
