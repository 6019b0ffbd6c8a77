#!/usr/bin/env bash
# Install Weightwarden on macOS: the agent as a LaunchDaemon (root), the app as a LaunchAgent (each user).
#   sudo bash installer/macos/install.sh [--wheels DIR] [--python PY] [--no-deps]
#   sudo bash installer/macos/install.sh --uninstall [--purge]
# Needs Python >= 3.11 (python.org installer or Homebrew). Idempotent; an upgrade keeps config and data
# (an older config file is brought forward, with a backup), and an older version refuses to replace a
# newer one's data. DESTDIR=/some/root stages everything below that root (for a .pkg, or the tests, which
# run this on Linux with the macOS tools replaced by stubs). Reduced coverage on macOS: docs/install.md.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DESTDIR=${DESTDIR:-}
DESTDIR=${DESTDIR%/}
OPT_FINAL=/opt/weightwarden
OPT=$DESTDIR$OPT_FINAL
SUPPORT="$DESTDIR/Library/Application Support/Weightwarden"
DAEMON_FINAL=/Library/LaunchDaemons/org.weightwarden.agent.plist
DAEMON=$DESTDIR$DAEMON_FINAL
AGENT=$DESTDIR/Library/LaunchAgents/org.weightwarden.app.plist
BIN=$DESTDIR/usr/local/bin
GROUP=weightwarden-admin
deps=yes
wheels=""
python=python3
action=install
purge=no

while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) wheels=$(cd "$2" && pwd); shift 2 ;;
        --python) python=$2; shift 2 ;;
        --uninstall) action=uninstall; shift ;;
        --purge) purge=yes; shift ;;
        --no-deps) deps=no; shift ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
