"""The pytest plugin as a user meets it: test modules written only against its fixtures,
run by a fresh pytest process (``pytester.runpytest_subprocess``) in an empty directory, so
the plugin comes from the installed entry point and nothing of this suite's conftest; the
example of the README is that file, and it passes."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "test_blackout.py"


def test_the_entry_point_loads_the_plugin_and_no_orbital_turns_it_off(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_uses="def test_uses(anvil):\n    pass\n")
    off = pytester.runpytest_subprocess("-p", "no:orbital", "-p", "no:cacheprovider")
    off.assert_outcomes(errors=1)
    off.stdout.fnmatch_lines(["*fixture 'anvil' not found*"])
    markers = pytester.runpytest_subprocess("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.orbital_trust(*", "@pytest.mark.orbital_link(*"])
    fixtures = pytester.runpytest_subprocess("--fixtures")
    for name in ("anvil", "orbital_node", "link", "softhsm_token", "keystore_wallet"):
        fixtures.stdout.fnmatch_lines([f"{name} *"])


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    """Every pytest session of anyone who installs orbital imports the plugin."""
    code = ("import sys, node.testing.pytest_plugin; print(sorted({m.split('.')[0] for m in "
            "sys.modules} & {'web3', 'aiohttp', 'eth_account', 'pkcs11', 'sim_link', "
            "'wallet', 'numpy', 'evm'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=REPO)
    assert done.stdout.strip() == "[]"


def test_link_plans_are_checked_with_one_line_errors() -> None:
    from node.testing.link import plan_link

    assert plan_link({"windows": [(0, 5), (10, 20)], "rate_bps": 1e6}).rate_bps == (1e6, 1e6)
    for options, message in (({}, "needs a window"), ({"windows": [(5, 5)]}, "start < end"),
                             ({"windows": [(0, 1)], "time_scale": 0}, "time_scale"),
                             ({"windows": [(0, 1)], "speed": 2}, "unknown option")):
        with pytest.raises(ValueError, match=message):
            plan_link(options)


@pytest.mark.devnet
def test_a_wrong_trust_mode_or_option_fails_the_test_in_one_line(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_wrong=textwrap.dedent("""
        import pytest

        @pytest.mark.orbital_trust("beacon")
        def test_mode(orbital_node):
            pass

        @pytest.mark.orbital_trust("quorum", checkpoint="1:0x00")
        def test_option(orbital_node):
            pass
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([
        "*orbital_node: trust mode 'beacon' is not one the plugin runs (quorum, checkpoint,"
        " ground)*", "*orbital_node (quorum): unknown option(s) checkpoint; known: args,"
        " refresh*"])


def test_the_readme_shows_the_example_file_as_it_is() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Testing your dApp against an orbital node (pytest plugin)")[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    assert block.group(1) == EXAMPLE.read_text()


@pytest.mark.slow
def test_pytest_with_no_arguments_does_not_collect_the_examples() -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-m", "not slow and not devnet", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert "examples/" not in done.stdout and "test_blackout" not in done.stdout


