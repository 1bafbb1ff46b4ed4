"""orbital's pytest plugin: devnet integration tests against a verifying node.

Installed with the package (entry point ``pytest11: orbital``), so every pytest session of
a project that has orbital installed has these fixtures; a test that requests none of them
is not touched (the plugin only registers its markers). Disable it with ``-p no:orbital``.

Fixtures:

``anvil`` (module)
    a local anvil devnet on a free port (Prague, chain id 31337, ten funded dev accounts;
    :class:`node.devnet.Anvil`: ``.url``, ``.rpc(method, *params)``, ``.accounts``,
    ``.private_keys``). Fails, never skips, when anvil is not installed.
``anvil_rpc`` (module)
    ``anvil.rpc``.
``orbital_node`` (function)
    ``orbital node run`` as its own process in front of ``anvil`` -- or in front of
    ``link`` when the test requests it too -- returned once it serves and, if the link is
    up, has anchored a head. A :class:`~node.testing.node_process.NodeProcess`:
    ``.url``, ``.rpc(method, *params)``, ``.web3()``, ``.status()``, ``.wait_for_head(n)``,
    ``.stop()``, ``.restart()`` (same data directory and URL), ``.data_dir``, ``.log``.
    Always stopped at teardown (SIGTERM; an unclean exit then fails the test). Trust mode:
    ``@pytest.mark.orbital_trust(MODE, **options)`` or
    ``@pytest.mark.parametrize("orbital_node", [MODE, ...], indirect=True)``; see
    :func:`orbital_node`.
``link`` (function)
    the real link emulator (:class:`sim_link.proxy.LinkEmulator`) between the node and
    anvil, in a thread: ``link.los()``/``link.aos()`` force loss and acquisition of
    signal, ``link.wait_los()``/``wait_aos()`` poll, ``link.url``; with
    ``@pytest.mark.orbital_link(windows=[(start_s, end_s), ...], time_scale=1.0)`` it
    follows that contact plan and the node knows the plan (its ``[link]`` section).
``softhsm_token`` (function), ``softhsm`` (session)
    a fresh SoftHSM2 token: ``.label``, ``.so_pin``, ``.user_pin``, ``.module``,
    ``.conf``; the session's token directory (``SOFTHSM2_CONF`` set before the PKCS#11
    module is loaded) with a pool of initialised tokens.
``keystore_wallet`` (function)
    a real wallet home with one keystore key (:class:`node.testing.wallet.KeystoreWallet`):
    ``.home``, ``.address``, ``.password``, ``.chain_id``, ``.allow(address, *selectors)``,
    ``.sign_transaction(tx) -> raw bytes`` through the wallet's policy and audit log,
    ``.fund(anvil)``; funded with 100 ether when the test uses ``anvil``.

Importing this module is cheap: everything heavy is imported inside the fixtures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from node.devnet import Anvil
    from node.testing.ground import GroundOperators
    from node.testing.link import EmulatedLink
    from node.testing.node_process import NodeProcess
    from node.testing.softhsm import SoftHsm
    from node.testing.wallet import KeystoreWallet

TRUST_MODES = ("quorum", "checkpoint", "ground")
DEFAULT_REFRESH = 0.5
"""Seconds between the node's refreshes (its probe of a forced link, too)."""
HEAD_TIMEOUT = 30.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "orbital_trust(mode='quorum', **options): the trust mode of the "
        "orbital_node fixture: 'quorum' (the default: anvil's answer, one upstream -- not "
        "anchored by anything else), 'checkpoint' (anvil's block at start, an explicit "
        "anchor; checkpoint='NUMBER:HASH' to choose) or 'ground' (heads signed by "
        "threshold=2 of operators=3 keys, delivered while the link is up); options "
        "refresh=SECONDS, args=[extra `orbital node run` flags]")
    config.addinivalue_line(
        "markers", "orbital_link(windows=[(start_s, end_s), ...], time_scale=1.0, "
        "rate_bps=2e6, delay_s=0.005): the link fixture follows this contact plan (plan "
        "seconds after the link starts) and orbital_node is given the plan")


