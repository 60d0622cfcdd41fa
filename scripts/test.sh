#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: install, start services, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
exec .venv/bin/python -m pytest "$@"
