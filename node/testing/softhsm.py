"""A throwaway SoftHSM2 token directory for tests (the pytest plugin's ``softhsm_token``),
used through p11-kit-proxy.

SoftHSM2 is the real PKCS#11 token of the tests (DESIGN.md, "Real parts"): Debian's
``softhsm2`` package, registered with p11-kit (``/usr/share/p11-kit/modules/softhsm2.module``)
and loaded through ``p11-kit-proxy.so`` from ``p11-kit-modules``, all installed by
``scripts/setup.sh --test``. A missing piece raises :class:`SoftHsmMissingError`: an HSM test
must fail, never skip.

**One token directory per test session, a pool of tokens in it.** SoftHSM2 reads its
configuration (``SOFTHSM2_CONF``) and scans its token directory only in ``C_Initialize``,
and a process loads the PKCS#11 module once (python-pkcs11 caches the library per path;
p11-kit-proxy maps slots at initialisation). A token that another process (softhsm2-util)
creates afterwards stays invisible, and re-initialising the module would close every
session in the process. So :func:`start_softhsm` writes the configuration, points
``SOFTHSM2_CONF`` at it *before* the module is loaded, and initialises a pool of tokens up
front (about 15 ms each); each test that needs a fresh token takes an unused label from the
pool with :meth:`SoftHsm.take`. Every pool token has the PINs :data:`SO_PIN` and
:data:`USER_PIN`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from wallet.keys import pkcs11 as hsm

SO_PIN = "so-pin-4321"
USER_PIN = "user-pin-1234"
POOL_SIZE = 40
"""Tokens created at session start; raise it if :meth:`SoftHsm.take` runs out."""
SOFTHSM_MODULE_CONF = Path("/usr/share/p11-kit/modules/softhsm2.module")
SETUP_HINT = "run `scripts/setup.sh --test` (installs softhsm2, p11-kit, p11-kit-modules)"


class SoftHsmMissingError(RuntimeError):
    """SoftHSM2 or p11-kit-proxy is not installed."""


def require_softhsm() -> str:
    """The path of ``softhsm2-util``, after checking that SoftHSM2 is installed and
    registered with p11-kit and that p11-kit-proxy exists."""
    util = shutil.which("softhsm2-util")
    if util is None:
        raise SoftHsmMissingError(f"softhsm2-util not found: {SETUP_HINT}")
    try:
        module = hsm.default_module()
    except Exception as exc:
        raise SoftHsmMissingError(f"{exc}; {SETUP_HINT}") from None
    if not SOFTHSM_MODULE_CONF.exists():
        raise SoftHsmMissingError(
            f"SoftHSM2 is not registered with p11-kit ({SOFTHSM_MODULE_CONF} missing), so "
            f"{module} cannot load it: {SETUP_HINT}")
    return util


def write_conf(directory: Path) -> Path:
    """A SoftHSM2 configuration with its token directory under ``directory``."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n")
    return conf


@dataclass
class SoftHsm:
    """A SoftHSM2 token directory and the pool of initialised tokens in it."""

    directory: Path
    conf: Path
    util: str
    pool: list[str] = field(default_factory=list)

    @property
    def module(self) -> str:
        return hsm.resolve_module()

    def take(self) -> str:
        """The label of a token no other test has used (PINs :data:`SO_PIN`,
        :data:`USER_PIN`)."""
        if not self.pool:
            raise RuntimeError(f"all {POOL_SIZE} pre-initialised SoftHSM2 tokens are used: "
                               "raise node/testing/softhsm.py POOL_SIZE")
        return self.pool.pop(0)


def start_softhsm(directory: Path, pool_size: int = POOL_SIZE,
                  prefix: str = "orbital-test-") -> SoftHsm:
    """Write a configuration in ``directory``, point ``SOFTHSM2_CONF`` at it (for this
    process and its children) and initialise ``pool_size`` tokens, then load the module and
    check that it sees them. Raises :class:`SoftHsmMissingError` if SoftHSM2 is missing."""
    util = require_softhsm()
    conf = write_conf(directory)
    os.environ["SOFTHSM2_CONF"] = str(conf)
    labels = [f"{prefix}{i:02d}" for i in range(pool_size)]
    for label in labels:
        hsm.init_token(None, label, SO_PIN, USER_PIN, util=util)
    lib = hsm.load_module()
    seen = {token.label for token in lib.get_tokens()}
    missing = [label for label in labels if label not in seen]
    if missing:
        raise RuntimeError(
            f"{lib.so} does not show the tokens just created in {directory} ({missing[:3]}...): "
            "was the PKCS#11 module loaded in this process before SOFTHSM2_CONF was set?")
    return SoftHsm(directory, conf, util, labels)
