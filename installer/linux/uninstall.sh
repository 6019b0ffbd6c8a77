#!/usr/bin/env bash
# Remove what installer/linux/install.sh installed. Config and data stay unless --purge.
#   sudo bash uninstall.sh [--purge]            (also installed as /opt/weightwarden/share/uninstall.sh)
#   DESTDIR=/tmp/root bash uninstall.sh ...     # from a staging root
# --purge also deletes /etc/weightwarden, /var/lib/weightwarden (database, agent key) and the admin group.
# Idempotent: removing what is already gone is not an error. Not for the Debian package: use apt.
set -euo pipefail

DESTDIR=${DESTDIR:-}
DESTDIR=${DESTDIR%/}
OPT=/opt/weightwarden
purge=no
case "${1:-}" in
    "") ;;
    --purge) purge=yes ;;
    *) echo "usage: uninstall.sh [--purge]" >&2; exit 2 ;;
esac
log() { printf 'weightwarden: %s\n' "$*" >&2; }

if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then log "run as root"; exit 2; fi
if [ -z "$DESTDIR" ] && dpkg-query -W -f='${Status}\n' weightwarden-agent weightwarden 2>/dev/null \
        | grep -q "ok installed"; then
    log "Weightwarden was installed from the Debian package: apt remove weightwarden-app weightwarden-agent (or purge)"; exit 2
fi

# Stop first, so the agent flushes its records before its files go.
if command -v systemctl >/dev/null 2>&1; then
    if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
        systemctl disable --now weightwarden-audit.timer weightwarden.service >/dev/null 2>&1 || true
    else
        systemctl --root="${DESTDIR:-/}" disable weightwarden-audit.timer weightwarden.service >/dev/null 2>&1 || true
    fi
fi

for layout_dirs in "/usr/local/bin /etc/systemd/system /usr/local/share/applications" \
                   "/usr/bin /lib/systemd/system /usr/share/applications"; do
    read -r bindir unitdir appdir <<<"$layout_dirs"
    layout=$(cat "$DESTDIR$OPT/share/layout" 2>/dev/null || echo local)
    # Only the layout install.sh used; never files the package owns under /usr.
    case "$layout:$bindir" in local:/usr/local/bin|deb:/usr/bin) ;; *) continue ;; esac
    for tool in weightwarden weightwarden-gui; do
        if [ -L "$DESTDIR$bindir/$tool" ]; then rm -f "$DESTDIR$bindir/$tool"; fi
    done
    rm -f "$DESTDIR$unitdir/weightwarden.service" "$DESTDIR$unitdir/weightwarden-audit.service" \
          "$DESTDIR$unitdir/weightwarden-audit.timer" "$DESTDIR$appdir/weightwarden.desktop"
done
rm -f "$DESTDIR/etc/xdg/autostart/weightwarden-gui.desktop"
rm -rf "$DESTDIR$OPT"
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi

if [ "$purge" = yes ]; then
    rm -rf "$DESTDIR/etc/weightwarden" "$DESTDIR/var/lib/weightwarden"
    if [ -f "$DESTDIR/etc/group" ] && grep -q '^weightwarden-admin:' "$DESTDIR/etc/group"; then
        if [ -z "$DESTDIR" ]; then groupdel weightwarden-admin; else groupdel --prefix "$DESTDIR" weightwarden-admin; fi
    fi
    log "removed Weightwarden, its configuration, data and admin group"
else
    log "removed Weightwarden; kept /etc/weightwarden and /var/lib/weightwarden (--purge deletes them)"
fi
