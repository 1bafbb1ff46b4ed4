"""Shared fixtures: a real anvil devnet (see node/devnet.py) and a real SoftHSM2 token
directory used through p11-kit-proxy (see tests/softhsm.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from node.devnet import Anvil, start_anvil
from wallet.keys.pin import PinAttempts

from contracts_chain import DevChain, Scenario, anvil_web3, ethtester_web3
from softhsm import SoftHsm, SoftHsmMissingError, start_softhsm


@pytest.fixture(scope="session", autouse=True)
def orbital_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Wrong-PIN counts (``$ORBITAL_STATE_DIR``, default /var/lib/orbital) go to a directory
    of this test session, never to the machine's; a test that needs its own sets its own."""
    previous = os.environ.get("ORBITAL_STATE_DIR")
    state = tmp_path_factory.mktemp("orbital-state")
    os.environ["ORBITAL_STATE_DIR"] = str(state)
    try:
        yield state
    finally:
        if previous is None:
            os.environ.pop("ORBITAL_STATE_DIR", None)
        else:
            os.environ["ORBITAL_STATE_DIR"] = previous


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    """anvil on 127.0.0.1 (Prague, chain id 31337), shared by a module's tests, then stopped.

    Fails (never skips) when anvil is not installed: run `scripts/setup.sh --test`.
    """
    node = start_anvil()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def anvil_rpc(anvil: Anvil) -> Callable[..., Any]:
    """``rpc(method, *params)``: the ``result`` of a JSON-RPC call to :func:`anvil`.

    A JSON-RPC ``error`` raises ``anvil.RpcError``.
    """
    return anvil.rpc


# -- SoftHSM2 through PKCS#11 (see tests/softhsm.py) ---------------------------------------

@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A SoftHSM2 token directory for the whole test session (``SOFTHSM2_CONF`` points at it,
    set before the PKCS#11 module is first loaded) with a pool of initialised tokens.

    Fails (never skips) when SoftHSM2 or p11-kit-proxy is missing: run
    `scripts/setup.sh --test`.
    """
    previous = os.environ.get("SOFTHSM2_CONF")
    try:
        hsm = start_softhsm(tmp_path_factory.mktemp("softhsm"))
    except SoftHsmMissingError as exc:
        missing = str(exc)
    else:
        missing = ""
    if missing:
        pytest.fail(missing, pytrace=False)
    try:
        yield hsm
    finally:
        # The module stays initialised with this directory for the rest of the process;
        # children started later get the environment they had before.
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def hsm_token(softhsm: SoftHsm) -> str:
    """The label of a fresh SoftHSM2 token, used by no other test (SO PIN
    ``softhsm.SO_PIN``, user PIN ``softhsm.USER_PIN``)."""
    return softhsm.take()


@pytest.fixture
def pin_attempts(tmp_path: Path) -> PinAttempts:
    """A failed-PIN counter (limit 5) in the test's own state directory."""
    return PinAttempts.in_state_dir(tmp_path / "state")


# -- the attestation contracts on both devnets (see tests/contracts_chain.py) -------------

@pytest.fixture(scope="module", params=["eth-tester",
                                        pytest.param("anvil", marks=pytest.mark.devnet)])
def chain(request: pytest.FixtureRequest) -> Iterator[DevChain]:
    """The contracts' devnet: eth-tester (py-evm, in process), then anvil; tests using it
    run once on each."""
    if request.param == "anvil":
        yield anvil_web3(request.getfixturevalue("anvil"))
    else:
        yield ethtester_web3()


@pytest.fixture(scope="module")
def sc(chain: DevChain) -> Scenario:
    """Registry and attestations deployed on :func:`chain`, five satellites registered."""
    return Scenario(chain, satellites=5)
