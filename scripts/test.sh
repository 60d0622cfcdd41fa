#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: install, start services, the lint and type
# gate (scripts/lint.sh), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
scripts/lint.sh
exec .venv/bin/python -m pytest "$@"
