#!/usr/bin/env bash
# Set up orbital's development environment in the repository's .venv.
#
#   scripts/setup.sh           Python virtualenv with the project and the [dev] extra, and
#                              what orbital demo starts: Node.js >= 18 and the pinned anvil,
#                              cast and solcjs in tools/node_modules (npm ci)
#   scripts/setup.sh --test    also the [test] extra and SoftHSM2 + p11-kit (Debian
#                              packages), the other real part the tests start
#
# Idempotent: a second run installs nothing and needs no network (remove .venv or
# tools/node_modules to force a reinstall). Works on a plain Debian 12 (no Node.js, PEP 668
# system Python, no apt lists yet; run as root or with sudo) as well as on a machine that
# already has a Python >= 3.11 and Node.js.
# Environment: PYTHON=/path/to/python3.x picks the interpreter for the virtualenv.
set -euo pipefail

usage() {
    sed -n '2,/^[^#]/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

want_test=0
for arg in "$@"; do
    case "$arg" in
        --test) want_test=1 ;;
        -h | --help) usage; exit 0 ;;
        *) printf 'setup.sh: unknown argument: %s (try --help)\n' "$arg" >&2; exit 2 ;;
    esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

log() { printf '==> %s\n' "$*"; }
die() { printf 'setup.sh: error: %s\n' "$*" >&2; exit 1; }

# Run a command with its output kept in a log that is shown only if it fails.
quietly() {
    local out rc
    out="$(mktemp "${TMPDIR:-/tmp}/orbital-setup.XXXXXX")"
    if "$@" >"$out" 2>&1; then
        rm -f "$out"
    else
        rc=$?
        tail -n 60 "$out" >&2
        printf 'setup.sh: error: exit %d from: %s\n  (full output: %s)\n' "$rc" "$*" "$out" >&2
        exit "$rc"
    fi
}

# sha256 of files, without depending on coreutils' sha256sum being there.
fingerprint() { cat "$@" | "$py" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'; }

# ---------------------------------------------------------------------------------------
# Debian packages, only when something is missing.

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 \
        || die "missing system packages ($*) and no apt-get to install them: install them by hand"
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        quietly as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        apt_updated=1
    fi
    log "apt-get install $*"
    quietly as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends -o Dpkg::Use-Pty=0 "$@"
}

deb_installed() {
    command -v dpkg-query >/dev/null 2>&1 \
        && [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# ---------------------------------------------------------------------------------------
# Python >= 3.11 and the virtualenv.

python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }

find_python() {
    local cand candidates=(python3 python3.13 python3.12 python3.11)
    [ -z "${PYTHON:-}" ] || candidates=("$PYTHON")
    for cand in "${candidates[@]}"; do
        if command -v "$cand" >/dev/null 2>&1 && python_ok "$cand"; then
            "$cand" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    return 1
}

py="$(find_python)" || {
    [ -z "${PYTHON:-}" ] || die "PYTHON=$PYTHON is not a Python >= 3.11"
    log "no Python >= 3.11 found; installing Debian's python3"
    apt_install python3 python3-venv
    py="$(find_python)" || die "no Python >= 3.11 after installing python3 (Debian 12 or newer needed)"
}
py_version="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
log "python: $py ($py_version)"

venv_ok() {
    [ -x .venv/bin/python ] && python_ok .venv/bin/python \
        && .venv/bin/python -c 'import pip' >/dev/null 2>&1
}

if ! venv_ok; then
    rm -rf .venv
    log "creating .venv"
    if ! venv_err="$("$py" -m venv .venv 2>&1)"; then
        rm -rf .venv
        # Debian ships venv/ensurepip separately (python3-venv / python3.X-venv).
        if [ "$(readlink -f "$(command -v "$py")")" = "$(readlink -f /usr/bin/python3 2>/dev/null)" ]; then
            venv_pkg=python3-venv
        else
            venv_pkg="python${py_version}-venv"
        fi
        log "'$py -m venv' failed; installing $venv_pkg"
        deb_installed "$venv_pkg" && die "'$py -m venv' failed although $venv_pkg is installed: $venv_err"
        apt_install "$venv_pkg"
        quietly "$py" -m venv .venv
    fi
    log "upgrading pip in .venv"
    quietly .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip
fi

if [ "$want_test" -eq 1 ]; then extras="test,dev"; else extras="dev"; fi
# Skip pip when neither pyproject.toml nor the extras changed since the last install here.
pip_stamp=.venv/.orbital-setup
pyproject_sha="$(fingerprint pyproject.toml)"
pip_want="$pyproject_sha $extras $repo_root"
pip_have="$(cat "$pip_stamp" 2>/dev/null || true)"
if [ "$pip_have" = "$pip_want" ] || [ "$pip_have" = "$pyproject_sha test,dev $repo_root" ]; then
    log "python packages up to date (.[$extras])"
else
    # fastecdsa (required by libp2p) is published as source only: building it needs a C
    # compiler, libc and Python headers, and GMP's headers. A plain Debian 12 has none.
    build_deps=()
    command -v gcc >/dev/null 2>&1 || build_deps+=(gcc)
    [ -f /usr/include/stdio.h ] || build_deps+=(libc6-dev)
    py_include="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    [ -f "$py_include/Python.h" ] || build_deps+=(python3-dev)
    { [ -f /usr/include/gmp.h ] || compgen -G '/usr/include/*/gmp.h' >/dev/null; } \
        || build_deps+=(libgmp-dev)
    if [ "${#build_deps[@]}" -gt 0 ]; then
        apt_install "${build_deps[@]}"
    fi
    log "pip install -e '.[$extras]'"
    rm -f "$pip_stamp"
    quietly .venv/bin/python -m pip install --disable-pip-version-check -e ".[$extras]"
    printf '%s\n' "$pip_want" >"$pip_stamp"
fi

# ---------------------------------------------------------------------------------------
# --test: SoftHSM2 and p11-kit (PKCS#11). Both modes: Node.js, anvil and solcjs (orbital
# demo starts anvil as the chain on the ground).

missing=()
for pkg in softhsm2 p11-kit p11-kit-modules; do
    deb_installed "$pkg" && continue
    # without dpkg, accept what is on PATH / in the usual module directories
    if ! command -v dpkg-query >/dev/null 2>&1; then
        case "$pkg" in
            softhsm2) command -v softhsm2-util >/dev/null 2>&1 && continue ;;
            p11-kit) command -v p11-kit >/dev/null 2>&1 && continue ;;
            p11-kit-modules)
                compgen -G '/usr/lib*/p11-kit-proxy.so' >/dev/null && continue
                compgen -G '/usr/lib*/*/p11-kit-proxy.so' >/dev/null && continue ;;
        esac
    fi
    missing+=("$pkg")
