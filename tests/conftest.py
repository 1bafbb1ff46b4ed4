"""The project's own fixtures. anvil, the verified node, the link emulator, SoftHSM2 tokens
and keystore wallets come from orbital's pytest plugin (node/testing/pytest_plugin.py,
loaded through its ``pytest11`` entry point): ``anvil``, ``anvil_rpc``, ``orbital_node``,
``link``, ``softhsm`` and ``softhsm_token``, ``keystore_wallet``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wallet.keys.pin import PinAttempts

from contracts_chain import DevChain, Scenario, anvil_web3, ethtester_web3


@pytest.fixture(scope="session", autouse=True)
def orbital_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Wrong-PIN counts (``$ORBITAL_STATE_DIR``, default /var/lib/orbital) go to a directory
    of this test session, never to the machine's; a test that needs its own sets its own."""
    state = tmp_path_factory.mktemp("orbital-state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ORBITAL_STATE_DIR", str(state))
        yield state


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
