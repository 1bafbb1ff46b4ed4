#!/usr/bin/env bash
# Build a Debian 12 base image for orbital's Dockerfile where no image registry is reachable.
#
#   scripts/base-image.sh [TAG]     default TAG: orbital-base:bookworm
#
# `docker build` starts FROM python:3.11-slim, which needs Docker Hub. On a machine that
# reaches only Debian's mirror (these), this script makes the base instead: a Debian 12
# (bookworm) minbase by debootstrap with python3 (3.11), venv, pip, ca-certificates,
# imported with `docker import`. Then:
#
#   DOCKER_BUILDKIT=1 docker build --build-arg BASE=orbital-base:bookworm \
#       --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t orbital .
#
# Needs root, debootstrap (installed if missing) and a Docker daemon (DOCKER_HOST, or
# scripts/dockerd.sh start). A second run with the image present does nothing.
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

tag="${1:-orbital-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'base-image.sh: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "no Docker daemon answers (DOCKER_HOST=${DOCKER_HOST:-unset}): scripts/dockerd.sh start"
if docker image inspect "$tag" >/dev/null 2>&1; then
    say "$tag exists"
    exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    say "apt-get install debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
fi

root="$(mktemp -d "${TMPDIR:-/var/tmp}/orbital-base.XXXXXX")"
trap 'rm -rf "$root"' EXIT
say "debootstrap bookworm minbase into $root (about a minute)"
debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$root" "$mirror" >"$root.log" 2>&1 \
    || { tail -n 30 "$root.log" >&2; die "debootstrap failed (log $root.log)"; }
rm -f "$root.log"
# What an image does not need: apt lists and caches, docs (keep copyright notices).
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/*/changelog* "$root"/usr/share/man/* "$root"/usr/share/info/*
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" \
    >"$root/etc/apt/sources.list"
say "docker import as $tag"
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
say "$tag: $(docker image inspect "$tag" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
