"""Heads signed m-of-n by operators (wallet/heads.py): the EIP-712 digest against independent
computations, signing and co-signing with keystore operators, every refusal a satellite makes
(threshold, non-operators, duplicates, high-s, chain, stale and future heads, tampering), and
the signed-head file format."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from node.chain.anchor import AnchorSource
from node.chain.errors import MalformedInputError, VerificationError
from node.chain.header import verify_header
from node.cli.main import main
from node.devnet import Anvil, start_anvil
from node.rpc.ground_heads import (
    anchor_from_signed_head,
    check_head_header,
    confirm_head,
    read_head,
)
from node.rpc.upstream_api import Answer, UpstreamError
from wallet.commands import DOMAIN_NAME as COMMAND_DOMAIN
from wallet.errors import MalformedRequestError
from wallet.heads import (
    DEFAULT_MAX_SKEW,
    MAX_FILE_BYTES,
    MAX_SIGNATURES,
    UINT64_MAX,
    Head,
    HeadRejectedError,
    HeadSignature,
    SignedHead,
    add_signature,
    check_signed_head,
    head_digest,
    head_typed_data,
    sign_head,
    sign_head_by,
    signed_head_from_json,
    signed_head_to_json,
    verify_signed_head,
)
from wallet.keys.keystore import KeystoreSigner, create_keystore
from wallet.keys.signer import SECP256K1_N, Signature, recover_address

from signers import SoftwareSigner, labelled_signer

REPO = Path(__file__).resolve().parents[1]
T0 = 1_750_000_000
CHAIN = 31337
HASH = keccak(b"block 17")
HEAD = Head(CHAIN, 17, HASH, T0)
A, B, C = (labelled_signer(name) for name in ("alice", "bob", "carol"))
OUTSIDER = labelled_signer("mallory")
OPERATORS = {A.address, B.address, C.address}
PASSWORD = "operator password"


def signed(*signers: Any, head: Head = HEAD) -> SignedHead:
    return sign_head_by(head, signers)


def check(head: SignedHead, threshold: int = 2, *, chain_id: int = CHAIN, now: float = T0 + 12,
          max_age: float = 3600, **options: Any) -> Any:
    return check_signed_head(head, OPERATORS, threshold, chain_id, now=now, max_age=max_age,
                             **options)


def rejected(head: SignedHead, threshold: int = 2, **options: Any) -> str:
    with pytest.raises(HeadRejectedError) as info:
        check(head, threshold, **options)
    assert info.value.exit_code == 1
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- digest


def test_digest_matches_eth_account_and_signature_recovers() -> None:
    document = {  # written out independently of wallet.heads
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"},
                             {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"}],
            "Head": [{"name": "chainId", "type": "uint256"},
                     {"name": "number", "type": "uint64"},
                     {"name": "hash", "type": "bytes32"},
                     {"name": "timestamp", "type": "uint64"}],
        },
        "primaryType": "Head",
        "domain": {"name": "orbital-head", "version": "1", "chainId": CHAIN},
        "message": {"chainId": CHAIN, "number": 17, "hash": "0x" + HASH.hex(),
                    "timestamp": T0},
    }
    assert head_typed_data(HEAD) == document
    signable = encode_typed_data(full_message=document)
    reference = Account.sign_message(signable, A.private_key)
    assert head_digest(HEAD) == bytes(reference.message_hash)

    entry = sign_head(HEAD, A).signatures[0]
    assert Account.recover_message(signable, signature=entry.signature) == \
        to_checksum_address(A.address)
    assert entry.signature == bytes(reference.signature)  # both RFC 6979 and low-s


def test_digest_matches_hand_computed_eip712_encoding() -> None:
    def word(n: int) -> bytes:
        return n.to_bytes(32, "big")

    domain_type = b"EIP712Domain(string name,string version,uint256 chainId)"
    separator = keccak(keccak(domain_type) + keccak(b"orbital-head") + keccak(b"1") + word(CHAIN))
    struct_type = b"Head(uint256 chainId,uint64 number,bytes32 hash,uint64 timestamp)"
    struct_hash = keccak(keccak(struct_type) + word(CHAIN) + word(17) + HASH + word(T0))
    assert head_digest(HEAD) == keccak(b"\x19\x01" + separator + struct_hash)


def test_digest_separates_chains_every_field_and_the_command_domain() -> None:
    variants = [dataclasses.replace(HEAD, **{name: value}) for name, value in [
        ("chain_id", 1), ("number", 18), ("hash", keccak(b"other")), ("timestamp", T0 + 1)]]
    assert len({head_digest(h) for h in [HEAD, *variants]}) == 1 + len(variants)
    assert COMMAND_DOMAIN != head_typed_data(HEAD)["domain"]["name"] == "orbital-head"


# --------------------------------------------------------------------------- sign, co-sign, verify


@pytest.fixture(scope="module")
def keystore_operators(tmp_path_factory: pytest.TempPathFactory) -> list[KeystoreSigner]:
    directory = tmp_path_factory.mktemp("operators")
    signers = []
    for name in ("alice", "bob", "carol"):
        path = directory / f"{name}.json"
        create_keystore(path, PASSWORD, kdf="pbkdf2", iterations=2)
        signers.append(KeystoreSigner(path, PASSWORD))
    return signers


def test_two_of_three_keystore_operators_sign_cosign_and_verify(
        keystore_operators: list[KeystoreSigner]) -> None:
    alice, bob, carol = keystore_operators
    operators = [s.address for s in keystore_operators]
    first = sign_head(HEAD, alice)
    text = signed_head_to_json(first)  # the file goes to the next operator
    both = add_signature(signed_head_from_json(text), bob)
    assert [e.signer for e in both.signatures] == [alice.address, bob.address]

    with pytest.raises(HeadRejectedError, match=r"\(threshold\): 1 distinct operator"):
        verify_signed_head(first, operators, 2, CHAIN, now=T0, max_age=60)
    again = signed_head_from_json(signed_head_to_json(both))
    assert verify_signed_head(again, operators, 2, CHAIN, now=T0, max_age=60) == HEAD
    verified = check_signed_head(again, operators, 2, CHAIN, now=T0, max_age=60)
    assert verified.signers == tuple(sorted([alice.address, bob.address]))
    assert verified.operators == 3
    assert verified.digest == head_digest(HEAD)
    all_three = add_signature(both, carol)
    assert verify_signed_head(all_three, operators, 3, CHAIN, now=T0, max_age=60) == HEAD


def test_threshold_met_and_not_met() -> None:
    assert check(signed(A), threshold=1).signers == (A.address,)
    assert check(signed(C, A)).signers == tuple(sorted([A.address, C.address]))
    message = rejected(signed(B), threshold=2)
    assert f"(threshold): 1 distinct operator signature(s) ({to_checksum_address(B.address)})" \
        in message
    assert "2 of 3 required" in message
    assert "(threshold): 2 distinct" in rejected(signed(A, B), threshold=3)


def test_a_non_operators_signature_is_ignored() -> None:
    message = rejected(signed(OUTSIDER, A), threshold=2)
    assert "1 distinct operator signature(s)" in message
    assert "1 signer(s) not among the operators ignored" in message
    verified = check(signed(OUTSIDER, A, B), threshold=2)
    assert verified.signers == tuple(sorted([A.address, B.address]))
    assert "(threshold): 0 distinct operator signature(s) (none)" in \
        rejected(signed(OUTSIDER), threshold=1)


def test_a_duplicate_signer_counts_once() -> None:
    one = signed(A)
    doubled = dataclasses.replace(one, signatures=one.signatures * 2)
    assert "(threshold): 1 distinct operator" in rejected(doubled, threshold=2)
    assert check(dataclasses.replace(one, signatures=one.signatures * 3 + signed(B).signatures)
                 ).signers == tuple(sorted([A.address, B.address]))


def test_cosigning_twice_or_a_tampered_file_is_refused() -> None:
    with pytest.raises(MalformedRequestError, match="has already signed this head"):
        add_signature(signed(A, B), A)
    moved = SignedHead(dataclasses.replace(HEAD, number=18), signed(A).signatures)
    with pytest.raises(HeadRejectedError, match=r"signature 0 .* changed after signing"):
        add_signature(moved, B)
    junk = SignedHead(HEAD, (HeadSignature(C.address, bytes(65)),))
    with pytest.raises(HeadRejectedError, match=r"signature 0 .* has v = 0"):
        add_signature(junk, B)
    full = SignedHead(HEAD, tuple(sign_head(HEAD, labelled_signer(f"op {i}")).signatures[0]
                                  for i in range(MAX_SIGNATURES)))
    with pytest.raises(MalformedRequestError, match=f"already {MAX_SIGNATURES}, the most"):
        add_signature(full, B)


def test_a_signer_that_returns_high_s_is_still_normalised() -> None:
    token_like = SoftwareSigner("orbital test key alice", high_s=True)
    entry = sign_head(HEAD, token_like).signatures[0]
    assert int.from_bytes(entry.signature[32:64], "big") <= SECP256K1_N // 2
    assert check(SignedHead(HEAD, (entry,)), threshold=1).signers == (A.address,)


# --------------------------------------------------------------------------- refusals


def _malleate(entry: HeadSignature) -> HeadSignature:
    raw = entry.signature
    s, v = int.from_bytes(raw[32:64], "big"), raw[64]
    return HeadSignature(entry.signer, raw[:32] + (SECP256K1_N - s).to_bytes(32, "big")
                         + bytes([55 - v]))


def test_high_s_signature_refused() -> None:
    good = signed(A, B)
    high = _malleate(good.signatures[1])
    r, s, v = (int.from_bytes(high.signature[:32], "big"),
               int.from_bytes(high.signature[32:64], "big"), high.signature[64])
    # the same signature, other parity: it recovers to B, and is refused for being high-s
    assert recover_address(head_digest(HEAD), Signature(r, s, v - 27)) == B.address
    message = rejected(dataclasses.replace(good, signatures=(good.signatures[0], high)))
    assert "(signatures): signature 1 (claimed signer" in message
    assert "high-s" in message
    # refused even when the operators who count would be enough without it
    assert "high-s" in rejected(SignedHead(HEAD, (*good.signatures, _malleate(
        signed(C).signatures[0]))))


@pytest.mark.parametrize("v", [0, 1, 29, 37])
def test_v_other_than_27_or_28_refused(v: int) -> None:
    entry = signed(A).signatures[0]
    bad = HeadSignature(entry.signer, entry.signature[:64] + bytes([v]))
    assert f"v = {v}" in rejected(SignedHead(HEAD, (bad,)), threshold=1)


def test_r_or_s_out_of_range_and_unrecoverable_refused() -> None:
    entry = signed(A).signatures[0]
    zero_r = HeadSignature(A.address, bytes(32) + entry.signature[32:])
    assert "out of range" in rejected(SignedHead(HEAD, (zero_r,)), threshold=1)
    big_r = HeadSignature(A.address, SECP256K1_N.to_bytes(32, "big") + entry.signature[32:])
    assert "out of range" in rejected(SignedHead(HEAD, (big_r,)), threshold=1)
    off_curve = HeadSignature(A.address, (5).to_bytes(32, "big") + entry.signature[32:])
    message = rejected(SignedHead(HEAD, (off_curve,)), threshold=1)
    assert "recovers to no key" in message or "changed after signing" in message


def test_a_false_signer_claim_refused() -> None:
    good = signed(A, B)
    swapped = HeadSignature(C.address, good.signatures[0].signature)
    message = rejected(dataclasses.replace(good, signatures=(swapped, good.signatures[1])))
    assert f"signature 0 (claimed signer {to_checksum_address(C.address)}) recovers to " \
           f"{to_checksum_address(A.address)}" in message


def test_wrong_chain_refused() -> None:
    message = rejected(signed(A, B), chain_id=1)
    assert message == ("head rejected (chainId): the head is of chain 31337, this "
                       "satellite's chain is 1")
    other = Head(1, 17, HASH, T0)
    assert "(chainId): the head is of chain 1" in rejected(signed(A, B, head=other))


def test_stale_and_future_heads_refused_at_the_bounds() -> None:
    both = signed(A, B)
    assert check(both, now=T0 + 600, max_age=600).head == HEAD  # exactly max_age old
    message = rejected(both, now=T0 + 601, max_age=600)
    assert message == (f"head rejected (stale): block 17 has timestamp {T0}, 601 s before "
                       f"now ({T0 + 601}); at most 600 s old is accepted")
    assert check(both, now=T0 - DEFAULT_MAX_SKEW).head == HEAD  # skew allowed
    message = rejected(both, now=T0 - DEFAULT_MAX_SKEW - 1)
    assert "(future): block 17 has timestamp" in message
    assert f"{DEFAULT_MAX_SKEW + 1} s after now" in message
    assert check(both, now=T0 - 100, max_skew=100).head == HEAD
    assert "(future)" in rejected(both, now=T0 - 1, max_skew=0)
    # a head in the far future is refused whatever max_age says
    assert "(future)" in rejected(both, now=T0 - 10**6, max_age=10**9)


@pytest.mark.parametrize("change", [{"hash": keccak(b"forged")}, {"number": 18},
                                    {"timestamp": T0 + 3600}, {"timestamp": T0 - 1}])
def test_tampered_head_no_longer_recovers(change: dict[str, Any]) -> None:
    good = signed(A, B)
    tampered = SignedHead(dataclasses.replace(HEAD, **change), good.signatures)
    message = rejected(tampered)
    assert message.startswith("head rejected (signatures): signature 0 (claimed signer")
    assert "changed after signing" in message


def test_tampered_file_no_longer_recovers() -> None:
    document = json.loads(signed_head_to_json(signed(A, B)))
    document["head"]["number"] = 16
    assert "changed after signing" in rejected(signed_head_from_json(json.dumps(document)))


@pytest.mark.parametrize(("options", "match"), [
    ({"threshold": 0}, r"threshold: expected 1\.\.3"),
    ({"threshold": 4}, r"threshold: expected 1\.\.3"),
    ({"threshold": True}, r"threshold: expected 1\.\.3"),
    ({"now": float("nan")}, "now: expected finite seconds"),
    ({"now": -1}, "now: expected finite seconds"),
    ({"max_age": float("inf")}, "max_age: expected finite seconds"),
    ({"max_skew": -1}, "max_skew: expected finite seconds"),
])
def test_verifier_arguments_checked(options: dict[str, Any], match: str) -> None:
    threshold = options.pop("threshold", 2)
    with pytest.raises(MalformedRequestError, match=match):
        check(signed(A, B), threshold, **options)
    with pytest.raises(MalformedRequestError, match="operators: expected 20 bytes"):
        check_signed_head(signed(A), [b"\x01" * 19], 1, CHAIN, now=T0, max_age=60)


@pytest.mark.parametrize(("fields", "match"), [
    ({"chain_id": 0}, "head.chainId: must not be 0"),
    ({"chain_id": 2**256}, r"head\.chainId: expected an integer"),
    ({"number": -1}, r"head\.number: expected an integer"),
    ({"number": 2**64}, r"head\.number: expected an integer"),
    ({"hash": b"\x01" * 31}, r"head\.hash: expected 32 bytes"),
    ({"hash": "0x" + "01" * 32}, r"head\.hash: expected 32 bytes"),
    ({"timestamp": True}, r"head\.timestamp: expected an integer"),
])
def test_head_fields_checked(fields: dict[str, Any], match: str) -> None:
    values = {"chain_id": CHAIN, "number": 17, "hash": HASH, "timestamp": T0, **fields}
    with pytest.raises(MalformedRequestError, match=match):
        Head(**values)


# --------------------------------------------------------------------------- file format


def _good() -> dict[str, Any]:
    return json.loads(signed_head_to_json(signed(A, B)))


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return edit


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        del target[last]
    return edit


MALFORMED_EDITS = [
    (_delete("head"), r"signed head: missing field\(s\) head"),
    (_set("extra", 1), r"signed head: unknown field\(s\) extra"),
    (_set("version", 2), "version: expected 1, got 2"),
    (_set("version", True), "version: expected 1"),
    (_set("domain.name", "orbital-command"), "domain.name: expected 'orbital-head'"),
    (_set("domain.version", "2"), "domain.version: expected '1'"),
    (_set("domain.salt", "0x" + "00" * 32), r"domain: unknown field\(s\) salt"),
    (_set("domain.chainId", 1), r"domain\.chainId: 1 differs from head\.chainId 31337"),
    (_set("domain.chainId", "31337"), r"domain\.chainId: expected an integer"),
    (_delete("head.timestamp"), r"head: missing field\(s\) timestamp"),
    (_set("head.stateRoot", "0x" + "00" * 32), r"head: unknown field\(s\) stateRoot"),
    (_set("head", [1]), "head: expected an object, got list"),
    (_set("head.chainId", 0), "head.chainId: must not be 0"),
    (_set("head.number", -1), r"head\.number: expected an integer"),
    (_set("head.number", 2**64), r"head\.number: expected an integer"),
    (_set("head.number", "0x11"), r"head\.number: expected an integer"),
    (_set("head.timestamp", None), r"head\.timestamp: expected an integer"),
    (_set("head.hash", "0x" + "ab" * 31), r"head\.hash: expected 32 bytes \(64 hex digits\)"),
    (_set("head.hash", "ab" * 32), r"head\.hash: expected 0x-prefixed"),
    (_set("head.hash", "0x" + "zz" * 32), r"head\.hash: expected 0x-prefixed"),
    (_set("signatures", {}), "signatures: expected an array"),
    (_set("signatures.0", "0x00"), r"signatures\[0\]: expected an object"),
    (_set("signatures.1.note", "x"), r"signatures\[1\]: unknown field\(s\) note"),
    (_delete("signatures.0.signer"), r"signatures\[0\]: missing field\(s\) signer"),
    (_set("signatures.0.signature", "0x" + "11" * 64),
     r"signatures\[0\]\.signature: expected 65 bytes \(130 hex digits\), got 128"),
    (_set("signatures.1.signer", "0x" + "11" * 19), r"signatures\[1\]\.signer: expected 20"),
    (_set("signatures.1.signer", "0x" + "aB" * 20),
     r"signatures\[1\]\.signer: 0x(aB){20} fails its EIP-55 checksum"),
    (_set("signatures", [{"signer": "0x" + "11" * 20, "signature": "0x" + "00" * 65}] * 65),
     "signatures: 65 entries, at most 64 allowed"),
]


@pytest.mark.parametrize(("edit", "match"), MALFORMED_EDITS)
def test_malformed_file_names_the_field(edit: Any, match: str) -> None:
    document = _good()
    edit(document)
    with pytest.raises(MalformedRequestError, match=match) as info:
        signed_head_from_json(json.dumps(document))
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("text", "match"), [
    ("", "not valid JSON"),
    ("{", "not valid JSON"),
    (b"\xff\xfe{}", "signed head: not UTF-8"),
    ("[]", "signed head: expected an object, got list"),
    ('{"version": 1, "version": 1}', "duplicate JSON key 'version'"),
    ('{"head": {"number": 1.0}}', "non-integer number 1.0"),
    ('{"head": {"number": NaN}}', "non-integer number NaN"),
    ("[" * 10_000 + "]" * 10_000, "signed head: JSON nested deeper than 3 levels"),
    ('{"a": "[[[[[[[[[[[[[[[[[["}', "missing field"),
    (" " * (MAX_FILE_BYTES + 1), "larger than"),
])
def test_unreadable_file(text: str | bytes, match: str) -> None:
    with pytest.raises(MalformedRequestError, match=match):
        signed_head_from_json(text)


def test_ambiguous_file_refused() -> None:
    text = signed_head_to_json(signed(A, B))
    twice = text.replace('"number": 17', '"number": 18, "number": 17', 1)
    with pytest.raises(MalformedRequestError, match="duplicate JSON key 'number'"):
        signed_head_from_json(twice)


def test_checksummed_lower_and_upper_case_addresses_accepted() -> None:
    document = _good()
    assert document["signatures"][0]["signer"] == to_checksum_address(A.address)
    document["signatures"][0]["signer"] = "0x" + A.address.hex()
    document["signatures"][1]["signer"] = "0x" + B.address.hex().upper()
    again = signed_head_from_json(json.dumps(document))
    assert [e.signer for e in again.signatures] == [A.address, B.address]


@settings(max_examples=60, deadline=None)
@given(chain_id=st.integers(1, 2**256 - 1), number=st.integers(0, UINT64_MAX),
       block_hash=st.binary(min_size=32, max_size=32), timestamp=st.integers(0, UINT64_MAX),
       signers=st.lists(st.sampled_from([A, B, C, OUTSIDER]), min_size=1, max_size=4,
                        unique=True))
def test_file_round_trips(chain_id: int, number: int, block_hash: bytes, timestamp: int,
                          signers: list[SoftwareSigner]) -> None:
    head = Head(chain_id, number, block_hash, timestamp)
    result = signed(*signers, head=head)
    assert signed_head_from_json(signed_head_to_json(result)) == result
    assert signed_head_from_json(signed_head_to_json(result).encode()) == result


def test_written_file_shape() -> None:
    document = json.loads(signed_head_to_json(signed(A)))
    assert document == {
        "version": 1,
        "domain": {"name": "orbital-head", "version": "1", "chainId": CHAIN},
        "head": {"chainId": CHAIN, "number": 17, "hash": "0x" + HASH.hex(), "timestamp": T0},
        "signatures": [{"signer": to_checksum_address(A.address),
                        "signature": "0x" + sign_head(HEAD, A).signatures[0].signature.hex()}],
    }


# --------------------------------------------------------------------------- node side


def _example_blocks() -> list[dict[str, Any]]:
    return json.loads((REPO / "node" / "examples" / "headers.json").read_text())


class FakeNode:
    """An operator's node answering ``eth_chainId`` and ``eth_getBlockByNumber`` from
    ``blocks`` (the newest is ``latest``)."""

    def __init__(self, blocks: list[dict[str, Any]], chain_id: str = hex(CHAIN)) -> None:
        self.blocks = {int(b["number"], 16): b for b in blocks}
        self.chain_id = chain_id
        self.lies: list[str] = []

    async def call(self, method: str, params: Any) -> Answer:
        return (await self.batch([(method, params)]))[0]

    async def batch(self, calls: Any) -> list[Answer]:
        out = []
        for method, params in calls:
            if method == "eth_chainId":
                out.append(Answer(self.chain_id, "fake"))
            else:
                assert method == "eth_getBlockByNumber" and params[1] is False
                tag = params[0]
                number = max(self.blocks) if tag in ("latest", "safe", "finalized") \
                    else int(tag, 16)
                out.append(Answer(self.blocks.get(number), "fake"))
        return out

    def penalize(self, answer: Answer, what: str) -> None:
        self.lies.append(what)


def _head_of(block: dict[str, Any]) -> Head:
    return Head(CHAIN, int(block["number"], 16), bytes.fromhex(block["hash"][2:]),
                int(block["timestamp"], 16))


def test_anchor_from_signed_head_names_the_operators_who_signed() -> None:
    block = _example_blocks()[-1]
    head = _head_of(block)
    anchor = anchor_from_signed_head(signed(OUTSIDER, C, A, head=head), OPERATORS, 2, CHAIN,
                                     now=head.timestamp + 5, max_age=60)
    assert (anchor.number, anchor.hash, anchor.source) == (head.number, head.hash,
                                                           AnchorSource.GROUND)
    first, second = sorted([A.address, C.address])
    assert anchor.detail == (f"2-of-3 operators: {to_checksum_address(first)},"
                             f"{to_checksum_address(second)}")
    assert anchor.state_root is None
    anchor.check(verify_header(block))  # the anchored block is the one the operators read
    with pytest.raises(HeadRejectedError, match=r"\(threshold\)"):
        anchor_from_signed_head(signed(A, head=head), OPERATORS, 2, CHAIN,
                                now=head.timestamp, max_age=60)
    with pytest.raises(HeadRejectedError, match=r"\(stale\)"):
        anchor_from_signed_head(signed(A, B, head=head), OPERATORS, 2, CHAIN,
                                now=head.timestamp + 61, max_age=60)


def test_header_must_be_the_signed_block() -> None:
    blocks = _example_blocks()
    header = verify_header(blocks[-1])
    head = _head_of(blocks[-1])
    check_head_header(head, header)
    with pytest.raises(VerificationError, match=r"head\.hash: header 0x"):
        check_head_header(_head_of(blocks[0]), header)
    with pytest.raises(VerificationError, match=r"head\.timestamp mismatch"):
        check_head_header(dataclasses.replace(head, timestamp=head.timestamp + 1), header)
    with pytest.raises(VerificationError, match=r"head\.number mismatch"):
        check_head_header(dataclasses.replace(head, number=head.number + 1), header)


async def test_read_head_recomputes_the_header_hash() -> None:
    blocks = _example_blocks()
    node = FakeNode(blocks)
    head, header = await read_head(node)
    assert head == _head_of(blocks[-1]) and header.hash == head.hash
    assert (await read_head(node, "finalized"))[0] == head
    assert (await read_head(node, int(blocks[0]["number"], 16)))[0] == _head_of(blocks[0])

    forged = [*blocks[:-1], {**blocks[-1], "stateRoot": "0x" + "66" * 32}]
    with pytest.raises(VerificationError, match="hash mismatch"):
        await read_head(FakeNode(forged))
    with pytest.raises(UpstreamError, match="has no block 99"):
        await read_head(node, 99)
    with pytest.raises(MalformedInputError, match="expected a number or one of latest"):
        await read_head(node, "pending")
    with pytest.raises(MalformedInputError, match=r"eth_chainId: head\.chainId: must not be 0"):
        await read_head(FakeNode(blocks, chain_id="0x0"))
    mislabelled = FakeNode(blocks)
    mislabelled.blocks[5] = blocks[-1]
    with pytest.raises(VerificationError, match="asked for block 5, the node answered"):
        await read_head(mislabelled, 5)


async def test_cosigners_node_must_have_the_block_on_the_chain() -> None:
    blocks = _example_blocks()
    head = _head_of(blocks[-1])
    assert (await confirm_head(FakeNode(blocks), head)).hash == head.hash
    with pytest.raises(VerificationError, match="the head is of chain 31337, this node "
                                                "serves chain 1"):
        await confirm_head(FakeNode(blocks, chain_id="0x1"), head)
    other_branch = FakeNode(blocks)
    other_branch.blocks[head.number] = blocks[0]
    with pytest.raises(VerificationError) as info:
        await confirm_head(other_branch, head)
    assert "not the signed" in str(info.value) and "another branch" in str(info.value)
    with pytest.raises(VerificationError, match=r"head\.timestamp mismatch"):
        await confirm_head(FakeNode(blocks), dataclasses.replace(head, timestamp=T0))
    with pytest.raises(UpstreamError, match="has no block"):
        await confirm_head(FakeNode(blocks[:1]), head)


# --------------------------------------------------------------------------- CLI (no devnet)


def _addresses(*signers: Any) -> str:
    return ",".join("0x" + s.address.hex() for s in signers)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_verify_head_prints_the_head_or_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = int(time.time())
    head = dataclasses.replace(HEAD, timestamp=now - 30)
    path = tmp_path / "head.json"
    path.write_text(signed_head_to_json(signed(A, C, head=head)))
    check_args = ["ground", "verify-head", str(path), "--operators", _addresses(A, B, C),
                  "--chain-id", str(CHAIN)]

    code, out, err = _cli(capsys, *check_args, "--threshold", "2")
    assert (code, err) == (0, "")
    assert out.startswith(f"valid: block 17 0x{HASH.hex()} of chain {CHAIN}, timestamp "
                          f"{head.timestamp} (age ")
    assert "signed by 2 of 3 operators (2 required)" in out
    code, out, err = _cli(capsys, *check_args, "--threshold", "2", "--json")
    report = json.loads(out)
    assert report["valid"] is True and report["number"] == 17
    assert report["hash"] == "0x" + HASH.hex() and report["timestamp"] == head.timestamp
    assert set(report["signers"]) == {to_checksum_address(A.address),
                                      to_checksum_address(C.address)}
    assert report["anchor"].endswith(")") and "(ground: 2-of-3 operators: " in report["anchor"]

    for extra, match in [(["--threshold", "3"], "head rejected (threshold): 2 distinct"),
                         (["--threshold", "2", "--max-age", "10"], "head rejected (stale)")]:
        code, out, err = _cli(capsys, *check_args, *extra)
        assert code == 1 and out == ""
        assert err.startswith(f"orbital: {match}") and err.count("\n") == 1
    code, _, err = _cli(capsys, "ground", "verify-head", str(path), "--operators",
                        _addresses(A, B, C), "--chain-id", "1", "--threshold", "2")
    assert code == 1 and "(chainId): the head is of chain 31337" in err
    future = tmp_path / "future.json"
    future.write_text(signed_head_to_json(signed(A, B, head=dataclasses.replace(
        HEAD, timestamp=now + 600))))
    code, _, err = _cli(capsys, "ground", "verify-head", str(future), "--operators",
                        _addresses(A, B, C), "--chain-id", str(CHAIN), "--threshold", "2")
    assert code == 1 and "head rejected (future)" in err


@pytest.mark.parametrize(("content", "args", "match"), [
    ('{"version": 1}', [], r"head\.json: signed head: missing field\(s\) domain, head, "),
    ("not json", [], r"head\.json: signed head: not valid JSON"),
    (None, [], r"head\.json: cannot read: No such file"),
    ("", ["--operators", "0x1234"], r"--operators: '0x1234' is not an address"),
    ("", ["--threshold", "4"], r"threshold: expected 1\.\.3"),
])
def test_cli_verify_head_malformed_input_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None,
        args: list[str], match: str) -> None:
    path = tmp_path / "head.json"
    if content is not None:
        path.write_text(content or signed_head_to_json(signed(A, B)))
    options = {"--operators": _addresses(A, B, C), "--threshold": "2",
               "--chain-id": str(CHAIN)}
    options.update(zip(args[::2], args[1::2], strict=True))
    code, out, err = _cli(capsys, "ground", "verify-head", str(path),
                          *(item for pair in options.items() for item in pair))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("orbital: ")
    assert re.search(match, err), err


def test_cli_head_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    base = ["ground", "head", "--keystore", str(tmp_path / "k.json")]
    for args, match in [
        (["--rpc", "file:///etc/passwd", "--out", "h.json"], "expected an http:// or https://"),
        (["--rpc", "http://127.0.0.1:9", "--cosign", "h.json", "--block", "1"],
         "--block makes a new head; --cosign signs the head in its file"),
        (["--rpc", "http://127.0.0.1:9", "--out", "h.json", "--block", "pending"],
         "--block: expected latest|safe|finalized or a block number"),
    ]:
        code, _, err = _cli(capsys, *base, *args)
        assert code == 2 and match in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as info:  # argparse: --out or --cosign, not both
        main([*base, "--rpc", "http://127.0.0.1:9", "--out", "a", "--cosign", "b"])
    assert info.value.code == 2
    capsys.readouterr()


# --------------------------------------------------------------------------- CLI on anvil


def _orbital(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def operator_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, bytes]]:
    directory = tmp_path_factory.mktemp("operator-keystores")
    return [(directory / f"{name}.json",
             create_keystore(directory / f"{name}.json", PASSWORD, kdf="pbkdf2", iterations=2))
            for name in ("alice", "bob", "carol")]


@pytest.mark.devnet
@pytest.mark.slow
def test_operators_sign_cosign_and_verify_an_anvil_head_end_to_end(
        anvil: Anvil, operator_files: list[tuple[Path, bytes]], tmp_path: Path) -> None:
    (alice, _), (bob, _), (carol, _) = operator_files
    addresses = ",".join("0x" + a.hex() for _, a in operator_files)
    env = {**os.environ, "ORBITAL_KEYSTORE_PASSWORD": PASSWORD, "ORBITAL_HOME": str(tmp_path),
           "PYTHONPATH": str(REPO)}
    anvil.rpc("evm_mine")
    path = tmp_path / "head.json"
    done = _orbital(env, "ground", "head", "--rpc", anvil.url, "--keystore", str(alice),
                    "--out", str(path))
    assert done.returncode == 0, done.stderr
    signed_file = signed_head_from_json(path.read_bytes())
    head = signed_file.head
    block = anvil.rpc("eth_getBlockByNumber", hex(head.number), False)
    assert (head.chain_id, head.hash, head.timestamp) == (
        31337, bytes.fromhex(block["hash"][2:]), int(block["timestamp"], 16))
    assert f"wrote {path}: block {head.number} 0x{head.hash.hex()}" in done.stdout

    check_args = ["ground", "verify-head", str(path), "--operators", addresses,
                  "--threshold", "2", "--chain-id", "31337"]
    too_few = _orbital(env, *check_args)
    assert too_few.returncode == 1
    assert too_few.stderr.startswith("orbital: head rejected (threshold): 1 distinct")

    password_file = tmp_path / "bob.password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    no_env = {k: v for k, v in env.items() if k != "ORBITAL_KEYSTORE_PASSWORD"}
    anvil.rpc("evm_mine")  # the chain moves on; the signed block is still canonical
    done = _orbital(no_env, "ground", "head", "--cosign", str(path), "--rpc", anvil.url,
                    "--keystore", str(bob), "--password-file", str(password_file))
    assert done.returncode == 0, done.stderr
    assert "2 signature(s)" in done.stdout
    again = _orbital(env, "ground", "head", "--cosign", str(path), "--rpc", anvil.url,
                     "--keystore", str(bob))
    assert again.returncode == 2 and "has already signed this head" in again.stderr

    done = _orbital(env, *check_args, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["number"], report["hash"], report["chainId"]) == (
        head.number, block["hash"], 31337)
    assert len(report["signers"]) == 2
    # the satellite's side: the anchor, and the upstream's header is the anchored block
    anchor = anchor_from_signed_head(signed_head_from_json(path.read_bytes()),
                                     [a for _, a in operator_files], 2, 31337,
                                     now=time.time(), max_age=3600)
    anchor.check(verify_header(anvil.rpc("eth_getBlockByHash", block["hash"], False)))
    assert anchor.source == AnchorSource.GROUND and anchor.detail.startswith("2-of-3 ")

    wrong_chain = _orbital(env, *check_args[:-1], "1")
    assert wrong_chain.returncode == 1 and "(chainId)" in wrong_chain.stderr
    document = json.loads(path.read_text())
    document["head"]["number"] += 1
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    done = _orbital(env, "ground", "verify-head", str(tampered), *check_args[3:])
    assert done.returncode == 1 and "changed after signing" in done.stderr
    document["head"]["hash"] = "0x1234"
    tampered.write_text(json.dumps(document))
    done = _orbital(env, "ground", "verify-head", str(tampered), *check_args[3:])
    assert done.returncode == 2
    assert done.stderr == f"orbital: {tampered}: head.hash: expected 32 bytes (64 hex " \
                          "digits), got 4 hex digits\n"
    done = _orbital(env, "ground", "head", "--cosign", str(path), "--rpc", anvil.url,
                    "--keystore", str(carol))
    assert done.returncode == 0 and "3 signature(s)" in done.stdout


@pytest.mark.devnet
def test_head_by_number_and_tag_from_anvil(
        anvil: Anvil, operator_files: list[tuple[Path, bytes]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORBITAL_KEYSTORE_PASSWORD", PASSWORD)
    keystore_file = str(operator_files[0][0])
    anvil.rpc("evm_mine")
    for block, number in [("1", 1), ("0x0", 0), ("finalized", None), ("latest", None)]:
        path = tmp_path / f"{block}.json"
        code, _, err = _cli(capsys, "ground", "head", "--rpc", anvil.url, "--block", block,
                            "--keystore", keystore_file, "--out", str(path))
        assert code == 0, err
        head = signed_head_from_json(path.read_bytes()).head
        expected = anvil.rpc("eth_getBlockByNumber", block if number is None else hex(number),
                             False)
        assert head.number == int(expected["number"], 16)
        assert head.hash == bytes.fromhex(expected["hash"][2:])
    code, _, err = _cli(capsys, "ground", "head", "--rpc", anvil.url, "--block", "999999",
                        "--keystore", keystore_file, "--out", str(tmp_path / "x.json"))
    assert code == 1 and "has no block 999999" in err and err.count("\n") == 1
    code, _, err = _cli(capsys, "ground", "head", "--rpc", "http://127.0.0.1:9", "--keystore",
                        keystore_file, "--out", str(tmp_path / "x.json"))
    assert code == 1 and err.startswith("orbital: upstream http://127.0.0.1:9: ")
    assert not (tmp_path / "x.json").exists()


@pytest.mark.devnet
def test_cosigner_whose_node_is_on_another_branch_refuses(
        anvil: Anvil, operator_files: list[tuple[Path, bytes]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORBITAL_KEYSTORE_PASSWORD", PASSWORD)
    (alice, _), (bob, _), _ = operator_files
    snapshot = anvil.rpc("evm_snapshot")
    anvil.rpc("evm_mine")
    path = tmp_path / "head.json"
    code, _, err = _cli(capsys, "ground", "head", "--rpc", anvil.url, "--keystore", str(alice),
                        "--out", str(path))
    assert code == 0, err
    before = path.read_text()
    head = signed_head_from_json(before).head
    assert anvil.rpc("evm_revert", snapshot) is True
    latest = int(anvil.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    anvil.rpc("evm_mine", latest + 7)  # the same height, another block
    code, out, err = _cli(capsys, "ground", "head", "--cosign", str(path), "--rpc", anvil.url,
                          "--keystore", str(bob))
    assert (code, out) == (1, "")
    assert f"this node's block {head.number} is 0x" in err
    assert f"not the signed 0x{head.hash.hex()}" in err and err.count("\n") == 1
    assert path.read_text() == before  # nothing signed, nothing written


@pytest.mark.devnet
def test_head_of_a_block_from_the_future_is_refused(
        operator_files: list[tuple[Path, bytes]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORBITAL_KEYSTORE_PASSWORD", PASSWORD)
    addresses = ",".join("0x" + a.hex() for _, a in operator_files)
    path = tmp_path / "head.json"
    with start_anvil() as node:  # its own chain: the clock moves forward for good
        node.rpc("evm_mine", int(time.time()) + 3600)
        for index, (keystore_file, _) in enumerate(operator_files[:2]):
            mode = ["--out", str(path)] if index == 0 else ["--cosign", str(path)]
            code, _, err = _cli(capsys, "ground", "head", "--rpc", node.url, "--keystore",
                                str(keystore_file), *mode)
            assert code == 0, err
    code, _, err = _cli(capsys, "ground", "verify-head", str(path), "--operators", addresses,
                        "--threshold", "2", "--chain-id", "31337")
    assert code == 1 and err.startswith("orbital: head rejected (future): block 1 has ")


def test_sign_head_by_signs_in_turn_and_refuses_no_signer_or_one_twice() -> None:
    both = sign_head_by(HEAD, [A, B])
    assert [s.signer for s in both.signatures] == [bytes(A.address), bytes(B.address)]
    assert both == add_signature(sign_head(HEAD, A), B)
    with pytest.raises(ValueError, match="no signers"):
        sign_head_by(HEAD, [])
    with pytest.raises(MalformedRequestError, match="already signed"):
        sign_head_by(HEAD, [A, B, A])
