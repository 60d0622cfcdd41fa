"""deploy/kubernetes: every overlay renders with kustomize and validates offline, and its
pieces fit each other, the image and the agent.

Core kinds are checked with kubernetes-validate (the upstream OpenAPI schemas, strict:
an unknown field is an error); the prometheus-operator kinds against their CRDs' schemas
(tests/unit/crds), with unknown fields refused the same way. No cluster is needed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from probe_agent.cli import DEFAULT_LISTEN
from probe_agent.config.loader import parse_config
from probe_agent.config.shard import Shard
from probe_agent.runtime.agent import Agent
from probe_agent.web.server import make_app

ROOT = Path(__file__).parents[2]
KUSTOMIZE_ROOT = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("sidecar", "daemonset", "sharded", "discovery")
# the oldest and the newest Kubernetes the schemas cover that these manifests target
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CRD_FILES = sorted((Path(__file__).parent / "crds").glob("*.yaml"))
DEFAULT_PORT = int(DEFAULT_LISTEN.rpartition(":")[2])


def render(overlay: str) -> list[dict[str, Any]]:
    """`kubectl kustomize`; $KUBECTL picks another kubectl (Debian's 1.20 renders these too)."""
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl") or "kubectl"
    out = subprocess.run(
        [kubectl, "kustomize", str(KUSTOMIZE_ROOT / overlay)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


RENDERED = {overlay: render(overlay) for overlay in OVERLAYS}


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in CRD_FILES:
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            api_version = f"{crd['spec']['group']}/{version['name']}"
            schemas[(api_version, crd["spec"]["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


CRDS = crd_schemas()


def crd_validator(schema: dict[str, Any]) -> jsonschema.Draft4Validator:
    """OpenAPI v3 schemas are JSON Schema draft 4 with extensions (which draft 4 ignores). The
    schema itself is not checked: some of its patterns are Go's (`^(?i)...`), not Python's."""
    return jsonschema.Draft4Validator(schema)


def unknown_fields(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Fields the schema does not declare: the API server would prune them silently, so a
    misspelt field would just not take effect."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key in schema["properties"]:
                found += unknown_fields(item, schema["properties"][key], f"{where}.{key}")
            elif not schema.get("additionalProperties"):
                found.append(f"{where}.{key}")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            found += unknown_fields(item, schema["additionalProperties"], f"{where}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{where}[{index}]")
    return found


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [(overlay, doc) for overlay, docs in RENDERED.items() for doc in docs]


def named(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] in ("Deployment", "DaemonSet", "StatefulSet")]


def agent_container(workload: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == "probe-agent")


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_kinds_it_promises(overlay: str) -> None:
    kinds = sorted(doc["kind"] for doc in RENDERED[overlay])
    expected = {
        "sidecar": ["ConfigMap", "Deployment"],
        "daemonset": ["ConfigMap", "DaemonSet", "NetworkPolicy", "PodMonitor", "PrometheusRule", "Service"],
        "sharded": ["ConfigMap", "NetworkPolicy", "PodMonitor", "PrometheusRule", "Service", "Service", "StatefulSet"],
        "discovery": [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "PodMonitor",
            "Service",
            "ServiceAccount",
        ],
    }[overlay]
    assert kinds == expected


@pytest.mark.parametrize(("overlay", "doc"), documents(), ids=lambda v: v if isinstance(v, str) else v["kind"])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_manifest_validates_offline(overlay: str, doc: dict[str, Any], version: str) -> None:
    key = (doc["apiVersion"], doc["kind"])
    if key in CRDS:
        crd_validator(CRDS[key]).validate(doc)
        assert unknown_fields(doc, CRDS[key]) == []
    else:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validation_can_fail() -> None:
    """A misspelt field is caught in a core kind and in a prometheus-operator kind."""
    deployment = named(RENDERED["sidecar"], "Deployment")[0]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][1]["securityContex"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)
    monitor = yaml.safe_load(yaml.safe_dump(named(RENDERED["sharded"], "PodMonitor")[0]))
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    assert unknown_fields(monitor, CRDS[(monitor["apiVersion"], "PodMonitor")]) == [
        ".spec.podMetricsEndpoints[0].intervall"
    ]
    monitor["spec"]["podMetricsEndpoints"][0]["interval"] = "fifteen"
    with pytest.raises(jsonschema.ValidationError):
        crd_validator(CRDS[(monitor["apiVersion"], "PodMonitor")]).validate(monitor)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_as_the_images_numeric_non_root_user(overlay: str) -> None:
    """The kubelet refuses runAsNonRoot with an image whose USER is a name: 'container has
    runAsNonRoot and image has non-numeric user (probe), cannot verify user is non-root'."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER "))
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {user} must be a non-root number"
    for workload in workloads(RENDERED[overlay]):
        context = agent_container(workload)["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == int(uid)
        assert context["runAsGroup"] == int(gid or 0)
        assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    healthcheck = next(line for line in dockerfile.splitlines() if 'CMD ["probe-agent", "check"' in line)
    assert "/health/live" in healthcheck  # the image checks itself with the agent


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_agent_wiring_matches_the_agent(overlay: str) -> None:
    app = make_app(Agent(parse_config("probes: []", env={}, allow_empty=True)))
    paths = {route.resource.canonical for route in app.router.routes() if route.resource is not None}
    docs = RENDERED[overlay]
    for workload in workloads(docs):
        pod = workload["spec"]["template"]
        agent = agent_container(workload)
        args = agent["args"]
        port = next(p["containerPort"] for p in agent["ports"] if p["name"] == "metrics")
        assert port == DEFAULT_PORT
        assert args[args.index("--listen") + 1] == f"0.0.0.0:{port}"
        assert agent["livenessProbe"]["httpGet"]["path"] in paths
        assert "readinessProbe" not in agent  # see the comments in the manifests
        # the probes file: -c names it inside the mounted ConfigMap, which is rendered
        mount = next(m for m in agent["volumeMounts"] if args[args.index("-c") + 1].startswith(m["mountPath"] + "/"))
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
        configmap = next(c for c in named(docs, "ConfigMap") if c["metadata"]["name"] == volume["configMap"]["name"])
        text = configmap["data"][Path(args[args.index("-c") + 1]).name]
        env = {e["name"]: "x" for e in agent.get("env", [])}
        # every ${VAR} it names, the pod sets; as `run` loads it (a Kubernetes source is then
        # listed by the daemon's watch, not at load)
        config = parse_config(text, env=env, discovery={})
        assert config.probes
        # passwords come from Secrets through the environment, never from the manifest
        assert text.count("password:") == text.count('password: "${')
        for entry in agent.get("env", []):
            assert "value" not in entry or "password" not in entry["name"].lower()


@pytest.mark.parametrize("overlay", ["daemonset", "sharded"])
def test_service_monitor_and_policy_reach_the_pods(overlay: str) -> None:
    docs = RENDERED[overlay]
    (workload,) = workloads(docs)
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert selects(workload["spec"]["selector"]["matchLabels"], labels)
    agent = agent_container(workload)
    port_names = {p["name"]: p["containerPort"] for p in agent["ports"]}
    for service in named(docs, "Service"):
        assert selects(service["spec"]["selector"], labels)
        assert all(p["targetPort"] in port_names for p in service["spec"]["ports"])
    (monitor,) = named(docs, "PodMonitor")
    assert selects(monitor["spec"]["selector"]["matchLabels"], labels)
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= set(port_names)
    # the job label is the pod label's value: the shipped alerts name job="probe-agent"
    assert labels[monitor["spec"]["jobLabel"]] == "probe-agent"
    alerts = (ROOT / "deploy" / "alerts.yml").read_text()
    assert set(re.findall(r'job="([^"]+)"', alerts)) == {"probe-agent"}
    (policy,) = named(docs, "NetworkPolicy")
    assert selects(policy["spec"]["podSelector"]["matchLabels"], labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress stays open for the probes
    (rule,) = policy["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [port_names["metrics"]]
    assert all("podSelector" in peer for peer in rule["from"])  # never "from anywhere"


def test_only_the_discovery_overlay_has_an_api_token_and_it_reads_services_only() -> None:
    for overlay in OVERLAYS:
        for workload in workloads(RENDERED[overlay]):
            token = workload["spec"]["template"]["spec"].get("automountServiceAccountToken")
            assert (token is True) == (overlay == "discovery"), (overlay, token)
    docs = RENDERED["discovery"]
    (deployment,) = workloads(docs)
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    (service_account,) = named(docs, "ServiceAccount")
    assert service_account["metadata"]["name"] == account
    (role,) = named(docs, "ClusterRole")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]}]
    (binding,) = named(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert [s["name"] for s in binding["subjects"] if s["kind"] == "ServiceAccount"] == [account]
    # what the probes file asks of the API server is what the role allows
    args = agent_container(deployment)["args"]
    (configmap,) = [c for c in named(docs, "ConfigMap") if c["metadata"]["name"] == "probe-agent-discovery"]
    config = parse_config(configmap["data"][Path(args[args.index("-c") + 1]).name], env={}, discovery={})
    assert {sd.role for group in config.target_groups for sd in group.kubernetes_sd_configs} == {"service"}


def test_sharded_statefulset_agrees_with_itself() -> None:
    docs = RENDERED["sharded"]
    (statefulset,) = named(docs, "StatefulSet")
    args = agent_container(statefulset)["args"]
    shard = args[args.index("--shard") + 1]
    replicas = statefulset["spec"]["replicas"]
    assert shard == f"auto/{replicas}"
    # each replica's pod name ends in its ordinal, which is its shard index
    for ordinal in range(replicas):
        assert Shard.parse(shard, f"{statefulset['metadata']['name']}-{ordinal}") == Shard(ordinal, replicas)
    governing = next(s for s in named(docs, "Service") if s["metadata"]["name"] == statefulset["spec"]["serviceName"])
    assert governing["spec"]["clusterIP"] == "None"
    assert selects(governing["spec"]["selector"], statefulset["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize("overlay", ["daemonset", "sharded"])
def test_prometheus_rule_is_the_generated_one(overlay: str, tmp_path: Path) -> None:
    """The committed PrometheusRule is what scripts/kubernetes-rules.sh writes today, and
    promtool accepts its groups."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "kubernetes-rules.sh")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PROBE_AGENT": f"{sys.executable} -m probe_agent", "RULES_OUT": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / f"{overlay}.yaml").read_text() == (
        KUSTOMIZE_ROOT / overlay / "prometheusrule.yaml"
    ).read_text(), "regenerate with scripts/kubernetes-rules.sh"
    (rule,) = named(RENDERED[overlay], "PrometheusRule")
    rules_file = tmp_path / "groups.yml"
    rules_file.write_text(yaml.safe_dump(rule["spec"]))
    checked = subprocess.run(
        ["promtool", "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_one_default_port_everywhere() -> None:
    """9110, not the OpenTelemetry exporter's 9464 (README, "Port")."""
    assert DEFAULT_PORT == 9110
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"EXPOSE {DEFAULT_PORT}\n" in dockerfile
    compose = yaml.safe_load((ROOT / "docker-compose.test.yml").read_text())
    assert f"127.0.0.1:{DEFAULT_PORT}:{DEFAULT_PORT}" in compose["services"]["agent"]["ports"]
    readme = (ROOT / "README.md").read_text()
    assert f"default `{DEFAULT_LISTEN}`" in readme
    assert "9464" not in dockerfile + yaml.safe_dump(RENDERED)
