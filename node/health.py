"""The container's health check: ``python3 -m node.health [URL [METHOD]]``.

Asks the node's local JSON-RPC for ``orbital_status`` (default ``http://127.0.0.1:8545``, or
``$ORBITAL_HEALTH_URL``) and exits 0 when it answers, 1 when it does not, printing one line
either way: what Docker's ``HEALTHCHECK`` shows in ``docker inspect``. Another METHOD
(``eth_chainId`` for the devnet's container) only needs a result. A node that serves
but has no anchored head yet (before its first contact) is healthy: it answers, and says
"no anchored head". One call through :func:`node.devnet.rpc_call` (standard library only:
it runs every few seconds).
"""

from __future__ import annotations

import os
import sys

from node.devnet import RpcError, rpc_call

DEFAULT_URL = "http://127.0.0.1:8545"


def check(url: str, method: str = "orbital_status", timeout: float = 5.0
          ) -> tuple[bool, str]:
    """(healthy, one line) for the JSON-RPC server at ``url``."""
    try:
        result = rpc_call(url, method, timeout=timeout)
    except RpcError as exc:
        return False, f"unhealthy: {method}: {exc.rpc_message} ({exc.code})"
    except (OSError, ValueError, KeyError, TypeError) as exc:  # no server, not JSON-RPC
        return False, f"unhealthy: {url}: {getattr(exc, 'reason', None) or exc!r}"
    if method != "orbital_status":
        return True, f"healthy: {method} = {result}"
    status = result if isinstance(result, dict) else {}
    head = status.get("head")
    if not isinstance(head, dict) or head.get("number") is None:
        return True, f"healthy: serving ({status.get('trustMode')}), no anchored head yet"
    return True, (f"healthy: serving ({status.get('trustMode')}), head {head['number']} "
                  f"anchored by {head.get('source')}, {float(head.get('age') or 0):.0f} s old")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args else os.environ.get("ORBITAL_HEALTH_URL", DEFAULT_URL)
    healthy, line = check(url, *args[1:2])
    print(line)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
