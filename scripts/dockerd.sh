#!/usr/bin/env bash
# A private Docker daemon for orbital's container tests, on a machine that has none running.
#
#   scripts/dockerd.sh start     install docker.io, docker-compose (1.29) and debootstrap
#                                (Debian packages) and Docker Compose v2 (the CLI plugin,
#                                from Debian 13) if missing, start dockerd with its own data root,
#                                exec root, pid file and socket under $ORBITAL_DOCKER_ROOT
#                                (default /var/tmp/orbital-docker), wait until it answers,
#                                and print the line to export DOCKER_HOST
#   scripts/dockerd.sh stop      stop that daemon by its pid and restore what it changed on
#                                the host (IPv4 forwarding, iptables rules)
#   scripts/dockerd.sh status    say whether it runs; exit 0 if it answers, 1 if not
#   scripts/dockerd.sh env       print `export DOCKER_HOST=...` (eval "$(scripts/dockerd.sh env)")
#
# Needs root. The daemon never touches the host's own /var/lib/docker or /run/docker.sock:
# a Docker already running on the machine is left alone. The container tests
# (tests/test_containers.py) find the daemon through DOCKER_HOST, or this script's socket.
set -euo pipefail

root="${ORBITAL_DOCKER_ROOT:-/var/tmp/orbital-docker}"
sock="$root/docker.sock"
pidfile="$root/dockerd.pid"
log="$root/dockerd.log"

usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'dockerd.sh: error: %s\n' "$*" >&2; exit 1; }

# Docker Compose v2 (the `docker compose` CLI plugin) is not in Debian 12; Debian 13's
# package is a static binary. Fetched from Debian's mirror and checked the way apt checks it:
# InRelease signed by the Debian archive keys, Packages.xz by InRelease's SHA256, the .deb
# by Packages' SHA256.
COMPOSE_V2_SUITE=trixie
compose_v2_plugin() {
    local plugins=/usr/local/lib/docker/cli-plugins mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    [ -x "$plugins/docker-compose" ] && return
    local work; work="$(mktemp -d)"
    say "Docker Compose v2 from Debian $COMPOSE_V2_SUITE (signature and hashes checked)"
    curl -fsS -o "$work/InRelease" "$mirror/dists/$COMPOSE_V2_SUITE/InRelease"
    gpgv --keyring /usr/share/keyrings/debian-archive-keyring.gpg --output "$work/Release" \
        "$work/InRelease" 2>/dev/null || die "InRelease of $COMPOSE_V2_SUITE: bad signature"
    curl -fsS -o "$work/Packages.xz" "$mirror/dists/$COMPOSE_V2_SUITE/main/binary-amd64/Packages.xz"
    local want got
    want="$(awk '/^SHA256:/{s=1;next} /^[A-Za-z]/{s=0} s&&$3=="main/binary-amd64/Packages.xz"{print $1}' "$work/Release")"
    got="$(sha256sum "$work/Packages.xz" | cut -d' ' -f1)"
    [ -n "$want" ] && [ "$want" = "$got" ] || die "Packages.xz: sha256 $got, Release says $want"
    local entry file
    entry="$(xz -dc "$work/Packages.xz" | awk '/^Package: docker-compose$/{p=1} p&&/^(Filename|SHA256):/{print $2} /^$/{p=0}')"
    file="$(printf '%s\n' "$entry" | sed -n 1p)"; want="$(printf '%s\n' "$entry" | sed -n 2p)"
    [ -n "$file" ] || die "no docker-compose in $COMPOSE_V2_SUITE's Packages"
    curl -fsS -o "$work/compose.deb" "$mirror/$file"
    got="$(sha256sum "$work/compose.deb" | cut -d' ' -f1)"
    [ "$want" = "$got" ] || die "$file: sha256 $got, Packages says $want"
    dpkg-deb -x "$work/compose.deb" "$work/root"
    mkdir -p "$plugins"
    install -m 755 "$work/root/usr/libexec/docker/cli-plugins/docker-compose" "$plugins/"
    rm -rf "$work"
}

answers() { DOCKER_HOST="unix://$sock" docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

install_missing() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    command -v gpgv >/dev/null 2>&1 || missing+=(gpgv)
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
    if [ "${#missing[@]}" -gt 0 ]; then
        command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
        say "apt-get install ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
    [ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] && compose_v2_plugin
    return 0
}

start() {
    [ "$(id -u)" -eq 0 ] || die "needs root (dockerd manages network namespaces and iptables)"
    install_missing
    if answers; then
        say "already running ($sock)"
        printf 'export DOCKER_HOST=unix://%s\n' "$sock"
        return
    fi
    mkdir -p "$root/data" "$root/exec"
    # What the daemon changes on the host, restored by `stop`.
    cat /proc/sys/net/ipv4/ip_forward >"$root/ip_forward.before"
    if command -v iptables-save >/dev/null 2>&1; then
        iptables-save >"$root/iptables.before" 2>/dev/null || rm -f "$root/iptables.before"
    fi
    say "starting dockerd (data root $root/data, log $log)"
    # setsid: the daemon outlives this shell and the session's job control.
    setsid dockerd --data-root "$root/data" --exec-root "$root/exec" --pidfile "$pidfile" \
        -H "unix://$sock" >"$log" 2>&1 < /dev/null &
    local waited=0
    until answers; do
        sleep 0.5
        waited=$((waited + 1))
        if ! kill -0 "$!" 2>/dev/null; then
            tail -n 20 "$log" >&2
            die "dockerd exited (log above, full log $log)"
        fi
        [ "$waited" -lt 120 ] || { tail -n 20 "$log" >&2; die "dockerd did not answer in 60 s"; }
    done
    say "dockerd $(DOCKER_HOST="unix://$sock" docker version --format '{{.Server.Version}}') answers on $sock"
    printf 'export DOCKER_HOST=unix://%s\n' "$sock"
}

stop() {
    if [ -f "$pidfile" ]; then
        local pid
        pid="$(cat "$pidfile")"
        if kill -0 "$pid" 2>/dev/null; then
            say "stopping dockerd (pid $pid)"
            kill "$pid"
            for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -0 "$pid" 2>/dev/null && { say "dockerd ignored SIGTERM: SIGKILL"; kill -9 "$pid"; }
        fi
        rm -f "$pidfile"
    else
        say "no dockerd pid file at $pidfile"
    fi
    if [ -f "$root/ip_forward.before" ]; then
        cat "$root/ip_forward.before" >/proc/sys/net/ipv4/ip_forward
        rm -f "$root/ip_forward.before"
    fi
    if [ -f "$root/iptables.before" ]; then
        iptables-restore <"$root/iptables.before" && rm -f "$root/iptables.before"
    fi
    ip link delete docker0 2>/dev/null || true
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status)
        if answers; then say "dockerd answers on $sock"; else say "no dockerd on $sock"; exit 1; fi ;;
    env) printf 'export DOCKER_HOST=unix://%s\n' "$sock" ;;
    -h | --help | "") usage ;;
    *) die "unknown command: $1 (try --help)" ;;
esac
