#!/bin/sh
# Machine-wide setup around the installed files, shared by install.sh and the Debian package's postinst.
#   setup-system.sh configure VERSION [--root DIR] [--no-start]   admin group, config and data dirs, config
#                                                                  format migration, version stamp, enable +
#                                                                  (re)start
#   setup-system.sh check-version VERSION [--root DIR]      exit 1 when the data was written by a newer version
# Idempotent: running it again changes nothing. With --root (a DESTDIR, or $DPKG_ROOT) nothing outside DIR
# is touched: the group goes into DIR/etc/group, the service is enabled offline, nothing is started.
set -eu

GROUP=weightwarden-admin
UNIT=weightwarden.service
AUDIT_TIMER=weightwarden-audit.timer
SHARE=/opt/weightwarden/share

action=${1:-}
[ $# -gt 0 ] && shift
root=""
start=yes
version=""
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=${2%/}; shift 2 ;;
        --no-start) start=no; shift ;;
        *) if [ -z "$version" ]; then version=$1; shift; else echo "setup-system.sh: unknown argument $1" >&2; exit 2; fi ;;
    esac
done

say() { echo "weightwarden: $*" >&2; }

# The gid of GROUP in ROOT's group file ("" when absent): names are resolved in the target, not the host.
group_gid() {
    [ -f "$root/etc/group" ] || return 0
    awk -F: -v g="$GROUP" '$1 == g { print $3 }' "$root/etc/group"
}

ensure_group() {
    [ -n "$(group_gid)" ] && return 0
    if [ ! -f "$root/etc/group" ]; then
        say "no $root/etc/group: admin group $GROUP not created"
        return 0
    fi
    if [ -z "$root" ]; then
        groupadd --system "$GROUP"
    else
        groupadd --system --prefix "$root" "$GROUP"
    fi
    say "created the admin group $GROUP (members may resolve alerts and change policy)"
}

ensure_dirs() {
    gid=$(group_gid)
    owner=0:${gid:-0}
    for dir in /etc/weightwarden /var/lib/weightwarden; do
        mkdir -p "$root$dir"
        chown "$owner" "$root$dir"
        chmod 0750 "$root$dir"
    done
    config=$root/etc/weightwarden/config.toml
    if [ ! -e "$config" ]; then
        cp "$root$SHARE/config.toml" "$config"
        chown "$owner" "$config"
        chmod 0640 "$config"
        say "wrote $config"
    else
        # Kept as the admin left it; only never world-readable (it may hold a SIEM token).
        chmod o-rwx "$config"
    fi
}

# The config file format (agent/config_migrations.py): an older file is brought forward in place, with the
# original kept beside it; a file from a newer Weightwarden stops the install with the reason.
migrate_config() {
    config=$root/etc/weightwarden/config.toml
    python=$root/opt/weightwarden/venv/bin/python
    [ -f "$config" ] && [ -x "$python" ] || return 0
    if ! report=$("$python" -m weightwarden.agent.config_migrations "$config"); then
        say "the configuration was left unchanged; fix the problem above and run the installation again"
        exit 1
    fi
    case "$report" in *"nothing to migrate"*) ;; *) printf '%s\n' "$report" >&2 ;; esac
}

check_config() {
    # A broken config is reported, never fatal here: the agent reports it again, with file and line.
    [ -z "$root" ] || return 0
    /opt/weightwarden/venv/bin/weightwarden config check /etc/weightwarden/config.toml >/dev/null 2>&1 || \
        say "/etc/weightwarden/config.toml has problems: run 'weightwarden config check'"
}

enable_service() {
    command -v systemctl >/dev/null 2>&1 || { say "no systemctl: start $UNIT yourself"; return 0; }
    if [ -n "$root" ] || [ ! -d /run/systemd/system ]; then
        # Offline: only the WantedBy symlink; the service starts at the next boot.
        systemctl --root="${root:-/}" enable "$UNIT" >/dev/null 2>&1 || say "could not enable $UNIT offline"
        systemctl --root="${root:-/}" enable "$AUDIT_TIMER" >/dev/null 2>&1 || say "could not enable $AUDIT_TIMER offline"
        return 0
    fi
    systemctl daemon-reload
    systemctl enable "$UNIT" >/dev/null 2>&1
    # The weekly audit (`weightwarden audit --json --record`); started now, it next fires on its calendar.
    systemctl enable --now "$AUDIT_TIMER" >/dev/null 2>&1 || say "could not enable $AUDIT_TIMER"
    if [ "$start" = yes ]; then
        # restart, not start: an upgrade must run the new code, and migrate the database, now.
        systemctl restart "$UNIT" || say "$UNIT did not start: journalctl -u weightwarden"
    fi
}

# Compare dotted versions without dpkg: 0 when $1 > $2 (numeric parts; 1.2rc1 sorts before 1.2).
version_gt() {
    [ "$1" = "$2" ] && return 1
    newest=$(printf '%s\n%s\n' "$(normal "$1")" "$(normal "$2")" | sort -V | tail -n 1)
    [ "$newest" = "$(normal "$1")" ]
}
normal() { printf '%s' "$1" | sed -e 's/-[0-9][^-]*$//' -e 's/\(rc\|a\|b\)\([0-9]\)/~\1\2/' ; }

check_version() {
    stamp=$root/var/lib/weightwarden/weightwarden.version
    [ -n "$version" ] || { echo "setup-system.sh check-version VERSION" >&2; exit 2; }
    [ -f "$stamp" ] || return 0
    stamped=$(head -n 1 "$stamp")
    [ "${WEIGHTWARDEN_ALLOW_DOWNGRADE:-}" = 1 ] && return 0
    if version_gt "$stamped" "$version"; then
        say "refusing to downgrade: /var/lib/weightwarden was last used by Weightwarden $stamped," \
            "newer than $version. Install $stamped or newer; to go back anyway, export the data first and" \
            "set WEIGHTWARDEN_ALLOW_DOWNGRADE=1"
        exit 1
    fi
}

# The stamp the agent also writes (agent/version_stamp.py): the newest version that used this data.
record_version() {
    [ -n "$version" ] || return 0
    stamp=$root/var/lib/weightwarden/weightwarden.version
    if [ -f "$stamp" ] && ! version_gt "$version" "$(head -n 1 "$stamp")"; then return 0; fi
    printf '%s\n' "$version" >"$stamp.new"
    chmod 0644 "$stamp.new"
    mv "$stamp.new" "$stamp"
}

case "$action" in
    configure)
        ensure_group
        ensure_dirs
        migrate_config
        record_version
        check_config
        enable_service
        ;;
    check-version)
        check_version
        ;;
    *)
        echo "usage: setup-system.sh configure|check-version [VERSION] [--root DIR] [--no-start]" >&2
        exit 2
        ;;
esac
