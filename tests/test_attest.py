"""node/attest without a chain: signing (raw Signer and the on-board policy + audit path),
verifying peers' attestations and every refusal, the gossip codec, certificate assembly and
durable equivocation detection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import eip712
from node.attest import (
    AttestationError,
    BadSignature,
    CertificateBuilder,
    DecodeError,
    EquivocationDetector,
    Evidence,
    HighS,
    MalformedSignature,
    SignedAttestation,
    StaticRegistry,
    UnknownSigner,
    WrongDomain,
    WrongModel,
    attest,
    batch_certificate,
    codec,
    decode,
    encode,
    message_id,
    verify_attestation,
)
from node.attest.attestation import recover_signer
from wallet.audit import AuditLog
from wallet.errors import PolicyDeniedError
from wallet.onboard import OnboardSigner
from wallet.policy import PolicyLedger, parse_policy

from contracts_chain import high_s
from signers import SoftwareSigner, labelled_signer

CHAIN_ID = 31337
CONTRACT = bytes.fromhex("5FbDB2315678afecb367f032d93F642f64180aa3")
OTHER_CONTRACT = bytes.fromhex("e7f1725E7734CE288F8367e1Bb143E90bb3F0512")
MODEL = b"\x11" * 32
INPUT = b"\x22" * 32
TASK = b"\x33" * 32

POLICY = """version = 1
chain_id = 31337
[limits]
per_transaction = 0
per_24h = 0
[fees]
max_total_fee = "0.01 ether"
"""
ALLOW_ATTESTATIONS = f"""
[[messages.typed_data]]
name = "OrbitalTaskAttestations"
version = "1"
chain_id = {CHAIN_ID}
verifying_contract = "0x{CONTRACT.hex()}"
primary_types = ["TaskResult"]
"""

SIGNERS = [labelled_signer(f"sat-{i}") for i in range(5)]


def result(output: bytes = b"\x44" * 32, *, task: bytes = TASK, epoch: int = 7,
           model: bytes = MODEL) -> eip712.TaskResult:
    return eip712.TaskResult(task, model, INPUT, output, epoch)


def signed(signer: SoftwareSigner = SIGNERS[0], res: eip712.TaskResult | None = None
           ) -> SignedAttestation:
    return attest(res or result(), signer, CHAIN_ID, CONTRACT)


def registry() -> StaticRegistry:
    return StaticRegistry(s.address for s in SIGNERS)


def check(att: SignedAttestation) -> bytes:
    return verify_attestation(att, registry(), {MODEL}, chain_id=CHAIN_ID, contract=CONTRACT)


def onboard(tmp_path: Path, policy_text: str) -> tuple[OnboardSigner, AuditLog]:
    audit = AuditLog(tmp_path / "audit.sqlite", labelled_signer("audit"))
    ledger = PolicyLedger(tmp_path / "ledger.sqlite")
    policy = parse_policy(policy_text.encode(), "test.toml")
    return OnboardSigner(SIGNERS[0], policy, ledger, audit), audit


# --------------------------------------------------------------------------- signing


def test_raw_signer_attestation_verifies() -> None:
    att = signed()
    assert att.signer == SIGNERS[0].address and len(att.signature) == 65
    assert att.signature[64] in (27, 28)
    assert att.digest == eip712.task_result_digest(result(), CHAIN_ID, CONTRACT)
    assert check(att) == SIGNERS[0].address


def test_hex_contract_address_is_accepted() -> None:
    att = attest(result(), SIGNERS[1], CHAIN_ID, "0x" + CONTRACT.hex())
    assert att.contract == CONTRACT and check(att) == SIGNERS[1].address


def test_high_s_backend_still_gives_a_low_s_attestation() -> None:
    att = attest(result(), SoftwareSigner("sat-0 hsm", high_s=True), CHAIN_ID, CONTRACT)
    assert int.from_bytes(att.signature[32:64], "big") <= eip712.HALF_N
    assert recover_signer(att.digest, att.signature) == att.signer


def test_onboard_signer_signs_through_policy_and_audit(tmp_path: Path) -> None:
    signer, audit = onboard(tmp_path, POLICY + ALLOW_ATTESTATIONS)
    with audit:
        att = attest(result(), signer, CHAIN_ID, CONTRACT)
        # the same signature as the raw key over the contract's digest (RFC 6979: deterministic)
        assert att.signature == signed().signature
        assert check(att) == SIGNERS[0].address
        entries = audit.entries()
    kinds = [e.kind for e in entries]
    assert kinds[-2:] == ["policy_decision", "signed"]
    decision = entries[-2].payload_json()
    assert decision["decision"]["outcome"] == "allow"
    assert entries[-1].payload_json()["signature"] in (
        att.signature.hex(), "0x" + att.signature.hex())


def test_onboard_signer_refuses_an_unlisted_domain(tmp_path: Path) -> None:
    signer, audit = onboard(tmp_path, POLICY)
    with audit:
        with pytest.raises(PolicyDeniedError):
            attest(result(), signer, CHAIN_ID, CONTRACT)
        entries = audit.entries()
    assert [e.kind for e in entries][-1] == "policy_decision"
    assert entries[-1].payload_json()["decision"]["outcome"] == "deny"
    assert "signed" not in [e.kind for e in entries]


def test_onboard_signer_refuses_another_contract(tmp_path: Path) -> None:
    signer, audit = onboard(tmp_path, POLICY + ALLOW_ATTESTATIONS)
    with audit, pytest.raises(PolicyDeniedError):
        attest(result(), signer, CHAIN_ID, OTHER_CONTRACT)


def test_something_that_cannot_sign_is_refused() -> None:
    with pytest.raises(TypeError):
        attest(result(), object(), CHAIN_ID, CONTRACT)


# --------------------------------------------------------------------------- verifying


def _with(att: SignedAttestation, **changes: object) -> SignedAttestation:
    fields = {"result": att.result, "signer": att.signer, "signature": att.signature,
              "chain_id": att.chain_id, "contract": att.contract, **changes}
    return SignedAttestation(**fields)  # type: ignore[arg-type]


def _reason(exc: pytest.ExceptionInfo[AttestationError]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


def test_tampered_result_is_refused() -> None:
    att = signed()
    with pytest.raises(BadSignature) as exc:
        check(_with(att, result=result(b"\x45" * 32)))
    assert "not the claimed signer" in _reason(exc)


def test_wrong_signer_claim_is_refused() -> None:
    with pytest.raises(BadSignature):
        check(_with(signed(), signer=SIGNERS[1].address))


def test_high_s_is_refused() -> None:
    with pytest.raises(HighS):
        check(_with(signed(), signature=high_s(signed().signature)))


@pytest.mark.parametrize("v", [0, 1, 26, 29, 255])
def test_bad_v_is_refused(v: int) -> None:
    sig = signed().signature
    with pytest.raises(MalformedSignature) as exc:
        recover_signer(signed().digest, sig[:64] + bytes([v]))
    assert f"v is {v}" in _reason(exc)


@pytest.mark.parametrize("length", [0, 64, 66])
def test_wrong_signature_length_is_refused(length: int) -> None:
    with pytest.raises(MalformedSignature):
        recover_signer(signed().digest, (signed().signature * 2)[:length])
    with pytest.raises(ValueError):  # a SignedAttestation cannot even hold one
        _with(signed(), signature=b"\x01" * length)


@pytest.mark.parametrize("r_s", [(0, 1), (1, 0), (eip712.SECP256K1_N, 1)])
def test_out_of_range_r_or_s_is_refused(r_s: tuple[int, int]) -> None:
    r, s = r_s
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big") + b"\x1b"
    with pytest.raises(MalformedSignature):
        check(_with(signed(), signature=sig))


def test_unknown_signer_is_refused() -> None:
    att = signed(labelled_signer("stranger"))
    with pytest.raises(UnknownSigner) as exc:
        check(att)
    assert "0x" + att.signer.hex() in _reason(exc)


def test_deactivated_signer_is_refused() -> None:
    view = registry()
    att = signed(SIGNERS[2])
    assert verify_attestation(att, view, {MODEL}) == SIGNERS[2].address
    view.active.discard(SIGNERS[2].address)
    with pytest.raises(UnknownSigner):
        verify_attestation(att, view, {MODEL})


def test_wrong_model_is_refused() -> None:
    att = signed(res=result(model=b"\x99" * 32))
    with pytest.raises(WrongModel):
        check(att)
    assert verify_attestation(att, registry(), {MODEL, b"\x99" * 32}) == att.signer


@pytest.mark.parametrize("change", [{"chain_id": 1}, {"contract": OTHER_CONTRACT}])
def test_other_domain_recovers_to_another_address(change: dict[str, object]) -> None:
    moved = _with(signed(), **change)
    assert recover_signer(moved.digest, moved.signature) != SIGNERS[0].address
    with pytest.raises(BadSignature):  # without the node's own domain given
        verify_attestation(moved, registry(), {MODEL})
    with pytest.raises(WrongDomain):  # with it: refused before recovery
        check(moved)


def test_every_refusal_is_an_attestation_error() -> None:
    for cls in (BadSignature, HighS, MalformedSignature, UnknownSigner, WrongModel,
                WrongDomain):
        assert issubclass(cls, AttestationError)


# --------------------------------------------------------------------------- codec

words = st.binary(min_size=32, max_size=32)
attestations = st.builds(
    SignedAttestation,
    result=st.builds(eip712.TaskResult, words, words, words, words,
                     st.integers(0, 2**64 - 1)),
    signer=st.binary(min_size=20, max_size=20),
    signature=st.binary(min_size=65, max_size=65),
    chain_id=st.integers(0, 2**64 - 1),
    contract=st.binary(min_size=20, max_size=20))


@settings(max_examples=200)
@given(attestations)
def test_codec_round_trip(att: SignedAttestation) -> None:
    data = encode(att)
    assert len(data) == codec.LENGTH == 250 and data[0] == codec.VERSION
    assert decode(data) == att
    assert encode(decode(data)) == data


@settings(max_examples=200)
@given(attestations, st.binary(min_size=1, max_size=8), st.integers(1, 249))
def test_codec_refuses_trailing_and_truncated(att: SignedAttestation, extra: bytes,
                                              cut: int) -> None:
    data = encode(att)
    with pytest.raises(DecodeError):
        decode(data + extra)
    with pytest.raises(DecodeError):
        decode(data[:cut])


@pytest.mark.parametrize("version", [0, 2, 255])
def test_codec_refuses_unknown_version(version: int) -> None:
    data = encode(signed())
    with pytest.raises(DecodeError, match="version"):
        decode(bytes([version]) + data[1:])


@pytest.mark.parametrize("data", [b"", "not bytes"])
def test_codec_refuses_nothing_and_non_bytes(data: object) -> None:
    with pytest.raises(DecodeError):
        decode(data)  # type: ignore[arg-type]


def test_decoded_attestation_verifies_and_message_id_is_sha256() -> None:
    data = encode(signed())
    assert check(decode(bytearray(data))) == SIGNERS[0].address
    import hashlib
    assert message_id(data) == hashlib.sha256(data).digest()
    assert message_id(data) != message_id(encode(signed(SIGNERS[1])))


# --------------------------------------------------------------------------- certificates


def builder(quorum: int = 3) -> CertificateBuilder:
    return CertificateBuilder((TASK, MODEL, INPUT, quorum), CHAIN_ID, CONTRACT)


def test_certificate_needs_quorum_and_sorts_signers() -> None:
    b = builder(3)
    out = result().output_hash
    assert b.add(signed(SIGNERS[4]))
    assert b.add(signed(SIGNERS[0]))
    assert not b.ready(out)
    with pytest.raises(ValueError, match="2 of 3"):
        b.certificate(out)
    assert b.add(signed(SIGNERS[2]))
    assert b.ready(out) and b.ready_outputs() == [out]
    cert = b.certificate(out)
    assert list(cert.signers) == sorted(cert.signers, key=lambda a: int.from_bytes(a, "big"))
    assert set(cert.signers) == {SIGNERS[i].address for i in (0, 2, 4)}
    for signer, sig in zip(cert.signers, cert.signatures, strict=True):
        assert recover_signer(eip712.task_result_digest(cert.result, CHAIN_ID, CONTRACT),
                              sig) == signer
    res_tuple, sigs = cert.to_contract_args()
    assert res_tuple == result().as_tuple() and sigs == list(cert.signatures)


def test_duplicates_are_ignored() -> None:
    b = builder(2)
    assert b.add(signed(SIGNERS[1]))
    assert not b.add(signed(SIGNERS[1]))
    assert not b.add(decode(encode(signed(SIGNERS[1]))))
    assert b.count(result().output_hash) == 1 and not b.ready(result().output_hash)


def test_conflicting_outputs_are_grouped_apart() -> None:
    b = builder(2)
    a_out, b_out = b"\x44" * 32, b"\x55" * 32
    assert b.add(signed(SIGNERS[0], result(a_out)))
    assert b.add(signed(SIGNERS[1], result(b_out)))
    assert b.add(signed(SIGNERS[0], result(b_out)))  # an equivocator counts in both groups
    assert not b.ready(a_out) and b.ready(b_out)
    assert b.certificate(b_out).result.output_hash == b_out


def test_same_output_other_epoch_does_not_count_together() -> None:
    b = builder(2)
    assert b.add(signed(SIGNERS[0], result(epoch=1)))
    assert b.add(signed(SIGNERS[1], result(epoch=2)))
    assert not b.ready(result().output_hash)
    assert b.add(signed(SIGNERS[2], result(epoch=2)))
    assert b.certificate(result().output_hash).result.epoch == 2


def test_other_task_or_domain_is_not_added() -> None:
    b = builder(1)
    assert not b.add(signed(res=result(task=b"\x01" * 32)))
    assert not b.add(signed(res=result(model=b"\x01" * 32)))
    assert not b.add(attest(result(), SIGNERS[0], CHAIN_ID, OTHER_CONTRACT))
    assert not b.add(attest(result(), SIGNERS[0], 1, CONTRACT))
    assert b.ready_outputs() == []


def test_batch_certificate_orders_signatures_and_proves_members() -> None:
    from contracts import merkle
    results = [result(bytes([i + 1]) * 32, task=bytes([i]) * 32) for i in range(5)]
    cert = batch_certificate(results, SIGNERS[:3], CHAIN_ID, CONTRACT)
    root, epoch, count, sigs = cert.to_contract_args()
    assert (epoch, count) == (7, 5)
    digest = eip712.task_batch_digest(cert.batch, CHAIN_ID, CONTRACT)
    assert [recover_signer(digest, s) for s in sigs] == list(cert.signers)
    assert list(cert.signers) == sorted(cert.signers, key=lambda a: int.from_bytes(a, "big"))
    _, proof_root, proof, index = cert.proof(3)
    assert merkle.verify(eip712.task_result_hash_struct(results[3]), proof, index, 5, root)
    assert proof_root == root
    with pytest.raises(ValueError):
        batch_certificate([result(epoch=1), result(epoch=2)], SIGNERS[:1], CHAIN_ID, CONTRACT)


# --------------------------------------------------------------------------- equivocation


def test_equivocation_detected_once_and_durable(tmp_path: Path) -> None:
    path = tmp_path / "equivocation.sqlite"
    first = signed(SIGNERS[3], result(b"\x44" * 32))
    second = signed(SIGNERS[3], result(b"\x55" * 32))
    with EquivocationDetector(path) as detector:
        assert detector.observe(first) is None
        assert detector.observe(first) is None  # the same attestation again
        assert detector.observe(signed(SIGNERS[3], result(b"\x44" * 32, epoch=8))) is None
        assert detector.observe(signed(SIGNERS[1], result(b"\x55" * 32))) is None
        evidence = detector.observe(second)
        assert evidence == Evidence(first, second)
        assert detector.observe(second) is None  # once per signer and task
        assert detector.observe(signed(SIGNERS[3], result(b"\x66" * 32))) is None
    with EquivocationDetector(path) as reopened:
        assert reopened.evidence() == [evidence]
        # the first attestation survived the reopen too: no new evidence for this pair
        assert reopened.observe(signed(SIGNERS[3], result(b"\x77" * 32))) is None
        other_task = result(b"\x55" * 32, task=b"\x01" * 32)
        assert reopened.observe(signed(SIGNERS[3], result(b"\x44" * 32, task=b"\x01" * 32))
                                ) is None
        assert reopened.observe(signed(SIGNERS[3], other_task)) is not None
        assert len(reopened.evidence()) == 2
    a, sig_a, b_, sig_b = evidence.to_contract_args()
    assert a[3] != b_[3] and a[0] == b_[0] and sig_a == first.signature
    assert sig_b == second.signature and evidence.signer == SIGNERS[3].address


def test_equivocation_detector_refuses_forged_attestations(tmp_path: Path) -> None:
    with EquivocationDetector(tmp_path / "e.sqlite") as detector:
        forged = _with(signed(SIGNERS[0], result(b"\x55" * 32)), signer=SIGNERS[1].address)
        with pytest.raises(BadSignature):
            detector.observe(forged)
        assert detector.observe(signed(SIGNERS[1], result(b"\x44" * 32))) is None
        assert detector.evidence() == []


def test_evidence_must_be_an_equivocation() -> None:
    with pytest.raises(ValueError):
        Evidence(signed(SIGNERS[0]), signed(SIGNERS[1], result(b"\x55" * 32)))
    with pytest.raises(ValueError):
        Evidence(signed(SIGNERS[0]), signed(SIGNERS[0], result(epoch=9)))


def test_detector_uses_full_sync(tmp_path: Path) -> None:
    with EquivocationDetector(tmp_path / "e.sqlite") as detector:
        assert detector._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert detector._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert os.path.exists(tmp_path / "e.sqlite")