# -- anvil ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    """anvil on 127.0.0.1 (Prague, chain id 31337), shared by a module's tests, then stopped.

    Fails (never skips) when anvil is not installed: run ``scripts/setup.sh --test`` in
    orbital's checkout, or set ``ORBITAL_ANVIL`` to an anvil binary.
    """
    from node.devnet import AnvilNotFoundError, start_anvil

    try:
        node = start_anvil()
    except AnvilNotFoundError as exc:
        pytest.fail(f"anvil fixture: {exc}", pytrace=False)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def anvil_rpc(anvil: Anvil) -> Any:
    """``rpc(method, *params)``: the ``result`` of a JSON-RPC call to :func:`anvil`
    (an ``error`` raises :class:`node.devnet.RpcError`)."""
    return anvil.rpc


# -- the link ---------------------------------------------------------------------------------

@pytest.fixture
def link(request: pytest.FixtureRequest, anvil: Anvil, tmp_path: Path
         ) -> Iterator[EmulatedLink]:
    """The emulated link in front of :func:`anvil` (see :mod:`node.testing.link`): up
    until ``link.los()``; with ``@pytest.mark.orbital_link(windows=...)``, following that
    plan. ``orbital_node`` dials anvil through it when the test requests both."""
    from node.testing.link import EmulatedLink, plan_link

    marker = request.node.get_closest_marker("orbital_link")
    try:
        plan = plan_link(marker.kwargs) if marker is not None else None
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)
    directory = tmp_path / "link"
    directory.mkdir()
    with EmulatedLink(("127.0.0.1", anvil.port), plan, directory) as emulated:
        yield emulated


# -- the node ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrustChoice:
    """The trust mode the test asked for and its options."""

    mode: str
    options: dict[str, Any]

    @classmethod
    def of(cls, request: pytest.FixtureRequest) -> TrustChoice:
        """From an indirect parameter (``"checkpoint"`` or ``{"mode": ..., **options}``),
        else the ``orbital_trust`` marker, else quorum."""
        param = getattr(request, "param", None)
        marker = request.node.get_closest_marker("orbital_trust")
        if param is not None:
            if isinstance(param, str):
                mode, options = param, {}
            elif isinstance(param, dict) and "mode" in param:
                options = dict(param)
                mode = options.pop("mode")
            else:
                raise ValueError(f"orbital_node parameter {param!r}: want a trust mode "
                                 f"({', '.join(TRUST_MODES)}) or {{'mode': ..., **options}}")
        elif marker is not None:
            if len(marker.args) > 1:
                raise ValueError("orbital_trust(mode, **options): one positional argument")
            mode = marker.args[0] if marker.args else marker.kwargs.get("mode", "quorum")
            options = {k: v for k, v in marker.kwargs.items() if k != "mode"}
        else:
            mode, options = "quorum", {}
        if mode not in TRUST_MODES:
            raise ValueError(f"orbital_node: trust mode {mode!r} is not one the plugin runs "
                             f"({', '.join(TRUST_MODES)})")
        known = {"refresh", "args"} | {"checkpoint": {"checkpoint"},
                                        "ground": {"operators", "threshold", "interval"}
                                        }.get(mode, set())
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"orbital_node ({mode}): unknown option(s) {', '.join(unknown)};"
                             f" known: {', '.join(sorted(known))}")
        return cls(mode, options)


@pytest.fixture
def orbital_node(request: pytest.FixtureRequest, anvil: Anvil, tmp_path: Path
                 ) -> Iterator[NodeProcess]:
    """``orbital node run`` in front of :func:`anvil` (through :func:`link` when the test
    requests it), stopped at teardown.

    Trust modes (``@pytest.mark.orbital_trust(MODE, **options)`` or an indirect parameter):

    * ``"quorum"`` (default): a head is anchored when K of the node's upstreams agree on
      it. Here there is one upstream, anvil, so the node anchors whatever anvil says: it
      is **not anchored** by anything independent of anvil. Everything it serves is still
      proven against that head (state proofs, roots, receipts), and a transaction is
      ``included`` only on a verified receipt.
    * ``"checkpoint"``: anvil's latest block when the node starts (or
      ``checkpoint="NUMBER:HASH"``), an explicit anchor the test gives; the head stays
      there, so later blocks are not served.
    * ``"ground"``: m-of-n operators. ``operators`` (default 3) fresh keys are the node's
      operators; ``threshold`` (default 2) of them sign anvil's newest block every
      ``interval`` seconds (0.5) and deliver it with ``orbital_submitHead`` while the link
      is up (:class:`node.testing.ground.GroundOperators`, as ``orbital_node.ground``).
      The node anchors only heads with enough of their signatures.

    Options: ``refresh`` (seconds between refreshes, default 0.5), ``args`` (extra
    ``orbital node run`` flags). anvil is mined to block 2 first if it is below (the node
    refuses anvil's genesis state root, which does not match anvil's own proofs).
    """
    from node.testing.node_process import NodeStartError, start_node

    try:
        choice = TrustChoice.of(request)
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)
    behind: EmulatedLink | None = (request.getfixturevalue("link")
                                   if "link" in request.fixturenames else None)
    if behind is not None and not hasattr(behind, "node_config"):
        pytest.fail(f"orbital_node: the test's `link` fixture ({type(behind).__name__}) is "
                    "not the plugin's emulated link; rename one of them", pytrace=False)
    if int(anvil.rpc("eth_blockNumber"), 16) < 2:
        anvil.rpc("anvil_mine", "0x2")
    directory = tmp_path / "orbital-node"
    directory.mkdir()
    ground = _ground(directory, choice, anvil, behind)
    config = _write_config(directory, choice, anvil, behind, ground)
    extra = [str(a) for a in choice.options.get("args", ())]
    try:
        node = start_node([], directory / "data", "--config", str(config), "--refresh",
                          str(choice.options.get("refresh", DEFAULT_REFRESH)), *extra,
                          trust="", chain_id=0)
    except NodeStartError as exc:
        pytest.fail(f"orbital_node: {exc}", pytrace=False)
    node.trust, node.ground = choice.mode, ground
    try:
        if behind is None or behind.up:
            if ground is not None:
                _first_head(ground, node)
            node.wait_for_head(0, timeout=HEAD_TIMEOUT)
        if ground is not None:
            ground.start(node)
        yield node
    finally:
        if ground is not None:
            ground.stop()
        running = node.process.poll() is None  # the test may have stopped or killed it
        code = node.stop()
        if running and code != 0:
            pytest.fail(f"orbital_node exited with code {code} at teardown (SIGTERM); its "
                        f"log {node.log} ends:\n{node.log_tail()}", pytrace=False)


def _ground(directory: Path, choice: TrustChoice, anvil: Anvil,
            behind: EmulatedLink | None) -> GroundOperators | None:
    """The operators of a ``ground`` node (None in the other modes)."""
    if choice.mode != "ground":
        return None
    from node.testing.ground import GroundOperators

    options = choice.options
    try:
        return GroundOperators.create(
            directory / "operators", int(options.get("operators", 3)),
            int(options.get("threshold", 2)), anvil.url, anvil.chain_id,
            interval=float(options.get("interval", 0.5)),
            link_up=(lambda: behind.up) if behind is not None else (lambda: True))
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)


def _first_head(ground: GroundOperators, node: NodeProcess) -> None:
    """Deliver the first signed head (the node has none before)."""
    deadline = time.monotonic() + HEAD_TIMEOUT
    while not ground.deliver(node):
        if time.monotonic() > deadline:
            pytest.fail(f"orbital_node (ground): the node took no signed head in "
                        f"{HEAD_TIMEOUT} s: {ground.errors[-1:]}; its log ends:\n"
                        f"{node.log_tail()}", pytrace=False)
        time.sleep(0.2)


def _write_config(directory: Path, choice: TrustChoice, anvil: Anvil,
                  behind: EmulatedLink | None, ground: GroundOperators | None) -> Path:
    """The node's TOML: anvil (or the link) as its one upstream, the trust section, and
    the link's ``[link]`` section when it follows a plan."""
    from node.testing.node_process import write_node_config

    trust = f'\n[trust]\nmode = "{choice.mode}"\n'
    if choice.mode == "checkpoint":
        anchor = choice.options.get("checkpoint")
        if anchor is None:
            block = anvil.rpc("eth_getBlockByNumber", "latest", False)
            anchor = f"{int(block['number'], 16)}:{block['hash']}"
        trust += f'checkpoint = "{anchor}"\n'
    if ground is not None:
        trust += f"operators = {json.dumps(ground.addresses)}\nthreshold = {ground.threshold}\n"
    upstream = f"ground={behind.url}" if behind is not None else f"anvil={anvil.url}"
    sections = trust + (behind.node_config() if behind is not None else "")
    return write_node_config(directory / "node.toml", upstream, sections)


