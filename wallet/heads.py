"""Chain heads signed m-of-n by operators: the ``ground`` head-trust mode's EIP-712 ``Head``.

After the Merge a header carries no seal (EIP-3675), so a satellite cannot tell the chain's
head from a well-built fake; in ``ground`` mode it trusts a block because enough of its
operators, each reading the chain from a node they run, signed it. A head is a typed
structured message (EIP-712, "Definition of typed structured data 𝕊")::

    Head(uint256 chainId, uint64 number, bytes32 hash, uint64 timestamp)

-- the block's number, its hash ``keccak256(rlp(header))`` and its timestamp, all read from
a header whose hash the operator's CLI recomputed -- in the domain
``EIP712Domain(string name, string version, uint256 chainId)`` with ``name =
"orbital-head"``, ``version = "1"`` and ``chainId`` the head's chain. Each operator signs
``keccak256(0x19 0x01 || domainSeparator || hashStruct(head))`` (EIP-712, "Specification";
the digest is :func:`wallet.messages.typed_data_digest`, never re-implemented here). The
domain fields follow the operator command envelopes' (:mod:`wallet.commands`): the same
three fields, a name of its own.

Domain separation, i.e. what a head signature cannot be used for:

* *Commands, attestations, transactions, personal messages.* The domain name
  ``orbital-head`` differs from ``orbital-command`` and from the attestation domain
  (:mod:`contracts.eip712`), and the ``0x19 0x01`` prefix from RLP transactions and EIP-191
  personal messages: signing a head never also signs anything else.
* *Other chains.* ``chainId`` is in the domain (EIP-712, "Definition of domainSeparator"),
  and in the struct too, so that a wallet displaying the message shows the chain beside the
  block. The two are the same number; a file where they differ is malformed.
* *Satellites: deliberately none.* A head is a fact about the chain, true for every
  satellite: the domain binds no satellite and no constellation, and any satellite that
  counts these operators may accept it (one head file can be uplinked to the whole
  constellation). What a satellite counts is its own operator set: a signature by anyone
  else is ignored. ``verifyingContract`` and ``salt`` are omitted (no contract; EIP-712
  lets a protocol use only the domain fields that make sense for it).

Replay: re-sending an old head is re-sending a genuine head. What it could do -- hold a
satellite on an old block -- is bounded by freshness: :func:`verify_signed_head` refuses a
head whose timestamp is more than ``max_age`` seconds old, or more than ``max_skew``
seconds ahead of the satellite's clock (15 s by default, go-ethereum's allowance for future
blocks). A head older than the one a satellite already holds adds nothing: a head-trust
strategy should keep the newest it accepted.

A satellite accepts a head (:func:`check_signed_head`) only if the file is well formed,
its chain is the satellite's, every signature is low-s (EIP-2), has ``v`` 27/28 and
recovers to the signer it claims (any other signature refuses the whole file: it was
changed after signing, or forged), at least ``threshold`` distinct operators signed (a
repeated operator counts once, a valid signature by a non-operator is ignored), and the
head is fresh. A refusal is a :class:`HeadRejectedError` naming the check and its values;
a file that cannot be read is a :class:`~wallet.errors.MalformedRequestError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from wallet.errors import MalformedRequestError, WalletError
from wallet.keys.signer import Signer, recover_claimed_signer
from wallet.messages import typed_data_digest
from wallet.strictjson import expect_address, expect_hex, expect_object, load_document

DOMAIN_NAME = "orbital-head"
"""EIP-712 domain ``name`` of signed heads (distinct from commands and attestations)."""
DOMAIN_VERSION = "1"
"""EIP-712 domain ``version``; bump it when the ``Head`` struct changes meaning."""
FILE_VERSION = 1
"""Version of the signed-head file format (the JSON around the signed struct)."""

EIP712_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
    ],
    "Head": [
        {"name": "chainId", "type": "uint256"},
        {"name": "number", "type": "uint64"},
        {"name": "hash", "type": "bytes32"},
        {"name": "timestamp", "type": "uint64"},
    ],
}
"""The EIP-712 types (EIP-712, "Definition of encodeType"): the domain and the struct."""

DEFAULT_MAX_AGE = 3600
"""Oldest head (seconds since its block's timestamp) the CLI accepts unless told otherwise."""
DEFAULT_MAX_SKEW = 15
"""How far (seconds) a head's timestamp may be ahead of the verifier's clock (go-ethereum's
``allowedFutureBlockTime``)."""
MAX_FILE_BYTES = 64 * 1024
"""Largest signed-head file read (64 signatures are about 10 kB)."""
MAX_SIGNATURES = 64
"""Most signature entries a file may carry."""
_MAX_FILE_DEPTH = 3
"""Deepest nesting of a signed-head file (``signatures[i]`` is an object in an array in
the top object), checked before parsing so that a hostile file cannot exhaust the parser."""

UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1


class HeadRejectedError(WalletError):
    """A signed head was refused: a signature, the threshold, its chain or its freshness.
    The CLI exits 1, like any verification that failed."""

    exit_code = 1


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
class Head:
    """The signed struct: a block of chain ``chain_id`` (EIP-712 ``Head``). Values are
    checked for type and range only; whether anyone vouches for it is for
    :func:`check_signed_head`."""

    chain_id: int
    """uint256, not 0: the chain (EIP-155 chain id), also the domain's ``chainId``."""
    number: int
    """uint64: the block number."""
    hash: bytes
    """32 bytes: the block hash, keccak256(rlp(header)) (Yellow Paper §4.3)."""
    timestamp: int
    """uint64 unix seconds: the block's timestamp (what freshness is measured from)."""

    def __post_init__(self) -> None:
        _uint(self.chain_id, "head.chainId", UINT256_MAX)
        if self.chain_id == 0:
            raise MalformedRequestError("head.chainId: must not be 0")
        _uint(self.number, "head.number", UINT64_MAX)
        _bytes_of(self.hash, "head.hash", 32)
        _uint(self.timestamp, "head.timestamp", UINT64_MAX)

    def describe(self) -> str:
        """One line for people: ``block 17 0xab.. of chain 31337, timestamp 1750000000``."""
        return (f"block {self.number} 0x{self.hash.hex()} of chain {self.chain_id}, "
                f"timestamp {self.timestamp}")


@dataclass(frozen=True)
class HeadSignature:
    """One operator's signature: the claimed signer and 65 bytes ``r || s || v``."""

    signer: bytes
    """20-byte address the signature claims to be from (must be what it recovers to)."""
    signature: bytes
    """65 bytes ``r || s || v``, v = 27 or 28 (the EIP-712 wire form), s low (EIP-2)."""

    def __post_init__(self) -> None:
        _bytes_of(self.signer, "signer", 20)
        _bytes_of(self.signature, "signature", 65)


@dataclass(frozen=True)
class SignedHead:
    """A head and the operators' signatures: the file that goes from operator to operator
    and up to the satellites."""

    head: Head
    signatures: tuple[HeadSignature, ...] = ()


@dataclass(frozen=True)
class VerifiedHead:
    """A head :func:`check_signed_head` accepted, and who vouched for it."""

    head: Head
    signers: tuple[bytes, ...]
    """Distinct operator addresses whose signatures counted, sorted."""
    operators: int
    """How many operators the verifier knew (the n of m-of-n)."""
    digest: bytes
    """The EIP-712 digest the operators signed."""


# --------------------------------------------------------------------------- encoding


def head_typed_data(head: Head) -> dict[str, Any]:
    """The full EIP-712 typed-data document ``{types, primaryType, domain, message}`` of
    ``head`` (EIP-712, "Specification of the eth_signTypedData JSON RPC"), bytes32 as hex."""
    return {
        "types": {name: [dict(f) for f in fields] for name, fields in EIP712_TYPES.items()},
        "primaryType": "Head",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": head.chain_id},
        "message": {"chainId": head.chain_id, "number": head.number,
                    "hash": "0x" + head.hash.hex(), "timestamp": head.timestamp},
    }


def head_digest(head: Head) -> bytes:
    """``keccak256(0x19 0x01 || domainSeparator || hashStruct(head))`` (EIP-712,
    "Definition of domainSeparator", "Definition of hashStruct")."""
    return typed_data_digest(head_typed_data(head))


def _recover(digest: bytes, entry: HeadSignature, index: int) -> bytes:
    """The address ``entry`` recovers to over ``digest``, which must be its claimed signer
    (:func:`wallet.keys.signer.recover_claimed_signer`)."""
    return recover_claimed_signer(
        digest, entry.signer, entry.signature, subject="head", error=HeadRejectedError,
        where=(f"head rejected (signatures): signature {index} (claimed signer "
               f"{to_checksum_address(entry.signer)})"))


def _signature(head: Head, signer: Signer) -> HeadSignature:
    digest = head_digest(head)
    entry = HeadSignature(bytes(signer.address), signer.sign_digest(digest).to_bytes())
    _recover(digest, entry, 0)  # the Signer promises this; a trust anchor is worth a check
    return entry


def sign_head(head: Head, signer: Signer) -> SignedHead:
    """A new signed head carrying ``signer``'s signature of ``head``'s EIP-712 digest
    (checked to be low-s and to recover to ``signer.address``)."""
    return SignedHead(head, (_signature(head, signer),))


def sign_head_by(head: Head, signers: Sequence[Signer]) -> SignedHead:
    """``head`` signed by each of ``signers`` in turn (:func:`sign_head` by the first,
    :func:`add_signature` by the others): what operators who sign together produce."""
    if not signers:
        raise ValueError("sign_head_by: no signers")
    signed = sign_head(head, signers[0])
    for signer in signers[1:]:
        signed = add_signature(signed, signer)
    return signed


def add_signature(signed: SignedHead, signer: Signer) -> SignedHead:
    """``signed`` with ``signer``'s signature appended: how operators co-sign one file in
    turn. Refuses a file whose existing signatures do not recover to their claimed signers
    (:class:`HeadRejectedError`) and a second signature by the same key."""
    digest = head_digest(signed.head)
    for index, entry in enumerate(signed.signatures):
        _recover(digest, entry, index)
        if entry.signer == bytes(signer.address):
            raise MalformedRequestError(
                f"signatures: {to_checksum_address(entry.signer)} has already signed this "
                "head")
    if len(signed.signatures) >= MAX_SIGNATURES:
        raise MalformedRequestError(f"signatures: already {MAX_SIGNATURES}, the most allowed")
    return SignedHead(signed.head, (*signed.signatures, _signature(signed.head, signer)))


# --------------------------------------------------------------------------- verification


def _operator_set(operators: Iterable[bytes], threshold: int) -> frozenset[bytes]:
    known = frozenset(bytes(a) for a in operators)
    for address in known:
        _bytes_of(address, "operators", 20)
    if isinstance(threshold, bool) or not isinstance(threshold, int) \
            or not 1 <= threshold <= len(known):
        raise MalformedRequestError(
            f"threshold: expected 1..{len(known)} (the number of operators), got {threshold!r}")
    return known


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 <= value < 2**64:  # NaN and the infinities fail too
        raise MalformedRequestError(f"{name}: expected finite seconds >= 0, got {value!r}")
    return value


def check_signed_head(signed: SignedHead, operators: Iterable[bytes], threshold: int,
                      chain_id: int, *, now: float, max_age: float,
                      max_skew: float = DEFAULT_MAX_SKEW) -> VerifiedHead:
    """Check ``signed`` as a satellite of chain ``chain_id`` counting ``operators`` (20-byte
    addresses), ``threshold`` of whom must sign, at unix time ``now``, in order: chain,
    every signature (low-s, v 27/28, recovers to its claimed signer), threshold of
    distinct operators, not older than ``max_age`` seconds, not ahead of ``now`` by more
    than ``max_skew``. Raise :class:`HeadRejectedError` naming the first check that fails."""
    if not isinstance(signed, SignedHead):
        raise MalformedRequestError(f"signed head: expected a SignedHead, got {signed!r:.80}")
    known = _operator_set(operators, threshold)
    now = _seconds(now, "now")
    max_age = _seconds(max_age, "max_age")
    max_skew = _seconds(max_skew, "max_skew")
    head = signed.head
    if head.chain_id != chain_id:
        raise HeadRejectedError(
            f"head rejected (chainId): the head is of chain {head.chain_id}, this satellite's "
            f"chain is {chain_id}")

    digest = head_digest(head)
    signers: set[bytes] = set()
    for index, entry in enumerate(signed.signatures):
        address = _recover(digest, entry, index)
        if address in known:
            signers.add(address)
    if len(signers) < threshold:
        names = ",".join(to_checksum_address(a) for a in sorted(signers)) or "none"
        others = len({e.signer for e in signed.signatures} - known)
        raise HeadRejectedError(
            f"head rejected (threshold): {len(signers)} distinct operator signature(s) "
            f"({names}), {threshold} of {len(known)} required"
            + (f"; {others} signer(s) not among the operators ignored" if others else ""))

    age = now - head.timestamp
    if age > max_age:
        raise HeadRejectedError(
            f"head rejected (stale): block {head.number} has timestamp {head.timestamp}, "
            f"{age:.0f} s before now ({now:.0f}); at most {max_age:.0f} s old is accepted")
    if -age > max_skew:
        raise HeadRejectedError(
            f"head rejected (future): block {head.number} has timestamp {head.timestamp}, "
            f"{-age:.0f} s after now ({now:.0f}); at most {max_skew:.0f} s ahead is accepted "
            "(check the clocks)")
    return VerifiedHead(head, tuple(sorted(signers)), len(known), digest)


def verify_signed_head(signed: SignedHead, operators: Iterable[bytes], threshold: int,
                       chain_id: int, *, now: float, max_age: float,
                       max_skew: float = DEFAULT_MAX_SKEW) -> Head:
    """The head of ``signed`` if :func:`check_signed_head` accepts it."""
    return check_signed_head(signed, operators, threshold, chain_id, now=now,
                             max_age=max_age, max_skew=max_skew).head


# --------------------------------------------------------------------------- file format


def signed_head_to_json(signed: SignedHead) -> str:
    """The signed-head file (see :func:`signed_head_from_json`), indented, newline-ended."""
    typed = head_typed_data(signed.head)
    document = {
        "version": FILE_VERSION,
        "domain": typed["domain"],
        "head": typed["message"],
        "signatures": [{"signer": to_checksum_address(entry.signer),
                        "signature": "0x" + entry.signature.hex()}
                       for entry in signed.signatures],
    }
    return json.dumps(document, indent=2) + "\n"


def signed_head_from_json(data: str | bytes) -> SignedHead:
    """Read a signed-head file, strictly::

        {"version": 1,
         "domain": {"name": "orbital-head", "version": "1", "chainId": <int>},
         "head": {"chainId": <int>, "number": <int>, "hash": <0x 32 bytes>,
                  "timestamp": <int>},
         "signatures": [{"signer": <0x address>, "signature": <0x 65 bytes r||s||v>}, ...]}

    Missing or unknown fields, duplicate keys, non-integer numbers, bad hex, wrong lengths,
    a bad address checksum, a foreign domain or a domain chainId other than the head's
    raise :class:`MalformedRequestError` naming the field. Signatures are not checked here
    (that is :func:`check_signed_head`)."""
    document = load_document(data, "signed head", max_bytes=MAX_FILE_BYTES,
                             max_depth=_MAX_FILE_DEPTH)
    top = expect_object(document, "signed head", ("version", "domain", "head", "signatures"))
    if isinstance(top["version"], bool) or top["version"] != FILE_VERSION:
        raise MalformedRequestError(
            f"version: expected {FILE_VERSION}, got {top['version']!r:.80}")
    domain = expect_object(top["domain"], "domain", ("name", "version", "chainId"))
    if domain["name"] != DOMAIN_NAME:
        raise MalformedRequestError(
            f"domain.name: expected {DOMAIN_NAME!r}, got {domain['name']!r:.80}")
    if domain["version"] != DOMAIN_VERSION:
        raise MalformedRequestError(
            f"domain.version: expected {DOMAIN_VERSION!r}, got {domain['version']!r:.80}")
    fields = expect_object(top["head"], "head", ("chainId", "number", "hash", "timestamp"))
    head = Head(chain_id=_uint(fields["chainId"], "head.chainId", UINT256_MAX),
                number=_uint(fields["number"], "head.number", UINT64_MAX),
                hash=expect_hex(fields["hash"], "head.hash", 32),
                timestamp=_uint(fields["timestamp"], "head.timestamp", UINT64_MAX))
    if _uint(domain["chainId"], "domain.chainId", UINT256_MAX) != head.chain_id:
        raise MalformedRequestError(
            f"domain.chainId: {domain['chainId']} differs from head.chainId {head.chain_id}")
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
        signatures.append(HeadSignature(expect_address(entry["signer"], f"{where}.signer"),
                                        expect_hex(entry["signature"], f"{where}.signature", 65)))
    return SignedHead(head, tuple(signatures))
