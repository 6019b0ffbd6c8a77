#!/usr/bin/env bash
# Refresh the strict editable install after adding or removing a module (strict mode links files one by one).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pip install -q --no-deps --no-build-isolation --config-settings editable_mode=strict -e . 2>&1 \
  >/dev/null 2>&1 || .venv/bin/pip install --no-deps --no-build-isolation --config-settings editable_mode=strict -e .