# -- SoftHSM2 -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SoftHsmToken:
    """A SoftHSM2 token no other test uses: its ``label`` and PINs, the PKCS#11
    ``module`` to load (p11-kit-proxy) and the SoftHSM2 configuration ``conf`` (what
    ``SOFTHSM2_CONF`` must name in a child process)."""

    label: str
    so_pin: str
    user_pin: str
    module: str
    conf: Path


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A SoftHSM2 token directory for the whole session (``SOFTHSM2_CONF`` points at it,
    set before the PKCS#11 module is first loaded) with a pool of initialised tokens.

    Fails (never skips) when SoftHSM2 or p11-kit-proxy is missing (orbital's
    ``scripts/setup.sh --test`` installs them), or when the PKCS#11 module was loaded in
    this process before (it would not see the new tokens).
    """
    from node.testing.softhsm import SoftHsmMissingError, start_softhsm

    # start_softhsm sets SOFTHSM2_CONF; the context puts back what was there before. The
    # module stays initialised with this directory for the rest of the process; children
    # started later get the environment they had before.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SOFTHSM2_CONF", raising=False)
        try:
            hsm = start_softhsm(tmp_path_factory.mktemp("softhsm"))
        except SoftHsmMissingError as exc:
            pytest.fail(f"softhsm fixture: {exc}", pytrace=False)
        yield hsm


@pytest.fixture
def softhsm_token(softhsm: SoftHsm) -> SoftHsmToken:
    """A fresh SoftHSM2 token from the session's pool (see :func:`softhsm`)."""
    from node.testing.softhsm import SO_PIN, USER_PIN

    return SoftHsmToken(softhsm.take(), SO_PIN, USER_PIN, softhsm.module, softhsm.conf)


# -- the wallet ---------------------------------------------------------------------------------

@pytest.fixture
def keystore_wallet(request: pytest.FixtureRequest, tmp_path: Path) -> KeystoreWallet:
    """A wallet home with one keystore key, its default policy pinned (see
    :mod:`node.testing.wallet`); funded with 100 ether on :func:`anvil` when the test
    uses anvil (directly or through ``orbital_node``/``link``)."""
    from node.testing.wallet import KeystoreWallet

    wallet = KeystoreWallet.create(tmp_path / "wallet")
    if "anvil" in request.fixturenames:
        wallet.fund(request.getfixturevalue("anvil"))
    return wallet
