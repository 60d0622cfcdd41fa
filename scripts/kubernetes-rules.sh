#!/usr/bin/env bash
# Regenerate each Kubernetes overlay's PrometheusRule from the shipped alerts and the SLOs of
# the probes file the overlay deploys. tests/unit/test_kubernetes_manifests.py runs this with
# RULES_OUT set (write there instead) and fails when a committed one differs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
agent=${PROBE_AGENT:-$root/.venv/bin/probe-agent}
# the probes files name ${VAR}s the pods set; any value will do for writing rules
export PG_PASSWORD=unused REDIS_PASSWORD=unused NODE_IP=0.0.0.0
for overlay in sharded daemonset; do
  out=${RULES_OUT:+$RULES_OUT/$overlay.yaml}
  probes=deploy/kubernetes/base/probes.yaml
  [ -f "$root/deploy/kubernetes/$overlay/probes.yaml" ] && probes=deploy/kubernetes/$overlay/probes.yaml
  (cd "$root" && $agent rules -c "$probes" --include deploy/alerts.yml --kubernetes probe-agent \
    -o "${out:-deploy/kubernetes/$overlay/prometheusrule.yaml}")
done
