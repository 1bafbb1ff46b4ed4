"""The attestation bundle wire format (node.gossip.bundle): round trip, the strict decoder's
refusals (truncated, oversized, wrong types, duplicate entries, bad tag/count), and the
validator's verdicts: a bundle is accepted only if every entry is valid, a bad entry rejects
the bundle and hands the good entries on (salvage), never the bad one; the publisher groups
concurrent attestations and refuses a bad one to its caller alone."""

from __future__ import annotations

import asyncio
import struct

import pytest

from node.attest import DecodeError, decode, message_id
from node.gossip import GossipNode
from node.gossip.bundle import (
    MAX_BYTES,
    MAX_ENTRIES,
    TAG,
    BundleConfig,
    BundleError,
    BundlePublisher,
    GossipValidator,
    attestations_in,
    decode_bundle,
    encode_bundle,
    is_bundle,
)
from node.gossip.validator import Verdict

from gossip_attestations import attestation, forgeries, make_validator

ACCEPT, REJECT, IGNORE = Verdict.ACCEPT, Verdict.REJECT, Verdict.IGNORE


def entries(n: int) -> list[bytes]:
    return [attestation(i % 3, epoch=100 + i) for i in range(n)]


def test_round_trip_and_layout() -> None:
    items = entries(5)
    data = encode_bundle(items)
    assert data[0] == TAG and struct.unpack(">H", data[1:3])[0] == 5
    assert len(data) == 3 + 5 * 250
    assert decode_bundle(data) == items
    assert is_bundle(data) and not is_bundle(items[0])
    assert attestations_in(data) == items
    assert attestations_in(items[0]) == [items[0]]  # a lone attestation is itself
    junk = bytes([TAG]) + b"not a bundle"  # only a node without a validator accepts it
    assert attestations_in(junk) == [junk]
    full = encode_bundle(entries(MAX_ENTRIES))
    assert len(full) == MAX_BYTES < 65_535


@pytest.mark.parametrize("case", ["truncated", "trailing byte", "header only", "empty",
                                  "count says more", "count says fewer"])
def test_decoder_refuses_wrong_lengths(case: str) -> None:
    good = encode_bundle(entries(3))
    bad = {
        "truncated": good[:-1],
        "trailing byte": good + b"\x00",
        "header only": good[:3],
        "empty": b"",
        "count says more": good[:1] + struct.pack(">H", 4) + good[3:],
        "count says fewer": good[:1] + struct.pack(">H", 2) + good[3:],
    }[case]
    with pytest.raises(BundleError):
        decode_bundle(bad)


def test_decoder_refuses_oversized_and_degenerate_counts() -> None:
    one = entries(1)[0]
    for count in (0, 1, MAX_ENTRIES + 1):
        data = bytes([TAG]) + struct.pack(">H", count) + one * count
        with pytest.raises(BundleError, match="outside"):
            decode_bundle(data)
    with pytest.raises(BundleError, match="2 to"):
        encode_bundle(entries(MAX_ENTRIES + 1))
    with pytest.raises(BundleError, match="2 to"):
        encode_bundle(entries(1))


def test_decoder_refuses_wrong_types_and_tags() -> None:
    for value in ("text", 12, None, [b"x"]):
        with pytest.raises(BundleError, match="expected bytes"):
            decode_bundle(value)  # type: ignore[arg-type]
    good = encode_bundle(entries(2))
    with pytest.raises(BundleError, match="tag"):
        decode_bundle(b"\x01" + good[1:])
    assert issubclass(BundleError, DecodeError)  # one family of decode errors


def test_duplicate_entries_are_refused() -> None:
    a, b = entries(2)
    with pytest.raises(BundleError, match="twice"):
        encode_bundle([a, b, a])
    forged = bytes([TAG]) + struct.pack(">H", 3) + a + b + a
    with pytest.raises(BundleError, match="twice"):
        decode_bundle(forged)


def test_an_entry_that_is_not_an_attestation_is_refused() -> None:
    a, b = entries(2)
    bad = bytearray(b)
    bad[0] = 0x02  # an unknown attestation version inside
    with pytest.raises(BundleError, match="entry 1"):
        decode_bundle(bytes([TAG]) + struct.pack(">H", 2) + a + bytes(bad))
    with pytest.raises(DecodeError):
        encode_bundle([a, b"\x01short"])


