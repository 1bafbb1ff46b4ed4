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
