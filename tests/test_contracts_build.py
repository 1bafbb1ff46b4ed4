"""The committed contract artifacts are exactly what the pinned compiler makes of the
committed sources; another compiler version is refused; and the Python EIP-712 digest
(contracts.eip712, the single definition) equals the contract's own.

These tests need node and npm solc 0.8.37 in tools/node_modules (`scripts/setup.sh --test`):
without them they fail, they never skip.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract

from contracts import build as contracts_build
from contracts import eip712, merkle
from contracts.build import (
    ARTIFACT_DIR,
    SETTINGS,
    SOLC_VERSION,
    ArtifactMismatchError,
    SolcNotFoundError,
    SolcVersionError,
    load_artifact,
    render,
)
from contracts.eip712 import TaskBatch, TaskResult
from node.devnet import Anvil

NAMES = ("SatelliteRegistry", "TaskAttestations")


@pytest.fixture(scope="module")
def fresh() -> dict[str, dict]:
    """A fresh in-memory compilation (also checks it against the committed files)."""
    return contracts_build.build(check=True)


def test_recompiled_artifacts_are_byte_identical(fresh: dict[str, dict]) -> None:
    assert sorted(fresh) == sorted(NAMES)
    for name in NAMES:
        committed = (ARTIFACT_DIR / f"{name}.json").read_bytes()
        assert committed == render(fresh[name]).encode()


def test_artifacts_record_compiler_settings_and_source(fresh: dict[str, dict]) -> None:
    for name in NAMES:
        artifact = load_artifact(name)
        assert artifact["contractName"] == name
        assert artifact["compiler"]["version"].startswith(SOLC_VERSION + "+commit.")
        assert artifact["compiler"]["settings"] == SETTINGS
        assert artifact["compiler"]["settings"]["evmVersion"] == "prague"
        source = Path(contracts_build.REPO_ROOT / artifact["source"])
        assert artifact["sourceHash"] == contracts_build.source_hash(source)
        assert artifact["bytecode"].startswith("0x") and len(artifact["bytecode"]) > 2
        # no absolute path of this machine anywhere
        assert str(contracts_build.REPO_ROOT) not in json.dumps(artifact)


def test_check_detects_a_stale_artifact(tmp_path: Path, fresh: dict[str, dict]) -> None:
    for name in NAMES:
        (tmp_path / f"{name}.json").write_text(render(fresh[name]))
    contracts_build.check_artifacts(fresh, tmp_path)  # identical: fine
    stale = dict(fresh["TaskAttestations"], bytecode="0x00")
    (tmp_path / "TaskAttestations.json").write_text(render(stale))
    with pytest.raises(ArtifactMismatchError, match=re.escape("TaskAttestations.json differs")):
        contracts_build.check_artifacts(fresh, tmp_path)
    (tmp_path / "TaskAttestations.json").write_text(render(fresh["TaskAttestations"]) + " ")
    with pytest.raises(ArtifactMismatchError, match="differs"):  # even one byte
        contracts_build.check_artifacts(fresh, tmp_path)
    (tmp_path / "SatelliteRegistry.json").unlink()
    with pytest.raises(ArtifactMismatchError, match="missing"):
        contracts_build.check_artifacts(fresh, tmp_path)


def test_other_compiler_version_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    contracts_build.check_version("0.8.37+commit.abcdef12.Emscripten.clang")
    for version in ("0.8.36", "0.8.30+commit.73712a01", "0.8.370"):
        with pytest.raises(SolcVersionError, match=re.escape("exactly 0.8.37")):
            contracts_build.check_version(version)
    fake = tmp_path / "solc"
    fake.mkdir()
    (fake / "package.json").write_text(json.dumps({"name": "solc", "version": "0.8.30"}))
    monkeypatch.setenv(contracts_build.SOLC_ENV, str(fake))
    with pytest.raises(SolcVersionError, match=re.escape("0.8.30")):
        contracts_build.build(check=True)


def test_missing_compiler_says_how_to_install(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contracts_build.SOLC_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(SolcNotFoundError, match=re.escape("scripts/setup.sh --test")):
        contracts_build.build(check=True)


def test_main_check_exit_codes(capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert contracts_build.main(["--check"]) == 0
    assert "matches" in capsys.readouterr().out
    monkeypatch.setenv(contracts_build.SOLC_ENV, str(tmp_path))
    assert contracts_build.main(["--check"]) == 1
    assert capsys.readouterr().err.startswith("error: solcjs not found")


# -- the one EIP-712 definition ------------------------------------------------------------

words = st.binary(min_size=32, max_size=32)
results = st.builds(TaskResult, words, words, words, words, st.integers(0, 2**64 - 1))
addresses = st.binary(min_size=20, max_size=20)


@settings(max_examples=50, deadline=None)
@given(result=results, chain_id=st.integers(1, 2**64), contract=addresses)
def test_digest_matches_eth_account_typed_data(result: TaskResult, chain_id: int,
                                               contract: bytes) -> None:
    document = eip712.task_result_typed_data(result, chain_id, contract)
    expected = _hash_eip191_message(encode_typed_data(full_message=document))
    assert eip712.task_result_digest(result, chain_id, contract) == expected


@settings(max_examples=30, deadline=None)
@given(root=words, epoch=st.integers(0, 2**64 - 1), count=st.integers(1, 2**32 - 1),
       chain_id=st.integers(1, 2**64), contract=addresses)
def test_batch_digest_matches_eth_account_typed_data(root: bytes, epoch: int, count: int,
                                                     chain_id: int, contract: bytes) -> None:
    batch = TaskBatch(root, epoch, count)
    document = eip712.task_batch_typed_data(batch, chain_id, contract)
    expected = _hash_eip191_message(encode_typed_data(full_message=document))
    assert eip712.task_batch_digest(batch, chain_id, contract) == expected


def test_typed_data_is_json_and_signable() -> None:
    result = TaskResult(keccak(b"t"), keccak(b"m"), keccak(b"i"), keccak(b"o"), 5)
    contract = bytes(range(20))
    document = json.loads(json.dumps(eip712.task_result_typed_data(result, 31337, contract)))
    account = Account.from_key(keccak(b"sat"))
    signed = Account.sign_typed_data(account.key, full_message=document)
    digest = eip712.task_result_digest(result, 31337, contract)
    assert Account._recover_hash(digest, signature=signed.signature) == account.address

    class KeySigner:  # shaped like wallet.keys.signer.Signer
        address = bytes.fromhex(account.address[2:])

        def sign_digest(self, d: bytes) -> object:
            sig = Account.unsafe_sign_hash(d, account.key).signature

            class Sig:
                def to_bytes(self) -> bytes:
                    return bytes(sig)

            return Sig()

    assert eip712.sign_task_result(result, 31337, contract, KeySigner()) == bytes(
        signed.signature)


def test_task_result_validates_fields() -> None:
    with pytest.raises(ValueError, match="task_id"):
        TaskResult(b"short", bytes(32), bytes(32), bytes(32), 0)
    with pytest.raises(ValueError, match="epoch"):
        TaskResult(bytes(32), bytes(32), bytes(32), bytes(32), 2**64)
    with pytest.raises(ValueError, match="two signatures by the same signer"):
        eip712.order_signatures([(b"\x01" * 20, b"a"), (b"\x01" * 20, b"b")])
    assert eip712.order_signatures([(b"\x02" * 20, b"b"), (b"\x01" * 20, b"a")]) == [b"a", b"b"]


# -- Merkle tree (same rules as proveBatchMember) -------------------------------------------

def test_merkle_shape_by_hand() -> None:
    a, b, c = (keccak(bytes([i])) for i in range(3))
    assert merkle.merkle_root([a]) == a and merkle.merkle_proof([a], 0) == []
    ab = keccak(a + b)
    assert merkle.merkle_root([a, b, c]) == keccak(ab + c)  # c promoted, not duplicated
    assert merkle.merkle_proof([a, b, c], 2) == [ab]
    assert merkle.merkle_proof([a, b, c], 1) == [a, c]


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 70), data=st.data())
def test_merkle_proofs_verify_only_where_they_belong(count: int, data: st.DataObject) -> None:
    leaves = [keccak(i.to_bytes(4, "big")) for i in range(count)]
    root = merkle.merkle_root(leaves)
    index = data.draw(st.integers(0, count - 1))
    proof = merkle.merkle_proof(leaves, index)
    assert merkle.verify(leaves[index], proof, index, count, root)
    assert not merkle.verify(leaves[index], [*proof, root], index, count, root)
    assert not merkle.verify(leaves[index], proof, index + count, count, root)
    if count > 1:
        other = (index + 1) % count
        assert not merkle.verify(leaves[other], proof, index, count, root)


# -- Python digest == the contract's (anvil) ------------------------------------------------

@pytest.fixture(scope="module")
def attestations(anvil: Anvil) -> Contract:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    contracts = {}
    args: tuple = ()
    for name in NAMES:
        artifact = load_artifact(name)
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        tx = factory.constructor(*args).transact({"from": w3.eth.accounts[0]})
        receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=10)
        contracts[name] = w3.eth.contract(address=receipt["contractAddress"],
                                          abi=artifact["abi"])
        args = (receipt["contractAddress"],)
    return contracts["TaskAttestations"]


@pytest.mark.devnet
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(result=results)
def test_python_digest_equals_contract_digest(attestations: Contract,
                                              result: TaskResult) -> None:
    contract = bytes.fromhex(attestations.address[2:])
    assert attestations.functions.hashTaskResult(result.as_tuple()).call() == (
        eip712.task_result_digest(result, 31337, contract))
    assert attestations.functions.taskResultHashStruct(result.as_tuple()).call() == (
        eip712.task_result_hash_struct(result))
