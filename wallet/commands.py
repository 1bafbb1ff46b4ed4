"""Operator command envelopes: EIP-712 ``Command``s signed m-of-n by operator keys on the
ground, checked and acted on by the satellite.

A command is a typed structured message (EIP-712, "Definition of typed structured data 𝕊")::

    Command(string kind, bytes32 payloadHash, uint64 nonce, uint64 notBefore,
            uint64 expiry, bytes32 satelliteId)

in the domain ``EIP712Domain(string name, string version, uint256 chainId)`` with
``name = "orbital-command"``, ``version = "1"`` and ``chainId`` the chain the satellite's
wallet serves. Each operator signs ``keccak256(0x19 0x01 || domainSeparator ||
hashStruct(command))`` (EIP-712, "Specification"; the digest is computed by
:func:`wallet.messages.typed_data_digest`, never re-implemented here).

Domain separation, i.e. why a signature made for one purpose is useless for any other:

* *Other protocols, transactions, personal messages.* The ``0x19 0x01`` prefix cannot start
  an RLP legacy transaction, and differs from EIP-191 personal messages (``0x19 0x45``); the
  domain name ``orbital-command`` differs from the attestation domain (``contracts``) and any
  dapp's domain, so an operator's command signature is never also a valid signature of a
  transaction, a personal message or a task attestation.
* *Other chains.* ``chainId`` is in the domain (EIP-712, "Definition of domainSeparator"):
  a command signed for the devnet's satellite wallet is not valid for mainnet.
* *Other satellites.* ``satelliteId`` is a field of the signed struct, so a command for one
  satellite can never be replayed to another. It is in the struct rather than in the
  domain's ``salt`` so that a wallet displaying the message shows it to the operator.
  ``verifyingContract`` and ``salt`` are omitted: there is no contract, and EIP-712 lets a
  protocol include only the domain fields that make sense for it.

``satelliteId`` is ``keccak256(UTF-8 name)`` of the satellite's configured name
(:func:`satellite_id`): reproducible by anyone from the name alone, and as unique as the
names a constellation's configuration already requires to be unique (a free-form
configured id could be copy-pasted between satellites, silently re-opening replay).

The payload travels beside the struct; the struct carries only its hash,
``payloadHash = keccak256(canonical JSON)`` where canonical JSON has sorted keys, no
whitespace, ASCII-only escapes and no non-integer numbers (:func:`canonical_json`).

The satellite (:class:`CommandVerifier`) accepts a command only if the file is well formed,
the payload matches its hash, domain and satellite are its own, every signature is low-s
(EIP-2), has ``v`` 27/28 and recovers to its claimed signer, every signer is a known
operator, at least ``m`` distinct operators signed, ``notBefore <= now < expiry`` with a
bounded lifetime, and the nonce is strictly greater than the last accepted one
(:class:`NonceStore`, SQLite, durable). Any failure is a :class:`CommandRejectedError`
naming the check and its values.
"""

from __future__ import annotations

import json
import string
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from os import PathLike
from typing import Any

from eth_utils import keccak, to_checksum_address

from wallet.errors import CommandRejectedError, MalformedRequestError
from wallet.keys.signer import Signer, recover_claimed_signer
from wallet.messages import typed_data_digest
from wallet.sqlite import open_durable, write_transaction
from wallet.strictjson import expect_address, expect_hex, expect_object, load_document

DOMAIN_NAME = "orbital-command"
"""EIP-712 domain ``name`` of operator commands (distinct from the attestation domain)."""
DOMAIN_VERSION = "1"
"""EIP-712 domain ``version``; bump it when the ``Command`` struct changes meaning."""
ENVELOPE_VERSION = 1
"""Version of the envelope file format (the JSON around the signed struct)."""

EIP712_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
    ],
    "Command": [
        {"name": "kind", "type": "string"},
        {"name": "payloadHash", "type": "bytes32"},
        {"name": "nonce", "type": "uint64"},
        {"name": "notBefore", "type": "uint64"},
        {"name": "expiry", "type": "uint64"},
        {"name": "satelliteId", "type": "bytes32"},
    ],
}
"""The EIP-712 types (EIP-712, "Definition of encodeType"): the domain and the struct."""

