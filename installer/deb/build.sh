#!/usr/bin/env bash
# Build the Debian packages: bash installer/deb/build.sh   ->  in dist/:
#   weightwarden-agent_VERSION-1_ARCH.deb  the agent, CLI, rules and systemd units; no Qt (headless servers)
#   weightwarden-app_VERSION-1_ARCH.deb    the desktop app and its Qt (PySide6-Essentials); needs the agent's
#   weightwarden_VERSION-1_all.deb         transitional: upgrades the former single package to both
# Both install into one virtual environment under /opt/weightwarden/venv, built on the machine's
# /usr/bin/python3 (build on the Debian/Ubuntu release you ship to), each owning its own files. The
# dependencies are installed exactly as installer/deb/requirements.lock pins them (hash-checked). Options:
#   --wheels DIR         install offline from a directory of wheels (`pip wheel -w DIR .` makes one);
#                        default: pip's configured indexes
#   --out DIR            where the .deb goes (default dist/)
#   --revision N         Debian revision (default 1)
#   --compression C      xz (default, smallest), zstd (fast), gzip or none
#   --python PY          interpreter for the venv (default /usr/bin/python3)
#   --no-deps            Weightwarden alone in the venv: small packages for testing the packaging, not for use
#   --unlocked           resolve the dependencies (from --wheels or the indexes) instead of using the lock
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
out=$REPO/dist
revision=1
compression=xz
python=/usr/bin/python3
install_args=()
lock=$HERE/requirements.lock

while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) install_args+=(--wheels "$2"); shift 2 ;;
        --out) out=$2; shift 2 ;;
        --revision) revision=$2; shift 2 ;;
        --compression) compression=$2; shift 2 ;;
        --python) python=$2; shift 2 ;;
        --no-deps) install_args+=(--no-deps); lock=""; shift ;;
        --unlocked) lock=""; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
command -v dpkg-deb >/dev/null || { echo "build.sh: needs dpkg-deb (apt install dpkg)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/root
[ -n "$lock" ] && install_args+=(--requirements "$lock")

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
# The config file format this version writes: preinst refuses a config from a newer one before unpacking.
config_format=$("$stage/opt/weightwarden/venv/bin/python" -c \
    'from weightwarden.agent.config_migrations import CURRENT_FORMAT; print(CURRENT_FORMAT)')

# What lintian rightly reports in the wheels as they come, mended here rather than overridden:
venv_dir=$stage/opt/weightwarden/venv
# version-control leftovers some wheels ship
find "$venv_dir" \( -name .gitignore -o -name .gitattributes -o -name .gitkeep \) -type f -delete
# Qt's JPEG and TIFF image plugins carry their own copies of libjpeg and libtiff (embedded-library); the app
# reads no images (its icons are drawn), so they go rather than being overridden.
rm -f "$venv_dir"/lib/python3*/site-packages/PySide6/Qt/plugins/imageformats/libqjpeg.so \
      "$venv_dir"/lib/python3*/site-packages/PySide6/Qt/plugins/imageformats/libqtiff.so
# PyYAML's C extension links its own copy of libyaml (embedded-library); the agent reads YAML with the
# pure-Python SafeLoader only (agent/located/yaml_reader.py: it needs the line numbers), so it goes.
rm -f "$venv_dir"/lib/python3*/site-packages/yaml/_yaml.*.so
# Wheels are zip files: modes arrive as their builders left them. Under lib/ a file is executable exactly
# when it can be run: ELF programs and #!/path scripts are (script-not-executable otherwise); shared
# libraries are loaded, not run (shared-library-is-executable), and anything else cannot be run at all
# (executable-not-elf-or-script). bin/ is left as pip made it.
find "$venv_dir/lib" -type f -print0 | while IFS= read -r -d '' file; do
    case "$(head -c 4 "$file" | od -An -c | tr -d ' \n')" in
        177ELF) case "$file" in *.so|*.so.*) chmod a-x "$file" ;; *) chmod a+x "$file" ;; esac ;;
        \#!/*|\#!\ /*) chmod a+x "$file" ;;
        *) if [ -x "$file" ]; then chmod a-x "$file"; fi ;;
    esac
done
# Symbol tables left in (unstripped-binary-or-object): removed as dh_strip does for shared libraries, except
# in auditwheel's NAME.libs/ folders: those libraries were rewritten with patchelf, and strip(1) corrupts
# them (numpy's OpenBLAS then fails to load: "ELF load command address/offset not page-aligned"); the
# overrides name them one by one.
find "$venv_dir/lib" -type f \( -name '*.so' -o -name '*.so.*' \) -not -path '*.libs/*' -print0 \
    | xargs -0 -r file -N -F ' :' | sed -n 's/^\(.*\) : ELF .*, not stripped$/\1/p' \
    | while IFS= read -r file; do
        strip --strip-unneeded --remove-section=.comment --remove-section=.note "$file"; done

python3 "$HERE/split.py" "$stage" "$work/agent" "$work/app"
mv "$work/app" "$work/weightwarden-app"
mv "$work/agent" "$work/weightwarden-agent"
mkdir -p "$work/weightwarden"
# Clamped file times (dpkg-deb --build takes them as they are): the same inputs, the same package.
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}
changed=$(date -R -u -d "@$epoch")

