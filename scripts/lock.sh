#!/usr/bin/env bash
# Re-pin constraints.txt: resolve pyproject.toml's ranges (every extra included) afresh in
# a throwaway venv and record every package's exact version. The Dockerfile, CI and
# scripts/bootstrap.sh install with `-c constraints.txt`, so a build is what was tested.
# Run it to take up new releases on purpose, then run the tests and commit both files.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check ".[all,test,bench]"
{
  echo "# Exact versions of every package probe-agent and its tests install, from scripts/lock.sh."
  echo "# Used as pip constraints by the Dockerfile, scripts/bootstrap.sh and so CI; do not edit by hand."
  "$tmp/venv/bin/pip" freeze --disable-pip-version-check --exclude probe-agent | LC_ALL=C sort -f
} > constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) packages pinned"
