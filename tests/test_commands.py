"""Operator command envelopes (wallet/commands.py): EIP-712 digest against independent
computations, the envelope file format, co-signing, and every rejection the satellite makes
(replay, window, signers, threshold, tampering, domain, high-s, concurrency)."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from wallet.commands import (
    DEFAULT_MAX_LIFETIME,
    MAX_ENVELOPE_BYTES,
    UINT64_MAX,
    Command,
    CommandKind,
    CommandVerifier,
    Envelope,
    NonceStore,
    SignatureEntry,
    VerifiedCommand,
    add_signature,
    build_command,
    canonical_json,
    command_digest,
    envelope_from_json,
    envelope_to_json,
    payload_hash,
    satellite_id,
    sign_command,
)
from wallet.errors import CommandRejectedError, MalformedRequestError
from wallet.keys.signer import SECP256K1_N, Signature, recover_address

from signers import SoftwareSigner, labelled_signer

T0 = 1_750_000_000
CHAIN = 31337
SAT = satellite_id("sat-1")
A, B, C = (labelled_signer(name) for name in ("alice", "bob", "carol"))
OUTSIDER = labelled_signer("mallory")
TX = {"from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "value": "0xde0b6b3a7640000",
      "gas": "0x5208", "maxFeePerGas": "0x3b9aca00", "maxPriorityFeePerGas": "0x1",
      "nonce": "0x0", "chainId": hex(CHAIN), "type": "0x2"}


def command(nonce: int = 1, payload: dict[str, Any] | None = None, **changes: Any) -> Command:
    fields: dict[str, Any] = {"kind": CommandKind.SIGN_TRANSACTION, "payload": payload or TX,
                              "nonce": nonce, "not_before": T0, "expiry": T0 + 3600,
                              "satellite_id": SAT, "chain_id": CHAIN}
    fields.update(changes)
    return build_command(**fields)


def envelope(*signers: SoftwareSigner, nonce: int = 1, **changes: Any) -> Envelope:
    payload = changes.pop("payload", TX)
    result = Envelope(command(nonce, payload, **changes), payload)
    for signer in signers:
        result = add_signature(result, signer)
    return result


@pytest.fixture
def store(tmp_path: Path) -> Iterator[NonceStore]:
    with NonceStore(tmp_path / "nonces.sqlite") as nonce_store:
        yield nonce_store


def verifier(nonce_store: NonceStore, threshold: int = 2, **changes: Any) -> CommandVerifier:
    fields: dict[str, Any] = {"operators": {A.address, B.address, C.address},
                              "threshold": threshold, "satellite_id": SAT, "chain_id": CHAIN,
                              "nonce_store": nonce_store}
    fields.update(changes)
    return CommandVerifier(**fields)


def rejected(check: CommandVerifier, env: Envelope, now: int = T0 + 10) -> str:
    with pytest.raises(CommandRejectedError) as info:
        check.verify(env, now)
    assert info.value.exit_code == 9
    return str(info.value)


def edited(env: Envelope, edit: Any) -> Envelope:
    """``env`` after a round trip through its JSON file, ``edit(document)`` applied."""
    document = json.loads(envelope_to_json(env))
    edit(document)
    return envelope_from_json(json.dumps(document))


# --------------------------------------------------------------------------- digest


def test_digest_matches_eth_account_and_signature_recovers() -> None:
    cmd = command(nonce=7)
    document = {  # written out independently of wallet.commands
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"},
                             {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"}],
            "Command": [{"name": "kind", "type": "string"},
                        {"name": "payloadHash", "type": "bytes32"},
                        {"name": "nonce", "type": "uint64"},
                        {"name": "notBefore", "type": "uint64"},
                        {"name": "expiry", "type": "uint64"},
                        {"name": "satelliteId", "type": "bytes32"}],
        },
        "primaryType": "Command",
        "domain": {"name": "orbital-command", "version": "1", "chainId": CHAIN},
        "message": {"kind": "sign_transaction",
                    "payloadHash": "0x" + keccak(json.dumps(
                        TX, sort_keys=True, separators=(",", ":")).encode()).hex(),
                    "nonce": 7, "notBefore": T0, "expiry": T0 + 3600,
                    "satelliteId": "0x" + keccak(b"sat-1").hex()},
    }
    signable = encode_typed_data(full_message=document)
    reference = Account.sign_message(signable, A.private_key)
    assert command_digest(cmd) == bytes(reference.message_hash)

    entry = sign_command(cmd, A)
    recovered = Account.recover_message(signable, signature=entry.signature)
    assert recovered == to_checksum_address(A.address)
    assert entry.signature == bytes(reference.signature)  # both RFC 6979 and low-s


def test_digest_matches_hand_computed_eip712_encoding() -> None:
    cmd = command(nonce=3)

    def word(n: int) -> bytes:
        return n.to_bytes(32, "big")

    domain_type = b"EIP712Domain(string name,string version,uint256 chainId)"
    domain_separator = keccak(keccak(domain_type) + keccak(b"orbital-command") + keccak(b"1")
                              + word(CHAIN))
    struct_type = (b"Command(string kind,bytes32 payloadHash,uint64 nonce,uint64 notBefore,"
                   b"uint64 expiry,bytes32 satelliteId)")
    struct_hash = keccak(keccak(struct_type) + keccak(b"sign_transaction") + cmd.payload_hash
                         + word(3) + word(T0) + word(T0 + 3600) + SAT)
    assert command_digest(cmd) == keccak(b"\x19\x01" + domain_separator + struct_hash)


def test_digest_separates_satellites_chains_and_every_field() -> None:
    base = command()
    variants = [dataclasses.replace(base, **{name: value}) for name, value in [
        ("kind", "unlock_token"), ("payload_hash", b"\x01" * 32), ("nonce", 2),
        ("not_before", T0 + 1), ("expiry", T0 + 3601), ("satellite_id", satellite_id("sat-2")),
        ("chain_id", 1)]]
    digests = {command_digest(c) for c in [base, *variants]}
    assert len(digests) == 1 + len(variants)


def test_satellite_id_and_canonical_payload() -> None:
    assert satellite_id("sat-1") == keccak(b"sat-1") != satellite_id("sat-2")
    assert canonical_json({"b": [1, {"y": None, "x": True}], "a": "é"}) == \
        b'{"a":"\\u00e9","b":[1,{"x":true,"y":null}]}'
    assert payload_hash({"b": 1, "a": 2}) == payload_hash({"a": 2, "b": 1})
    with pytest.raises(MalformedRequestError, match=r"payload\.value: non-integer"):
        canonical_json({"value": 1.5})
    with pytest.raises(MalformedRequestError, match="payload: expected a JSON object"):
        canonical_json([1, 2])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- happy paths


def test_two_of_three_accepted(store: NonceStore) -> None:
    check = verifier(store)
    env = envelope(A, C, payload=dict(TX))
    verified = check.verify(env, T0 + 10)
    assert isinstance(verified, VerifiedCommand)
    assert verified.signers == tuple(sorted([A.address, C.address]))
    assert verified.payload == TX and verified.command == env.command
    assert verified.kind is CommandKind.SIGN_TRANSACTION
    env.payload["value"] = "0x0"  # type: ignore[index]  # the caller's dict, not the verified one
    assert verified.payload == TX
    assert verified.digest == command_digest(env.command)
    assert store.last_nonce(SAT) is None  # verify consumes nothing
    check.accept(verified, T0 + 11)
    assert store.last_nonce(SAT) == 1


def test_cosigning_through_the_json_file(store: NonceStore) -> None:
    check = verifier(store)
    # operator A builds and signs, writes the file
    file_a = envelope_to_json(add_signature(Envelope(command(), TX), A))
    only_a = envelope_from_json(file_a)
    assert "(threshold): 1 distinct" in rejected(check, only_a)
    # operator B reads it, adds a signature, writes it back
    file_ab = envelope_to_json(add_signature(envelope_from_json(file_a), B))
    both = envelope_from_json(file_ab.encode())
    assert [e.signer for e in both.signatures] == [A.address, B.address]
    assert envelope_to_json(both) == file_ab  # the format round-trips exactly
    check.accept(check.verify(both, T0), T0)


def test_payload_hash_ignores_key_order_and_whitespace_of_the_file(store: NonceStore) -> None:
    text = envelope_to_json(envelope(A, B))
    document = json.loads(text)
    document["payload"] = dict(reversed(list(document["payload"].items())))
    verifier(store).verify(envelope_from_json(json.dumps(document, indent=7)), T0)


# --------------------------------------------------------------------------- replay, nonce


def test_replay_rejected_also_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "nonces.sqlite"
    env = envelope(A, B, nonce=5)
    with NonceStore(path) as first:
        check = verifier(first)
        verified = check.verify(env, T0)
        check.accept(verified, T0)
        assert "nonce 5 is not greater than the last accepted nonce 5" in rejected(check, env)
        with pytest.raises(CommandRejectedError, match="already accepted: replay"):
            check.accept(verified, T0 + 1)  # a verified command cannot be accepted twice
    with NonceStore(path) as restarted:  # the satellite rebooted
        assert restarted.last_nonce(SAT) == 5
        message = rejected(verifier(restarted), envelope_from_json(envelope_to_json(env)))
        assert "(nonce)" in message


def test_lower_or_equal_nonce_rejected_higher_accepted(store: NonceStore) -> None:
    check = verifier(store)
    check.accept(check.verify(envelope(A, B, nonce=5), T0), T0)
    other_payload = {**TX, "nonce": "0x1"}
    for nonce in (0, 4, 5):
        message = rejected(check, envelope(A, B, nonce=nonce, payload=other_payload))
        assert f"nonce {nonce} is not greater than the last accepted nonce 5" in message
    check.accept(check.verify(envelope(A, B, nonce=6), T0), T0)
    check.accept(check.verify(envelope(B, C, nonce=UINT64_MAX), T0), T0)  # uint64 fits
    assert store.last_nonce(SAT) == UINT64_MAX


def test_nonces_are_per_satellite(store: NonceStore) -> None:
    other = satellite_id("sat-2")
    verifier(store).accept(verifier(store).verify(envelope(A, B, nonce=9), T0), T0)
    check = verifier(store, satellite_id=other)
    check.accept(check.verify(envelope(A, B, nonce=1, satellite_id=other), T0), T0)
    assert (store.last_nonce(SAT), store.last_nonce(other)) == (9, 1)


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "two-connections"])
def test_concurrent_accept_of_one_nonce_exactly_one_wins(tmp_path: Path, shared: bool) -> None:
    path = tmp_path / "nonces.sqlite"
    stores = [NonceStore(path)] if shared else [NonceStore(path), NonceStore(path)]
    checks = [verifier(stores[0]), verifier(stores[-1])]
    try:
        for nonce in range(1, 21):
            env = envelope(A, B, nonce=nonce)
            verified = [check.verify(env, T0) for check in checks]  # both pass verify
            barrier = threading.Barrier(2)
            outcomes: list[str] = []

            def accept(i: int, verified: list[VerifiedCommand] = verified,
                       barrier: threading.Barrier = barrier,
                       outcomes: list[str] = outcomes) -> None:
                barrier.wait()
                try:
                    checks[i].accept(verified[i], T0)
                    outcomes.append("accepted")
                except CommandRejectedError:
                    outcomes.append("rejected")

            threads = [threading.Thread(target=accept, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(outcomes) == ["accepted", "rejected"], nonce
            assert stores[0].last_nonce(SAT) == nonce
    finally:
        for nonce_store in stores:
            nonce_store.close()


# --------------------------------------------------------------------------- time window


def test_time_window(store: NonceStore) -> None:
    check = verifier(store)
    env = envelope(A, B)  # valid in [T0, T0 + 3600)
    assert "not valid before 1750000000, now 1749999999" in rejected(check, env, T0 - 1)
    assert "expired at 1750003600, now 1750003600" in rejected(check, env, T0 + 3600)
    check.verify(env, T0)
    verified = check.verify(env, T0 + 3599)
    with pytest.raises(CommandRejectedError, match="expired"):
        check.accept(verified, T0 + 3600)  # the window closed between verify and accept
    assert store.last_nonce(SAT) is None


def test_lifetime_bounded_and_configurable(store: NonceStore) -> None:
    longest = envelope(A, B, expiry=T0 + DEFAULT_MAX_LIFETIME)
    verifier(store).verify(longest, T0)
    too_long = envelope(A, B, expiry=T0 + DEFAULT_MAX_LIFETIME + 1)
    message = rejected(verifier(store), too_long, T0)
    assert f"lifetime {DEFAULT_MAX_LIFETIME + 1} s" in message
    assert f"maximum {DEFAULT_MAX_LIFETIME} s" in message
    assert "lifetime 3600 s" in rejected(verifier(store, max_lifetime=600), envelope(A, B), T0)


# --------------------------------------------------------------------------- signers


def test_unknown_signer_rejects_the_envelope(store: NonceStore) -> None:
    message = rejected(verifier(store), envelope(A, B, OUTSIDER))  # threshold met regardless
    assert f"signature 2 is by {to_checksum_address(OUTSIDER.address)}, not a known " \
           "operator" in message


def test_too_few_signers(store: NonceStore) -> None:
    assert "(threshold): 0 distinct operator signature(s) (none), 2 required" in \
        rejected(verifier(store), envelope())
    assert "(threshold): 1 distinct" in rejected(verifier(store), envelope(C))
    assert "3 required" in rejected(verifier(store, threshold=3), envelope(A, C))
    verifier(store, threshold=1).verify(envelope(C), T0)


def test_duplicate_signatures_of_one_operator_count_once(store: NonceStore) -> None:
    env = envelope(A)
    doubled = dataclasses.replace(env, signatures=env.signatures * 3)
    message = rejected(verifier(store), doubled)
    assert f"1 distinct operator signature(s) ({to_checksum_address(A.address)})" in message
    with pytest.raises(MalformedRequestError, match="has already signed"):
        add_signature(env, A)
    verified = verifier(store).verify(dataclasses.replace(
        doubled, signatures=(*doubled.signatures, *envelope(B).signatures)), T0)
    assert verified.signers == tuple(sorted([A.address, B.address]))


def test_signature_with_a_false_signer_claim_rejected(store: NonceStore) -> None:
    env = envelope(A, B)
    swapped = dataclasses.replace(env, signatures=(
        SignatureEntry(C.address, env.signatures[0].signature), env.signatures[1]))
    assert "signature 0 (claimed signer" in rejected(verifier(store), swapped)


def test_high_s_signature_rejected(store: NonceStore) -> None:
    env = envelope(A, B)
    raw = env.signatures[1].signature
    r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
    high_s, flipped_v = SECP256K1_N - s, 55 - v  # the same signature, other parity
    digest = command_digest(env.command)
    assert recover_address(digest, Signature(r, high_s, flipped_v - 27)) == B.address
    malleated = SignatureEntry(B.address, raw[:32] + high_s.to_bytes(32, "big")
                               + bytes([flipped_v]))
    bad = dataclasses.replace(env, signatures=(env.signatures[0], malleated))
    assert "signature 1" in (message := rejected(verifier(store), bad))
    assert "high-s" in message


@pytest.mark.parametrize("v", [0, 1, 29, 37])
def test_v_other_than_27_or_28_rejected(store: NonceStore, v: int) -> None:
    env = envelope(A, B)
    entry = env.signatures[0]
    bad = dataclasses.replace(env, signatures=(
        SignatureEntry(entry.signer, entry.signature[:64] + bytes([v])), env.signatures[1]))
    assert f"v = {v}" in rejected(verifier(store), bad)


def test_zero_r_rejected(store: NonceStore) -> None:
    env = envelope(A, B)
    bad = dataclasses.replace(env, signatures=(
        SignatureEntry(A.address, bytes(32) + env.signatures[0].signature[32:]),))
    assert "out of range" in rejected(verifier(store, threshold=1), bad)


# --------------------------------------------------------------------------- tampering, domain


def test_tampered_payload_rejected(store: NonceStore) -> None:
    def steal(document: dict[str, Any]) -> None:
        document["payload"]["to"] = "0x" + "66" * 20

    message = rejected(verifier(store), edited(envelope(A, B), steal))
    assert "(payload): payloadHash 0x" in message
    assert "!= keccak256(canonical payload)" in message


@pytest.mark.parametrize(("field", "value"), [
    ("kind", "unlock_token"), ("nonce", 2), ("notBefore", T0 - 60), ("expiry", T0 + 7200),
    ("payloadHash", "0x" + payload_hash({**TX, "value": "0x1"}).hex()),
])
def test_tampered_command_fields_no_longer_recover(store: NonceStore, field: str,
                                                   value: Any) -> None:
    def tamper(document: dict[str, Any]) -> None:
        document["command"][field] = value
        if field == "payloadHash":
            document["payload"]["value"] = "0x1"

    message = rejected(verifier(store), edited(envelope(A, B), tamper))
    assert "command rejected (signatures): signature 0" in message
    assert "changed after signing" in message or "recovers to no key" in message


def test_wrong_chain_or_satellite_rejected(store: NonceStore) -> None:
    assert "(domain): chainId 1 is not this satellite's chain 31337" in \
        rejected(verifier(store), envelope(A, B, chain_id=1, payload={**TX, "chainId": 1}))
    message = rejected(verifier(store), envelope(A, B, satellite_id=satellite_id("sat-2")))
    assert f"(satellite): satelliteId 0x{satellite_id('sat-2').hex()}" in message
    # the same signatures, chain id edited in the file: the domain no longer matches
    forged = edited(envelope(A, B, chain_id=1, payload={**TX, "chainId": 1}),
                    lambda d: d["domain"].update(chainId=CHAIN))
    assert "(signatures)" in rejected(verifier(store), forged)


def test_unsupported_kind_rejected_after_signatures(store: NonceStore) -> None:
    cmd = dataclasses.replace(command(), kind="unlock_token")
    env = Envelope(cmd, TX, (sign_command(cmd, A), sign_command(cmd, B)))
    assert "(kind): 'unlock_token' is not a kind this satellite supports" in \
        rejected(verifier(store), env)


def test_transaction_for_another_chain_rejected(store: NonceStore) -> None:
    payload = {**TX, "chainId": "0x1"}
    cmd = Command("sign_transaction", payload_hash(payload), 1, T0, T0 + 60, SAT, CHAIN)
    env = Envelope(cmd, payload, (sign_command(cmd, A), sign_command(cmd, B)))
    assert "transaction chainId 1 differs from the command's chainId 31337" in \
        rejected(verifier(store), env)
    with pytest.raises(CommandRejectedError, match="differs"):
        command(payload=payload)


def test_cosigner_refuses_a_tampered_file() -> None:
    env = envelope(A)
    with pytest.raises(CommandRejectedError, match="payloadHash"):
        add_signature(edited(env, lambda d: d["payload"].update(value="0x0")), B)
    with pytest.raises(CommandRejectedError, match="signature 0"):
        add_signature(edited(env, lambda d: d["command"].update(nonce=99)), B)


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize(("changes", "match"), [
    ({"kind": "launch_missiles"}, "unknown kind 'launch_missiles'; known: sign_transaction"),
    ({"expiry": T0}, "command.expiry: 1750000000 is not after command.notBefore"),
    ({"nonce": -1}, r"command\.nonce: expected an integer"),
    ({"nonce": UINT64_MAX + 1}, r"command\.nonce"),
    ({"nonce": True}, r"command\.nonce"),
    ({"satellite_id": b"\x00" * 31}, r"command\.satelliteId: expected 32 bytes"),
    ({"chain_id": 0}, r"domain\.chainId: must not be 0"),
    ({"payload": {"value": 0.5}}, r"payload\.value: non-integer"),
    ({"payload": {"chainId": [1]}}, r"payload\.chainId: expected an integer"),
])
def test_build_command_rejects_bad_arguments(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedRequestError, match=match):
        command(**changes)


def test_verifier_configuration_checked(store: NonceStore) -> None:
    for threshold in (0, 4, True):
        with pytest.raises(MalformedRequestError, match="threshold"):
            verifier(store, threshold=threshold)
    with pytest.raises(MalformedRequestError, match="max_lifetime"):
        verifier(store, max_lifetime=0)


# --------------------------------------------------------------------------- file format


def _good() -> dict[str, Any]:
    return json.loads(envelope_to_json(envelope(A, B)))


def _set(path: str, value: Any) -> Any:
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


def _delete(path: str) -> Any:
    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        del target[last]
    return edit


MALFORMED_EDITS = [
    (_delete("payload"), r"envelope: missing field\(s\) payload"),
    (_set("extra", 1), r"envelope: unknown field\(s\) extra"),
    (_set("version", 2), "version: expected 1, got 2"),
    (_set("version", True), "version: expected 1"),
    (_set("domain.name", "other"), "domain.name: expected 'orbital-command'"),
    (_set("domain.version", "2"), "domain.version: expected '1'"),
    (_set("domain.salt", "0x" + "00" * 32), r"domain: unknown field\(s\) salt"),
    (_set("domain.chainId", "31337"), r"domain\.chainId: expected an integer"),
    (_delete("command.expiry"), r"command: missing field\(s\) expiry"),
    (_set("command.memo", "hi"), r"command: unknown field\(s\) memo"),
    (_set("command.kind", 5), "command.kind: expected a string"),
    (_set("command.kind", "Sign_Transaction"), "command.kind: expected a lowercase identifier"),
    (_set("command.nonce", -1), r"command\.nonce: expected an integer"),
    (_set("command.nonce", 2**64), r"command\.nonce: expected an integer"),
    (_set("command.notBefore", "0x1"), r"command\.notBefore: expected an integer"),
    (_set("command.payloadHash", "0x" + "ab" * 31),
     r"command\.payloadHash: expected 32 bytes \(64 hex digits\), got 62"),
    (_set("command.payloadHash", "ab" * 32), r"command\.payloadHash: expected 0x-prefixed"),
    (_set("command.satelliteId", "0x" + "zz" * 32), r"command\.satelliteId: expected 0x-pre"),
    (_set("command.satelliteId", "0x" + "00 " * 21 + "0" * 1), r"command\.satelliteId"),
    (_set("payload", [1, 2]), "payload: expected a JSON object, got list"),
    (_set("payload.data", json.loads("[" * 33 + "]" * 33)), r"payload\.data(\[0\])+: nested deep"),
    (_set("signatures", {}), "signatures: expected an array"),
    (_set("signatures.0", "0x00"), r"signatures\[0\]: expected an object"),
    (_set("signatures.1.note", "x"), r"signatures\[1\]: unknown field\(s\) note"),
    (_delete("signatures.0.signer"), r"signatures\[0\]: missing field\(s\) signer"),
    (_set("signatures.0.signature", "0x" + "11" * 64),
     r"signatures\[0\]\.signature: expected 65 bytes \(130 hex digits\), got 128"),
    (_set("signatures.1.signer", "0x" + "11" * 19), r"signatures\[1\]\.signer: expected 20"),
    (_set("signatures.1.signer", "0x" + "aB" * 20),
     r"signatures\[1\]\.signer: 0x(aB){20} fails its EIP-55 checksum"),
]


@pytest.mark.parametrize(("edit", "match"), MALFORMED_EDITS)
def test_malformed_envelope_names_the_field(edit: Any, match: str) -> None:
    document = _good()
    edit(document)
    with pytest.raises(MalformedRequestError, match=match) as info:
        envelope_from_json(json.dumps(document))
    assert info.value.exit_code == 2


@pytest.mark.parametrize(("text", "match"), [
    ("", "not valid JSON"),
    ("{", "not valid JSON"),
    (b"\xff\xfe{}", "envelope: not UTF-8"),
    ("[]", "envelope: expected an object, got list"),
    ('{"version": 1, "version": 1}', "duplicate JSON key 'version'"),
    ("[" * 100_000 + "]" * 100_000, "envelope: JSON nested deeper than 36 levels"),
    ('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', "missing field"),
])
def test_unreadable_envelope(text: str | bytes, match: str) -> None:
    with pytest.raises(MalformedRequestError, match=match):
        envelope_from_json(text)


def test_ambiguous_payload_refused() -> None:
    text = envelope_to_json(envelope(A, B))
    duplicate_key = text.replace('"to": ', '"to": "0x' + "66" * 20 + '", "to": ', 1)
    with pytest.raises(MalformedRequestError, match="duplicate JSON key 'to'"):
        envelope_from_json(duplicate_key)
    for number in ("1.0", "1e3", "NaN", "Infinity"):
        with pytest.raises(MalformedRequestError, match="non-integer number"):
            envelope_from_json(text.replace('"gas": "0x5208"', f'"gas": {number}'))
    with pytest.raises(MalformedRequestError, match="larger than"):
        envelope_from_json(" " * (MAX_ENVELOPE_BYTES + 1))


def test_checksummed_lower_and_upper_case_addresses_accepted() -> None:
    document = _good()
    assert document["signatures"][0]["signer"] == to_checksum_address(A.address)
    document["signatures"][0]["signer"] = "0x" + A.address.hex()
    document["signatures"][1]["signer"] = "0x" + B.address.hex().upper()
    env = envelope_from_json(json.dumps(document))
    assert [e.signer for e in env.signatures] == [A.address, B.address]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=10)


@settings(max_examples=60, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=6).filter(lambda k: k != "chainId"),
                               json_values, max_size=4),
       nonce=st.integers(0, UINT64_MAX), not_before=st.integers(0, UINT64_MAX - 1),
       lifetime=st.integers(1, 10**6), chain_id=st.integers(1, 2**256 - 1),
       signers=st.sets(st.sampled_from([A, B, C]), max_size=3))
def test_envelope_file_round_trips(payload: dict[str, Any], nonce: int, not_before: int,
                                   lifetime: int, chain_id: int,
                                   signers: set[SoftwareSigner]) -> None:
    cmd = build_command("sign_transaction", payload, nonce, not_before,
                        min(not_before + lifetime, UINT64_MAX), SAT, chain_id)
    env = Envelope(cmd, payload)
    for signer in sorted(signers, key=lambda s: s.address):
        env = add_signature(env, signer)
    text = envelope_to_json(env)
    again = envelope_from_json(text)
    assert again == env
    assert payload_hash(again.payload) == cmd.payload_hash
    assert envelope_to_json(again) == text