def test_validator_accepts_only_bundles_whose_every_entry_is_valid() -> None:
    salvaged: list[list[bytes]] = []
    inner = make_validator()
    validator = GossipValidator(inner, on_salvage=salvaged.append)
    good = entries(4)
    assert validator(encode_bundle(good)) is ACCEPT
    assert validator(good[0]) is ACCEPT  # lone attestations still pass (js-libp2p interop)
    assert inner.accepted == 5

    bad_signature = forgeries()["bad signature"]
    mixed = [good[0], bad_signature, good[1]]
    assert validator(encode_bundle(mixed)) is REJECT
    assert salvaged == [[good[0], good[1]]]  # the good ones go on, the bad one does not
    assert inner.rejections["BadSignature"] + inner.rejections["UnknownSigner"] == 1
    assert validator.counts() == {"accepted": 1, "bad_entry": 1, "salvaged": 2}

    only_bad = forgeries()
    for name in ("bad signature", "unknown signer", "wrong model"):
        assert validator(encode_bundle([only_bad[name], good[2]])) is REJECT
    assert validator(encode_bundle(entries(2))[:-5]) is REJECT  # truncated
    assert validator.counts()["malformed"] == 1
    assert len(salvaged) == 4 and all(s == [good[2]] for s in salvaged[1:])
    for forged in forgeries().values():  # lone forgeries unchanged
        assert validator(forged) is REJECT


def test_a_bundle_with_an_undecided_entry_and_no_invalid_one_is_ignored_as_a_whole() -> None:
    """An entry the validator cannot decide now (its registry unreachable) makes the bundle
    IGNORE -- not held against the sender, decided again later -- unless another entry is
    invalid, which rejects it (and salvages the accepted ones)."""
    inner = make_validator()
    good = entries(3)
    flaky = good[1]

    def check(data: bytes) -> Verdict:
        if data == flaky:
            raise ConnectionError("registry unreachable")
        return inner(data)

    salvaged: list[list[bytes]] = []
    validator = GossipValidator(check, on_salvage=salvaged.append)
    assert validator(encode_bundle(good)) is IGNORE
    assert salvaged == []
    bad = forgeries()["unknown signer"]
    assert validator(encode_bundle([*good, bad])) is REJECT
    assert salvaged == [[good[0], good[2]]]
    assert validator.counts() == {"undecided": 1, "bad_entry": 1, "salvaged": 2}


def test_decoded_entries_are_the_attestations_put_in() -> None:
    items = entries(3)
    assert [decode(e) for e in decode_bundle(encode_bundle(items))] == [decode(e) for e in items]


def test_bundle_config_is_checked() -> None:
    with pytest.raises(ValueError):
        BundleConfig(max_entries=1)
    with pytest.raises(ValueError):
        BundleConfig(max_entries=MAX_ENTRIES + 1)
    with pytest.raises(ValueError):
        BundleConfig(window=-1)


async def test_publisher_bundles_concurrent_attestations_and_refuses_a_bad_one_alone() -> None:
    node = await GossipNode.start(key_seed="bundle publisher", validator=make_validator())
    inbox = node.subscribe()
    publisher = BundlePublisher(node, node.validator.attestations,
                                BundleConfig(window=0.05, max_entries=20))
    try:
        async with asyncio.TaskGroup() as group:
            runner = group.create_task(publisher.run())
            good = entries(50)
            bad = forgeries()["unknown signer"]
            outcomes = await asyncio.gather(*(publisher.publish(d) for d in [*good, bad]),
                                            return_exceptions=True)
            assert outcomes[:50] == [message_id(d) for d in good]
            assert isinstance(outcomes[50], BundleError)  # only its caller is refused
            with pytest.raises(DecodeError):
                await publisher.publish(encode_bundle(good[:2]))  # bundles are not nested
            lone = attestation(0, epoch=999)
            assert await publisher.publish(lone) == message_id(lone)
            got = [await asyncio.wait_for(inbox.get(), 10) for _ in range(51)]
            assert sorted(got) == sorted([*good, lone])  # one by one, as attestations
            assert publisher.sizes[1] == 1  # the lone one went out as itself
            assert sum(n for size, n in publisher.sizes.items() if size > 1) >= 3  # 50 / 20
            assert max(publisher.sizes) <= 20
            runner.cancel()
        with pytest.raises(BundleError, match="stopped"):
            await publisher.publish(lone)
    finally:
        await node.stop()


def test_an_overflowed_bundle_counts_as_recovered_once_its_attestations_are_stored() -> None:
    """The hand-over remembers what it could not take so that repair repeats until it is
    stored; the store holds a bundle's attestations, never the bundle itself."""
    from node.gossip.delivery import Delivery
    from node.gossip.store import GossipStore

    with GossipStore() as store:
        delivery = Delivery(store, lambda *_: None, lambda: None, queue_limit=1)
        first, second = encode_bundle(entries(2)), encode_bundle(entries(5)[2:])
        delivery.offer(first)
        delivery.offer(second)  # the queue holds one: this one overflows
        assert delivery.handoff_overflows == 1
        assert delivery.unrecovered() == 3  # its three attestations
        store.add_many(decode_bundle(second)[:2])
        assert delivery.unrecovered() == 1
        store.add_many(decode_bundle(second))
        assert delivery.unrecovered() == 0
