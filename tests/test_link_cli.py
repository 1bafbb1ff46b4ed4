"""``orbital link`` as a user runs it: a plan computed from the committed TLEs and
stations (with ION lines and a PNG), ``next`` on it, and ``run`` emulating a link of a
plan in a real process in front of a real TCP echo server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sim_link.plan import Contact, ContactPlan, plan_from_json

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def orbital(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli.main", *args], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_plan_writes_json_ion_and_png_and_next_answers(tmp_path: Path) -> None:
    out, ion, png = tmp_path / "plan.json", tmp_path / "plan.ion", tmp_path / "passes.png"
    done = orbital("link", "plan", "--tle", str(REPO / "configs/tle/sso550.tle"), "--hours",
                   "24", "--start", "2026-11-23T00:00:00Z", "--out", str(out), "--ion",
                   str(ion), "--plot", str(png))
    assert done.returncode == 0, done.stderr
    assert "passes" in done.stdout and "per day" in done.stdout
    plan = plan_from_json(out.read_bytes())
    assert len(plan.contacts) > 10
    assert ion.read_text().count("a contact ") == 2 * len(plan.contacts)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    satellite = plan.contacts[0].source
    done = orbital("link", "next", "--plan", str(out), "--sat", satellite, "--at",
                   "2026-11-23T00:00:00Z", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["start"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                            time.gmtime(plan.contacts[0].start))


def test_next_says_when_a_satellite_enters_and_leaves_the_shadow(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    done = orbital("link", "plan", "--tle", str(REPO / "configs/tle/iss_like.tle"), "--hours",
                   "6", "--start", "2026-11-23T00:00:00Z", "--no-isl", "--out", str(out))
    assert done.returncode == 0, done.stderr
    plan = plan_from_json(out.read_bytes())
    assert plan.eclipses is not None
    eclipse = plan.eclipses.of("ISS_SIM")[1]  # [0] is in progress at the start

    def at(t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    before = orbital("link", "next", "--plan", str(out), "--sat", "ISS_SIM", "--at",
                     at(eclipse.start - 120), "--json")
    assert before.returncode == 0, before.stderr
    shadow = json.loads(before.stdout)["shadow"]
    assert shadow["in_shadow"] is False and shadow["next"] == "enters"
    assert shadow["at_unix"] == eclipse.start
    assert shadow["duration_s"] == eclipse.duration
    inside = orbital("link", "next", "--plan", str(out), "--sat", "ISS_SIM", "--at",
                     at(eclipse.start + 60))
    assert inside.returncode == 0, inside.stderr
    assert f"in shadow, leaves shadow {at(eclipse.end)}" in inside.stdout
    assert "next online" in inside.stdout or "online now" in inside.stdout
    # A plan from before eclipses (version 1) still answers, and says what is missing.
    old = tmp_path / "old.json"
    old.write_text(ContactPlan(plan.contacts, plan.generated).to_json())
    assert json.loads(old.read_text())["version"] == 1
    done = orbital("link", "next", "--plan", str(old), "--sat", "ISS_SIM", "--at",
                   at(eclipse.start))
    assert done.returncode == 0, done.stderr
    assert "no eclipses (plan version 1)" in done.stdout


def test_malformed_inputs_exit_2_with_one_line(tmp_path: Path) -> None:
    bad_tle = tmp_path / "bad.tle"
    bad_tle.write_text("SAT\n1 25544U 98067A   26327.5 garbage\n2 25544\n")
    done = orbital("link", "plan", "--tle", str(bad_tle), "--out", str(tmp_path / "p.json"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    bad_plan = tmp_path / "plan.json"
    bad_plan.write_text('{"format": "orbital-contact-plan", "version": 9, "contacts": []}')
    done = orbital("link", "next", "--plan", str(bad_plan), "--sat", "X")
    assert done.returncode == 2 and "version" in done.stderr
    assert "Traceback" not in done.stderr


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _link_run(plan: Path, listen: int, upstream: int, *options: str) -> subprocess.Popen[str]:
    """``orbital link run`` for link SAT1-GS of ``plan``, once it printed that it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "node.cli.main", "link", "run", "--plan", str(plan),
         "--link", "SAT1-GS", "--listen", f"127.0.0.1:{listen}",
         "--upstream", f"127.0.0.1:{upstream}", *options], env=ENV, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    first = process.stdout.readline()  # printed once it listens
    if f"port {listen}" not in first:
        process.kill()
        raise AssertionError(first + (process.stderr.read() if process.stderr else ""))
    return process


def test_run_emulates_a_link_in_front_of_an_echo_server(tmp_path: Path) -> None:
    now = time.time()
    plan = ContactPlan((Contact("SAT1", "GS", now - 60, now + 3600, 8e6, 8e6,
                                ((now - 60, 0.02), (now + 3600, 0.02))),))
    (tmp_path / "plan.json").write_text(plan.to_json())
    server, upstream = _echo_server()
    listen = _free_port()
    process = _link_run(tmp_path / "plan.json", listen, upstream)
    try:
        assert process.stdout is not None
        assert json.loads(process.stdout.readline())["kind"] == "aos"  # the window is open
        with socket.create_connection(("127.0.0.1", listen), timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(b"ping" * 100)
            received = b""
            while len(received) < 400:
                chunk = sock.recv(65536)
                assert chunk, "connection closed early"
                received += chunk
            elapsed = time.monotonic() - started
        assert received == b"ping" * 100
        assert elapsed >= 0.04  # 20 ms each way
    finally:
        process.terminate()
        process.wait(timeout=10)
        server.close()


def test_run_with_a_silent_gate_leaves_a_dial_unanswered_outside_windows(tmp_path: Path) -> None:
    now = time.time()
    plan = ContactPlan((Contact("SAT1", "GS", now + 3600, now + 7200, 8e6, 8e6,
                                ((now + 3600, 0.02),)),))
    (tmp_path / "plan.json").write_text(plan.to_json())
    server, upstream = _echo_server()
    listen, status = _free_port(), _free_port()
    process = _link_run(tmp_path / "plan.json", listen, upstream, "--gate", "silent",
                        "--status", f"127.0.0.1:{status}")
    try:
        with pytest.raises(TimeoutError):  # no SYN-ACK, no RST: the dial times out
            socket.create_connection(("127.0.0.1", listen), timeout=0.5).close()
        with socket.create_connection(("127.0.0.1", status), timeout=10) as sock:
            sock.sendall(b"GET /status HTTP/1.1\r\n\r\n")
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        state = json.loads(raw.partition(b"\r\n\r\n")[2])
        assert (state["gate"], state["up"], state["refused"]) == ("silent", False, 0)
    finally:
        process.terminate()
        process.wait(timeout=10)
        server.close()
