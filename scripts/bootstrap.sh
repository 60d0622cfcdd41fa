#!/usr/bin/env bash
# Install what probe-agent needs on a fresh Debian machine, idempotently: skip what is there.
#   scripts/bootstrap.sh          Python venv with probe-agent (enough for `probe-agent demo`)
#   scripts/bootstrap.sh --test   also the test dependencies and the real servers the tests use,
#                                 and start the shared ones (PostgreSQL, MariaDB, Redis, NATS, RabbitMQ)
#   scripts/bootstrap.sh --bench  --test, nginx-light (the benchmarks' fast local target) and the bench extra
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
want_bench=0
[ "${1:-}" = "--test" ] && want_test=1
[ "${1:-}" = "--bench" ] && want_test=1 && want_bench=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
log() { printf '[bootstrap] %s\n' "$*" >&2; }

apt_packages=()
need() { command -v "$1" >/dev/null 2>&1 || apt_packages+=("$2"); }

need python3 python3
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_packages+=(python3-venv)
if [ "$want_test" = 1 ]; then
  need promtool prometheus
  need redis-server redis-server
  need nats-server nats-server
  need dnsmasq dnsmasq-base          # the dns probe's tests run a private one
  need prometheus-blackbox-exporter prometheus-blackbox-exporter  # the compatibility test runs the real one
  need kubectl kubernetes-client     # its kustomize renders deploy/kubernetes for the manifest test
  need chromium chromium            # the status page's browser test (Playwright drives it)
  need systemd-analyze systemd      # deploy/systemd: the unit is checked by systemd-analyze verify and security
  # deploy/nagios: the shipped commands run in a real Nagios 4 core, beside check_http
  [ -x /usr/sbin/nagios4 ] || apt_packages+=(nagios4-core)
  [ -x /usr/lib/nagios/plugins/check_http ] || apt_packages+=(monitoring-plugins-basic)
  [ -x /usr/sbin/icinga2 ] || apt_packages+=(icinga2-bin)   # and deploy/icinga2's CheckCommand in Icinga 2
  need pipx pipx                    # docs/install.md's install for one user, tested as one
  command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || apt_packages+=(rabbitmq-server)
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || apt_packages+=(mariadb-server)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_packages+=(postgresql)
fi
if [ "$want_bench" = 1 ]; then
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_packages+=(nginx-light)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  log "installing Debian packages: ${apt_packages[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
extras="[all]"  # every probe type's client library (the checkout is for trying them all)
[ "$want_test" = 1 ] && extras="[all,test]"
[ "$want_bench" = 1 ] && extras="[all,test,bench]"  # the HTTP engines bench's candidates
stamp=".venv/.installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  log "installing probe-agent${extras} into .venv"
  # the exact versions tested (scripts/lock.sh re-pins them)
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".${extras}"
  touch "$stamp"
fi

if [ "$want_test" = 1 ]; then
  # An out-of-tree probe type, installed as a user installs one (its own distribution, an entry
  # point): the registry-wide tests then cover it exactly as a built-in type.
  fixture=tests/fixtures/acme-probes
  fixture_stamp=".venv/.installed-acme-probes"
  if [ ! -f "$fixture_stamp" ] || [ -n "$(find "$fixture" -newer "$fixture_stamp" -type f | head -1)" ]; then
    log "installing the test fixture distribution acme-probes (an out-of-tree probe type) into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt --no-deps --force-reinstall "./$fixture"
    rm -rf "$fixture/build" "$fixture"/*.egg-info
    touch "$fixture_stamp"
  fi
  scripts/services.sh
fi