DEFAULT_MAX_LIFETIME = 24 * 3600
"""Longest ``expiry - notBefore`` a satellite accepts by default, in seconds."""
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024
"""Largest envelope file read (a contract deployment's calldata is at most ~100 kB of hex)."""
MAX_SIGNATURES = 64
"""Most signature entries an envelope may carry."""
MAX_PAYLOAD_DEPTH = 32
"""Deepest nesting of the payload JSON (a transaction request nests about four levels)."""
_MAX_FILE_DEPTH = MAX_PAYLOAD_DEPTH + 4
"""Deepest nesting of the envelope file, checked before parsing: Python's C JSON parser
recurses, and with a raised recursion limit a hostile file could overflow the C stack."""

UINT64_MAX = 2**64 - 1
_HEX_DIGITS = frozenset(string.hexdigits)
_KIND_CHARS = frozenset(string.ascii_lowercase + string.digits + "_")


class CommandKind(StrEnum):
    """What a command asks the satellite to do. To add a kind: add a member here and its
    payload check to :data:`_PAYLOAD_CHECKS`; the satellite's dispatcher acts on it."""

    SIGN_TRANSACTION = "sign_transaction"
    """Payload: the unsigned transaction request (JSON-RPC ``eth_signTransaction`` object);
    the satellite signs it (through its policy) and queues it in the outbox."""
    CANCEL_REQUEST = "cancel_request"
    """Payload: ``{"requestId": "0x" + 32 bytes hex, "reason": "..."}`` (reason optional, one
    line): cancel the time-locked request with that id (as ``orbital wallet pending list``
    shows it) while its cancel window is open. A cancelled request is never signed."""
    SET_POLICY = "set_policy"
    """Payload: ``{"sha256": 64 hex digits}``: pin the policy file with these bytes' sha256
    (proposed on board by ``orbital wallet policy pin FILE --out``, which keeps the bytes
    in ``HOME/proposals/``). Re-seals the wallet (:mod:`wallet.seal`)."""
    SET_OPERATORS = "set_operators"
    """Payload: ``{"operators": ["0x...", ...], "threshold": m}`` (1 <= m <= n, no address
    twice): the operators whose commands the satellite obeys from now on. Re-seals."""
    SET_CHAIN = "set_chain"
    """Payload: ``{"chainId": n}``: the chain later commands are bound to. Re-seals."""
    SET_SATELLITE = "set_satellite"
    """Payload: ``{"satellite": "name"}``: the name whose keccak256 later commands must
    carry as ``satelliteId``. Re-seals."""


def _check_sign_transaction(payload: Mapping[str, Any], chain_id: int) -> None:
    """A transaction request naming a chain must name the command's chain."""
    if "chainId" not in payload:
        return
    raw = payload["chainId"]
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.startswith("0x") and 2 < len(raw) <= 66 \
            and set(raw[2:]) <= _HEX_DIGITS:
        value = int(raw, 16)
    if value is None:
        raise MalformedRequestError(
            f"payload.chainId: expected an integer or 0x-hex quantity, got {raw!r:.80}")
    if value != chain_id:
        raise CommandRejectedError(
            f"command rejected (payload): transaction chainId {value} differs from the "
            f"command's chainId {chain_id}")


def _check_cancel_request(payload: Mapping[str, Any], chain_id: int) -> None:
    """``requestId`` is 32 bytes of 0x-hex; ``reason``, if given, one line of text; nothing
    else."""
    unknown = set(payload) - {"requestId", "reason"}
    if unknown:
        raise MalformedRequestError(f"payload: unknown key(s) {', '.join(sorted(unknown))} "
                                    "for cancel_request (requestId, reason)")
    request_id = payload.get("requestId")
    if not (isinstance(request_id, str) and len(request_id) == 66
            and request_id.startswith("0x") and set(request_id[2:]) <= _HEX_DIGITS):
        raise MalformedRequestError(
            f"payload.requestId: expected 0x and 64 hex digits, got {request_id!r:.80}")
    reason = payload.get("reason", "")
    if not isinstance(reason, str) or "\n" in reason or len(reason) > 200:
        raise MalformedRequestError("payload.reason: expected one line of at most 200 "
                                    "characters")


