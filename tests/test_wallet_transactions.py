"""wallet.transactions: requests read strictly from JSON; every envelope signed through
the Signer interface decodes, recovers to the signer, and matches eth-account's own
signing of the same transaction with the same key (an independent reference)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from wallet.errors import MalformedRequestError, SigningError
from wallet.transactions import (
    Authorization,
    TransactionRequest,
    request_from_json,
    sign_transaction,
)

from signers import software_signer

KEY = "0x4646464646464646464646464646464646464646464646464646464646464646"
TO = "0x" + "35" * 20

REQUESTS: dict[str, dict[str, Any]] = {
    "legacy-155": {"chainId": 1, "nonce": 9, "gas": 21000, "to": TO, "value": "10",
                   "gasPrice": "20000000000"},
    "legacy-no-chain-id": {"nonce": 9, "gas": 21000, "to": TO, "value": 10,
                           "gasPrice": "0x4a817c800"},
    "eip-2930": {"type": 1, "chainId": 5, "nonce": 0, "gas": 30000, "to": TO, "value": "0",
                 "gasPrice": 1, "data": "0x1234",
                 "accessList": [{"address": TO, "storageKeys": ["0x" + "01" * 32]}]},
    "eip-1559": {"chainId": 31337, "nonce": 3, "gas": 21000, "to": TO, "value": "5",
                 "maxFeePerGas": "3000000000", "maxPriorityFeePerGas": "1000000000"},
    "eip-1559-create": {"chainId": 31337, "nonce": 4, "gas": 90000, "to": None, "value": 0,
                        "data": "0x6000", "maxFeePerGas": 2, "maxPriorityFeePerGas": 1},
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_signed_envelope_equals_eth_account_signing(name: str) -> None:
    signer = software_signer(KEY)
    request = request_from_json(REQUESTS[name])
    signed = sign_transaction(request, signer)
    reference = Account.sign_transaction(_eth_account_form(REQUESTS[name]), KEY)
    assert signed.raw == bytes(reference.raw_transaction)
    assert signed.hash == bytes(reference.hash)
    assert signed.sender == signer.address


def test_set_code_transaction_signs_its_own_authorization() -> None:
    signer = software_signer(KEY)
    request = request_from_json({
        "chainId": 31337, "nonce": 0, "gas": 60000, "to": "0x" + signer.address.hex(),
        "maxFeePerGas": 2, "maxPriorityFeePerGas": 1,
        "authorizationList": [{"chainId": 31337, "address": TO, "nonce": 1}]})
    signed = sign_transaction(request, signer)
    (auth,) = signed.request.authorizations
    assert auth.signature is not None
    reference = Account.sign_authorization({"chainId": 31337, "address": TO, "nonce": 1}, KEY)
    assert (auth.signature.r, auth.signature.s, auth.signature.y_parity) == (
        reference.r, reference.s, reference.y_parity)
    assert Account.recover_transaction(signed.raw).lower() == "0x" + signer.address.hex()
    assert signed.raw[0] == 4


def test_signature_that_does_not_recover_is_never_released() -> None:
    class LyingSigner:
        address = bytes(20)

        def sign_digest(self, digest: bytes) -> Any:
            return software_signer(KEY).sign_digest(digest)

    with pytest.raises(SigningError, match="nothing was released"):
        sign_transaction(request_from_json(REQUESTS["eip-1559"]), LyingSigner())


def test_request_round_trips_through_json() -> None:
    for body in REQUESTS.values():
        request = request_from_json(body)
        assert request_from_json(request.to_json()) == request


@pytest.mark.parametrize("body, message", [
    ([], "JSON object"),
    ({**REQUESTS["eip-1559"], "gasprice": 1}, "unknown transaction field"),
    ({k: v for k, v in REQUESTS["eip-1559"].items() if k != "nonce"}, "missing"),
    ({k: v for k, v in REQUESTS["eip-1559"].items() if k != "chainId"}, "missing"),
    ({**REQUESTS["eip-1559"], "value": 1.5}, "integer"),
    ({**REQUESTS["eip-1559"], "value": "-1"}, "not a number"),
    ({**REQUESTS["eip-1559"], "value": True}, "integer"),
    ({**REQUESTS["eip-1559"], "nonce": 2**64}, "out of range"),
    ({**REQUESTS["eip-1559"], "to": "0x1234"}, "20 bytes"),
    ({**REQUESTS["eip-1559"], "data": "0xzz"}, "bad hex"),
    ({**REQUESTS["eip-1559"], "data": "12"}, "0x-prefixed"),
    ({**REQUESTS["eip-1559"], "gasPrice": 1}, "does not belong"),
    ({**REQUESTS["eip-1559"], "maxPriorityFeePerGas": 10**10}, "exceeds maxFeePerGas"),
    ({**REQUESTS["legacy-155"], "type": 0, "accessList": []}, "no accessList"),
    ({**REQUESTS["eip-1559"], "type": 3}, "not supported"),
    ({**REQUESTS["eip-1559"], "type": 4}, "missing"),
    ({**REQUESTS["eip-1559"], "authorizationList": []}, "at least one authorization"),
    ({**REQUESTS["eip-1559"], "authorizationList": [{"chainId": 1, "address": TO}]},
     "want chainId"),
    ({**REQUESTS["eip-1559"], "authorizationList": [
        {"chainId": 1, "address": TO, "nonce": 0, "r": 1}]}, "yParity, r and s"),
    ({**REQUESTS["eip-1559"], "to": None, "authorizationList": [
        {"chainId": 1, "address": TO, "nonce": 0}]}, "needs a destination"),
    ({**REQUESTS["eip-1559"], "data": "0x", "input": "0x"}, "not both"),
])
def test_malformed_request_is_refused_naming_the_problem(body: Any, message: str) -> None:
    with pytest.raises(MalformedRequestError, match=message):
        request_from_json(body)


def test_authorization_digest_is_eip_7702() -> None:
    auth = Authorization(31337, bytes.fromhex(TO[2:]), 1)
    reference = Account.sign_authorization({"chainId": 31337, "address": TO, "nonce": 1}, KEY)
    signature = software_signer(KEY).sign_digest(auth.digest())
    assert (signature.r, signature.s) == (reference.r, reference.s)


def test_max_fee_is_gas_times_the_price_cap() -> None:
    request = request_from_json(REQUESTS["eip-1559"])
    assert isinstance(request, TransactionRequest)
    assert request.max_fee == 21000 * 3_000_000_000


def _eth_account_form(body: dict[str, Any]) -> dict[str, Any]:
    tx = {k: (int(v, 0) if isinstance(v, str) and k != "to" and k != "data" else v)
          for k, v in body.items()}
    tx["to"] = b"" if body.get("to") is None else to_checksum_address(body["to"])
    if "data" in tx:
        tx["data"] = bytes.fromhex(body["data"][2:])
    return tx
