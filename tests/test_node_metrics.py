"""node/metrics.py over a real socket (Prometheus text format) and node/logs.py lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
from collections.abc import Iterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from node.logs import setup_logging
from node.metrics import NodeMetrics, serve_metrics


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def _scrape(metrics: NodeMetrics) -> tuple[str, str]:
    runner, url = await serve_metrics(metrics, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            return response.headers["Content-Type"], await response.text()
    finally:
        await runner.cleanup()


def test_metrics_over_a_socket() -> None:
    now = [1_000.0]
    metrics = NodeMetrics(clock=lambda: now[0])
    metrics.record_head(17, 990)
    metrics.record_verification("account")
    metrics.record_verification("account")
    metrics.record_refusal("proof")
    metrics.record_lie("anvil", "wrong_balance")
    metrics.record_outbox({"queued": 3, "sent": 1})
    metrics.record_bytes(up=100, down=2_000)
    metrics.record_bytes(down=48)
    metrics.record_contact(True)
    now[0] = 1_030.0
    content_type, text = asyncio.run(_scrape(metrics))
    assert content_type.startswith("text/plain")
    got = _samples(text)
    assert got[("orbital_head_number", ())] == 17
    assert got[("orbital_head_timestamp_seconds", ())] == 990
    assert got[("orbital_head_age_seconds", ())] == 40
    assert got[("orbital_verifications_total", (("kind", "account"),))] == 2
    assert got[("orbital_refusals_total", (("kind", "proof"),))] == 1
    assert got[("orbital_upstream_lies_total",
                (("kind", "wrong_balance"), ("upstream", "anvil")))] == 1
    assert got[("orbital_outbox_entries", (("state", "queued"),))] == 3
    assert got[("orbital_outbox_entries", (("state", "sent"),))] == 1
    assert got[("orbital_outbox_entries", (("state", "final"),))] == 0
    assert got[("orbital_link_bytes_total", (("direction", "up"),))] == 100
    assert got[("orbital_link_bytes_total", (("direction", "down"),))] == 2_048
    assert got[("orbital_contacts_total", ())] == 1
    assert got[("orbital_in_contact", ())] == 1
    metrics.record_contact(False)
    metrics.record_outbox({"sent": 4})
    got = _samples(metrics.exposition().decode())
    assert got[("orbital_in_contact", ())] == 0 and got[("orbital_contacts_total", ())] == 1
    assert got[("orbital_outbox_entries", (("state", "queued"),))] == 0


def test_head_age_before_a_head_and_separate_registries() -> None:
    a, b = NodeMetrics(), NodeMetrics()
    assert math.isnan(_samples(a.exposition().decode())[("orbital_head_age_seconds", ())])
    a.record_head(5, 0)
    assert _samples(b.exposition().decode())[("orbital_head_number", ())] == 0
    with pytest.raises(ValueError, match="byte counts"):
        a.record_bytes(up=-1)


@pytest.fixture()
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_log_lines_parse(restore_logging: None) -> None:
    stream = io.StringIO()
    setup_logging("json", "debug", stream)
    log = logging.getLogger("node.test")
    log.info("head %d verified", 17, extra={"upstream": "anvil", "hash": b"\x01\xab",
                                             "age_s": 3.5, "odd": object()})
    log.debug("multi\nline \"quoted\"")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert first["level"] == "info" and first["logger"] == "node.test"
    assert first["msg"] == "head 17 verified" and first["upstream"] == "anvil"
    assert first["hash"] == "0x01ab" and first["age_s"] == 3.5
    assert first["odd"].startswith("<object") and first["ts"].endswith("Z")
    assert second["msg"] == "multi\nline \"quoted\"" and second["level"] == "debug"
    assert third["level"] == "error" and "RuntimeError: boom" in third["exc"]


def test_text_lines_and_levels(restore_logging: None) -> None:
    stream = io.StringIO()
    setup_logging("text", "warning", stream)
    setup_logging("text", "warning", stream)  # replaces, does not duplicate
    log = logging.getLogger("node.test")
    log.info("hidden")
    log.warning("refresh failed", extra={"upstream": "a b", "n": 2})
    assert stream.getvalue().splitlines() == [
        stream.getvalue().split(" ", 1)[0] +
        ' WARNING node.test: refresh failed n=2 upstream="a b"']
    with pytest.raises(ValueError, match="log format"):
        setup_logging("xml")
    with pytest.raises(ValueError, match="log level"):
        setup_logging("text", "loud")
