#!/usr/bin/env bash
# One entry point for a fresh Debian/Ubuntu machine: set up everything, then run or test.
#   bash installer/dev.sh run    # agent in user mode with the embedded SQLite store (+ the app on a display)
#   bash installer/dev.sh test   # ruff, mypy, a focused subset at the lowest declared dependency versions,
#                                # then the whole test suite under coverage (fails below .ci/coverage-floor)
#   bash installer/dev.sh lowest # only the focused subset at the lowest declared versions
# System packages are installed when we are root (or have passwordless sudo); the Python side always goes
# into .venv beside this checkout, so nothing touches the system Python.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR=$(pwd)
VENV="$ROOT_DIR/.venv"
PY=${PYTHON:-python3}

# Qt needs these shared libraries even offscreen; the tests also drive real receivers and a real X server.
RUN_DEBS=(python3 python3-venv python3-dev gcc libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1
          libdbus-1-3 libglib2.0-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0
          libxcb-randr0 libxcb-render-util0 libxcb-image0 libxrender1 libxi6 libnss3 libasound2)
TEST_DEBS=(xvfb xauth coreutils)
# sensor tests: `ip netns` + veth (iproute2), `mount`/`setsid` (util-linux); bench/sensors_*: inotifywait
TEST_DEBS+=(iproute2 util-linux inotify-tools)
# mount sensor tests: a loop-mounted ext4 image (e2fsprogs), an sshfs share from a private sshd on 127.0.0.1
TEST_DEBS+=(e2fsprogs sshfs openssh-server openssh-client)
# audit tests: POSIX ACLs set with setfacl (acl)
TEST_DEBS+=(acl)
# installer tests: build the .deb (dpkg-deb), review it (lintian), lint the scripts (shellcheck), check the
# unit (systemd-analyze from systemd: installed, never started), groupadd --prefix (passwd); installs go to
# throwaway roots only
TEST_DEBS+=(dpkg lintian systemd passwd shellcheck)
# forwarding tests: syslog-ng (tls) is installed; rsyslog conflicts with it as a package (both provide
# system-log-daemon), so only rsyslog's libraries are installed and rsyslog + rsyslog-gnutls are unpacked
# privately into .venv/opt/rsyslog (install_private_rsyslog); certificates are made with cryptography.
TEST_DEBS+=(syslog-ng-core libestr0 libfastjson4 liblognorm5 libgnutls30 libzstd1)
# detection scenarios (tests/agent/detect/test_scenarios.py): real archivers, transfer tools and an sshd in
# a network namespace the test creates; a loop-mounted ext4 stands in for a USB stick (mkfs from e2fsprogs)
TEST_DEBS+=(openssh-server openssh-client rsync rclone zip gnupg e2fsprogs git)
# lineage through local relays (tests/agent/test_lineage_relays.py): a SOCKS5 proxy and a port forwarder
TEST_DEBS+=(microsocks socat)
# benign workloads that must stay silent (tests/agent/test_lineage_benign.py): a git-lfs clone and pull, a
# desktop thumbnailer (gdk-pixbuf-thumbnailer), `file` sniffing types, an allowlisted restic backup
TEST_DEBS+=(git-lfs libgdk-pixbuf2.0-bin file restic)

log() { printf '\033[1m[weightwarden]\033[0m %s\n' "$*" >&2; }

install_debs() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n); else
            log "missing system packages (install them as root): ${missing[*]}"; return 0; fi
    fi
    command -v apt-get >/dev/null || { log "no apt-get: install ${missing[*]} yourself"; return 0; }
    log "installing system packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_venv() {
    local extra=$1
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        "$PY" -m venv "$VENV"
    fi
    local stamp="$VENV/.installed-$extra"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        log "installing weightwarden[$extra] into $VENV"
        "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
        # run: the agent and the app (the `app` extra brings Qt); test: everything, the app included
        local target=".[app]"
        [ "$extra" = test ] && target=".[test]"
        "$VENV/bin/pip" install -q --config-settings editable_mode=strict -e "$target"
        if [ "$extra" = test ]; then install_torch_cpu && install_quanto; fi
        touch "$stamp"
    else
        # new modules need a fresh link tree in strict editable mode; cheap, no network
        "$VENV/bin/pip" install -q --no-deps --no-build-isolation --config-settings editable_mode=strict -e . >/dev/null
    fi
}

# rsyslog for the forwarding tests, unpacked (not installed) so it cannot displace the machine's syslog
# daemon nor conflict with syslog-ng-core; the tests run it with -M pointing at its private modules.
install_private_rsyslog() {
    local target="$VENV/opt/rsyslog"
    [ -x "$target/usr/sbin/rsyslogd" ] && return 0
    command -v apt-get >/dev/null || { log "no apt-get: rsyslog tests will be skipped"; return 0; }
    local tmp
    tmp=$(mktemp -d)
    if (cd "$tmp" && apt-get download rsyslog rsyslog-gnutls >/dev/null 2>&1); then
        mkdir -p "$target"
        for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$target"; done
        log "rsyslog unpacked into $target"
    else
        log "could not download rsyslog: rsyslog tests will be skipped"
    fi
    rm -rf "$tmp"
}

