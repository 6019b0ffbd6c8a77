#!/usr/bin/env bash
# Refresh installer/deb/requirements.lock: the exact versions and hashes the Debian packages are built with.
#   bash installer/deb/lock.sh             # newest versions pyproject.toml allows (review the diff, then commit)
#   bash installer/deb/lock.sh --upgrade-package cryptography   # move one dependency, keep the rest
# Resolved with uv (the `test` extra installs it) for every platform and Python >= 3.11 (--universal), so
# one lock serves amd64 and arm64 builds; build.sh installs it with pip --require-hashes.
set -euo pipefail
cd "$(dirname "$0")/../.."
uv=.venv/bin/uv
[ -x "$uv" ] || uv=uv
"$uv" pip compile pyproject.toml --extra app --generate-hashes --universal --python-version 3.11 \
    --custom-compile-command "bash installer/deb/lock.sh" -o installer/deb/requirements.lock -q "$@"
echo installer/deb/requirements.lock