log() { printf 'weightwarden: %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "run with sudo"; exit 2; }
[ "$(uname -s)" = Darwin ] || { log "this is the macOS installer; on Linux use installer/linux/install.sh"; exit 2; }

if [ "$action" = uninstall ]; then
    launchctl bootout system "$DAEMON_FINAL" 2>/dev/null || true
    rm -f "$DAEMON" "$AGENT" "$BIN/weightwarden" "$BIN/weightwarden-gui"
    rm -rf "$OPT"
    if [ "$purge" = yes ]; then
        rm -rf "$SUPPORT" "$DESTDIR/Library/Logs/Weightwarden"
        dscl . -delete "/Groups/$GROUP" 2>/dev/null || true
    fi
    if [ "$purge" = yes ]; then log "removed Weightwarden, its configuration and data"
    else log "removed Weightwarden; kept $SUPPORT (--purge deletes it)"; fi
    exit 0
fi

python=$(command -v "$python") || { log "no $python: install Python 3.11 or newer"; exit 2; }
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { log "$python is older than 3.11"; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "$wheels" ]; then source_dir=$wheels; else
    "$python" -m pip wheel -q --no-deps -w "$work/dist" "$REPO"; source_dir=$work/dist; fi
wheel=$(find "$source_dir" -maxdepth 1 -name "weightwarden-*.whl" | sort -V | tail -n 1)
version=$(basename "$wheel" | cut -d- -f2)

# Refuse a downgrade before replacing anything (same rule as the Linux installers).
stamp="$SUPPORT/data/weightwarden.version"
if [ -f "$stamp" ] && [ "${WEIGHTWARDEN_ALLOW_DOWNGRADE:-}" != 1 ]; then
    newest=$(printf '%s\n%s\n' "$(head -n 1 "$stamp")" "$version" | sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1)
    if [ "$newest" != "$version" ]; then
        log "refusing to downgrade: data was last used by Weightwarden $(head -n 1 "$stamp"), newer than $version"
        exit 1
    fi
fi

rm -rf "$OPT/venv.new"
mkdir -p "$OPT"
# The interpreter's own pip installs into the venv (--python): seconds faster than bootstrapping pip into
# every new venv, and it leaves no installer inside the application's environment.
if "$python" -m pip --version >/dev/null 2>&1; then
    "$python" -m venv --without-pip "$OPT/venv.new"
    installer=("$python" -m pip --python "$OPT/venv.new/bin/python")
else
    "$python" -m venv "$OPT/venv.new"
    installer=("$OPT/venv.new/bin/python" -m pip)
fi
pip_args=(install -q --disable-pip-version-check)
[ -n "$wheels" ] && pip_args+=(--no-index --find-links "$wheels")
[ "$deps" = no ] && pip_args+=(--no-deps)
# The app's Qt is the `app` extra (pyproject.toml); a Mac with the app gets both.
"${installer[@]}" "${pip_args[@]}" "${wheel}[app]"
# Staged under DESTDIR, run from /opt: the venv's scripts must name the final place.
grep -rlI --null -F "$OPT/venv.new" "$OPT/venv.new/bin" "$OPT/venv.new/pyvenv.cfg" \
    | xargs -0 -r sed -i.orig "s#$OPT/venv.new#$OPT_FINAL/venv#g"
find "$OPT/venv.new/bin" "$OPT/venv.new" -maxdepth 1 -name '*.orig' -delete
rm -rf "$OPT/venv.old"
[ -d "$OPT/venv" ] && mv "$OPT/venv" "$OPT/venv.old"
mv "$OPT/venv.new" "$OPT/venv"
rm -rf "$OPT/venv.old"
mkdir -p "$BIN"
ln -sfn "$OPT_FINAL/venv/bin/weightwarden" "$BIN/weightwarden"
ln -sfn "$OPT_FINAL/venv/bin/weightwarden-gui" "$BIN/weightwarden-gui"

# Admin group (members resolve alerts and change policy), config and data 0750 root:weightwarden-admin.
# Numeric ids throughout: wheel is gid 0 on macOS, and the admin group's gid is the one given to it here.
if ! dscl . -read "/Groups/$GROUP" >/dev/null 2>&1; then
    gid=$(dscl . -list /Groups PrimaryGroupID | awk '{print $2}' | sort -n | awk '$1 >= 400 && $1 < 500' | tail -n 1)
    gid=$(( ${gid:-399} + 1 ))
    dseditgroup -o create -i "$gid" -r "Weightwarden administrators" "$GROUP"
fi
gid=$(dscl . -read "/Groups/$GROUP" PrimaryGroupID | awk '{print $2}')
mkdir -p "$SUPPORT/data" "$DESTDIR/Library/Logs/Weightwarden" "$(dirname "$DAEMON")" "$(dirname "$AGENT")"
chown 0:"$gid" "$SUPPORT" "$SUPPORT/data"
chmod 0750 "$SUPPORT" "$SUPPORT/data"
if [ ! -e "$SUPPORT/config.toml" ]; then
    install -m 0640 -o 0 -g "$gid" "$REPO/installer/linux/config.toml" "$SUPPORT/config.toml"
elif ! "$OPT/venv/bin/python" -m weightwarden.agent.config_migrations "$SUPPORT/config.toml" >&2; then
    log "the configuration was left unchanged; fix the problem above and run the installation again"
    exit 1
fi
printf '%s\n' "$version" >"$stamp"

install -m 0644 -o 0 -g 0 "$HERE/org.weightwarden.agent.plist" "$DAEMON"
install -m 0644 -o 0 -g 0 "$HERE/org.weightwarden.app.plist" "$AGENT"
plutil -lint "$DAEMON" "$AGENT" >/dev/null
# bootout + bootstrap: an upgrade runs the new code now; the first install starts the agent at once.
launchctl bootout system "$DAEMON_FINAL" 2>/dev/null || true
launchctl bootstrap system "$DAEMON_FINAL"
log "installed Weightwarden $version; the app starts at each user's next login"
log "grant Full Disk Access to $OPT/venv/bin/python3 (System Settings > Privacy & Security) so the agent can read models"
