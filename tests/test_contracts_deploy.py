"""Loading the artifacts and deploying the contracts: library, deployment file and CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from contracts.deploy import (
    ATTESTATIONS,
    REGISTRY,
    ArtifactError,
    Deployment,
    MalformedError,
    contract,
    deploy,
    load_artifact,
    load_deployment,
)
from node.cli.contracts import KEY_ENV, read_key
from node.devnet import DEV_PRIVATE_KEYS, Anvil

from contracts_chain import DevChain, anvil_web3, ethtester_web3

REPO = Path(__file__).resolve().parents[1]


def _cli() -> list[str]:
    """``orbital`` with the ``contracts`` command (the module alone until main registers it)."""
    from node.cli import main

    parser = main.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    if "contracts" in commands.choices:  # type: ignore[operator]
        return [sys.executable, "-m", "node.cli.main", "contracts"]
    return [sys.executable, "-m", "node.cli.contracts"]


def _check_deployed(chain: DevChain, deployment: Deployment) -> None:
    w3 = chain.w3
    assert deployment.chain_id == w3.eth.chain_id
    assert deployment.deployer == chain.deployer.address
    registry = contract(w3, REGISTRY, deployment.registry)
    attestations = contract(w3, ATTESTATIONS, deployment.attestations)
    assert registry.functions.owner().call() == chain.deployer.address
    assert attestations.functions.registry().call() == deployment.registry
    runtime = load_artifact(ATTESTATIONS)["deployedBytecode"]
    assert len(w3.eth.get_code(deployment.attestations)) == (len(runtime) - 2) // 2
    assert w3.eth.get_transaction_count(chain.deployer.address) >= 2


def test_artifacts_load_with_abi_and_bytecode() -> None:
    for name in (REGISTRY, ATTESTATIONS):
        artifact = load_artifact(name)
        assert artifact["bytecode"].startswith("0x") and len(artifact["bytecode"]) > 100
        assert {"abi", "deployedBytecode", "compiler", "sourceHash"} <= artifact.keys()
    names = {item.get("name") for item in load_artifact(ATTESTATIONS)["abi"]}
    assert {"submitCertificate", "submitBatchCertificate", "reportEquivocation"} <= names


def test_missing_artifact_says_to_build(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="run `orbital contracts build`"):
        load_artifact(REGISTRY, tmp_path)
    with pytest.raises(ArtifactError, match="run `orbital contracts build`"):
        load_artifact("NoSuchContract")


def test_deploy_on_ethtester_writes_the_deployment(tmp_path: Path) -> None:
    chain = ethtester_web3()
    operator = Account.create().address
    out = tmp_path / "deployment.json"
    deployment = deploy(chain.w3, chain.private_keys[0], operators=[operator], out=out)
    _check_deployed(chain, deployment)
    assert contract(chain.w3, REGISTRY, deployment.registry).functions.isOperator(
        operator).call()
    assert load_deployment(out) == deployment
    assert json.loads(out.read_text()) == {
        "chainId": deployment.chain_id, "registry": deployment.registry,
        "attestations": deployment.attestations, "deployedAt": deployment.block,
        "deployer": deployment.deployer}
    assert chain.w3.eth.get_transaction_receipt(
        chain.w3.eth.get_block(deployment.block)["transactions"][0])["contractAddress"] \
        == deployment.attestations


def test_deployment_round_trip_normalises_addresses(tmp_path: Path) -> None:
    deployment = Deployment(1, "0x" + "ab" * 20, "0x" + "cd" * 20, 7, "0x" + "ef" * 20)
    path = tmp_path / "d.json"
    path.write_text(json.dumps(deployment.to_json()))
    loaded = load_deployment(path)
    assert loaded.registry != deployment.registry  # checksummed on load
    assert loaded.registry.lower() == deployment.registry
    assert Deployment.from_json(loaded.to_json()) == loaded
    assert loaded.block == 7 and loaded.chain_id == 1


@pytest.mark.parametrize("broken", [
    "[]", "{}", "not json",
    json.dumps({"chainId": 1, "registry": "0x12", "attestations": "0x" + "00" * 20,
                "deployedAt": 0, "deployer": "0x" + "00" * 20}),
    json.dumps({"chainId": -1, "registry": "0x" + "00" * 20, "attestations": "0x" + "00" * 20,
                "deployedAt": 0, "deployer": "0x" + "00" * 20}),
])
def test_malformed_deployment_files_are_refused(tmp_path: Path, broken: str) -> None:
    path = tmp_path / "d.json"
    path.write_text(broken)
    with pytest.raises(MalformedError):
        load_deployment(path)


def test_key_file_must_be_private_and_hold_a_key(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(DEV_PRIVATE_KEYS[0][2:] + "\n")
    key_file.chmod(0o644)
    with pytest.raises(MalformedError, match="chmod 600"):
        read_key(str(key_file), {})
    key_file.chmod(0o600)
    assert read_key(str(key_file), {}) == DEV_PRIVATE_KEYS[0]
    assert read_key(None, {KEY_ENV: DEV_PRIVATE_KEYS[1]}) == DEV_PRIVATE_KEYS[1]
    with pytest.raises(MalformedError, match=KEY_ENV):
        read_key(None, {})
    key_file.write_text("0x1234")
    with pytest.raises(MalformedError, match="32-byte hex"):
        read_key(str(key_file), {})


@pytest.mark.devnet
def test_deploy_on_anvil(anvil: Anvil, tmp_path: Path) -> None:
    chain = anvil_web3(anvil)
    deployment = deploy(chain.w3, chain.accounts[0], out=tmp_path / "d.json")
    _check_deployed(chain, deployment)
    assert deployment.chain_id == 31337
    assert load_deployment(tmp_path / "d.json") == deployment


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    return subprocess.run([*_cli(), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**clean, **(env or {})})


@pytest.mark.devnet
def test_cli_deploy_with_a_key_file(anvil: Anvil, tmp_path: Path) -> None:
    key_file = tmp_path / "deployer.key"
    key_file.write_text(DEV_PRIVATE_KEYS[2] + "\n")
    key_file.chmod(0o600)
    out = tmp_path / "deployment.json"
    operator = Account.create().address
    done = _run(["deploy", "--rpc", anvil.url, "--key-file", str(key_file), "--out", str(out),
                 "--operator", operator, "--json"])
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    deployment = load_deployment(out)
    assert printed["attestations"] == deployment.attestations
    assert deployment.deployer == Account.from_key(DEV_PRIVATE_KEYS[2]).address
    chain = anvil_web3(anvil)
    assert contract(chain.w3, REGISTRY, deployment.registry).functions.isOperator(
        operator).call()


@pytest.mark.devnet
def test_cli_deploy_with_the_key_in_the_environment(anvil: Anvil) -> None:
    done = _run(["deploy", "--rpc", anvil.url], env={KEY_ENV: DEV_PRIVATE_KEYS[3]})
    assert done.returncode == 0, done.stderr
    assert "attestations" in done.stdout and "registry" in done.stdout
    assert DEV_PRIVATE_KEYS[3][2:] not in done.stdout + done.stderr


@pytest.mark.devnet
def test_cli_deploy_with_an_unfunded_key_fails_in_one_line(anvil: Anvil) -> None:
    done = _run(["deploy", "--rpc", anvil.url],
                env={KEY_ENV: Account.create().key.to_0x_hex()})
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "has no ether" in done.stderr


@pytest.mark.parametrize(("args", "env", "code", "message"), [
    (["deploy", "--rpc", "http://127.0.0.1:9"], {}, 2, KEY_ENV),
    (["deploy", "--rpc", "ftp://x"], {KEY_ENV: DEV_PRIVATE_KEYS[0]}, 2, "http"),
    (["deploy", "--rpc", "http://127.0.0.1:9"], {KEY_ENV: "0xzz"}, 2, "private key"),
    (["deploy", "--rpc", "http://127.0.0.1:9", "--operator", "0x12"],
     {KEY_ENV: DEV_PRIVATE_KEYS[0]}, 2, "not an address"),
    (["deploy", "--rpc", "http://127.0.0.1:9"], {KEY_ENV: DEV_PRIVATE_KEYS[0]}, 1,
     "no JSON-RPC answer"),
])
def test_cli_deploy_errors_are_one_line(args: list[str], env: dict[str, str], code: int,
                                        message: str) -> None:
    done = _run(args, env)
    assert done.returncode == code, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert "Traceback" not in done.stderr


def test_deploy_refuses_a_bad_operator_before_sending() -> None:
    chain = ethtester_web3()
    with pytest.raises(MalformedError, match="operator"):
        deploy(chain.w3, DEV_PRIVATE_KEYS[0], operators=["0x12"])
    assert chain.w3.eth.get_transaction_count(chain.deployer.address) == 0


def test_cli_has_no_key_option() -> None:
    done = subprocess.run([*_cli(), "deploy", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    assert "--key-file" in done.stdout and "--private-key" not in done.stdout
    assert "--key " not in done.stdout


@pytest.mark.slow
def test_cli_build_check_passes_on_the_committed_artifacts() -> None:
    done = _run(["build", "--check"])
    assert done.returncode == 0, done.stderr
    assert "artifacts up to date" in done.stdout