def _only(payload: Mapping[str, Any], kind: str, keys: set[str]) -> None:
    unknown, missing = set(payload) - keys, keys - set(payload)
    if unknown or missing:
        raise MalformedRequestError(f"payload for {kind}: want exactly {', '.join(sorted(keys))}"
                                    f" (unknown: {', '.join(sorted(unknown)) or 'none'}; "
                                    f"missing: {', '.join(sorted(missing)) or 'none'})")


def _check_set_policy(payload: Mapping[str, Any], chain_id: int) -> None:
    _only(payload, "set_policy", {"sha256"})
    digest = payload["sha256"]
    if not (isinstance(digest, str) and len(digest) == 64
            and set(digest) <= set("0123456789abcdef")):
        raise MalformedRequestError("payload.sha256: expected 64 lower-case hex digits")


def set_operators_of(payload: Mapping[str, Any]) -> tuple[tuple[bytes, ...], int]:
    """The (checked) operator addresses and threshold of a ``set_operators`` payload."""
    _only(payload, "set_operators", {"operators", "threshold"})
    raw, threshold = payload["operators"], payload["threshold"]
    if not isinstance(raw, list) or not raw or len(raw) > MAX_SIGNATURES:
        raise MalformedRequestError(f"payload.operators: expected 1..{MAX_SIGNATURES} "
                                    "addresses")
    operators = tuple(expect_address(a, f"payload.operators[{i}]") for i, a in enumerate(raw))
    if len(set(operators)) != len(operators):
        raise MalformedRequestError("payload.operators: an address appears twice")
    _uint(threshold, "payload.threshold", len(operators))
    if threshold < 1:
        raise MalformedRequestError("payload.threshold: must be at least 1")
    return operators, threshold


def _check_set_operators(payload: Mapping[str, Any], chain_id: int) -> None:
    set_operators_of(payload)


def _check_set_chain(payload: Mapping[str, Any], chain_id: int) -> None:
    _only(payload, "set_chain", {"chainId"})
    _uint(payload["chainId"], "payload.chainId", UINT64_MAX)
    if payload["chainId"] == 0:
        raise MalformedRequestError("payload.chainId: must not be 0")


def _check_set_satellite(payload: Mapping[str, Any], chain_id: int) -> None:
    _only(payload, "set_satellite", {"satellite"})
    name = payload["satellite"]
    if not (isinstance(name, str) and name.strip() and len(name) <= 200
            and name.isprintable() and '"' not in name and "\\" not in name):
        raise MalformedRequestError("payload.satellite: expected a printable name without "
                                    "quotes or backslashes")


def cancel_request_id(payload: Mapping[str, Any]) -> bytes:
    """The request id a (checked) ``cancel_request`` payload names."""
    return bytes.fromhex(str(payload["requestId"])[2:])


_PAYLOAD_CHECKS: dict[CommandKind, Callable[[Mapping[str, Any], int], None]] = {
    CommandKind.SIGN_TRANSACTION: _check_sign_transaction,
    CommandKind.CANCEL_REQUEST: _check_cancel_request,
    CommandKind.SET_POLICY: _check_set_policy,
    CommandKind.SET_OPERATORS: _check_set_operators,
    CommandKind.SET_CHAIN: _check_set_chain,
    CommandKind.SET_SATELLITE: _check_set_satellite,
}
"""Per-kind check of the payload's meaning (``payload``, domain ``chainId``)."""


def check_payload(kind: CommandKind, payload: Mapping[str, Any], chain_id: int) -> None:
    """The satellite's check of a ``kind`` payload's meaning (e.g. to propose a payload
    that will pass it)."""
    _PAYLOAD_CHECKS[kind](payload, chain_id)


# --------------------------------------------------------------------------- data types


