"""Shared fixtures: a real anvil devnet (see tests/anvil.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from anvil import Anvil, start_anvil


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