done
if [ "$want_test" -eq 0 ]; then
    :  # the demo's wallets are keystores; SoftHSM2 is for the tests
elif [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
else
    log "softhsm2, p11-kit, p11-kit-modules present"
fi

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1 \
    || [ "$(node_major)" -lt 18 ]; then
    log "Node.js >= 18 with npm not found; installing Debian's nodejs and npm"
    apt_install nodejs npm
    command -v npm >/dev/null 2>&1 || die "npm not found after installing nodejs npm"
    [ "$(node_major)" -ge 18 ] || die "Node.js >= 18 needed, have $(node --version)"
fi
log "node $(node --version), npm $(npm --version 2>/dev/null)"

npm_ci() { (cd tools && npm ci --no-audit --no-fund); }
pinned() { node -p "require('./tools/package.json').dependencies['$1']"; }

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) platform=linux-amd64 ;;
    Linux-aarch64 | Linux-arm64) platform=linux-arm64 ;;
    Darwin-x86_64) platform=darwin-amd64 ;;
    Darwin-arm64) platform=darwin-arm64 ;;
    *) die "no foundry binaries for $(uname -s)-$(uname -m)" ;;
esac
# A foundry binary (anvil, cast) normally comes as the optional dependency
# @foundry-rs/<tool>-$platform. npm 9 (Debian 12) skips that package on Node 18 (its engines
# field says node >= 20) and @foundry-rs/<tool>'s postinstall then fetches the same pinned
# version from the registry, checking its integrity, into @foundry-rs/<tool>/<tool>.
# node/devnet.py looks in both places.
find_tool_bin() {
    local path
    for path in "tools/node_modules/@foundry-rs/$1-$platform/bin/$1" \
        "tools/node_modules/@foundry-rs/$1/$1"; do
        [ -x "$path" ] && { printf '%s\n' "$path"; return 0; }
    done
    return 1
}

# npm ci only when node_modules does not match the lockfile (and this Node major).
npm_stamp=tools/node_modules/.orbital-setup
npm_want="$(fingerprint tools/package.json tools/package-lock.json) node$(node_major)"
if [ "$(cat "$npm_stamp" 2>/dev/null)" = "$npm_want" ] && find_tool_bin anvil >/dev/null \
    && find_tool_bin cast >/dev/null; then
    log "tools/node_modules up to date"
else
    log "npm ci in tools/"
    rm -f "$npm_stamp"
    quietly npm_ci
    solc_want="$(pinned solc)"
    solc_have="$(node tools/node_modules/solc/solc.js --version)" \
        || die "solcjs does not run (node tools/node_modules/solc/solc.js --version)"
    case "$solc_have" in
        "$solc_want"+*) log "solcjs: $solc_have" ;;
        *) die "solcjs is $solc_have, tools/package.json pins $solc_want" ;;
    esac
    printf '%s\n' "$npm_want" >"$npm_stamp"
fi

for tool in anvil cast; do
    bin="$(find_tool_bin "$tool")" || die "no $tool binary in tools/node_modules after npm ci"
    have="$("$bin" --version 2>&1 | head -n 1)" || true
    [ "$have" = "$tool Version: $(pinned "@foundry-rs/$tool")" ] \
        || die "$bin does not run as the pinned $tool ($have); remove tools/node_modules and re-run"
    log "$have ($bin)"
done
if [ "$want_test" -eq 1 ]; then
    log "done: run the tests with .venv/bin/python -m pytest"
else
    log "done: run the demo with .venv/bin/orbital demo"
fi