def _uint(value: Any, field: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise MalformedRequestError(
            f"{field}: expected an integer 0..{maximum}, got {value!r:.80}")
    return value


def _bytes_of(value: Any, field: str, length: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != length:
        raise MalformedRequestError(f"{field}: expected {length} bytes, got {value!r:.80}")
    return value


@dataclass(frozen=True)
class Command:
    """The signed part of an envelope: the EIP-712 ``Command`` struct and its domain's
    ``chainId``. Field values are checked for type and range only; whether they make
    sense (window, hash, signers) is for :class:`CommandVerifier`."""

    kind: str
    """What to do: a :class:`CommandKind` value (any lowercase identifier parses, so a
    satellite can name a kind it does not support)."""
    payload_hash: bytes
    """``keccak256(canonical_json(payload))``, 32 bytes."""
    nonce: int
    """uint64, strictly increasing per satellite: a satellite acts on each nonce once."""
    not_before: int
    """uint64 unix seconds: not valid before."""
    expiry: int
    """uint64 unix seconds: valid strictly before."""
    satellite_id: bytes
    """32 bytes, :func:`satellite_id` of the satellite the command is for."""
    chain_id: int
    """The domain's ``chainId``: the chain the satellite's wallet serves."""

    def __post_init__(self) -> None:
        if not (isinstance(self.kind, str) and 0 < len(self.kind) <= 64
                and set(self.kind) <= _KIND_CHARS and self.kind[0].isalpha()):
            raise MalformedRequestError(
                f"command.kind: expected a lowercase identifier, got {self.kind!r:.80}")
        _bytes_of(self.payload_hash, "command.payloadHash", 32)
        _uint(self.nonce, "command.nonce", UINT64_MAX)
        _uint(self.not_before, "command.notBefore", UINT64_MAX)
        _uint(self.expiry, "command.expiry", UINT64_MAX)
        _bytes_of(self.satellite_id, "command.satelliteId", 32)
        _uint(self.chain_id, "domain.chainId", 2**256 - 1)
        if self.chain_id == 0:
            raise MalformedRequestError("domain.chainId: must not be 0")


@dataclass(frozen=True)
class SignatureEntry:
    """One operator's signature: the claimed signer and 65 bytes ``r || s || v``."""

    signer: bytes
    """20-byte address the signature claims to be from (must be what it recovers to)."""
    signature: bytes
    """65 bytes ``r || s || v``, v = 27 or 28 (the EIP-712 wire form)."""

    def __post_init__(self) -> None:
        _bytes_of(self.signer, "signer", 20)
        _bytes_of(self.signature, "signature", 65)


@dataclass(frozen=True)
class Envelope:
    """A command, its payload (a JSON object) and the operators' signatures: the file
    that travels from operator to operator and up to the satellite."""

    command: Command
    payload: Mapping[str, Any]
    signatures: tuple[SignatureEntry, ...] = ()


@dataclass(frozen=True)
class VerifiedCommand:
    """A command :meth:`CommandVerifier.verify` found acceptable (nonce not yet consumed)."""

    command: Command
    kind: CommandKind
    """``command.kind`` as a kind this satellite supports: what to dispatch on."""
    payload: Mapping[str, Any]
    """A private copy of the payload, re-read from the canonical bytes that were hashed."""
    signers: tuple[bytes, ...]
    """Distinct operator addresses that signed, sorted."""
    digest: bytes
    """The EIP-712 digest the operators signed."""


# --------------------------------------------------------------------------- encoding


def satellite_id(name: str) -> bytes:
    """``keccak256(UTF-8 name)``: the ``satelliteId`` of the satellite called ``name``."""
    if not isinstance(name, str) or not name:
        raise MalformedRequestError(f"satellite name: expected a non-empty string, got {name!r}")
    return keccak(name.encode("utf-8"))


def _check_json_value(value: Any, where: str, depth: int = 0) -> None:
    if depth > MAX_PAYLOAD_DEPTH:
        raise MalformedRequestError(f"{where}: nested deeper than {MAX_PAYLOAD_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise MalformedRequestError(f"{where}: object key {key!r} is not a string")
            _check_json_value(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_value(item, f"{where}[{index}]", depth + 1)
    elif isinstance(value, float):
        raise MalformedRequestError(
            f"{where}: non-integer number {value!r}; write quantities as integers or 0x-hex")
    elif not (value is None or isinstance(value, str | int)):  # bool is an int
        raise MalformedRequestError(f"{where}: {type(value).__name__} is not a JSON value")


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """The bytes ``payloadHash`` commits to: JSON with keys sorted, no whitespace, non-ASCII
    escaped as ``\\uXXXX``; only objects, arrays, strings, integers, booleans and null
    (a float has several spellings, so none is allowed)."""
    if not isinstance(payload, dict):
        raise MalformedRequestError(
            f"payload: expected a JSON object, got {type(payload).__name__}")
    _check_json_value(payload, "payload")
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def payload_hash(payload: Mapping[str, Any]) -> bytes:
    """``keccak256(canonical_json(payload))``."""
    return keccak(canonical_json(payload))


def command_typed_data(command: Command) -> dict[str, Any]:
    """The full EIP-712 typed-data document ``{types, primaryType, domain, message}`` of
    ``command`` (EIP-712, "Specification of the eth_signTypedData JSON RPC"), with hex
    strings for bytes32 values as a wallet would display it."""
    return {
        "types": {name: [dict(f) for f in fields] for name, fields in EIP712_TYPES.items()},
        "primaryType": "Command",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION,
                   "chainId": command.chain_id},
        "message": {
            "kind": command.kind,
            "payloadHash": "0x" + command.payload_hash.hex(),
            "nonce": command.nonce,
            "notBefore": command.not_before,
            "expiry": command.expiry,
            "satelliteId": "0x" + command.satellite_id.hex(),
        },
    }


def command_digest(command: Command) -> bytes:
    """``keccak256(0x19 0x01 || domainSeparator || hashStruct(command))`` (EIP-712,
    "Definition of domainSeparator", "Definition of hashStruct")."""
    return typed_data_digest(command_typed_data(command))


def build_command(kind: CommandKind | str, payload: Mapping[str, Any], nonce: int,
                  not_before: int, expiry: int, satellite_id: bytes,
                  chain_id: int) -> Command:
    """A new :class:`Command` for ``payload`` (checked against ``kind``); its
    ``payloadHash`` is :func:`payload_hash` of ``payload``."""
    try:
        known = CommandKind(kind)
    except ValueError:
        raise MalformedRequestError(
            f"command.kind: unknown kind {kind!r}; known: "
            f"{', '.join(k.value for k in CommandKind)}") from None
    command = Command(known.value, payload_hash(payload), nonce, not_before, expiry,
                      satellite_id, chain_id)
    if expiry <= not_before:
        raise MalformedRequestError(
            f"command.expiry: {expiry} is not after command.notBefore {not_before}")
    _PAYLOAD_CHECKS[known](payload, chain_id)
    return command


def _recover_entry(digest: bytes, entry: SignatureEntry, index: int) -> bytes:
    """The address ``entry`` recovers to over ``digest``, which must be its claimed signer
    (:func:`wallet.keys.signer.recover_claimed_signer`)."""
    return recover_claimed_signer(
        digest, entry.signer, entry.signature, subject="command", error=CommandRejectedError,
        where=(f"command rejected (signatures): signature {index} (claimed signer "
               f"{to_checksum_address(entry.signer)})"))


def _check_payload_hash(envelope: Envelope) -> None:
    computed = payload_hash(envelope.payload)
    if computed != envelope.command.payload_hash:
        raise CommandRejectedError(
            f"command rejected (payload): payloadHash 0x{envelope.command.payload_hash.hex()} "
            f"!= keccak256(canonical payload) 0x{computed.hex()}")


def sign_command(command: Command, signer: Signer) -> SignatureEntry:
    """``signer``'s signature of the command's EIP-712 digest, checked to recover to it."""
    digest = command_digest(command)
    signature = signer.sign_digest(digest)
    entry = SignatureEntry(bytes(signer.address), signature.to_bytes())
    _recover_entry(digest, entry, 0)  # the Signer promises this; a command is worth a check
    return entry


def add_signature(envelope: Envelope, signer: Signer) -> Envelope:
    """``envelope`` with ``signer``'s signature appended: how operators co-sign one file in
    turn. Refuses a file whose payload does not match its hash or whose existing signatures
    do not recover to their claimed signers, and a second signature by the same key."""
    _check_payload_hash(envelope)
    digest = command_digest(envelope.command)
    for index, entry in enumerate(envelope.signatures):
        _recover_entry(digest, entry, index)
        if entry.signer == bytes(signer.address):
            raise MalformedRequestError(
                f"signatures: {to_checksum_address(entry.signer)} has already signed this "
                "envelope")
    if len(envelope.signatures) >= MAX_SIGNATURES:
        raise MalformedRequestError(f"signatures: already {MAX_SIGNATURES}, the most allowed")
    entry = sign_command(envelope.command, signer)
    return Envelope(envelope.command, envelope.payload, (*envelope.signatures, entry))


# --------------------------------------------------------------------------- file format


def envelope_to_json(envelope: Envelope) -> str:
    """The envelope file (see :func:`envelope_from_json`), indented, newline-terminated."""
    command = envelope.command
    document = {
        "version": ENVELOPE_VERSION,
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION,
                   "chainId": command.chain_id},
        "command": command_typed_data(command)["message"],
        "payload": envelope.payload,
        "signatures": [
            {"signer": to_checksum_address(entry.signer),
             "signature": "0x" + entry.signature.hex()}
            for entry in envelope.signatures
        ],
    }
    canonical_json(envelope.payload)  # refuse to write a payload that cannot be hashed
    return json.dumps(document, indent=2, ensure_ascii=True) + "\n"


def envelope_from_json(data: str | bytes) -> Envelope:
    """Read an envelope file, strictly::

        {"version": 1,
         "domain": {"name": "orbital-command", "version": "1", "chainId": <int>},
         "command": {"kind": <str>, "payloadHash": <0x 32 bytes>, "nonce": <int>,
                     "notBefore": <int>, "expiry": <int>, "satelliteId": <0x 32 bytes>},
         "payload": {...},
         "signatures": [{"signer": <0x address>, "signature": <0x 65 bytes>}, ...]}

    Missing or unknown fields, duplicate keys, non-integer numbers, bad hex, wrong lengths,
    a bad address checksum or a foreign domain raise :class:`MalformedRequestError` naming
    the field. Signatures are not checked here (that is :meth:`CommandVerifier.verify`)."""
    document = load_document(data, "envelope", max_bytes=MAX_ENVELOPE_BYTES,
                             max_depth=_MAX_FILE_DEPTH)
    top = expect_object(document, "envelope", ("version", "domain", "command", "payload",
                                         "signatures"))
    if isinstance(top["version"], bool) or top["version"] != ENVELOPE_VERSION:
        raise MalformedRequestError(
            f"version: expected {ENVELOPE_VERSION}, got {top['version']!r:.80}")
    domain = expect_object(top["domain"], "domain", ("name", "version", "chainId"))
    if domain["name"] != DOMAIN_NAME:
        raise MalformedRequestError(
            f"domain.name: expected {DOMAIN_NAME!r}, got {domain['name']!r:.80}")
    if domain["version"] != DOMAIN_VERSION:
        raise MalformedRequestError(
            f"domain.version: expected {DOMAIN_VERSION!r}, got {domain['version']!r:.80}")
    fields = expect_object(top["command"], "command", ("kind", "payloadHash", "nonce", "notBefore",
                                                 "expiry", "satelliteId"))
    if not isinstance(fields["kind"], str):
        raise MalformedRequestError(f"command.kind: expected a string, got {fields['kind']!r}")
    command = Command(
        kind=fields["kind"],
        payload_hash=expect_hex(fields["payloadHash"], "command.payloadHash", 32),
        nonce=_uint(fields["nonce"], "command.nonce", UINT64_MAX),
        not_before=_uint(fields["notBefore"], "command.notBefore", UINT64_MAX),
        expiry=_uint(fields["expiry"], "command.expiry", UINT64_MAX),
        satellite_id=expect_hex(fields["satelliteId"], "command.satelliteId", 32),
        chain_id=_uint(domain["chainId"], "domain.chainId", 2**256 - 1),
    )
    payload = top["payload"]
    canonical_json(payload)  # an object of JSON values, not too deep
    entries = top["signatures"]
    if not isinstance(entries, list):
        raise MalformedRequestError(
            f"signatures: expected an array, got {type(entries).__name__}")
    if len(entries) > MAX_SIGNATURES:
        raise MalformedRequestError(
            f"signatures: {len(entries)} entries, at most {MAX_SIGNATURES} allowed")
    signatures = []
    for index, item in enumerate(entries):
        where = f"signatures[{index}]"
        entry = expect_object(item, where, ("signer", "signature"))
        signatures.append(SignatureEntry(expect_address(entry["signer"], f"{where}.signer"),
                                         expect_hex(entry["signature"], f"{where}.signature", 65)))
    return Envelope(command, payload, tuple(signatures))


# --------------------------------------------------------------------------- satellite side


class NonceStore:
    """The last accepted nonce per satellite, in SQLite (WAL, ``synchronous=FULL``: an
    accepted nonce survives a power cut). :meth:`advance` is a compare-and-set inside a
    ``BEGIN IMMEDIATE`` transaction, so of two concurrent advances to the same nonce --
    threads, or processes sharing the file -- exactly one succeeds. ``":memory:"`` gives a
    store with no history (a ground-side check of a file)."""

    def __init__(self, path: str | PathLike[str]) -> None:
        self._lock = threading.Lock()
        self._conn = open_durable(path)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS command_nonce ("
            " satellite_id BLOB PRIMARY KEY CHECK (length(satellite_id) = 32),"
            " nonce TEXT NOT NULL,"  # decimal: a uint64 does not fit SQLite's int64
            " digest BLOB NOT NULL,"
            " accepted_at INTEGER NOT NULL)")

    def last_nonce(self, satellite_id: bytes) -> int | None:
        """The last nonce accepted for ``satellite_id``, or None if none was."""
        with self._lock:
            row = self._conn.execute("SELECT nonce FROM command_nonce WHERE satellite_id = ?",
                                     (satellite_id,)).fetchone()
        return None if row is None else int(row[0])

    def advance(self, satellite_id: bytes, nonce: int, digest: bytes, now: int) -> None:
        """Record ``nonce`` as accepted if it is greater than the last one, atomically;
        otherwise raise :class:`CommandRejectedError` and record nothing."""
        with write_transaction(self._conn, self._lock):  # take the write lock before reading
            row = self._conn.execute(
                "SELECT nonce, digest FROM command_nonce WHERE satellite_id = ?",
                (satellite_id,)).fetchone()
            if row is not None and nonce <= int(row[0]):
                again = nonce == int(row[0]) and bytes(row[1]) == digest
                raise CommandRejectedError(
                    f"command rejected (nonce): nonce {nonce} is not greater than the last "
                    f"accepted nonce {row[0]} for satellite 0x{satellite_id.hex()}"
                    + (" (this command was already accepted: replay)" if again else ""))
            self._conn.execute(
                "INSERT INTO command_nonce (satellite_id, nonce, digest, accepted_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (satellite_id) DO UPDATE SET"
                " nonce = excluded.nonce, digest = excluded.digest,"
                " accepted_at = excluded.accepted_at",
                (satellite_id, str(nonce), digest, now))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> NonceStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class CommandVerifier:
    """The satellite's check of operator command envelopes.

    ``operators`` are the known operator addresses (20 bytes each), ``threshold`` the number
    m of distinct operators that must sign, ``satellite_id`` and ``chain_id`` this
    satellite's own, ``max_lifetime`` the longest ``expiry - notBefore`` accepted (seconds).

    Use: ``verified = verifier.verify(envelope, now)``; write it to the audit log;
    ``verifier.accept(verified, now)`` consumes the nonce (durably, atomically); only then
    act. Acting after :meth:`accept` makes commands at-most-once: a crash between the two
    loses the command (re-issue it with a new nonce), never runs it twice."""

    def __init__(self, operators: Iterable[bytes], threshold: int, satellite_id: bytes,
                 chain_id: int, nonce_store: NonceStore,
                 max_lifetime: int = DEFAULT_MAX_LIFETIME) -> None:
        self.operators = frozenset(bytes(a) for a in operators)
        for address in self.operators:
            _bytes_of(address, "operators", 20)
        if isinstance(threshold, bool) or not isinstance(threshold, int) \
                or not 1 <= threshold <= len(self.operators):
            raise MalformedRequestError(
                f"threshold: expected 1..{len(self.operators)} (the number of operators), "
                f"got {threshold!r}")
        if isinstance(max_lifetime, bool) or not isinstance(max_lifetime, int) \
                or max_lifetime <= 0:
            raise MalformedRequestError(
                f"max_lifetime: expected a positive number of seconds, got {max_lifetime!r}")
        self.threshold = threshold
        self.satellite_id = _bytes_of(satellite_id, "satellite_id", 32)
        self.chain_id = chain_id
        self.nonce_store = nonce_store
        self.max_lifetime = max_lifetime

    def verify(self, envelope: Envelope, now: int) -> VerifiedCommand:
        """Check ``envelope`` at unix time ``now``, in order: format, payload hash, domain
        and satellite, every signature (valid, low-s, from a known operator), threshold,
        kind and payload, time window and lifetime, nonce. Raise
        :class:`CommandRejectedError` naming the first check that fails."""
        if not isinstance(envelope, Envelope):
            raise MalformedRequestError(f"envelope: expected an Envelope, got {envelope!r:.80}")
        command = envelope.command
        _check_payload_hash(envelope)
        if command.chain_id != self.chain_id:
            raise CommandRejectedError(
                f"command rejected (domain): chainId {command.chain_id} is not this "
                f"satellite's chain {self.chain_id}")
        if command.satellite_id != self.satellite_id:
            raise CommandRejectedError(
                f"command rejected (satellite): satelliteId 0x{command.satellite_id.hex()} "
                f"is not this satellite's 0x{self.satellite_id.hex()}")

        digest = command_digest(command)
        signers: set[bytes] = set()
        for index, entry in enumerate(envelope.signatures):
            address = _recover_entry(digest, entry, index)
            if address not in self.operators:
                raise CommandRejectedError(
                    f"command rejected (signatures): signature {index} is by "
                    f"{to_checksum_address(address)}, not a known operator")
            signers.add(address)
        if len(signers) < self.threshold:
            names = ", ".join(to_checksum_address(a) for a in sorted(signers)) or "none"
            raise CommandRejectedError(
                f"command rejected (threshold): {len(signers)} distinct operator signature(s) "
                f"({names}), {self.threshold} required")

        try:
            kind = CommandKind(command.kind)
        except ValueError:
            raise CommandRejectedError(
                f"command rejected (kind): {command.kind!r} is not a kind this satellite "
                f"supports ({', '.join(k.value for k in CommandKind)})") from None
        _PAYLOAD_CHECKS[kind](envelope.payload, command.chain_id)

        lifetime = command.expiry - command.not_before
        if lifetime > self.max_lifetime:
            raise CommandRejectedError(
                f"command rejected (window): lifetime {lifetime} s (notBefore "
                f"{command.not_before} to expiry {command.expiry}) exceeds the maximum "
                f"{self.max_lifetime} s")
        self._check_window(command, now)

        last = self.nonce_store.last_nonce(self.satellite_id)
        if last is not None and command.nonce <= last:
            raise CommandRejectedError(
                f"command rejected (nonce): nonce {command.nonce} is not greater than the last "
                f"accepted nonce {last} for satellite 0x{self.satellite_id.hex()}")
        payload = json.loads(canonical_json(envelope.payload))  # the caller's copy may change
        return VerifiedCommand(command, kind, payload, tuple(sorted(signers)), digest)

    @staticmethod
    def _check_window(command: Command, now: int) -> None:
        if now < command.not_before:
            raise CommandRejectedError(
                f"command rejected (window): not valid before {command.not_before}, now {now}")
        if now >= command.expiry:
            raise CommandRejectedError(
                f"command rejected (window): expired at {command.expiry}, now {now}")

    def accept(self, verified: VerifiedCommand, now: int) -> None:
        """Consume the command's nonce: re-check that it is still in its window and, in one
        SQLite transaction, that its nonce is greater than the last accepted one. Of two
        accepts of the same nonce (threads or processes) exactly one succeeds; a replay of
        an accepted envelope fails here and in :meth:`verify`."""
        command = verified.command
        if command.satellite_id != self.satellite_id or command.chain_id != self.chain_id:
            raise CommandRejectedError(
                "command rejected (satellite): verified for another satellite or chain")
        self._check_window(command, now)
        self.nonce_store.advance(self.satellite_id, command.nonce, verified.digest, now)
