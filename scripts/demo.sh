#!/usr/bin/env bash
# The agent on its embedded default: the bundled demo shop, probed with the bundled probes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/probe-agent demo "$@"
