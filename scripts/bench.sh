#!/usr/bin/env bash
# The benchmarks of docs/benchmarks.md: installs what they need (nginx-light), then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --bench
.venv/bin/python bench/scale.py "$@"
.venv/bin/python bench/accuracy.py
.venv/bin/python bench/http_probe.py
.venv/bin/python bench/http_engines.py
.venv/bin/python bench/postgres_probe.py
.venv/bin/python bench/reload_memory.py
