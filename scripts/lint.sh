#!/usr/bin/env bash
# The gate: ruff's rules (pyproject.toml) and its formatter on everything, mypy --strict on the
# package, its tests and its benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