# package NAME: the doc directory, the lintian overrides, maintainer scripts, md5sums and .deb of one root.
# Reads $control (the control fields after Installed-Size) and the scripts named after it.
package() {
    local name=$1 root=$work/$1 package_arch=$2
    shift 2
    local doc=$root/usr/share/doc/$name
    install -d -m 0755 "$doc" "$root/DEBIAN"
    install -m 0644 "$HERE/copyright" "$doc/copyright"
    printf '%s (%s) stable; urgency=medium\n\n  * Release %s.\n\n -- Weightwarden maintainers <security@example.org>  %s\n' \
        "$name" "$deb_version" "$upstream" "$changed" | gzip -9n >"$doc/changelog.Debian.gz"
    if [ -f "$HERE/$name.lintian-overrides" ]; then
        install -D -m 0644 "$HERE/$name.lintian-overrides" "$root/usr/share/lintian/overrides/$name"
    fi
    for script in preinst postinst prerm postrm; do
        local source=$HERE/$script
        [ "$name" = weightwarden-agent ] || source=$HERE/$name.$script
        [ -f "$source" ] || continue
        sed -e "s/@DEB_VERSION@/$deb_version/g" -e "s/@UPSTREAM_VERSION@/$upstream/g" \
            -e "s/@CONFIG_FORMAT@/$config_format/g" "$source" >"$root/DEBIAN/$script"
        chmod 0755 "$root/DEBIAN/$script"
    done
    local installed_size
    installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
    { printf 'Package: %s\nVersion: %s\nArchitecture: %s\n' "$name" "$deb_version" "$package_arch"
      printf 'Maintainer: Weightwarden maintainers <security@example.org>\nInstalled-Size: %s\n' "$installed_size"
      printf '%s\n' "$control"; } >"$root/DEBIAN/control"
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 -r md5sum) \
        >"$root/DEBIAN/md5sums"
    [ -s "$root/DEBIAN/md5sums" ] || rm "$root/DEBIAN/md5sums"
    find "$root" -newermt "@$epoch" -exec touch -h -d "@$epoch" {} +
    local deb=$out/${name}_${deb_version}_${package_arch}.deb
    SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Z"$compression" "${level[@]}" --build "$root" "$deb" >/dev/null
    echo "$deb"
}

mkdir -p "$out"
level=()
case "$compression" in xz) level=(-z6) ;; zstd) level=(-z3) ;; gzip) level=(-z6) ;; none) ;;
    *) echo "build.sh: --compression xz|zstd|gzip|none" >&2; exit 2 ;; esac

# The former single package `weightwarden` (up to 0.1.x) is split: its files are taken over (Replaces),
# and it must not stay configured beside them (Breaks); the transitional package below takes its name,
# so its old postrm (whose purge deletes /etc/weightwarden and /var/lib/weightwarden) is never run.
takeover="Replaces: weightwarden (<< $deb_version)
Breaks: weightwarden (<< $deb_version)"

control="Depends: $python_dep, passwd, libc6
Recommends: systemd
$takeover
Section: admin
Priority: optional
Homepage: https://example.org/weightwarden
Description: insider-threat monitor for ML model files (agent)
 Weightwarden protects trained model files (weights, checkpoints, adapters)
 on ML workstations and GPU servers: it identifies them by content, watches
 who reads, copies, packs or sends them, keeps a tamper-evident log and
 forwards alerts to the organisation's SIEM. This package runs the agent as
 a system service and provides the weightwarden command; it has no desktop
 parts, for headless servers. The desktop app is in weightwarden-app."
package weightwarden-agent "$arch"

control="Depends: weightwarden-agent (= $deb_version), libc6, libegl1, libgl1, libxkbcommon0, libfontconfig1, libdbus-1-3, libglib2.0-0
Recommends: libxcb-cursor0
$takeover
Section: admin
Priority: optional
Homepage: https://example.org/weightwarden
Description: insider-threat monitor for ML model files (desktop app)
 Weightwarden protects trained model files on ML workstations. This package
 adds the desktop app for the logged-in user: alerts, reviews, the models
 and their access, started at login. It runs on the agent installed by
 weightwarden-agent."
# The autostart entry lives in /etc: an admin may switch it off, and an upgrade must keep that.
install -d -m 0755 "$work/weightwarden-app/DEBIAN"
echo /etc/xdg/autostart/weightwarden-gui.desktop >"$work/weightwarden-app/DEBIAN/conffiles"
package weightwarden-app "$arch"

control="Depends: weightwarden-agent (>= $deb_version), weightwarden-app (>= $deb_version)
Section: oldlibs
Priority: optional
Homepage: https://example.org/weightwarden
Description: insider-threat monitor for ML model files (transitional package)
 This transitional package upgrades the former single weightwarden package
 to weightwarden-agent and weightwarden-app. It can be removed once they are
 installed; install only weightwarden-agent on headless servers."
package weightwarden all
