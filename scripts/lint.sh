#!/usr/bin/env bash
# The gate: ruff (rules in pyproject.toml) on everything, mypy --strict on the package.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/mypy
