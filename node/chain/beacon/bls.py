"""BLS12-381 signatures as the sync committee uses them, on py-arkworks-bls12381.

The scheme is the IETF BLS signature draft's proof-of-possession ciphersuite
``BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`` (consensus-specs ``phase0/beacon-chain.md``,
"BLS signatures"): public keys are compressed G1 points (48 bytes), signatures compressed G2
points (96 bytes), messages hashed to G2 with :data:`DST`.

* :func:`fast_aggregate_verify` -- ``FastAggregateVerify(PKs, message, signature)`` of the
  draft (section 3.3.4): one pairing check ``e(sum PK, H(m)) == e(G1, signature)``.
* :class:`CommitteeKeys` -- a sync committee's 512 (mainnet) or 32 (minimal) keys decoded once
  and kept per committee root (decoding and subgroup-checking a key costs far more than
  adding it). The participants' aggregate key is built from whichever side is smaller:
  the sum of the participants, or the committee's ``aggregate_pubkey`` (authenticated together
  with the keys by the committee's Merkle branch) minus the absent members.

Keys are refused when they do not decode to a point of the G1 subgroup or are the point at
infinity (``KeyValidate``, section 2.5); signatures when they do not decode to a point of the
G2 subgroup. Either raises :class:`BlsError` (malformed input), never returns False.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from py_arkworks_bls12381 import GT, G1Point, G2Point

from node.chain.errors import MalformedInputError

DST = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
PUBKEY_BYTES = 48
SIGNATURE_BYTES = 96

_G1 = G1Point()  # the generator
_NEG_G1 = -_G1
_G1_IDENTITY = G1Point.identity()


class BlsError(MalformedInputError):
    """A BLS public key or signature that is not a valid encoding of a usable point."""


def _size(data: object) -> str:
    return str(len(data)) if isinstance(data, bytes | bytearray) else type(data).__name__


def decode_pubkey(data: bytes) -> G1Point:
    """``KeyValidate``: a compressed G1 point in the subgroup, not the identity."""
    if not isinstance(data, bytes | bytearray) or len(data) != PUBKEY_BYTES:
        raise BlsError(f"a BLS public key is {PUBKEY_BYTES} bytes, got {_size(data)}")
    try:
        point = G1Point.from_compressed_bytes(bytes(data))
    except ValueError as exc:
        raise BlsError(f"BLS public key 0x{bytes(data).hex()[:16]}… is not a G1 point "
                       f"({exc})") from None
    if point == _G1_IDENTITY:
        raise BlsError("BLS public key is the point at infinity")
    return point


def decode_signature(data: bytes) -> G2Point:
    """A compressed G2 point in the subgroup (the identity is a valid encoding; it never
    verifies against a non-identity key sum)."""
    if not isinstance(data, bytes | bytearray) or len(data) != SIGNATURE_BYTES:
        raise BlsError(f"a BLS signature is {SIGNATURE_BYTES} bytes, got {_size(data)}")
    try:
        return G2Point.from_compressed_bytes(bytes(data))
    except ValueError as exc:
        raise BlsError(f"BLS signature 0x{bytes(data).hex()[:16]}… is not a G2 point "
                       f"({exc})") from None


def verify_aggregate(aggregate: G1Point, message: bytes, signature: bytes | G2Point) -> bool:
    """``e(aggregate, H(message)) == e(G1, signature)`` -- the core of FastAggregateVerify,
    for an aggregate key already summed."""
    sig = signature if isinstance(signature, G2Point) else decode_signature(signature)
    if aggregate == _G1_IDENTITY:
        return False
    hashed = G2Point.hash_to_curve(bytes(message), DST)
    return GT.pairing_check([aggregate, _NEG_G1], [hashed, sig])


def fast_aggregate_verify(pubkeys: Sequence[bytes | G1Point], message: bytes,
                          signature: bytes) -> bool:
    """``FastAggregateVerify`` (IETF BLS draft 04, section 3.3.4): every key signed
    ``message``; False for an empty key list."""
    if not pubkeys:
        return False
    total = _G1_IDENTITY
    for key in pubkeys:
        total = total + (key if isinstance(key, G1Point) else decode_pubkey(key))
    return verify_aggregate(total, message, signature)


class CommitteeKeys:
    """A sync committee's keys, decoded once (see the module docstring)."""

    def __init__(self, pubkeys: Sequence[bytes], aggregate_pubkey: bytes) -> None:
        self.points: tuple[G1Point, ...] = tuple(decode_pubkey(k) for k in pubkeys)
        self.aggregate: G1Point = decode_pubkey(aggregate_pubkey)

    def __len__(self) -> int:
        return len(self.points)

    def participants_key(self, bits: Sequence[bool]) -> G1Point:
        """The sum of the keys whose bit is set: the participants added up, or (when more
        than half take part, the usual case) the committee aggregate minus the absent."""
        if len(bits) != len(self.points):
            raise BlsError(f"{len(bits)} participation bits for a committee of "
                           f"{len(self.points)}")
        present = sum(1 for b in bits if b)
        if present * 2 > len(bits):
            total = self.aggregate
            for point, bit in zip(self.points, bits, strict=True):
                if not bit:
                    total = total - point
            return total
        total = _G1_IDENTITY
        for point, bit in zip(self.points, bits, strict=True):
            if bit:
                total = total + point
        return total


class CommitteeCache:
    """The last ``size`` decoded committees by their SSZ root (a light client needs the
    current and the next; a few more cover re-verification after a restart)."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._cache: OrderedDict[bytes, CommitteeKeys] = OrderedDict()
        self.decoded = 0
        """How many committees were decoded (cache misses)."""

    def get(self, root: bytes, pubkeys: Sequence[bytes], aggregate_pubkey: bytes) -> CommitteeKeys:
        keys = self._cache.get(root)
        if keys is None:
            keys = CommitteeKeys(pubkeys, aggregate_pubkey)
            self.decoded += 1
            self._cache[root] = keys
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(root)
        return keys