# torch writes the pytorch-zip and pytorch-legacy fixtures. Only its CPU build is worth installing; where
# none can be had quickly, those tests skip with the reason.
install_torch_cpu() {
    "$VENV/bin/python" -c "import torch" 2>/dev/null && return 0
    # The +cpu build is found where a wheel directory offers it (pip's find-links); PyPI's plain torch
    # is a multi-GB CUDA build, not worth it for writing a few small files.
    if "$VENV/bin/pip" install -q "torch==2.13.0+cpu" 2>/dev/null; then
        log "torch (CPU) installed"
    else
        log "no CPU build of torch reachable: torch-written fixtures will be skipped"
    fi
}

# optimum-quanto writes the int8 copies of tests/similarity; it needs torch, so it comes after the CPU
# build (from the index, its torch requirement would pull the CUDA one). Its tests skip without it.
install_quanto() {
    "$VENV/bin/python" -c "import torch" 2>/dev/null || return 0
    "$VENV/bin/pip" install -q --config-settings editable_mode=strict -e ".[quanto]" 2>/dev/null \
        && log "optimum-quanto installed" \
        || log "optimum-quanto not installable: the int8 similarity tests will be skipped"
}

# The tests that exercise what each runtime dependency's floor in pyproject.toml must provide: sqlite-utils
# (store, literal migrations), cryptography (seal, keys), PyYAML and tomllib (config), urllib3 (proxies),
# psutil and watchdog (sensors), numpy and yara-python (through the agent's imports). Model writers (the
# test extra) are not installed there, so tests that write model files are not in it.
LOWEST_TESTS=(tests/agent/store tests/agent/test_config.py tests/agent/test_config_migrations.py
              tests/agent/test_seal.py tests/agent/test_version_stamp.py tests/agent/forward/test_proxy_env.py
              tests/agent/sensors/test_platform.py tests/agent/sensors/test_processes.py
              tests/agent/test_systemd_notify.py)

# A second venv with every runtime dependency at the lowest version pyproject.toml allows (uv's
# lowest-direct: the declared floors, their own dependencies as new as they resolve) and the test tools
# at their floors too.
setup_lowest_venv() {
    local low="$ROOT_DIR/.venv-lowest"
    [ -x "$low/bin/python" ] || "$VENV/bin/uv" venv -q --python "$VENV/bin/python" "$low"
    "$VENV/bin/uv" pip install -q --python "$low/bin/python" --resolution lowest-direct -e . \
        "pytest>=8" "pytest-timeout>=2.2" "hypothesis>=6.100"
}

# The focused run at the lowest declared versions (part of `test`; `lowest` runs it alone).
run_lowest() {
    log "installing the lowest declared dependency versions into .venv-lowest"
    setup_lowest_venv
    log "pytest at the lowest versions: ${LOWEST_TESTS[*]}"
    # the random-SIGKILL seal test is about timing, not versions: left to the main run
    "$ROOT_DIR/.venv-lowest/bin/python" -m pytest -q -p no:cacheprovider -k "not random_moments" \
        "${LOWEST_TESTS[@]}" "$@"
}

case "${1:-}" in
    run)
        shift
        install_debs "${RUN_DEBS[@]}"
        setup_venv run
        if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
            log "starting the desktop app"
            "$VENV/bin/weightwarden-gui" --mode user &
        fi
        log "starting the agent (user mode, Ctrl-C to stop); alerts: $VENV/bin/weightwarden alerts"
        exec "$VENV/bin/weightwarden" agent --mode user "$@"
        ;;
    test)
        shift
        install_debs "${RUN_DEBS[@]}" "${TEST_DEBS[@]}"
        setup_venv test
        install_private_rsyslog
        log "ruff"; "$VENV/bin/ruff" check .
        log "mypy"; "$VENV/bin/mypy"
        run_lowest
        # Coverage of the weightwarden package over the whole suite (the C tracer: Python 3.11 has no
        # sys.monitoring); docs/install.md has its measured cost. The floor only rises
        # (tests/test_packaging.py checks its history).
        log "pytest (coverage)"
        rm -f .coverage
        "$VENV/bin/python" -m coverage run --branch --source=weightwarden -m pytest "$@"
        "$VENV/bin/python" -m coverage report --precision=1 --skip-covered --skip-empty \
            --fail-under="$(cat .ci/coverage-floor)" | tail -n 3
        ;;
    lowest)
        shift
        install_debs "${RUN_DEBS[@]}" "${TEST_DEBS[@]}"
        setup_venv test
        run_lowest "$@"
        ;;
    *)
        echo "usage: bash installer/dev.sh run|test|lowest [ARGS...]" >&2
        exit 2
        ;;
esac