USER_TESTS = '''
import time

import pytest
from web3 import Web3

from node.testing.wallet import WalletRefusedError


def until(check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_anvil(anvil, anvil_rpc):
    assert int(anvil_rpc("eth_chainId"), 16) == 31337 and len(anvil.accounts) == 10


def test_the_default_node_is_quorum_over_anvil(orbital_node, anvil):
    status = orbital_node.status()
    assert status["trustMode"] == "quorum" and status["head"]["source"] == "quorum"
    w3 = orbital_node.web3()
    who = Web3.to_checksum_address(anvil.accounts[3])
    block = status["head"]["number"]
    assert w3.eth.get_balance(who, block) == int(anvil.rpc("eth_getBalance", who, hex(block)), 16)


@pytest.mark.parametrize("orbital_node", ["quorum", "checkpoint", "ground"], indirect=True)
def test_indirect_trust_mode(orbital_node):
    status = orbital_node.status()
    assert status["trustMode"] == orbital_node.trust
    expected = {"quorum": "quorum", "checkpoint": "user", "ground": "ground"}[orbital_node.trust]
    assert status["head"]["source"] == expected


@pytest.mark.orbital_trust("checkpoint")
def test_checkpoint_stays_at_anvils_block_at_start(orbital_node, anvil):
    anchored = orbital_node.status()["head"]
    anvil.rpc("evm_mine")
    time.sleep(1.5)  # three refreshes
    assert orbital_node.status()["head"]["hash"] == anchored["hash"]


@pytest.mark.orbital_trust("ground", operators=3, threshold=2)
def test_ground_heads_are_signed_by_two_of_three_and_wait_for_the_link(orbital_node, anvil, link):
    assert orbital_node.status()["head"]["detail"].startswith("2-of-3 operators")
    assert len(orbital_node.ground.addresses) == 3
    anvil.rpc("evm_mine")
    number = int(anvil.rpc("eth_blockNumber"), 16)
    orbital_node.wait_for_head(number)
    link.los()
    anvil.rpc("evm_mine")
    time.sleep(2)  # four deliveries skipped: no uplink
    assert orbital_node.status()["head"]["number"] == number
    link.aos()
    orbital_node.wait_for_head(number + 1)


def test_restart_keeps_the_url_and_the_data(orbital_node):
    url, head = orbital_node.url, orbital_node.status()["head"]
    orbital_node.restart()
    assert orbital_node.url == url
    assert orbital_node.status()["head"]["number"] >= head["number"]


def test_forced_los_and_aos(orbital_node, link, anvil):
    w3 = orbital_node.web3()
    who = Web3.to_checksum_address(anvil.accounts[0])
    balance = w3.eth.get_balance(who)
    link.los()
    until(lambda: not orbital_node.status()["link"]["inContact"])
    assert w3.eth.get_balance(who) == balance  # from the verified cache
    assert link.state()["forced"] is False
    link.aos()
    until(lambda: orbital_node.status()["link"]["inContact"])


@pytest.mark.orbital_link(windows=[(0, 6), (9, 600)], time_scale=1.0)
def test_the_node_follows_the_links_plan(orbital_node, link):
    status = orbital_node.status()["link"]
    assert status["plan"] is not None and status["plan"]["node"] == "SAT"
    link.wait_los(30)
    until(lambda: not orbital_node.status()["link"]["inContact"])
    link.wait_aos(30)
    until(lambda: orbital_node.status()["link"]["inContact"])
    assert orbital_node.status()["link"]["contacts"] == 2


def test_softhsm_token(softhsm_token, tmp_path):
    from wallet.keys.pin import PinAttempts
    from wallet.keys.pkcs11 import Pkcs11Token

    assert softhsm_token.conf.exists() and softhsm_token.module
    attempts = PinAttempts.in_state_dir(tmp_path / "state")
    with Pkcs11Token(softhsm_token.label, softhsm_token.user_pin, attempts=attempts) as token:
        address = token.generate_key()
        assert token.list_keys() == [address]


def test_keystore_wallet_signs_within_policy(keystore_wallet, anvil):
    ground = Web3(Web3.HTTPProvider(anvil.url))
    assert ground.eth.get_balance(keystore_wallet.address) == 100 * 10**18
    to = Web3.to_checksum_address(anvil.accounts[1])
    tx = {"to": to, "value": 10**18, "nonce": 0, "gas": 21000, "chainId": 31337,
          "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
    sent = ground.eth.send_raw_transaction(keystore_wallet.sign_transaction(tx))
    assert ground.eth.wait_for_transaction_receipt(sent)["status"] == 1
    with pytest.raises(WalletRefusedError, match="per_transaction") as refused:
        keystore_wallet.sign_transaction({**tx, "nonce": 1, "value": 2000 * 10**18})
    assert refused.value.exit_code == 3
    assert keystore_wallet.audit_kinds() == ["wallet_sealed", "policy_decision", "signed",
                                             "policy_decision"]
    with pytest.raises(RuntimeError, match="sealed"):
        keystore_wallet.allow(to)
'''


@pytest.mark.devnet
@pytest.mark.hsm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_module_written_only_against_the_fixtures_passes_in_a_fresh_session(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=textwrap.dedent(USER_TESTS))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", timeout=540)
    result.assert_outcomes(passed=12)


@pytest.mark.devnet
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_example_passes_in_a_fresh_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_blackout=EXAMPLE.read_text())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(passed=1)
