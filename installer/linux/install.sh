#!/usr/bin/env bash
# Install Weightwarden machine-wide without the Debian package (any systemd Linux with Python >= 3.11).
#   sudo bash installer/linux/install.sh [--wheels DIR] [--python PY]
#   DESTDIR=/tmp/root bash installer/linux/install.sh ...   # into a staging root: nothing else is touched
# Options:
#   --wheels DIR   install offline from this directory of wheels (weightwarden and its dependencies)
#   --python PY    the interpreter the virtual environment is built on (default: python3 on PATH)
#   --layout deb   Debian paths (/usr/bin, /lib/systemd/system, /usr/share); default: /usr/local, /etc/systemd
#   --files-only   install the files, skip the machine setup (the package build uses this)
#   --no-start     set up and enable the service but do not (re)start it
#   --no-deps      Weightwarden alone in the venv, no dependencies: for packaging tests only
#   --headless     the agent alone, no desktop app and no Qt (servers); default: agent and app
#   --requirements FILE   the dependencies exactly as FILE pins them, hash-checked (pip --require-hashes):
#                  the package build passes installer/deb/requirements.lock
# Idempotent; also the upgrade path: the new venv is built beside the old one and swapped in, and an
# older version refuses to replace a newer one's data (installer/linux/setup-system.sh check-version).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DESTDIR=${DESTDIR:-}
DESTDIR=${DESTDIR%/}
OPT=/opt/weightwarden
wheels=""
python=python3
layout=local
files_only=no
start_flag=()
deps=yes
app=yes
requirements=""

while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) wheels=$(cd "$2" && pwd); shift 2 ;;
        --python) python=$2; shift 2 ;;
        --layout) layout=$2; shift 2 ;;
        --files-only) files_only=yes; shift ;;
        --no-start) start_flag=(--no-start); shift ;;
        --no-deps) deps=no; shift ;;
        --headless) app=no; shift ;;
        --requirements) requirements=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

case "$layout" in
    local) BINDIR=/usr/local/bin; UNITDIR=/etc/systemd/system; APPDIR=/usr/local/share/applications ;;
    deb) BINDIR=/usr/bin; UNITDIR=/lib/systemd/system; APPDIR=/usr/share/applications ;;
    *) echo "install.sh: --layout local|deb" >&2; exit 2 ;;
esac

log() { printf 'weightwarden: %s\n' "$*" >&2; }

if [ -z "$DESTDIR" ] && [ "$files_only" = no ] && [ "$(id -u)" -ne 0 ]; then
    log "run as root (or set DESTDIR to install into a staging root)"; exit 2
fi

