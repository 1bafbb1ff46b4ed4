"""The benchmarks stay runnable: a quick run of each prints its full table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_verify_benchmark_quick_run_reports_every_capability() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.verify", "--quick", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    names = " | ".join(row["capability"] for row in rows)
    for capability in ("hash+link", "proof real", "accounts: present", "accounts: absent",
                       "receiptsRoot"):
        assert capability in names
    assert all(row["ours"] > 0 for row in rows)
    assert all(row["baseline"] > 0 for row in rows if row["baseline"] is not None)


@pytest.mark.slow
def test_gossip_benchmark_quick_run_reports_latency_delivery_and_validation() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.gossip", "--quick", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    names = " | ".join(row["capability"] for row in report["rows"])
    for capability in ("propagation to all 5 nodes, p50", "propagation to all 5 nodes, p99",
                       "delivered to all 5 nodes", "coincurve vs eth-account recovery",
                       "att/s in bundles", "bundles vs one per message"):
        assert capability in names
    assert all(row["ours"] >= 0 for row in report["rows"])
    validation = next(r for r in report["rows"] if "validate" in r["capability"])
    assert validation["ours"] > 0 and validation["baseline"] > 0
    rate, bundles = report["rates"]
    assert rate["nodes"] == 5 and rate["expected"] == 5 * rate["messages"]
    assert not rate["bundled"] and bundles["bundled"]
    assert bundles["messages"] == 600 and bundles["expected"] == 5 * 600
    assert 0 < bundles["gossip_messages"] < bundles["messages"]
    assert "propagation:" in done.stderr  # progress goes to stderr


@pytest.mark.slow
def test_anti_entropy_benchmark_quick_run_fetches_nothing_beside_a_full_refetch() -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.anti_entropy", "--quick",
                           "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    (row,) = report["rows"]
    assert row["capability"] == "anti-entropy round, nothing new (300 stored)"
    assert row["ours"] > 0 and row["baseline"] > 0
    assert "frames fetched per round: ours 0, baseline 300" in report["notes"][0]


@pytest.mark.slow
def test_lightclient_benchmark_quick_run_reports_times_and_bytes() -> None:
    """About 15 s: two py_ecc verifications of a mainnet update dominate."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.lightclient", "--quick", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows = {row["capability"].split(" (")[0] + row["capability"].split(")")[-1]: row
            for row in report["rows"]}
    update = rows["LightClientUpdate: cached keys"]
    finality = rows["LightClientFinalityUpdate: cached keys"]
    for row in (update, finality):
        assert row["unit"] == "ms/update" and 0 < row["ours"] < row["baseline"]
        assert row["passed"] is True  # >= 10x py_ecc
    assert rows["LightClientUpdate: keys decoded each time"]["ours"] > update["ours"]
    assert any(name.startswith("participants' key") for name in rows)
    day = rows["head after 24 h offline, 1 period boundary"]
    assert day["unit"] == "kB" and day["ours"] < 30 and day["ratio"] > 100
    head = rows["head after 1 h offline, no period boundary"]
    assert head["ours"] < 2.5 and head["baseline"] > head["ours"]
    assert {span["name"] for span in report["spans"]} == {"1 h", "24 h", "7 days"}


@pytest.mark.slow
@pytest.mark.devnet
def test_node_benchmark_quick_run_reports_every_method_cold_warm_and_over_the_link() -> None:
    """About 20 s: anvil, two node processes, the link emulators."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.node", "--quick", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    calls = [row for row in rows if row.get("case")]
    methods = {row["case"].split(" (")[0] for row in calls}
    assert methods == {"eth_getBalance", "eth_getTransactionCount", "eth_getStorageAt",
                       "eth_getCode", "eth_getProof", "eth_call", "eth_estimateGas",
                       "eth_getBlockByNumber", "eth_getTransactionReceipt", "eth_getLogs",
                       "eth_feeHistory"}
    assert {(row["where"], row["temperature"]) for row in calls} == {
        ("loopback", "cold"), ("loopback", "warm"), ("5 ms link", "cold"), ("5 ms link", "warm")}
    assert len(calls) == 12 * 4
    for row in calls:
        assert row["unit"] == "ms/call" and row["ours"] > 0 and row["baseline"] > 0
        if row["temperature"] == "cold":
            assert row["traffic"]["round_trips"] >= 1 and row["traffic"]["kB_received"] > 0
        else:
            assert row["traffic"]["round_trips"] == 0  # warm: no upstream traffic at all
        assert (row["target"] is not None) == (row["where"] == "5 ms link"
                                              and row["temperature"] == "warm")
    balance = next(row for row in calls if row["where"] == "5 ms link"
                   and row["temperature"] == "warm" and row["case"] == "eth_getBalance")
    assert balance["passed"] is True  # a proven balance beats a 10 ms round trip
    (gas,) = [row for row in rows if row["unit"] == "Mgas/s"]
    assert 0 < gas["ours"] < gas["baseline"]


@pytest.mark.slow
@pytest.mark.devnet
def test_contact_benchmark_quick_run_reports_catch_up_flush_and_fsync() -> None:
    """About 20 s: anvil behind the link emulator, the node's sync and outbox, a naive
    client and a one-request-per-transaction relay beside them."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.contact", "--quick", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [c["missed"] for c in report["catch_up"]] == [1, 10, 100]
    for c in report["catch_up"]:
        node, naive = c["node"], c["naive"]
        assert naive["round_trips"] == c["missed"]  # header by header
        assert node["round_trips"] <= 2  # the anchor by hash, its ancestors in one batch
        for side in (node, naive):
            assert side["bytes_up"] > 0 and side["bytes_down"] > 0 and side["seconds"] > 0
    rows = {row["capability"]: row for row in report["rows"]}
    trips = rows["catch-up after 100 missed blocks: round trips"]
    assert trips["passed"] is True and trips["ratio"] >= 10
    box = report["outbox"]
    assert box["txs"] == 100 and box["included"] == 100 and box["batches"] == 2
    flush = next(r for name, r in rows.items() if name.startswith("outbox flush")
                 and "whole pass" in name)
    assert flush["unit"] == "tx/s" and flush["ours"] > 0 and flush["baseline"] > 0
    assert flush["target"] is not None  # 200 tx/s: reported, pass or FAIL
    add = next(r for name, r in rows.items() if name.startswith("Outbox.add"))
    assert add["unit"] == "us/add" and add["ours"] > 0 and add["baseline"] > 0
