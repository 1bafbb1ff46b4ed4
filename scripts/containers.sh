#!/usr/bin/env bash
# orbital in containers, from a checkout, on a machine with or without Docker running.
#
#   scripts/containers.sh build          build the image `orbital` (Dockerfile)
#   scripts/containers.sh demo [ARGS]    build it, then `orbital demo --containers ARGS`:
#                                        anvil, the ground station and the satellites of
#                                        the demo as containers (compose), the same report
#   scripts/containers.sh test           build it, then the container tests
#                                        (tests/test_containers.py, not skipped)
#
# What it sets up when missing: the project's virtualenv and anvil (scripts/setup.sh), a
# Docker daemon (scripts/dockerd.sh start: a private one, when none answers), and, when
# python:3.11-slim cannot be pulled (no registry reachable), a Debian 12 base built with
# debootstrap (scripts/base-image.sh). pip inside the build trusts the host's CA bundle
# (a build secret, not kept in the image). Needs root where it installs or starts Docker.
# Environment: ORBITAL_IMAGE (default orbital), ORBITAL_BASE (a base image to build FROM).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
image="${ORBITAL_IMAGE:-orbital}"
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'containers.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

ensure_daemon() {
    if ! command -v docker >/dev/null 2>&1 \
            || ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
        eval "$(scripts/dockerd.sh start)"
        export DOCKER_HOST
    fi
}

# The Docker CLI that can pass a build secret: BuildKit (Debian's 20.10 client has it
# built in; a newer client without buildx falls back to the legacy builder, which cannot).
build_cli() {
    local cli
    for cli in /usr/bin/docker "$(command -v docker)"; do
        [ -x "$cli" ] || continue
        if "$cli" buildx version >/dev/null 2>&1 || "$cli" version --format '{{.Client.Version}}' \
                2>/dev/null | grep -q '^20\.'; then
            printf '%s\n' "$cli"; return
        fi
    done
    command -v docker
}

build() {
    scripts/setup.sh >&2   # the venv, and anvil in tools/node_modules (copied into the image)
    ensure_daemon
    local base="${ORBITAL_BASE:-}"
    if [ -z "$base" ]; then
        if docker image inspect python:3.11-slim >/dev/null 2>&1 \
                || timeout 60 docker pull -q python:3.11-slim >/dev/null 2>&1; then
            base=python:3.11-slim
        else
            say "python:3.11-slim cannot be pulled here: a debootstrap base instead"
            scripts/base-image.sh orbital-base:bookworm
            base=orbital-base:bookworm
        fi
    fi
    local secret=()
    for ca in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
        if [ -n "$ca" ] && [ -s "$ca" ]; then secret=(--secret "id=ca,src=$ca"); break; fi
    done
    say "docker build -t $image (FROM $base)"
    DOCKER_BUILDKIT=1 "$(build_cli)" build --build-arg "BASE=$base" "${secret[@]}" \
        -t "$image" . >&2
}

case "${1:-}" in
    build) build ;;
    demo) shift; build; exec .venv/bin/orbital demo --containers "$@" ;;
    test) build; ORBITAL_CONTAINER_TESTS=require exec .venv/bin/python -m pytest \
              tests/test_containers.py -v ;;
    -h | --help | "") usage ;;
    *) die "unknown command: $1 (try --help)" ;;
esac