python=$(command -v "$python") || { log "no $python: install Python 3.11 or newer"; exit 2; }
# Pin the venv to the versioned interpreter: python3 may later point at another minor version.
python=$(readlink -f "$python")
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { log "$python is older than 3.11"; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---------------------------------------------------------------- the application's virtual environment
if [ -n "$wheels" ] && compgen -G "$wheels/weightwarden-*.whl" >/dev/null; then
    source_dir=$wheels
else
    log "building the weightwarden wheel from $REPO"
    "$python" -m pip --version >/dev/null 2>&1 && builder=("$python" -m pip) || builder=()
    if [ -x "$REPO/.venv/bin/pip" ]; then builder=("$REPO/.venv/bin/pip"); fi
    [ ${#builder[@]} -gt 0 ] || { log "no pip to build the wheel with; pass --wheels DIR"; exit 2; }
    "${builder[@]}" wheel -q --no-deps -w "$work/dist" "$REPO"
    source_dir=$work/dist
fi
wheel=$(find "$source_dir" -maxdepth 1 -name "weightwarden-*.whl" | sort -V | tail -n 1)
version=$(basename "$wheel" | cut -d- -f2)

# An older version must not take over a newer one's data: checked before any file is replaced.
if [ "$files_only" = no ]; then
    sh "$HERE/setup-system.sh" check-version "$version" --root "$DESTDIR"
fi

venv=$DESTDIR$OPT/venv
mkdir -p "$DESTDIR$OPT"
rm -rf "$venv.new"
log "building $OPT/venv (weightwarden $version) on $python"
# A pip outside the venv (this checkout's .venv, or the interpreter's own) installs into it with --python:
# seconds faster than bootstrapping pip into every new venv, and leaves no installer inside.
installer=()
if [ -x "$REPO/.venv/bin/pip" ]; then installer=("$REPO/.venv/bin/pip")
elif "$python" -m pip --version >/dev/null 2>&1; then installer=("$python" -m pip); fi
if [ ${#installer[@]} -gt 0 ]; then
    "$python" -m venv --without-pip "$venv.new"
    installer+=(--python "$venv.new/bin/python")
else
    "$python" -m venv "$venv.new"
    installer=("$venv.new/bin/pip")
fi
pip_args=(install -q --no-compile --disable-pip-version-check)
[ -n "$wheels" ] && pip_args+=(--no-index --find-links "$wheels")
[ "$source_dir" != "$wheels" ] && pip_args+=(--find-links "$source_dir")
[ "$deps" = no ] && pip_args+=(--no-deps)
if [ -n "$requirements" ] && [ "$deps" = yes ]; then
    # Locked: every dependency at the version and hash the lock names, then Weightwarden itself on top.
    "${installer[@]}" "${pip_args[@]}" --require-hashes --no-deps -r "$requirements"
    "${installer[@]}" "${pip_args[@]}" --no-deps "$wheel"
elif [ "$app" = yes ]; then
    "${installer[@]}" "${pip_args[@]}" "${wheel}[app]"   # the app's Qt is the `app` extra (pyproject.toml)
else
    "${installer[@]}" "${pip_args[@]}" "$wheel"
fi
# pip records where the wheel came from (a temporary directory): not part of what is installed.
rm -f "$venv.new"/lib/python3*/site-packages/weightwarden-*.dist-info/direct_url.json
sed -i '/^weightwarden-[^/]*\.dist-info\/direct_url\.json,/d' "$venv.new"/lib/python3*/site-packages/weightwarden-*.dist-info/RECORD
# An application bundle, not a development environment: no installer inside, no bytecode naming the build
# place (the package's postinst compiles it where it runs; the agent runs fine without it).
"$venv.new/bin/python" -m pip uninstall -q -y pip setuptools >/dev/null 2>&1 || true
find "$venv.new" -name __pycache__ -type d -prune -exec rm -rf {} +
# Built under DESTDIR, run from /opt: scripts and activate files must name the final place.
if [ -n "$DESTDIR" ]; then
    grep -rlI --null -F "$venv.new" "$venv.new/bin" "$venv.new/pyvenv.cfg" \
        | xargs -0 -r sed -i "s#$venv.new#$OPT/venv#g"
else
    grep -rlI --null -F "$venv.new" "$venv.new/bin" "$venv.new/pyvenv.cfg" \
        | xargs -0 -r sed -i "s#$venv.new#$venv#g"
fi
# pip recorded the scripts' hashes with the build-time paths in them: record what is installed now (and the
# same bytes from every build: a package built twice from the same inputs is the same package).
"$python" - "$venv.new" <<'PY'
import base64, hashlib, pathlib, sys
venv = pathlib.Path(sys.argv[1])
for record in venv.glob("lib/python3*/site-packages/*.dist-info/RECORD"):
    site, lines = record.parent.parent, []
    for line in record.read_text(encoding="utf-8").splitlines():
        name, digest, size = line.rsplit(",", 2)
        path = site / name
        if digest and name.startswith("../") and path.is_file():
            data = path.read_bytes()
            digest = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            size = str(len(data))
        lines.append(f"{name},{digest},{size}")
    record.write_text("\n".join(lines) + "\n", encoding="utf-8")
PY
# Swap: the running agent keeps its open files; the service restart below picks up the new code.
rm -rf "$venv.old"
[ -d "$venv" ] && mv "$venv" "$venv.old"
mv "$venv.new" "$venv"
rm -rf "$venv.old"

# ---------------------------------------------------------------- system files
install -D -m 0644 "$HERE/weightwarden.service" "$DESTDIR$UNITDIR/weightwarden.service"
install -D -m 0644 "$HERE/weightwarden-audit.service" "$DESTDIR$UNITDIR/weightwarden-audit.service"
install -D -m 0644 "$HERE/weightwarden-audit.timer" "$DESTDIR$UNITDIR/weightwarden-audit.timer"
if [ "$app" = yes ]; then
    install -D -m 0644 "$HERE/weightwarden.desktop" "$DESTDIR$APPDIR/weightwarden.desktop"
    install -D -m 0644 "$HERE/weightwarden-autostart.desktop" "$DESTDIR/etc/xdg/autostart/weightwarden-gui.desktop"
fi
install -D -m 0644 "$HERE/config.toml" "$DESTDIR$OPT/share/config.toml"
install -D -m 0755 "$HERE/setup-system.sh" "$DESTDIR$OPT/share/setup-system.sh"
install -D -m 0755 "$HERE/uninstall.sh" "$DESTDIR$OPT/share/uninstall.sh"
install -D -m 0644 "$REPO/docs/install.md" "$DESTDIR$OPT/share/doc/install.md"
install -D -m 0644 "$REPO/docs/siem.md" "$DESTDIR$OPT/share/doc/siem.md"
# The SIEM content (index template, dashboards, Splunk configuration, Sigma rules) for the SIEM's admins
(cd "$REPO" && find siem -type f) | while read -r file; do
    install -D -m 0644 "$REPO/$file" "$DESTDIR$OPT/share/$file"
done
printf '%s\n' "$version" >"$DESTDIR$OPT/share/version"
mkdir -p "$DESTDIR$BINDIR"
tools=(weightwarden)
[ "$app" = yes ] && tools+=(weightwarden-gui)
for tool in "${tools[@]}"; do
    ln -sfn "$OPT/venv/bin/$tool" "$DESTDIR$BINDIR/$tool"
done
printf '%s\n' "$layout" >"$DESTDIR$OPT/share/layout"

if [ "$files_only" = yes ]; then
    log "files installed under ${DESTDIR:-/}"
    exit 0
fi
sh "$HERE/setup-system.sh" configure "$version" --root "$DESTDIR" "${start_flag[@]}"
log "installed Weightwarden $version${DESTDIR:+ into $DESTDIR}"
