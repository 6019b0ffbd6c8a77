#!/usr/bin/env bash
# Build the Debian package: bash installer/deb/build.sh   ->  dist/weightwarden_VERSION-1_ARCH.deb
# The application goes into its own virtual environment under /opt/weightwarden/venv, built on the
# machine's /usr/bin/python3 (build on the Debian/Ubuntu release you ship to). Options:
#   --wheels DIR         install offline from a directory of wheels (`pip wheel -w DIR .` makes one);
#                        default: pip's configured indexes
#   --out DIR            where the .deb goes (default dist/)
#   --revision N         Debian revision (default 1)
#   --compression C      xz (default, smallest), zstd (fast), gzip or none
#   --python PY          interpreter for the venv (default /usr/bin/python3)
#   --no-deps            Weightwarden alone in the venv: a small package for testing the packaging, not for use
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
out=$REPO/dist
revision=1
compression=xz
python=/usr/bin/python3
install_args=()

while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) install_args+=(--wheels "$2"); shift 2 ;;
        --out) out=$2; shift 2 ;;
        --revision) revision=$2; shift 2 ;;
        --compression) compression=$2; shift 2 ;;
        --python) python=$2; shift 2 ;;
        --no-deps) install_args+=(--no-deps); shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
command -v dpkg-deb >/dev/null || { echo "build.sh: needs dpkg-deb (apt install dpkg)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/root

# The same files install.sh puts on a machine, with the Debian layout (/usr/bin, /lib/systemd/system).
DESTDIR=$stage bash "$REPO/installer/linux/install.sh" --layout deb --files-only --python "$python" \
    "${install_args[@]}"
rm -f "$stage/opt/weightwarden/share/layout" "$stage/opt/weightwarden/share/uninstall.sh"  # apt removes it

upstream=$(cat "$stage/opt/weightwarden/share/version")
# PEP 440 pre-releases sort before the release in Debian only with a tilde: 0.2.0rc1 -> 0.2.0~rc1.
deb_version="$(printf '%s' "$upstream" | sed 's/\(rc\|a\|b\)\([0-9]\)/~\1\2/')-$revision"
arch=$(dpkg --print-architecture)
venv_python=$(readlink "$stage/opt/weightwarden/venv/bin/python3" || true)
python_dep=$(basename "${venv_python:-python3}")   # python3.11: the venv's site-packages is per minor version

doc=$stage/usr/share/doc/weightwarden
install -d -m 0755 "$doc" "$stage/usr/share/lintian/overrides"
install -m 0644 "$HERE/copyright" "$doc/copyright"
install -m 0644 "$HERE/lintian-overrides" "$stage/usr/share/lintian/overrides/weightwarden"
printf 'weightwarden (%s) stable; urgency=medium\n\n  * Release %s.\n\n -- Weightwarden maintainers <security@example.org>  %s\n' \
    "$deb_version" "$upstream" "$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")" \
    | gzip -9n >"$doc/changelog.Debian.gz"

# The config file format this version writes: preinst refuses a config from a newer one before unpacking.
config_format=$("$stage/opt/weightwarden/venv/bin/python" -c \
    'from weightwarden.agent.config_migrations import CURRENT_FORMAT; print(CURRENT_FORMAT)')
install -d -m 0755 "$stage/DEBIAN"
for script in preinst postinst prerm postrm; do
    sed -e "s/@DEB_VERSION@/$deb_version/g" -e "s/@UPSTREAM_VERSION@/$upstream/g" \
        -e "s/@CONFIG_FORMAT@/$config_format/g" "$HERE/$script" \
        >"$stage/DEBIAN/$script"
    chmod 0755 "$stage/DEBIAN/$script"
done
# The autostart entry lives in /etc: an admin may switch it off, and an upgrade must keep that.
echo /etc/xdg/autostart/weightwarden-gui.desktop >"$stage/DEBIAN/conffiles"
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOF
Package: weightwarden
Version: $deb_version
Architecture: $arch
Maintainer: Weightwarden maintainers <security@example.org>
Installed-Size: $installed_size
Depends: $python_dep, passwd, libc6, libegl1, libgl1, libxkbcommon0, libfontconfig1, libdbus-1-3, libglib2.0-0
Recommends: systemd, libxcb-cursor0
Section: admin
Priority: optional
Homepage: https://example.org/weightwarden
Description: insider-threat monitor for ML model files
 Weightwarden protects trained model files (weights, checkpoints, adapters)
 on ML workstations: it identifies them by content, watches who reads,
 copies, packs or sends them, keeps a tamper-evident log and forwards alerts
 to the organisation's SIEM. This package runs the agent as a system service
 and adds the desktop app for the logged-in user.
EOF
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    >"$stage/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/weightwarden_${deb_version}_${arch}.deb
level=()
case "$compression" in xz) level=(-z6) ;; zstd) level=(-z3) ;; gzip) level=(-z6) ;; none) ;; 
    *) echo "build.sh: --compression xz|zstd|gzip|none" >&2; exit 2 ;; esac
dpkg-deb --root-owner-group -Z"$compression" "${level[@]}" --build "$stage" "$deb" >/dev/null
echo "$deb"
