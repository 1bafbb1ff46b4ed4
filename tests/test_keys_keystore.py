"""The keystore backend: Web3 Secret Storage v3 files through eth-account, signing with
coincurve through the same finalize_signature as the HSM."""

from __future__ import annotations

import json
import random
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from wallet.errors import BadPinError, KeyNotFoundError, MalformedRequestError, SigningError
from wallet.keys.keystore import (
    KeystoreSigner,
    create_keystore,
    import_keystore,
    keystore_address,
)
from wallet.keys.signer import HALF_N, Signer, recover_address

CHEAP = {"kdf": "pbkdf2", "iterations": 2}  # test-only KDF cost; the default is scrypt 2**18
PASSWORD = "correct horse battery staple"

# The example keystore of eth-account's Account.decrypt documentation: scrypt at geth's
# standard cost (n = 2**18), written by another implementation than ours.
ETH_ACCOUNT_EXAMPLE: dict[str, Any] = {
    "address": "5ce9454909639D2D17A3F753ce7d93fa0b9aB12E",
    "crypto": {
        "cipher": "aes-128-ctr",
        "cipherparams": {"iv": "482ef54775b0cc59f25717711286f5c8"},
        "ciphertext": "cb636716a9fd46adbb31832d964df2082536edd5399a3393327dc89b0193a2be",
        "kdf": "scrypt",
        "kdfparams": {"dklen": 32, "n": 262144, "p": 8, "r": 1,
                      "salt": "d3c9a9945000fcb6c9df0f854266d573"},
        "mac": "4f626ec5e7fea391b2229348a65bfef532c2a4e8372c0a6a814505a350a7689d",
    },
    "id": "b812f3f9-78cc-462a-9e89-74418aa27cb0",
    "version": 3,
}


def digests(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(32) for _ in range(count)]


@pytest.fixture
def keystore(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "keys" / "signer.json"
    return path, create_keystore(path, PASSWORD, **CHEAP)


def test_create_writes_a_private_v3_file_that_opens_with_its_password(
        keystore: tuple[Path, bytes]) -> None:
    path, address = keystore
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["version"] == 3
    assert document["address"].lower() == address.hex()
    assert keystore_address(path) == address
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    signer = KeystoreSigner(path, PASSWORD)
    assert isinstance(signer, Signer)
    assert signer.address == address
    assert PASSWORD not in repr(signer) and "signer.json" in repr(signer)


def test_signatures_are_low_s_recover_and_match_eth_account(tmp_path: Path) -> None:
    secret = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
    address = create_keystore(tmp_path / "k.json", PASSWORD, private_key=secret, **CHEAP)
    assert "0x" + address.hex() == Account.from_key(secret).address.lower()
    signer = KeystoreSigner(tmp_path / "k.json", PASSWORD)
    for digest in digests(100, seed=3):
        signature = signer.sign_digest(digest)
        assert signature.s <= HALF_N
        assert recover_address(digest, signature) == address
        theirs = Account.unsafe_sign_hash(digest, secret)  # RFC 6979 too: the same signature
        assert (signature.r, signature.s, signature.v) == (theirs.r, theirs.s, theirs.v)
        assert signature.to_bytes() == bytes(theirs.signature)
    with pytest.raises(SigningError, match="33 bytes"):
        signer.sign_digest(b"\x00" * 33)


def test_reads_a_scrypt_keystore_written_by_another_implementation(tmp_path: Path) -> None:
    path = tmp_path / "theirs.json"
    path.write_text(json.dumps(ETH_ACCOUNT_EXAMPLE))
    signer = KeystoreSigner(path, "password")
    assert signer.address.hex() == ETH_ACCOUNT_EXAMPLE["address"].lower()


def test_wrong_password_is_bad_pin(keystore: tuple[Path, bytes]) -> None:
    path, _ = keystore
    with pytest.raises(BadPinError, match=re.escape(f"wrong password for keystore {path}")):
        KeystoreSigner(path, "not the password")


def test_missing_file_is_key_not_found(tmp_path: Path) -> None:
    with pytest.raises(KeyNotFoundError, match="no keystore file at"):
        KeystoreSigner(tmp_path / "absent.json", PASSWORD)


def _damaged(document: dict[str, Any], change: str) -> Any:
    doc = json.loads(json.dumps(document))
    crypto = doc["crypto"]
    if change == "version":
        doc["version"] = 4
    elif change == "no crypto":
        del doc["crypto"]
    elif change == "cipher":
        crypto["cipher"] = "aes-256-gcm"
    elif change == "kdf":
        crypto["kdf"] = "argon2"
    elif change == "huge scrypt":
        crypto["kdf"], crypto["kdfparams"] = "scrypt", {"n": 1 << 30, "r": 8, "p": 1,
                                                       "dklen": 32, "salt": "00"}
    elif change == "huge pbkdf2":
        crypto["kdfparams"]["c"] = 10**9
    elif change == "bad hex":
        crypto["ciphertext"] = "zz"
    elif change == "list":
        return [doc]
    return doc


@pytest.mark.parametrize("change", ["version", "no crypto", "cipher", "kdf", "huge scrypt",
                                    "huge pbkdf2", "bad hex", "list"])
def test_a_file_that_is_not_a_v3_keystore_is_malformed(
        keystore: tuple[Path, bytes], tmp_path: Path, change: str) -> None:
    path, _ = keystore
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps(_damaged(json.loads(path.read_text()), change)))
    with pytest.raises(MalformedRequestError, match=r"damaged\.json"):
        KeystoreSigner(damaged, PASSWORD)


@pytest.mark.parametrize("text", ["{", "", "not json", "\xff"])
def test_malformed_json_is_malformed(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="latin-1")
    with pytest.raises(MalformedRequestError, match=r"bad\.json"):
        KeystoreSigner(path, PASSWORD)


def test_a_stated_address_that_is_not_the_key_s_is_refused(
        keystore: tuple[Path, bytes], tmp_path: Path) -> None:
    path, _ = keystore
    document = json.loads(path.read_text())
    document["address"] = "11" * 20
    lying = tmp_path / "lying.json"
    lying.write_text(json.dumps(document))
    with pytest.raises(MalformedRequestError, match="states address 0x1111"):
        KeystoreSigner(lying, PASSWORD)


def test_never_overwrites_and_refuses_bad_input(keystore: tuple[Path, bytes]) -> None:
    path, _ = keystore
    before = path.read_bytes()
    with pytest.raises(MalformedRequestError, match="already exists"):
        create_keystore(path, PASSWORD, **CHEAP)
    assert path.read_bytes() == before
    with pytest.raises(MalformedRequestError, match="empty password"):
        create_keystore(path.with_name("other.json"), "", **CHEAP)
    with pytest.raises(MalformedRequestError, match="not a valid secp256k1 private key"):
        create_keystore(path.with_name("zero.json"), PASSWORD, private_key=bytes(32), **CHEAP)
    assert sorted(p.name for p in path.parent.iterdir()) == ["signer.json"]


def test_import_checks_the_password_and_copies_the_file(
        keystore: tuple[Path, bytes], tmp_path: Path) -> None:
    path, address = keystore
    destination = tmp_path / "imported" / "key.json"
    with pytest.raises(BadPinError):
        import_keystore(path, destination, "wrong")
    assert not destination.exists()
    assert import_keystore(path, destination, PASSWORD) == address
    assert json.loads(destination.read_text()) == json.loads(path.read_text())
    assert stat.S_IMODE(destination.stat().st_mode) == 0o600
    assert KeystoreSigner(destination, PASSWORD).address == address
