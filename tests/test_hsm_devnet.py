"""Every transaction envelope signed by a key inside SoftHSM2 (through PKCS#11), sent to
anvil and mined; the sender anvil records is the key's address."""

from __future__ import annotations

import pytest

from node.devnet import Anvil
from node.testing.pytest_plugin import SoftHsmToken
from node.testing.softhsm import USER_PIN, SoftHsm
from wallet.keys.pin import PinAttempts
from wallet.keys.pkcs11 import Pkcs11Token
from wallet.transactions import request_from_json, sign_transaction

pytestmark = [pytest.mark.devnet, pytest.mark.hsm]

TO = "0x2222222222222222222222222222222222222222"
DELEGATE = "0x3333333333333333333333333333333333333333"
FEES = {"maxFeePerGas": "20000000000", "maxPriorityFeePerGas": "1000000000"}


def test_every_envelope_signed_in_the_hsm_is_mined(anvil: Anvil, softhsm: SoftHsm,
                                                   softhsm_token: SoftHsmToken,
                                                   pin_attempts: PinAttempts) -> None:
    with Pkcs11Token(softhsm_token.label, USER_PIN, attempts=pin_attempts) as token:
        address = token.generate_key()
        signer = token.signer(address)
        try:
            sender = "0x" + address.hex()
            anvil.rpc("anvil_setBalance", sender, hex(10**19))
            bodies = [
                {"type": 0, "chainId": 31337, "nonce": 0, "gas": 21000, "to": TO, "value": 1,
                 "gasPrice": "20000000000"},
                {"type": 1, "chainId": 31337, "nonce": 1, "gas": 30000, "to": TO, "value": 2,
                 "gasPrice": "20000000000",
                 "accessList": [{"address": TO, "storageKeys": ["0x" + "00" * 32]}]},
                {"type": 2, "chainId": 31337, "nonce": 2, "gas": 21000, "to": TO, "value": 3,
                 **FEES},
                {"type": 4, "chainId": 31337, "nonce": 3, "gas": 60000, "to": sender,
                 "value": 0, **FEES,
                 "authorizationList": [{"chainId": 31337, "address": DELEGATE, "nonce": 4}]},
            ]
            for body in bodies:
                signed = sign_transaction(request_from_json(body), signer)
                tx_hash = anvil.rpc("eth_sendRawTransaction", "0x" + signed.raw.hex())
                assert tx_hash == "0x" + signed.hash.hex()
                receipt = anvil.receipt(tx_hash)
                assert receipt["status"] == "0x1" and receipt["from"] == sender
                assert int(receipt["type"], 16) == body["type"]
            assert anvil.rpc("eth_getCode", sender, "latest") == "0xef0100" + DELEGATE[2:]
        finally:
            signer.close()
