#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: install, start services, the lint and type
# gate (scripts/lint.sh), then pytest under coverage (branch coverage of probe_agent, the
# daemons and commands the tests start included), printed at the end. The whole suite must
# keep at least COVERAGE_FLOOR percent; a run of a part of it (`scripts/test.sh tests/unit`)
# prints its figure without the floor.
set -euo pipefail
cd "$(dirname "$0")/.."
COVERAGE_FLOOR=88
scripts/bootstrap.sh --test
scripts/lint.sh
data="$PWD/.coverage-data"
rm -rf "$data" && mkdir -p "$data"
export COVERAGE_FILE="$data/coverage"
whole=1
prev=""
for arg in "$@"; do
  # a test path or id, or a selection (-k, -m, --lf): a part of the suite
  if [ -e "${arg%%::*}" ] || [ "$prev" = "-k" ] || [ "$prev" = "-m" ] || [ "$arg" = "--lf" ] || [ "$arg" = "-x" ]; then
    whole=0
  fi
  prev="$arg"
done
status=0
.venv/bin/python -m coverage run -m pytest "$@" || status=$?
.venv/bin/python -m coverage combine -q || true
floor=0
[ "$whole" = 1 ] && [ "$status" = 0 ] && floor="$COVERAGE_FLOOR"
covered=0
.venv/bin/python -m coverage report --fail-under="$floor" > "$data/report.txt" || covered=$?
echo "branch coverage of probe_agent: $(grep '^TOTAL' "$data/report.txt" | awk '{print $NF}')" \
  "(floor ${COVERAGE_FLOOR}% for the whole suite; every file: .venv/bin/python -m coverage report)"
[ "$status" = 0 ] && status=$covered
exit "$status"
