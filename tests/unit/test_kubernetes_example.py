"""deploy/kubernetes/sidecar.yaml: the embedded probes file is valid and the wiring matches the agent."""

from __future__ import annotations

from pathlib import Path

import yaml

from probe_agent.agent import Agent
from probe_agent.config import parse_config
from probe_agent.server import make_app

DOCS = list(yaml.safe_load_all((Path(__file__).parents[2] / "deploy" / "kubernetes" / "sidecar.yaml").read_text()))
CONFIGMAP = next(d for d in DOCS if d["kind"] == "ConfigMap")
DEPLOYMENT = next(d for d in DOCS if d["kind"] == "Deployment")
AGENT = next(c for c in DEPLOYMENT["spec"]["template"]["spec"]["containers"] if c["name"] == "probe-agent")


def test_embedded_probes_file_is_valid_with_the_env_the_pod_sets() -> None:
    env = {e["name"]: "x" for e in AGENT["env"]}
    config = parse_config(CONFIGMAP["data"]["probes.yaml"], env=env)
    assert {p.type for p in config.probes} == {"http", "postgres", "redis"}
    # passwords come from Kubernetes Secrets through the environment, never from the manifest
    text = CONFIGMAP["data"]["probes.yaml"]
    assert text.count("password:") == text.count('password: "${') == 2


def test_agent_wiring_matches_its_endpoints() -> None:
    app = make_app(Agent(parse_config("probes: []", env={}, allow_empty=True)))
    paths = {route.resource.canonical for route in app.router.routes() if route.resource is not None}
    assert {"/health/live", "/metrics"} <= paths
    port = AGENT["ports"][0]["containerPort"]
    assert AGENT["args"][-1] == f"0.0.0.0:{port}"
    assert AGENT["livenessProbe"]["httpGet"]["path"] == "/health/live"
    annotations = DEPLOYMENT["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"
    mount = AGENT["volumeMounts"][0]["mountPath"]
    assert AGENT["args"][2] == f"{mount}/probes.yaml"
    assert "readinessProbe" not in AGENT  # see the comment at the top of the manifest


def test_pod_runs_as_the_images_numeric_user() -> None:
    """The kubelet refuses runAsNonRoot with an image whose USER is a name: 'container has
    runAsNonRoot and image has non-numeric user (probe), cannot verify user is non-root'."""
    dockerfile = (Path(__file__).parents[2] / "Dockerfile").read_text()
    user = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER "))
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {user} must be a non-root number"
    context = AGENT["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == int(uid)
    assert str(context.get("runAsGroup", gid)) == (gid or str(context.get("runAsGroup")))
    healthcheck = next(line for line in dockerfile.splitlines() if "CMD [\"probe-agent\", \"check\"" in line)
    assert "/health/live" in healthcheck  # the image checks itself with the agent
