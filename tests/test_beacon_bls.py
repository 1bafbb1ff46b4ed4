"""node/chain/beacon/bls.py: BLS FastAggregateVerify on py-arkworks-bls12381, checked against
py_ecc (the ciphersuite's Python reference implementation) on keys and signatures made here."""

from __future__ import annotations

import contextlib
import functools
import random

import pytest
from py_ecc.bls import G2ProofOfPossession as reference

from node.chain.beacon.bls import (
    BlsError,
    CommitteeCache,
    CommitteeKeys,
    decode_pubkey,
    decode_signature,
    fast_aggregate_verify,
    verify_aggregate,
)

SECRETS = [1000 + 7 * i for i in range(8)]
PUBKEYS = [reference.SkToPk(sk) for sk in SECRETS]
MESSAGE = b"\x5a" * 32


@functools.cache
def sign(sk: int, message: bytes) -> bytes:
    return reference.Sign(sk, message)


def aggregate_signature(secrets: list[int], message: bytes = MESSAGE) -> bytes:
    return reference.Aggregate([sign(sk, message) for sk in secrets])


def test_a_reference_signature_verifies_and_agrees_with_py_ecc() -> None:
    sig = aggregate_signature(SECRETS)
    assert reference.FastAggregateVerify(PUBKEYS, MESSAGE, sig)
    assert fast_aggregate_verify(PUBKEYS, MESSAGE, sig)


@pytest.mark.parametrize("tamper", ["message", "missing key", "extra key", "other signature"])
def test_tampering_fails_like_the_reference(tamper: str) -> None:
    sig, keys, message = aggregate_signature(SECRETS[:5]), PUBKEYS[:5], MESSAGE
    if tamper == "message":
        message = b"\x5b" + MESSAGE[1:]
    elif tamper == "missing key":
        keys = PUBKEYS[:4]
    elif tamper == "extra key":
        keys = PUBKEYS[:6]
    else:
        sig = aggregate_signature(SECRETS[1:6])
    assert not reference.FastAggregateVerify(keys, message, sig)
    assert not fast_aggregate_verify(keys, message, sig)


def test_no_keys_never_verify() -> None:
    assert not fast_aggregate_verify([], MESSAGE, aggregate_signature(SECRETS[:1]))


@pytest.mark.parametrize("data, match", [
    (b"\xc0" + bytes(47), "point at infinity"),
    (b"\x80" + bytes(47), "not a G1 point"),
    (bytes(48), "not a G1 point"),
    (PUBKEYS[0][:47], "48 bytes, got 47"),
    ("0x" + PUBKEYS[0].hex(), "48 bytes, got str"),
])
def test_bad_public_keys_are_refused(data: object, match: str) -> None:
    with pytest.raises(BlsError, match=match):
        decode_pubkey(data)  # type: ignore[arg-type]


@pytest.mark.parametrize("data, match", [
    (b"\x80" + bytes(95), "not a G2 point"),
    (bytes(96), "not a G2 point"),
    (aggregate_signature(SECRETS[:1])[:95], "96 bytes, got 95"),
])
def test_bad_signatures_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(BlsError, match=match):
        decode_signature(data)


def test_flipping_a_signature_bit_breaks_it_loudly_or_quietly() -> None:
    sig = bytearray(aggregate_signature(SECRETS))
    sig[50] ^= 0x04
    with contextlib.suppress(BlsError):  # most flips leave the curve: refused as malformed
        assert not fast_aggregate_verify(PUBKEYS, MESSAGE, bytes(sig))


def test_committee_aggregate_minus_absent_equals_sum_of_present() -> None:
    aggregate = reference._AggregatePKs(PUBKEYS)
    committee = CommitteeKeys(PUBKEYS, aggregate)
    rng = random.Random(7)
    for _ in range(20):
        bits = [rng.random() < 0.7 for _ in PUBKEYS]
        present = [sk for sk, b in zip(SECRETS, bits, strict=True) if b]
        if not present:
            continue
        key = committee.participants_key(bits)
        expected = reference._AggregatePKs([p for p, b in zip(PUBKEYS, bits, strict=True) if b])
        assert key.to_compressed_bytes() == expected
        assert verify_aggregate(key, MESSAGE, aggregate_signature(present))
    with pytest.raises(BlsError, match="3 participation bits for a committee of 8"):
        committee.participants_key([True] * 3)


def test_nobody_participating_never_verifies() -> None:
    committee = CommitteeKeys(PUBKEYS, reference._AggregatePKs(PUBKEYS))
    key = committee.participants_key([False] * len(PUBKEYS))
    assert not verify_aggregate(key, MESSAGE, aggregate_signature(SECRETS[:1]))


def test_committees_are_decoded_once_per_root() -> None:
    cache = CommitteeCache(size=2)
    aggregate = reference._AggregatePKs(PUBKEYS)
    first = cache.get(b"a" * 32, PUBKEYS, aggregate)
    assert cache.get(b"a" * 32, PUBKEYS, aggregate) is first
    cache.get(b"b" * 32, PUBKEYS, aggregate)
    cache.get(b"c" * 32, PUBKEYS, aggregate)  # evicts a
    assert cache.get(b"a" * 32, PUBKEYS, aggregate) is not first
    assert cache.decoded == 4
