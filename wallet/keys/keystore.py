"""The keystore backend: one secp256k1 key in an encrypted Web3 Secret Storage (version 3)
file, for development and as the embedded default when there is no HSM.

The file format is eth-account's (``Account.encrypt`` / ``Account.decrypt``: scrypt or
PBKDF2-HMAC-SHA256, AES-128-CTR, keccak MAC), so geth, foundry and eth-account read our files
and we read theirs. Only version 3 files are accepted.

The decrypted key lives only inside a :class:`KeystoreSigner` (as a coincurve private key);
it is never returned, logged or written unencrypted. Files are written atomically
(temporary file, ``fsync``, rename) with mode 600, and never overwrite an existing file.

Errors: a missing file is :class:`~wallet.errors.KeyNotFoundError`; a file that is not a V3
keystore (bad JSON, missing fields, unsupported KDF or cipher, absurd KDF cost) is
:class:`~wallet.errors.MalformedRequestError`; a wrong password (the MAC does not match) is
:class:`~wallet.errors.BadPinError`. A keystore has no attempt counter: each try costs a
full KDF run (about a second with the default scrypt parameters), which is the brake.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import coincurve
from eth_account import Account
from eth_utils import to_checksum_address

from wallet.errors import BadPinError, KeyNotFoundError, MalformedRequestError, SigningError
from wallet.keys.signer import (
    SECP256K1_N,
    Signature,
    address_of_public_key,
    finalize_signature,
)

PASSWORD_ENV = "ORBITAL_KEYSTORE_PASSWORD"
"""Environment variable the CLI may read the keystore password from (see
:func:`wallet.keys.pin.read_pin` with ``env_var=PASSWORD_ENV``)."""

MAX_SCRYPT_N = 1 << 20  # geth's "standard" is 2**18; refuse files that would take minutes
MAX_PBKDF2_ROUNDS = 10_000_000

Kdf = Literal["scrypt", "pbkdf2"]


def _valid_private_key(secret: bytes) -> bool:
    return len(secret) == 32 and 0 < int.from_bytes(secret, "big") < SECP256K1_N


def _check_v3(document: Any, where: str) -> None:
    """Refuse anything but a well-formed version-3 keystore with a sane KDF cost."""
    def bad(what: str) -> MalformedRequestError:
        return MalformedRequestError(f"{where} is not a Web3 Secret Storage v3 keystore: {what}")

    if not isinstance(document, Mapping):
        raise bad("not a JSON object")
    lowered = {str(k).lower(): v for k, v in document.items()}
    if lowered.get("version") != 3:
        raise bad(f"version {lowered.get('version')!r} (want 3)")
    crypto = lowered.get("crypto")
    if not isinstance(crypto, Mapping):
        raise bad("no 'crypto' object")
    crypto = {str(k).lower(): v for k, v in crypto.items()}
    if crypto.get("cipher") != "aes-128-ctr":
        raise bad(f"cipher {crypto.get('cipher')!r} (want aes-128-ctr)")
    for field in ("ciphertext", "mac"):
        if not isinstance(crypto.get(field), str):
            raise bad(f"no crypto.{field}")
    params = crypto.get("cipherparams")
    if not isinstance(params, Mapping) or not isinstance(params.get("iv"), str):
        raise bad("no crypto.cipherparams.iv")
    kdfparams = crypto.get("kdfparams")
    if not isinstance(kdfparams, Mapping) or not isinstance(kdfparams.get("salt"), str):
        raise bad("no crypto.kdfparams.salt")
    kdf = crypto.get("kdf")
    if kdf == "scrypt":
        n, r, p = (kdfparams.get(k) for k in ("n", "r", "p"))
        if not all(isinstance(x, int) and x > 0 for x in (n, r, p)):
            raise bad("scrypt parameters n, r, p must be positive integers")
        if n > MAX_SCRYPT_N or n & (n - 1) or r * p > 64:
            raise bad(f"scrypt cost n={n}, r={r}, p={p} is not a sane power of two")
    elif kdf == "pbkdf2":
        rounds = kdfparams.get("c")
        if not isinstance(rounds, int) or not 0 < rounds <= MAX_PBKDF2_ROUNDS:
            raise bad("pbkdf2 round count c must be 1 to 10,000,000")
        if kdfparams.get("prf") != "hmac-sha256":
            raise bad(f"pbkdf2 prf {kdfparams.get('prf')!r} (want hmac-sha256)")
    else:
        raise bad(f"kdf {kdf!r} (want scrypt or pbkdf2)")
    if kdfparams.get("dklen") != 32:
        raise bad("kdfparams.dklen must be 32")


def _read_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyNotFoundError(f"no keystore file at {path}") from None
    except IsADirectoryError:
        raise MalformedRequestError(f"{path} is a directory, not a keystore file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MalformedRequestError(f"cannot read keystore {path}: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedRequestError(f"keystore {path} is not JSON: {exc}") from None
    _check_v3(document, f"keystore {path}")
    return document


def _decrypt(document: Mapping[str, Any], password: str, where: str) -> bytes:
    try:
        secret = bytes(Account.decrypt(dict(document), password))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise BadPinError(f"wrong password for {where}") from None
        raise MalformedRequestError(f"{where} cannot be decrypted: {exc}") from None
    except Exception as exc:  # eth-keyfile raises KeyError/TypeError/... for odd files
        raise MalformedRequestError(
            f"{where} cannot be decrypted: {type(exc).__name__} {exc}") from None
    if not _valid_private_key(secret):
        raise MalformedRequestError(f"{where} does not hold a valid secp256k1 private key")
    stated = document.get("address")
    derived = address_of_public_key(coincurve.PrivateKey(secret).public_key.format(False))
    if isinstance(stated, str) and stated:
        text = stated[2:] if stated[:2].lower() == "0x" else stated
        if text.lower() != derived.hex():
            raise MalformedRequestError(
                f"{where} states address 0x{text} but its key is "
                f"{to_checksum_address(derived)}")
    return secret


def _write_new(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically (mode 600), refusing to replace a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(document, indent=2).encode("utf-8") + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails if path exists (unlike rename)
        except FileExistsError:
            raise MalformedRequestError(
                f"{path} already exists: refusing to overwrite a keystore") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def create_keystore(path: str | os.PathLike[str], password: str, *,
                    private_key: bytes | None = None, kdf: Kdf = "scrypt",
                    iterations: int | None = None) -> bytes:
    """Write a new V3 keystore at ``path`` holding a fresh random key (or ``private_key``,
    to import a raw key) encrypted under ``password``; return its address.

    ``kdf``/``iterations`` are eth-account's (default scrypt, n = 2**18); tests may lower
    the cost."""
    if not password:
        raise MalformedRequestError("refusing to encrypt a keystore with an empty password")
    secret = os.urandom(32) if private_key is None else bytes(private_key)
    while private_key is None and not _valid_private_key(secret):
        secret = os.urandom(32)
    if not _valid_private_key(secret):
        raise MalformedRequestError("not a valid secp256k1 private key (32 bytes, 0 < k < n)")
    document = Account.encrypt(secret, password, kdf=kdf, iterations=iterations)
    _write_new(Path(path), document)
    return address_of_public_key(coincurve.PrivateKey(secret).public_key.format(False))


def import_keystore(source: str | os.PathLike[str], destination: str | os.PathLike[str],
                    password: str) -> bytes:
    """Copy an existing V3 keystore (from geth, foundry, eth-account, ...) to
    ``destination`` after checking that ``password`` opens it; return its address. The file
    is copied as is, so it stays readable by the tool that made it."""
    source_path = Path(source)
    document = _read_document(source_path)
    secret = _decrypt(document, password, f"keystore {source_path}")
    _write_new(Path(destination), document)
    return address_of_public_key(coincurve.PrivateKey(secret).public_key.format(False))


def keystore_address(path: str | os.PathLike[str]) -> bytes | None:
    """The address a keystore file states (no password needed; not verified), if any."""
    stated = _read_document(Path(path)).get("address")
    if not isinstance(stated, str) or not stated:
        return None
    text = stated[2:] if stated[:2].lower() == "0x" else stated
    try:
        address = bytes.fromhex(text)
    except ValueError:
        return None
    return address if len(address) == 20 else None


class KeystoreSigner:
    """:class:`~wallet.keys.signer.Signer` over the key of a V3 keystore file.

    Opening decrypts the file (a full KDF run); the key then stays in this object's memory
    only. Signing is libsecp256k1 (coincurve, RFC 6979 deterministic nonces) producing raw
    ``(r, s)``, which goes through :func:`finalize_signature` like any backend's."""

    def __init__(self, path: str | os.PathLike[str], password: str) -> None:
        self.path = Path(path)
        document = _read_document(self.path)
        secret = _decrypt(document, password, f"keystore {self.path}")
        self._key = coincurve.PrivateKey(secret)
        self._address = address_of_public_key(self._key.public_key.format(compressed=False))

    @property
    def address(self) -> bytes:
        return self._address

    def sign_digest(self, digest: bytes) -> Signature:
        """Sign ``digest``: low-s, with recovery id, checked to recover :attr:`address`."""
        if len(digest) != 32:
            raise SigningError(f"refusing to sign a digest of {len(digest)} bytes (want 32)")
        raw = self._key.sign_recoverable(digest, hasher=None)  # r || s || recid
        return finalize_signature(digest, int.from_bytes(raw[:32], "big"),
                                  int.from_bytes(raw[32:64], "big"), self._address)

    def close(self) -> None:
        """Nothing to release (present so that every backend closes the same way)."""

    def __repr__(self) -> str:
        return f"KeystoreSigner({str(self.path)!r}, address={to_checksum_address(self._address)})"
